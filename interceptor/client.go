package interceptor

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"sync"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	spb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/stepupgrpc/stepup/challenge"
	"github.com/stepupgrpc/stepup/dpop"
	"github.com/stepupgrpc/stepup/internal/option"
	stepupv1 "github.com/stepupgrpc/stepup/proto/stepup/v1"
)

// Client signs calls on the client side: it attaches "authorization: DPoP
// <token>" and a fresh proof for the exact method to every call, retries
// once with the server's nonce on USE_DPOP_NONCE, answers step-up challenges
// through a challenge.Responder, and keeps step-up grants for reuse.
//
//	conn, err := grpc.NewClient(target, append(client.DialOptions(),
//		grpc.WithTransportCredentials(credentials.NewTLS(tlsConfig)))...)
//
// A Client is safe for concurrent use and may serve several connections.
type Client struct {
	signer    *dpop.Signer
	tokens    TokenSource
	responder challenge.Responder
	trusted   *challenge.KeySet
	insecure  bool
	now       func() time.Time
	grants    GrantStore
	display   challenge.DisplayFields
}

// ClientOption configures a Client. Options report their mistakes from
// NewClient, every one of them joined with errors.Join. WithClock is both an
// Option and a ClientOption (ClockOption).
type ClientOption interface {
	applyClient(*Client) error
}

// clientOptionFunc is a ClientOption that only configures a Client.
type clientOptionFunc func(*Client) error

func (f clientOptionFunc) applyClient(c *Client) error { return f(c) }

// WithResponder sets how step-up challenges are answered (a TOTP prompt, a
// device key, a WebAuthn authenticator). Without one, a step-up refusal is
// returned to the caller as it is (the default).
func WithResponder(r challenge.Responder) ClientOption {
	return clientOptionFunc(func(c *Client) error {
		if r == nil {
			return errors.New("interceptor: WithResponder: nil responder")
		}
		c.responder = r
		return nil
	})
}

// WithTrustedChallengeKeys makes the client answer only challenges whose
// MAC verifies with keys: for a first-party client that holds the server's
// challenge key set (a service calling another of the same deployment).
// Default: the challenge's signature is not checked by the client (it
// cannot be without the server's secret); its method, key, expiry, request
// digest and summary are checked whatever this option says.
func WithTrustedChallengeKeys(keys *challenge.KeySet) ClientOption {
	return clientOptionFunc(func(c *Client) error {
		if keys == nil {
			return errors.New("interceptor: WithTrustedChallengeKeys: nil key set")
		}
		c.trusted = keys
		return nil
	})
}

// WithDisplayFields declares the request fields the server displays in
// its challenge summaries beyond those marked with (stepup.v1.display) in
// this client's descriptors: the same declarations as the server's
// challenge.WithDisplayFields (a gateway's display configuration, for a
// .proto nobody can annotate). Without them the client computes another
// summary than the server's and refuses every such challenge
// (challenge.MismatchSummary). Default: none.
func WithDisplayFields(d challenge.DisplayFields) ClientOption {
	return clientOptionFunc(func(c *Client) error {
		c.display = d
		return nil
	})
}

// WithInsecureLocalTransport lets the client send its token and proofs over
// a connection without transport security. For tests on loopback only:
// anyone on the path could read the token (the proof still protects it from
// reuse, but not from being read). Default: the client refuses to send
// them without transport security.
func WithInsecureLocalTransport() ClientOption {
	return clientOptionFunc(func(c *Client) error {
		c.insecure = true
		return nil
	})
}

// NewClient returns a Client that proves possession of signer's key and
// presents tokens from ts.
func NewClient(signer *dpop.Signer, ts TokenSource, opts ...ClientOption) (*Client, error) {
	var errs []error
	if signer == nil || ts == nil {
		errs = append(errs, errors.New("interceptor: NewClient needs a signer and a token source"))
	}
	c := &Client{signer: signer, tokens: ts, now: time.Now, grants: &MemoryGrants{}}
	errs = append(errs, option.Apply("interceptor", "NewClient", opts, func(o ClientOption) error { return o.applyClient(c) }))
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return c, nil
}

// DialOptions returns the per-RPC credentials and the unary and stream
// interceptors, ready for grpc.NewClient. Add the transport credentials.
func (c *Client) DialOptions() []grpc.DialOption {
	return []grpc.DialOption{
		grpc.WithPerRPCCredentials(c.PerRPCCredentials()),
		grpc.WithChainUnaryInterceptor(c.UnaryClientInterceptor()),
		grpc.WithChainStreamInterceptor(c.StreamClientInterceptor()),
	}
}

