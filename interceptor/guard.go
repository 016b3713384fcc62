package interceptor

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoregistry"

	"github.com/stepupgrpc/stepup/challenge"
	"github.com/stepupgrpc/stepup/dpop"
	stepupv1 "github.com/stepupgrpc/stepup/proto/stepup/v1"
)

// Limits on credential metadata, checked before any parsing. A value over
// its limit is refused with METADATA_TOO_LARGE.
const (
	// MaxAuthorizationSize bounds the authorization header value.
	MaxAuthorizationSize = 8 << 10
	// MaxProofSize is the default bound of the dpop header value: the dpop
	// verifier's own limit (dpop.WithMaxProofSize) applies.
	MaxProofSize = dpop.DefaultMaxSize
	// MaxAnswerSize bounds the stepup-answer header value (WebAuthn
	// assertions are the largest evidence).
	MaxAnswerSize = 16 << 10
	// MaxGrantSize bounds the stepup-grant header value.
	MaxGrantSize = 2 << 10
)

// Guard enforces Stepup policies on a gRPC server. Build it once with New and
// register both of its interceptors:
//
//	grpc.NewServer(
//		grpc.UnaryInterceptor(guard.UnaryServerInterceptor()),
//		grpc.StreamInterceptor(guard.StreamServerInterceptor()),
//	)
//
// A Guard is safe for concurrent use.
type Guard struct {
	cfg      config
	policies *policyTable
	tokens   *tokenCache
	algs     string            // for www-authenticate
	factors  []stepupv1.Factor // the step-up service's factors
	// unenforceable: step-up methods of the registry whose factors the
	// step-up service cannot verify (Unenforceable).
	unenforceable []string
}

type config struct {
	files         *protoregistry.Files
	configured    map[string]*stepupv1.Policy
	open          map[string]bool
	requirePolicy bool
	verifier      TokenVerifier
	dpop          *dpop.Verifier
	stepUp        *challenge.Service
	sink          AuditSink
	now           func() time.Time
	leeway        time.Duration
	cacheSize     int
	streamRecheck time.Duration
	tracer        trace.Tracer // nil: no spans (WithTracerProvider)
	// clientAuthority: WithInsecureRequestAuthority.
	clientAuthority bool
	// tokenRevocation: token and key revocations are checked;
	// revocations is where they are read (the step-up service's when the
	// option named none).
	tokenRevocation bool
	revocations     RevocationChecker
}

func defaultConfig() config {
	return config{
		configured:    map[string]*stepupv1.Policy{},
		open:          map[string]bool{},
		now:           time.Now,
		leeway:        30 * time.Second,
		cacheSize:     10_000,
		streamRecheck: DefaultStreamRecheck,
	}
}

// New builds a Guard. It fails on mistakes in its options, every one of
// them (joined), and on policies no one could enforce (*PolicyConflictError,
// *UnknownNameError, ErrNoTokenVerifier). Whether this Guard can enforce a
// method is the coverage report's answer (Coverage, CheckCoverage before
// Serve, Unenforceable for the registry); a call to a method it cannot
// enforce is refused (INTERNAL), never let through.
func New(opts ...Option) (*Guard, error) {
	cfg, err := applyGuardOptions(opts)
	if err != nil {
		return nil, err
	}
	if cfg.files == nil {
		cfg.files = protoregistry.GlobalFiles
	}
	if cfg.tokenRevocation && cfg.revocations == nil {
		cfg.revocations = cfg.stepUp.Revocations() // present: applyGuardOptions checked
	}
	if cfg.sink == nil {
		cfg.sink = NewSlogSink(slog.Default())
	}
	if cfg.dpop == nil {
		v, err := dpop.NewVerifier(dpop.WithClock(cfg.now))
		if err != nil {
			return nil, err
		}
		cfg.dpop = v
	}
	g := &Guard{cfg: cfg, algs: strings.Join(cfg.dpop.Algorithms(), " ")}
	if cfg.stepUp != nil {
		g.factors = cfg.stepUp.Factors()
	}
	if g.policies, err = newPolicyTable(cfg.files, cfg.configured, cfg.open, g.enforceability); err != nil {
		return nil, err
	}
	if cfg.verifier == nil {
		if err := g.policies.needsVerifier(); err != nil {
			return nil, err
		}
	}
	g.checkRegistry()
	if g.tokens, err = newTokenCache(cfg.cacheSize); err != nil {
		return nil, err
	}
	return g, nil
}

// Policy returns the effective policy of a full method name
// ("/pkg.Service/Method"). It allocates nothing for a method already resolved.
func (g *Guard) Policy(fullMethod string) (*EffectivePolicy, error) {
	return g.policies.lookup(fullMethod)
}

// UnaryServerInterceptor returns the unary server interceptor. The handler runs only
// after every check of the method's policy passed (or, in shadow mode, was
// audited), with the verified Identity in its context. Response metadata
// the handler sets under a name only the Guard sends (IsGuardMetadata) is
// dropped, and so are the stepup details of a status it returns. (The
// handler's context carries a wrapper of the call's transport stream for
// that: grpc.SetSendCompressor and grpc.ClientSupportedCompressors, which
// need grpc-go's own stream, fail behind the Guard, as behind grpc-go's
// OpenTelemetry plugin, grpc-go issue 9047.)
func (g *Guard) UnaryServerInterceptor() grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		ctx, _, err := g.check(ctx, info.FullMethod, req, false, nil)
		if err != nil {
			return nil, err
		}
		resp, err := handler(handlerContext(ctx), req)
		return resp, handlerStatus(err)
	}
}

// StreamServerInterceptor returns the stream server interceptor: the same checks and
// audit events as UnaryServerInterceptor, made when the stream opens (step-up included),
// with the verified Identity in the stream's context. The credentials bound
// the stream's life: it ends with UNAUTHENTICATED (audited, reason
// STREAM_TOKEN_EXPIRED, STREAM_STEPUP_EXPIRED or STREAM_REVOKED) when the
// access token expires or outlives the method's max_token_age, when the
// step-up's max_age passes, or when a re-check every WithStreamRecheck
// finds the token or the step-up revoked. The handler's context is then
// cancelled and every later SendMsg and RecvMsg fails. Response metadata
// the handler sets under a name only the Guard sends is dropped, as for
// unary calls.
func (g *Guard) StreamServerInterceptor() grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		ctx, p, err := g.check(ss.Context(), info.FullMethod, nil, true, ss)
		if err != nil {
			return err
		}
		var life *streamLife
		if id, ok := IdentityFromContext(ctx); ok && p != nil && !p.Shadow {
			life = g.newStreamLife(ctx, p, id)
		}
		if life != nil {
			ctx = life.start(ctx)
			defer life.stop()
		}
		gs := &guardedStream{ServerStream: ss, ctx: handlerContext(ctx), life: life}
		defer gs.sender.close()
		err = handler(srv, gs)
		if lerr := life.err(); lerr != nil {
			// The Guard ended the stream: its refusal, not whatever the
			// handler made of the failed send or receive.
			return lerr
		}
		return handlerStatus(err)
	}
}

// transport sets response metadata: grpc.SetHeader for unary calls, the
// ServerStream for streams.
type transport interface {
	SetHeader(metadata.MD) error
	SetTrailer(metadata.MD)
}

type unaryTransport struct{ ctx context.Context }

func (t unaryTransport) SetHeader(md metadata.MD) error { return grpc.SetHeader(t.ctx, md) }
func (t unaryTransport) SetTrailer(md metadata.MD)      { _ = grpc.SetTrailer(t.ctx, md) }

// orUnary returns tr, or for a unary call (tr nil) its transport: made
// only when a header or trailer is set, so that an allowed call without
// one does not allocate it.
func orUnary(ctx context.Context, tr transport) transport {
	if tr == nil {
		return unaryTransport{ctx}
	}
	return tr
}

// verdict is the outcome of decide.
type verdict struct {
	id      *Identity
	policy  *EffectivePolicy
	outcome *challenge.Outcome // step-up outcome, nil when not consulted
	deny    *denial            // nil when the call may proceed
	nonce   string             // the DPoP nonce the proof carried
}