// PerRPCCredentials returns credentials that attach the token, a fresh proof
// for the call's exact method, and a held step-up grant. Used alone, they
// sign calls but neither retry nor answer challenges.
func (c *Client) PerRPCCredentials() credentials.PerRPCCredentials { return perRPC{c} }

type perRPC struct{ c *Client }

// RequireTransportSecurity is false: GetRequestMetadata itself refuses a
// connection without transport security (unless WithInsecureLocalTransport),
// before the token is asked for, with an error that names both remedies.
// Were it true, grpc.NewClient would refuse a plaintext connection with
// its own advice to set WithTransportCredentials, which a caller who set
// insecure credentials on purpose has already done.
func (p perRPC) RequireTransportSecurity() bool { return false }

// GetRequestMetadata builds the credentials for one call.
func (p perRPC) GetRequestMetadata(ctx context.Context, uri ...string) (map[string]string, error) {
	c := p.c
	ri, ok := credentials.RequestInfoFromContext(ctx)
	if !ok || ri.Method == "" {
		return nil, errors.New("interceptor: no request info: the method to sign is unknown")
	}
	if !c.insecure {
		if err := credentials.CheckSecurityLevel(ri.AuthInfo, credentials.PrivacyAndIntegrity); err != nil {
			return nil, fmt.Errorf("interceptor: refusing to send a token over a connection without transport security (%w): "+
				"dial with TLS (grpc.WithTransportCredentials(credentials.NewTLS(...))), "+
				"or, for a test server on loopback, build the client with interceptor.WithInsecureLocalTransport()", err)
		}
	}
	if len(uri) == 0 {
		return nil, errors.New("interceptor: no request URI")
	}
	u, err := url.Parse(uri[0])
	if err != nil || u.Host == "" {
		return nil, fmt.Errorf("interceptor: request URI %q has no authority", uri[0])
	}
	authority := u.Host
	state := callStateFrom(ctx)
	token, err := c.tokens.Token(ctx)
	if err != nil {
		return nil, fmt.Errorf("interceptor: token source: %w", err)
	}
	// The server verifies htu against its own authority and the method; the
	// client always names https (the server also accepts it over plaintext
	// test connections).
	proof, err := c.signer.Proof("POST", "https://"+authority+ri.Method, token)
	if err != nil {
		return nil, err
	}
	if state != nil {
		state.sent(authority, proof, token)
	}
	md := map[string]string{
		MetadataAuthorization: "DPoP " + token,
		MetadataDPoP:          proof,
	}
	if state == nil || state.answer == "" {
		if g := c.grant(authority); g != "" {
			md[MetadataStepUpGrant] = g
		}
	}
	return md, nil
}

func (c *Client) grant(authority string) string { return c.grants.Grant(authority, c.now()) }

func (c *Client) keepGrant(authority, grant string, maxAge time.Duration) {
	if authority == "" || grant == "" || maxAge <= 0 {
		return
	}
	c.grants.KeepGrant(authority, grant, c.now().Add(maxAge))
}

// ForgetGrants drops every held grant (after a logout, say).
func (c *Client) ForgetGrants() { c.grants.ForgetGrants() }

// callState links one call's interceptor and its per-RPC credentials: the
// credentials learn the authority, the interceptor supplies the answer.
type callState struct {
	method string        // the full method called
	req    proto.Message // the request of a unary call; nil for a stream

	mu        sync.Mutex
	authority string
	proofHash string // of the proof the latest attempt sent
	answer    string
	maxAge    time.Duration // of the step-up being answered
	token     string        // the access token the latest attempt sent
	refreshed bool          // the token was refused and refreshed once
	// approvalUntil is the expiry of the challenge whose out-of-band
	// approval the answer names; zero when it names none.
	approvalUntil time.Time
}

type callStateKey struct{}

func callStateFrom(ctx context.Context) *callState {
	s, _ := ctx.Value(callStateKey{}).(*callState)
	return s
}

// sent records the authority, the proof and the token of an attempt.
func (s *callState) sent(authority, proof, token string) {
	h := proofHash(proof)
	s.mu.Lock()
	s.authority, s.proofHash, s.token = authority, h, token
	s.mu.Unlock()
}

// answers reports whether a refusal names the proof of the latest attempt:
// only such a refusal was made by the Guard, for this attempt, before any
// handler ran.
func (s *callState) answers(hash string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return hash != "" && subtle.ConstantTimeCompare([]byte(hash), []byte(s.proofHash)) == 1
}

func (s *callState) getAuthority() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.authority
}