// refuse returns v refused by d.
func (v verdict) refuse(d *denial) verdict {
	v.deny = d
	return v
}

// check decides one call. It returns the context for the handler (with
// the verified Identity) and the method's policy (nil when it could not be
// resolved), or the status error to send. It emits exactly one audit
// event. tr is the stream, nil for a unary call.
func (g *Guard) check(ctx context.Context, method string, req any, stream bool, tr transport) (context.Context, *EffectivePolicy, error) {
	dctx, o := g.observe(ctx, method, stream)
	v := g.decide(dctx, method, req, o)
	o.decided(v.policy)
	if d := v.deny; d != nil {
		g.describeRefusal(ctx, d, v.policy)
		// Shadow mode: decided and audited, not enforced.
		shadow := v.policy != nil && v.policy.Shadow && d.code != codes.Internal
		o.refused(d, shadow)
		o.audit(ctx, g.cfg.sink, v.policy)
		if shadow {
			return v.handlerContext(ctx), v.policy, nil
		}
		if md := d.trailer(); len(md) > 0 {
			orUnary(ctx, tr).SetTrailer(md)
		}
		return ctx, v.policy, d.status()
	}
	o.allowed()
	if header := g.responseHeader(v); header != nil {
		_ = orUnary(ctx, tr).SetHeader(header)
	}
	o.audit(ctx, g.cfg.sink, v.policy)
	return v.handlerContext(ctx), v.policy, nil
}

// handlerContext returns ctx with the verified Identity, if any.
func (v verdict) handlerContext(ctx context.Context) context.Context {
	if v.id == nil {
		return ctx
	}
	return withIdentity(ctx, v.id)
}

// describeRefusal completes what a refusal tells the client: the scheme
// the method takes, the accepted algorithms, and which proof was refused.
func (g *Guard) describeRefusal(ctx context.Context, d *denial, p *EffectivePolicy) {
	// The challenge names the scheme the method takes: DPoP unless it
	// accepts bearer tokens (never with step-up: see Policy.AllowBearer).
	d.dpop = p == nil || !p.AllowBearer
	d.algs = g.algs
	if vals := (incoming{ctx}).values(MetadataDPoP); len(vals) == 1 {
		// Names the call refused, so that the client retries only this
		// refusal (ErrorInfoProofHash).
		d.proofHash = proofHash(vals[0])
	}
}

// responseHeader is the header of an allowed call, nil when it has none:
// the grant a passed step-up issued, and the current DPoP nonce when the
// proof used another, to keep the client's nonce fresh (RFC 9449 §8.2).
func (g *Guard) responseHeader(v verdict) metadata.MD {
	var header metadata.MD
	if out := v.outcome; out != nil && out.Grant != "" {
		header = metadata.Pairs(MetadataStepUpGrant, out.Grant)
	}
	if n := g.cfg.dpop.Nonces(); n != nil && v.id != nil && v.id.Thumbprint != "" {
		if cur := n.Current(); cur != v.nonce {
			if header == nil {
				header = metadata.MD{}
			}
			header.Set(MetadataDPoPNonce, cur)
		}
	}
	return header
}