// UnaryClientInterceptor returns the unary client interceptor: nonce retry, step-up
// answer and retry, grant capture. A call is retried at most once per cause;
// the server never runs the handler of a refused call, so a retry cannot
// execute it twice.
func (c *Client) UnaryClientInterceptor() grpc.UnaryClientInterceptor {
	return func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		state := &callState{method: method}
		state.req, _ = req.(proto.Message)
		ctx = context.WithValue(ctx, callStateKey{}, state)
		budget := fullRetryBudget
		for {
			var header, trailer metadata.MD
			callOpts := append(opts[:len(opts):len(opts)], grpc.Header(&header), grpc.Trailer(&trailer))
			callCtx := ctx
			if state.answer != "" {
				callCtx = metadata.AppendToOutgoingContext(ctx, MetadataStepUpAnswer, state.answer)
			}
			err := invoker(callCtx, method, req, reply, cc, callOpts...)
			c.learn(state, header, trailer)
			if err == nil {
				return nil
			}
			var retry bool
			var rerr error
			budget, retry, rerr = c.onRefusal(ctx, state, err, budget)
			if rerr != nil {
				return rerr
			}
			if !retry {
				return err
			}
		}
	}
}

// learn records what the server sent: a new nonce, a grant.
func (c *Client) learn(state *callState, mds ...metadata.MD) {
	authority := state.getAuthority()
	for _, md := range mds {
		if v := md.Get(MetadataDPoPNonce); len(v) > 0 && authority != "" {
			c.signer.SetNonce(authority, v[len(v)-1])
		}
		if v := md.Get(MetadataStepUpGrant); len(v) > 0 {
			c.keepGrant(authority, v[len(v)-1], state.maxAge)
		}
	}
}

// onRefusal decides whether a refused call is retried: once with a new nonce
// (USE_DPOP_NONCE), once with an answer to a step-up challenge, once with a
// new token from a RefreshableTokenSource (INVALID_TOKEN). Only a
// refusal that names the proof just sent (ErrorInfoProofHash) is acted on:
// the Guard made it before the handler ran, so a retry cannot run the
// handler twice. A challenge is checked against this call before it is
// shown to the user or answered (challenge.CheckChallenge). It returns
// the budget left after the retry it decides on.
func (c *Client) onRefusal(ctx context.Context, state *callState, err error, left retryBudget) (retryBudget, bool, error) {
	st, ok := status.FromError(err)
	if !ok {
		return left, false, nil
	}
	r := refusalDetails(st)
	if (r.wire == WireUseDPoPNonce || r.wire == WireInsufficientUserAuthentication || r.wire == WireInvalidToken || r.wire == WireApprovalPending) && !state.answers(r.proofHash) {
		return left, false, nil
	}
	switch r.wire {
	case WireApprovalPending:
		retry, werr := c.waitApproval(ctx, state, r.retry)
		return left, retry, werr
	case WireInvalidToken:
		rts, ok := c.tokens.(RefreshableTokenSource)
		state.mu.Lock()
		again := ok && !state.refreshed
		state.refreshed = true
		refused := state.token
		state.mu.Unlock()
		if !again {
			return left, false, nil
		}
		rts.Invalidate(refused)
		return left, true, nil
	case WireUseDPoPNonce:
		if !left.nonce {
			return left, false, nil
		}
		left.nonce = false
		return left, true, nil
	case WireInsufficientUserAuthentication:
		ch := r.challenge
		if ch == nil || c.responder == nil || !left.answer {
			return left, false, nil
		}
		left.answer = false
		if cerr := challenge.CheckChallenge(ch, challenge.Expected{
			Method: state.method, Request: state.req, Thumbprint: c.signer.Thumbprint(), Now: c.now(), Trusted: c.trusted,
			Display: c.display,
		}); cerr != nil {
			return left, false, &refusedChallenge{st: withoutChallenge(st, "stepup: refused a step-up challenge that is not for this call: "+cerr.Error()), err: cerr}
		}
		ev, rerr := c.responder.Respond(ctx, ch)
		if rerr == nil && (ev == nil || !slices.Contains(ch.GetFactors(), ev.Factor)) {
			// Never send evidence of a factor the challenge does not allow:
			// the server would refuse it and count a failed attempt.
			rerr = fmt.Errorf("the responder answered with a factor the challenge does not allow (%v)", ch.GetFactors())
		}
		if rerr == nil {
			var answer string
			if answer, rerr = challenge.Answer(c.signer, ch, ev); rerr == nil {
				state.mu.Lock()
				state.answer = answer
				state.maxAge = ch.GetMaxAge().AsDuration()
				if ev.Factor == stepupv1.Factor_FACTOR_APPROVAL {
					state.approvalUntil = ch.GetExpiresAt().AsTime()
				}
				state.mu.Unlock()
				return left, true, nil
			}
		}
		// Keep the refusal's code and details; the cause is text only, so
		// that an io.EOF from a closed prompt never reads as the end of a
		// stream.
		return left, false, status.ErrorProto(withMessage(st, "stepup: answering the step-up challenge failed: "+rerr.Error()))
	}
	return left, false, nil
}