// decide runs the checks in the order of the package documentation,
// cheapest first, and stops at the first refusal: the policy, then (1) the
// credential metadata, (2) the access token, (3) the binding, (4) the DPoP
// proof (its replay insert last) and the revocations, (5) the scopes, (6)
// step-up. It tells o what each check found; the bookkeeping is o's.
func (g *Guard) decide(ctx context.Context, method string, req any, o *observation) verdict {
	e, err := g.policies.entry(method)
	if err != nil {
		return verdict{deny: newDenial(ReasonInternal, err)}
	}
	p := e.policy
	v := verdict{policy: p}
	switch {
	case !p.Defined() && g.cfg.requirePolicy:
		return v.refuse(newDenial(ReasonPolicyMissing, nil))
	case p.NoAuthentication:
		o.unauthenticated()
		return v
	case e.unenforceable != nil:
		// The coverage report's answer, computed once per method: fail closed.
		return v.refuse(newDenial(ReasonInternal, e.unenforceable))
	}

	// 1. The credential metadata.
	md := incoming{ctx}
	scheme, raw, d := readAuthorization(md)
	if d != nil {
		return v.refuse(d)
	}

	// 2. The access token.
	now := g.cfg.now()
	tctx, st := o.stage(ctx, SpanToken, &o.ev.TokenTime)
	tok, err := g.tokens.verify(tctx, g.cfg.verifier, raw, now, g.cfg.leeway)
	if d := st.end(tokenDenial(err)); d != nil {
		return v.refuse(d)
	}
	o.tokenVerified(tok)
	if d := g.checkTokenTimes(tok, p, now); d != nil {
		return v.refuse(d)
	}

	// 3. The binding.
	if d := checkBinding(scheme, tok, p); d != nil {
		return v.refuse(d)
	}
	id := &Identity{Subject: tok.Subject, Token: tok}

	// 4. The DPoP proof, then the revocations.
	if scheme == schemeDPoP {
		pctx, st := o.stage(ctx, SpanProof, &o.ev.ProofTime)
		proof, d := g.verifyProof(pctx, md, method, raw, tok.JKT)
		if d := st.end(d); d != nil {
			return v.refuse(d)
		}
		id.Thumbprint, v.nonce = proof.Thumbprint, proof.Nonce
		o.proofVerified(proof.Thumbprint)
	}
	// Revocation after the proof: whether a token or key was revoked is
	// told only to a caller that holds the key (a thief of the token alone
	// learns nothing from the refusal).
	if d := g.checkTokenRevoked(ctx, tok); d != nil {
		return v.refuse(d)
	}
	v.id = id

	// 5. The scopes.
	if d := checkScopes(tok, p); d != nil {
		return v.refuse(d)
	}

	// 6. Step-up.
	if p.StepUp == nil {
		return v
	}
	msg, canonical, err := readRequest(req)
	if err != nil {
		// What the Guard cannot read completely it can neither show the
		// user nor bind, and a handler could read it otherwise.
		return v.refuse(newRequestDenial(err))
	}
	sctx, st := o.stage(ctx, SpanStepUp, &o.ev.StepUpTime)
	out, d := g.checkStepUp(sctx, md, p, msg, canonical, id)
	v.deny, v.outcome = st.end(d), out
	if out != nil {
		if out.State == challenge.StateSatisfied {
			id.StepUp = newStepUpState(out)
		}
		o.steppedUp(out, id.StepUp)
	}
	return v
}

// readAuthorization reads the call's authorization value: its scheme and token.
func readAuthorization(md incoming) (authScheme, string, *denial) {
	authz, d := singleValue(md, MetadataAuthorization, MaxAuthorizationSize)
	if d != nil {
		return 0, "", d
	}
	if authz == "" {
		return 0, "", newDenial(ReasonTokenMissing, nil)
	}
	scheme, raw, ok := parseAuthorization(authz)
	if !ok {
		return 0, "", newDenial(ReasonTokenScheme, nil)
	}
	return scheme, raw, nil
}

// tokenDenial is the refusal of a token the TokenVerifier refused, nil
// when err is nil.
func tokenDenial(err error) *denial {
	if err == nil {
		return nil
	}
	return newDenial(reasonOf(err, ReasonTokenVerifierFailed), err)
}

// checkBinding applies the binding rules to the scheme the token came
// with.
func checkBinding(scheme authScheme, tok *Token, p *EffectivePolicy) *denial {
	switch {
	case scheme == schemeBearer && tok.JKT != "":
		// RFC 9449 §7.1: a DPoP-bound token must not be accepted as bearer.
		return newDenial(ReasonBoundTokenAsBearer, nil)
	case scheme == schemeBearer && !p.AllowBearer:
		// Includes every step-up method: answers are signed by the DPoP
		// key, and a bearer caller has none.
		return newDenial(ReasonDPoPRequired, nil)
	case scheme == schemeDPoP && tok.JKT == "":
		return newDenial(ReasonTokenNotBound, nil)
	}
	return nil
}

// checkScopes refuses a token without every scope the method requires.
func checkScopes(tok *Token, p *EffectivePolicy) *denial {
	for _, s := range p.Scopes {
		if !tok.HasScope(s) {
			return newDenial(ReasonInsufficientScope, fmt.Errorf("missing scope %q", s))
		}
	}
	return nil
}

// newStepUpState is the Identity's record of how a satisfied step-up was
// met.
func newStepUpState(out *challenge.Outcome) *StepUpState {
	s := &StepUpState{Via: string(out.Via), AuthTime: out.AuthTime, GrantID: cmp.Or(out.GrantID, out.IssuedGrantID)}
	if out.Via != challenge.ViaToken {
		s.Factor = challenge.FactorName(out.Factor)
	}
	return s
}

// checkTokenRevoked refuses, under WithTokenRevocationFrom, a token that
// could outlive the memory of a revocation (checkRevocableLifetime), and a
// token whose subject's tokens were revoked since its iat or whose DPoP key
// was revoked.
func (g *Guard) checkTokenRevoked(ctx context.Context, tok *Token) *denial {
	if !g.cfg.tokenRevocation {
		return nil
	}
	if d := checkRevocableLifetime(tok); d != nil {
		return d
	}
	tokens, key, err := g.cfg.revocations.CredentialsRevoked(ctx, tok.Subject, tok.IssuedAt, tok.JKT)
	switch {
	case err != nil:
		return newDenial(reasonOf(err, ReasonStepUpUnavailable), fmt.Errorf("the token revocation check failed: %w", err))
	case key:
		return newDenial(ReasonKeyRevoked, fmt.Errorf("the DPoP key %s of %q was revoked", tok.JKT, tok.Subject))
	case tokens:
		return newDenial(ReasonTokenRevoked, fmt.Errorf("tokens of %q issued up to %s were revoked", tok.Subject, tok.IssuedAt.UTC().Format(time.RFC3339)))
	}
	return nil
}

// checkRevocableLifetime refuses a token that a revocation could not
// cover for its whole life: a revocation is remembered for
// challenge.MaxTokenLifetime (plus the largest leeway), so a token whose
// exp is further than that from its iat, or that has no iat or no exp,
// would work again once the revocation is forgotten.
func checkRevocableLifetime(tok *Token) *denial {
	switch {
	case tok.IssuedAt.IsZero() || tok.Expiry.IsZero():
		return newDenial(ReasonTokenLifetimeTooLong, errors.New("no iat or no exp: a revocation could not tell whether it covers the token, nor for how long"))
	case tok.Expiry.Sub(tok.IssuedAt) > challenge.MaxTokenLifetime:
		return newDenial(ReasonTokenLifetimeTooLong, fmt.Errorf("the token lives %s (exp - iat), longer than a revocation is remembered (%s)",
			tok.Expiry.Sub(tok.IssuedAt), challenge.MaxTokenLifetime))
	}
	return nil
}

// checkTokenTimes re-checks exp and nbf (a cached token may have expired
// since) and applies the method's max_token_age.
func (g *Guard) checkTokenTimes(tok *Token, p *EffectivePolicy, now time.Time) *denial {
	if !tok.Expiry.IsZero() && now.After(tok.Expiry.Add(g.cfg.leeway)) {
		return newDenial(ReasonTokenExpired, nil)
	}
	if !tok.NotBefore.IsZero() && now.Add(g.cfg.leeway).Before(tok.NotBefore) {
		return newDenial(ReasonTokenNotYetValid, nil)
	}
	if p.MaxTokenAge > 0 {
		if tok.IssuedAt.IsZero() {
			return newDenial(ReasonTokenTooOld, errors.New("no iat claim, and the method limits the token's age"))
		}
		if age := now.Sub(tok.IssuedAt); age > p.MaxTokenAge+g.cfg.leeway {
			return newDenial(ReasonTokenTooOld, fmt.Errorf("token age %s exceeds %s", age.Truncate(time.Second), p.MaxTokenAge))
		}
	}
	return nil
}