// retryBudget is what a call may still retry on: once with the server's
// new nonce (USE_DPOP_NONCE) and once with an answer to a step-up
// challenge. The retry with a new token is counted in callState, which a
// stream's reopenings share.
type retryBudget struct {
	nonce  bool // a retry with a new nonce is left
	answer bool // a retry with an answer to a challenge is left
}

// fullRetryBudget is the budget of a call that has not been retried.
var fullRetryBudget = retryBudget{nonce: true, answer: true}

// Bounds of the delay between two retries of a call that waits for an
// out-of-band approval, whatever the server's RetryInfo says.
const (
	minApprovalPoll = 100 * time.Millisecond
	maxApprovalPoll = 10 * time.Second
)

// waitApproval waits for the server's retry delay, then retries the call
// with the same answer: only a call that answered with an approval, until
// the approval's challenge expires or ctx ends. The retry sends a new
// proof; the handler has not run, so it cannot run twice.
func (c *Client) waitApproval(ctx context.Context, state *callState, delay time.Duration) (bool, error) {
	state.mu.Lock()
	until := state.approvalUntil
	state.mu.Unlock()
	if until.IsZero() || !c.now().Before(until) {
		return false, nil
	}
	t := time.NewTimer(min(max(delay, minApprovalPoll), maxApprovalPoll))
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false, status.Error(status.Code(ctxErr(ctx)), "stepup: gave up waiting for the approval: "+ctx.Err().Error())
	case <-t.C:
		return true, nil
	}
}

// ctxErr maps a context's end to its gRPC status.
func ctxErr(ctx context.Context) error { return status.FromContextError(ctx.Err()).Err() }

// refusedChallenge is the error of a call whose step-up challenge the
// client refused to show or answer: the server's refusal without its
// challenge (status.FromError and status.Code see it), unwrapping to the
// *challenge.CheckError that says why.
type refusedChallenge struct {
	st  *status.Status
	err error
}

func (e *refusedChallenge) Error() string              { return e.st.Err().Error() }
func (e *refusedChallenge) GRPCStatus() *status.Status { return e.st }
func (e *refusedChallenge) Unwrap() error              { return e.err }

// withoutChallenge returns st with another message and without its
// StepUpChallenge detail, so that nothing downstream shows it.
func withoutChallenge(st *status.Status, msg string) *status.Status {
	p := withMessage(st, msg)
	kept := p.Details[:0:0]
	for _, a := range p.Details {
		if a.MessageName() != "stepup.v1.StepUpChallenge" {
			kept = append(kept, a)
		}
	}
	p.Details = kept
	return status.FromProto(p)
}

// withMessage returns st's proto with another message.
func withMessage(st *status.Status, msg string) *spb.Status {
	p := st.Proto()
	p.Message = msg
	return p
}

// refusal is what a client reads from a Stepup refusal.
type refusal struct {
	wire      string // ErrorInfo.reason
	proofHash string // ErrorInfo.metadata[ErrorInfoProofHash]
	challenge *stepupv1.StepUpChallenge
	retry     time.Duration // google.rpc.RetryInfo
	hint      Hint          // ErrorInfo.metadata hint, fix_side, fix
}

// refusalDetails extracts the wire reason, the proof hash and the step-up
// challenge.
func refusalDetails(st *status.Status) refusal {
	var r refusal
	for _, d := range st.Details() {
		switch v := d.(type) {
		case *errdetails.ErrorInfo:
			if v.GetDomain() == ErrorDomain {
				md := v.GetMetadata()
				r.wire, r.proofHash = v.GetReason(), md[ErrorInfoProofHash]
				r.hint = Hint{Code: md[ErrorInfoHint], FixSide: md[ErrorInfoFixSide], Fix: md[ErrorInfoFix]}
			}
		case *stepupv1.StepUpChallenge:
			r.challenge = v
		case *errdetails.RetryInfo:
			r.retry = v.GetRetryDelay().AsDuration()
		}
	}
	return r
}

// ChallengeFromError returns the step-up challenge carried by a refusal, or
// nil. Useful to clients that answer challenges themselves: check it with
// challenge.CheckChallenge before showing or answering it.
func ChallengeFromError(err error) *stepupv1.StepUpChallenge {
	st, ok := status.FromError(err)
	if !ok {
		return nil
	}
	return refusalDetails(st).challenge
}

// ReasonFromError returns the wire reason (ErrorInfo.reason) of a Stepup
// refusal, or "".
func ReasonFromError(err error) string {
	st, ok := status.FromError(err)
	if !ok {
		return ""
	}
	return refusalDetails(st).wire
}