// verifyProof checks the dpop header against this exact call.
func (g *Guard) verifyProof(ctx context.Context, md incoming, method, token, jkt string) (*dpop.Proof, *denial) {
	proof, d := singleValue(md, MetadataDPoP, g.cfg.dpop.MaxProofSize())
	if d != nil {
		return nil, d
	}
	if proof == "" {
		return nil, newDenial(ReasonProofMissing, nil)
	}
	var authority string
	if !g.cfg.dpop.HasAuthorities() {
		// Only compared with htu when no authorities are configured.
		authority, _ = singleValue(md, ":authority", MaxAuthorizationSize)
	}
	secure := transportSecure(ctx)
	if secure && !g.cfg.dpop.HasAuthorities() && !g.cfg.clientAuthority {
		// Secure default: over TLS, htu is checked against the names this
		// server is configured to answer to, never against what the client
		// says it dialled alone.
		return nil, newDenial(ReasonAuthorityNotConfigured, fmt.Errorf(
			"no authorities configured for a TLS server (configured: none; the call's :authority is %s): "+
				"list it with dpop.WithAuthorities in interceptor.WithDPoP, or allow it with interceptor.WithInsecureRequestAuthority",
			receivedAuthority(md)))
	}
	res, err := g.cfg.dpop.Verify(ctx, dpop.Request{
		Proof:       proof,
		Method:      "POST",
		Authority:   authority,
		Path:        method,
		AllowHTTP:   !secure,
		AccessToken: token,
		ExpectedJKT: jkt,
	})
	if err != nil {
		if dpop.ReasonOf(err) == dpop.ReasonBadURI {
			// What the client sent next to what the proof names: the
			// usual mistake is a configured authority that is not the
			// :authority grpc-go sends (the TLS ServerName, without port).
			err = fmt.Errorf("%w; the call's :authority is %s", err, receivedAuthority(md))
		}
		d := newDenial(reasonOf(err, Reason(dpop.ReasonMalformed)), err)
		var de *dpop.ProofError
		if errors.As(err, &de) && de.UseNonce() {
			if n := g.cfg.dpop.Nonces(); n != nil {
				d.nonce = n.Current()
			}
		}
		return nil, d
	}
	return res, nil
}

// checkStepUp asks the challenge service whether the call's step-up
// requirement is satisfied.
func (g *Guard) checkStepUp(ctx context.Context, md incoming, p *EffectivePolicy, req proto.Message, canonical []byte, id *Identity) (*challenge.Outcome, *denial) {
	answer, d := singleValue(md, MetadataStepUpAnswer, MaxAnswerSize)
	if d != nil {
		return nil, d
	}
	grant, d := singleValue(md, MetadataStepUpGrant, MaxGrantSize)
	if d != nil {
		return nil, d
	}
	out, err := g.cfg.stepUp.Check(ctx, challenge.Call{
		Subject:       id.Subject,
		Thumbprint:    id.Thumbprint,
		Method:        p.FullMethod,
		Requirement:   p.StepUp,
		Request:       req, // digested when bound, summarised for the user always
		Canonical:     canonical,
		TokenACR:      id.Token.ACR,
		TokenAuthTime: id.Token.AuthTime,
		Answer:        answer,
		Grant:         grant,
	})
	if err != nil {
		if challenge.ReasonOf(err) == challenge.ReasonStoreUnavailable {
			return nil, newDenial(ReasonStepUpUnavailable, err)
		}
		// A factor lookup that failed, or a requirement the service cannot
		// check: the server's fault, refused as internal.
		return nil, newDenial(ReasonInternal, err)
	}
	if out.State == challenge.StateSatisfied {
		return out, nil
	}
	return out, stepUpDenial(out, p.StepUp)
}

// lazyRequest is a request the Guard reads only when a step-up check
// needs it, after the token, the proof and the scopes passed: the
// gateway's raw request frames, which it decodes then, and whose bytes it
// replaces with the canonical encoding it returns, so that what the
// backend receives is exactly what was summarised and digested.
type lazyRequest interface {
	StepUpRequest() (msg proto.Message, canonical []byte, err error)
}

// readRequest returns a unary call's request as a step-up check reads it:
// the message and its canonical encoding (docs/PROTOCOL.md §13), or a
// *challenge.RequestError when it holds anything the server's descriptors
// do not declare. Nil for a stream.
func readRequest(req any) (proto.Message, []byte, error) {
	switch r := req.(type) {
	case lazyRequest:
		return r.StepUpRequest()
	case proto.Message:
		b, err := challenge.CanonicalRequest(r)
		if err != nil {
			return nil, nil, err
		}
		return r, b, nil
	}
	return nil, nil, nil
}

// incoming reads a call's request metadata one key at a time: only the
// values of that key are copied, where metadata.FromIncomingContext would
// copy every header of the call.
type incoming struct{ ctx context.Context }

func (m incoming) values(key string) []string { return metadata.ValueFromIncomingContext(m.ctx, key) }

// singleValue returns the only value of key, "" when absent, and refuses
// duplicates and oversized values.
func singleValue(md incoming, key string, limit int) (string, *denial) {
	vals := md.values(key)
	switch {
	case len(vals) == 0:
		return "", nil
	case len(vals) > 1:
		return "", newDenial(ReasonMetadataDuplicate, fmt.Errorf("%d values of %s", len(vals), key))
	case len(vals[0]) > limit:
		return "", newDenial(ReasonMetadataTooLarge, fmt.Errorf("%s is %d bytes, limit %d", key, len(vals[0]), limit))
	}
	return vals[0], nil
}

type authScheme int

const (
	schemeBearer authScheme = iota + 1
	schemeDPoP
)

// parseAuthorization splits "DPoP <token>" or "Bearer <token>" (scheme
// case-insensitive, RFC 9110 §11.1) and checks token68 syntax.
func parseAuthorization(v string) (authScheme, string, bool) {
	name, token, ok := strings.Cut(v, " ")
	if !ok || !isToken68(token) {
		return 0, "", false
	}
	switch {
	case strings.EqualFold(name, "DPoP"):
		return schemeDPoP, token, true
	case strings.EqualFold(name, "Bearer"):
		return schemeBearer, token, true
	}
	return 0, "", false
}

// isToken68 reports RFC 9110 §11.2 token68: ALPHA / DIGIT / "-" / "." / "_"
// / "~" / "+" / "/", then "=" padding only. It runs over the whole access
// token on every call, so it reads a table rather than comparing ranges.
func isToken68(s string) bool {
	i := 0
	for i < len(s) && token68Chars[s[i]] {
		i++
	}
	if i == 0 {
		return false
	}
	for ; i < len(s); i++ {
		if s[i] != '=' {
			return false
		}
	}
	return true
}

// token68Chars marks the bytes token68 allows before its padding.
var token68Chars = func() (t [256]bool) {
	for c := range 256 {
		t[c] = 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
			c == '-' || c == '.' || c == '_' || c == '~' || c == '+' || c == '/'
	}
	return t
}()

// peerString is a.String(), with one allocation for a TCP address where
// net.TCPAddr.String makes three.
func peerString(a net.Addr) string {
	if t, ok := a.(*net.TCPAddr); ok && t.Zone == "" && t.Port >= 0 && t.Port <= math.MaxUint16 {
		if ip, ok := netip.AddrFromSlice(t.IP); ok {
			return netip.AddrPortFrom(ip.Unmap(), uint16(t.Port)).String()
		}
	}
	return a.String()
}

// receivedAuthority quotes the call's :authority for an audit detail,
// clipped: it is the client's to choose.
func receivedAuthority(md incoming) string {
	a, d := singleValue(md, ":authority", MaxAuthorizationSize)
	switch {
	case d != nil:
		return "unreadable"
	case a == "":
		return "absent"
	case len(a) > 128:
		a = a[:128] + "…"
	}
	return strconv.Quote(a)
}

// transportSecure reports whether the call arrived over a transport with
// privacy and integrity (TLS, ALTS), in which case only https htu are
// accepted. grpc's insecure credentials report an AuthInfo too, with
// SecurityLevel NoSecurity: that is plaintext.
func transportSecure(ctx context.Context) bool {
	p, ok := peer.FromContext(ctx)
	if !ok || p.AuthInfo == nil {
		return false
	}
	return credentials.CheckSecurityLevel(p.AuthInfo, credentials.PrivacyAndIntegrity) == nil
}
