package gateway

import (
	"context"
	"errors"
	"io"
	"strings"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/dynamicpb"

	"github.com/stepupgrpc/stepup/challenge"
	"github.com/stepupgrpc/stepup/gateway/assertion"
	"github.com/stepupgrpc/stepup/interceptor"
)

// Reason codes of the gateway's own audit events (docs/GATEWAY.md), sent
// after the Guard's decision allowed a call.
const (
	// ReasonBackendUnavailable: the backend could not be reached (or the
	// connection to it broke before it answered). The client gets
	// UNAVAILABLE.
	ReasonBackendUnavailable interceptor.Reason = "BACKEND_UNAVAILABLE"
	// ReasonAssertionFailed: the identity assertion could not be signed.
	// The client gets INTERNAL.
	ReasonAssertionFailed interceptor.Reason = "ASSERTION_FAILED"
)

// DecisionBackendError is the decision of the gateway's audit event for a
// call the Guard allowed that the gateway could not forward.
const DecisionBackendError interceptor.Decision = "backend_error"

// credentialHeaders are request metadata the backend never receives: the
// caller's credentials (verified by the gateway) and the assertion header
// (only the gateway's own reaches the backend).
var credentialHeaders = map[string]bool{
	interceptor.MetadataAuthorization: true,
	interceptor.MetadataDPoP:          true,
	interceptor.MetadataStepUpAnswer:  true,
	interceptor.MetadataStepUpGrant:   true,
	assertion.Metadata:                true,
}

// proxy is the handler of every call: the Guard's unary checks for unary
// methods of the descriptor sets (on the request, which it decodes only
// when the policy needs it), the stream checks for every other call, then
// forward.
func (g *Gateway) proxy(_ any, ss grpc.ServerStream) error {
	full, ok := grpc.MethodFromServerStream(ss)
	if !ok {
		return status.Error(codes.Internal, "no method")
	}
	m, known := g.methods[full]
	if !known || m.clientStreams || m.serverStreams {
		info := &grpc.StreamServerInfo{FullMethod: full, IsClientStream: m.clientStreams || !known, IsServerStream: m.serverStreams || !known}
		return g.stream(nil, ss, info, func(_ any, guarded grpc.ServerStream) error {
			return g.forward(guarded.Context(), full, guarded, nil)
		})
	}
	first := &frame{}
	if err := ss.RecvMsg(first); err != nil {
		if errors.Is(err, io.EOF) {
			return status.Error(codes.InvalidArgument, "a unary call sent no request message")
		}
		return err
	}
	var req any = first
	var read *stepUpFrame
	if p, err := g.guard.Policy(full); err == nil && p.StepUp != nil {
		// Step-up reads the request (its summary, and its digest when
		// bound; in shadow mode too, so that the audit says what enforcing
		// would do). The Guard asks for it only after the token, the proof
		// and the scopes passed.
		read = &stepUpFrame{frame: first, input: m.input}
		req = read
	}
	_, err := g.unary(ss.Context(), req, &grpc.UnaryServerInfo{FullMethod: full}, func(ctx context.Context, _ any) (any, error) {
		digest := ""
		if read != nil && read.canonical != nil {
			digest = challenge.DigestCanonical(full, read.canonical)
		}
		return nil, g.forwardUnary(ctx, full, ss, first, digest)
	})
	if first.data != nil { // refused: never sent
		first.free()
	}
	return err
}

// stepUpFrame is the request of a unary step-up call, which the Guard
// reads only once the caller is authenticated (StepUpRequest).
type stepUpFrame struct {
	*frame
	input     protoreflect.MessageDescriptor
	canonical []byte // what the frame holds, once read
}

// StepUpRequest decodes the request and returns it with its canonical
// encoding (docs/PROTOCOL.md §13), which from then on replaces the
// client's bytes: the backend receives exactly what the Guard summarised
// and digested, never another spelling that another parser could read
// otherwise (a field repeated with another wire type, say). A request that
// does not decode, or holds anything the descriptors do not declare, is
// refused (*challenge.RequestError) and never forwarded (in shadow mode it
// is, as it came).
func (f *stepUpFrame) StepUpRequest() (proto.Message, []byte, error) {
	msg := dynamicpb.NewMessage(f.input)
	if err := proto.Unmarshal(f.bytes(), msg); err != nil {
		return nil, nil, &challenge.RequestError{Reason: challenge.ReasonRequestInvalid, Field: "(request)",
			Detail: "does not decode as " + string(f.input.FullName()) + ": " + err.Error()}
	}
	canonical, err := challenge.CanonicalRequest(msg)
	if err != nil {
		return nil, nil, err
	}
	f.data.Free()
	f.data = mem.BufferSlice{mem.SliceBuffer(canonical)}
	f.canonical = canonical
	return msg, canonical, nil
}

// forward relays one call to the backend: the request metadata without
// credentials and with the assertion, first (already received) and the rest
// of the client's messages up, the backend's header, messages, trailer and
// status down.
func (g *Gateway) forward(ctx context.Context, full string, down grpc.ServerStream, first *frame) error {
	md, err := g.outgoing(ctx, full, "")
	if err != nil {
		g.auditFailure(ctx, full, ReasonAssertionFailed, codes.Internal, err)
		return status.Error(codes.Internal, "internal error")
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	up, err := g.backend.NewStream(metadata.NewOutgoingContext(ctx, md),
		&grpc.StreamDesc{ServerStreams: true, ClientStreams: true}, full)
	if err != nil {
		return g.backendError(ctx, full, err)
	}
	// Client to backend, until the client half-closes or either side ends.
	upDone := make(chan error, 1)
	go func() {
		upDone <- pumpUp(down, up, first)
	}()
	// Backend to client. The header comes first (or the stream ended
	// without one, and RecvMsg says why).
	hdr, err := up.Header()
	if err != nil {
		return g.backendError(ctx, full, err)
	}
	if hdr = responseMetadata(hdr); len(hdr) > 0 {
		if err := down.SendHeader(hdr); err != nil {
			return err
		}
	}
	for {
		f := &frame{}
		if err := up.RecvMsg(f); err != nil {
			if tr := responseMetadata(up.Trailer()); len(tr) > 0 {
				down.SetTrailer(tr)
			}
			if errors.Is(err, io.EOF) {
				return nil
			}
			if st, ok := status.FromError(err); ok && st.Code() == codes.Canceled && ctx.Err() != nil {
				return status.FromContextError(ctx.Err()).Err()
			}
			return err
		}
		if err := down.SendMsg(f); err != nil {
			f.free()
			return err
		}
		select {
		case err := <-upDone:
			// The client's side failed (not a half-close): end the call.
			if err != nil {
				return err
			}
			upDone = nil
		default:
		}
	}
}

// forwardUnary relays a unary call: one request, one response (or a
// status), with the header and trailer, in one Invoke. digest is the
// request digest of req when the gateway read it, for the assertion.
func (g *Gateway) forwardUnary(ctx context.Context, full string, down grpc.ServerStream, req *frame, digest string) error {
	md, err := g.outgoing(ctx, full, digest)
	if err != nil {
		g.auditFailure(ctx, full, ReasonAssertionFailed, codes.Internal, err)
		return status.Error(codes.Internal, "internal error")
	}
	var hdr, trl metadata.MD
	resp := &frame{}
	err = g.backend.Invoke(metadata.NewOutgoingContext(ctx, md), full, req, resp, grpc.Header(&hdr), grpc.Trailer(&trl))
	if err != nil && len(hdr) == 0 && status.Code(err) == codes.Unavailable {
		// No header: the backend never answered (a status it sends comes
		// after a header, or trailers-only with a header block of its own).
		return g.backendError(ctx, full, err)
	}
	if hdr = responseMetadata(hdr); len(hdr) > 0 {
		if serr := down.SendHeader(hdr); serr != nil {
			resp.free()
			return serr
		}
	}
	if tr := responseMetadata(trl); len(tr) > 0 {
		down.SetTrailer(tr)
	}
	if err != nil {
		return err
	}
	return down.SendMsg(resp)
}

// pumpUp sends first, then every message the client sends, to the backend,
// and half-closes when the client does. It returns an error only when the
// client's side failed (a cancelled call): the backend's own failures come
// out of its RecvMsg.
func pumpUp(down grpc.ServerStream, up grpc.ClientStream, first *frame) error {
	if first != nil {
		if err := up.SendMsg(first); err != nil {
			return nil // the backend ended the stream; RecvMsg reports it
		}
	}
	for {
		f := &frame{}
		if err := down.RecvMsg(f); err != nil {
			if errors.Is(err, io.EOF) {
				_ = up.CloseSend()
				return nil
			}
			return err
		}
		if err := up.SendMsg(f); err != nil {
			return nil
		}
	}
}

// outgoing is the metadata the backend receives: the client's, less the
// credentials, the pseudo-headers and transport headers, and strip_headers,
// plus the gateway's identity assertion when the call was authenticated
// (with the request digest, when the gateway read the request).
func (g *Gateway) outgoing(ctx context.Context, full, digest string) (metadata.MD, error) {
	in, _ := metadata.FromIncomingContext(ctx)
	out := make(metadata.MD, len(in)+1)
	for k, v := range in {
		if credentialHeaders[k] || g.strip[k] || strings.HasPrefix(k, ":") || strings.HasPrefix(k, "grpc-") {
			continue
		}
		switch k {
		case "content-type", "user-agent", "te":
			continue
		}
		out[k] = v
	}
	id, ok := interceptor.IdentityFromContext(ctx)
	if !ok || id.Token == nil {
		return out, nil
	}
	a := &assertion.Identity{
		Subject: id.Subject, Scopes: id.Token.Scopes, ClientID: id.Token.ClientID,
		Thumbprint: id.Thumbprint, Method: full, TokenID: id.Token.ID, Digest: digest,
	}
	if su := id.StepUp; su != nil {
		a.StepUp = &assertion.StepUp{Via: su.Via, Factor: su.Factor, AuthTime: su.AuthTime, GrantID: su.GrantID}
	}
	signed, err := g.assertions.get(g.signer, a, g.now())
	if err != nil {
		return nil, err
	}
	out[assertion.Metadata] = []string{signed}
	return out, nil
}

// assertionCache keeps signed assertions for reuse by later calls that
// would get the same one (same caller, token, key, scopes, method and
// step-up), for the first half of their lifetime: an ES256 signature per
// call is the largest cost the gateway adds to the Guard's. A reused
// assertion differs only in its jti, iat and exp, which backends do not use
// for single use.
type assertionCache struct {
	lru *lru.Cache[assertionKey, cachedAssertion]
}

type cachedAssertion struct {
	signed  string
	renewAt time.Time
}

// assertionKey is every field of what an assertion says, so that two calls
// share one only when it says the same of both.
type assertionKey struct {
	subject, clientID, thumbprint, method, tokenID, scopes string
	via, factor, grantID, digest                           string
	authTime                                               int64
	stepUp                                                 bool
}

func keyOf(a *assertion.Identity) assertionKey {
	k := assertionKey{subject: a.Subject, clientID: a.ClientID, thumbprint: a.Thumbprint, method: a.Method,
		tokenID: a.TokenID, scopes: strings.Join(a.Scopes, " "), digest: a.Digest}
	if su := a.StepUp; su != nil {
		k.stepUp, k.via, k.factor, k.grantID, k.authTime = true, su.Via, su.Factor, su.GrantID, su.AuthTime.Unix()
	}
	return k
}

// assertionCacheSize bounds the cache (the least recently used go first).
const assertionCacheSize = 10_000

func newAssertionCache() *assertionCache {
	c, _ := lru.New[assertionKey, cachedAssertion](assertionCacheSize)
	return &assertionCache{lru: c}
}

func (c *assertionCache) get(s *assertion.Signer, a *assertion.Identity, now time.Time) (string, error) {
	key := keyOf(a)
	if hit, ok := c.lru.Get(key); ok && now.Before(hit.renewAt) {
		return hit.signed, nil
	}
	signed, err := s.Sign(a)
	if err != nil {
		return "", err
	}
	c.lru.Add(key, cachedAssertion{signed: signed, renewAt: now.Add(s.TTL() / 2)})
	return signed, nil
}

// responseMetadata is the backend's header or trailer less what only the
// Guard may say (interceptor.IsGuardMetadata: a backend's would make
// clients retry or keep a forged grant) and the grpc- transport namespace: the
// status (and its grpc-status-details-bin) travels as the returned error,
// where the Guard strips stepup-domain details; a copy in the trailer would
// reach the client unfiltered.
func responseMetadata(md metadata.MD) metadata.MD {
	for k := range md {
		if interceptor.IsGuardMetadata(k) || strings.HasPrefix(k, "grpc-") {
			delete(md, k)
		}
	}
	return md
}

// backendError reports a failure to reach the backend: audited, and
// UNAVAILABLE to the client (whose own deadline or cancellation, when that
// is the cause, is reported as such).
func (g *Gateway) backendError(ctx context.Context, full string, err error) error {
	if ctx.Err() != nil {
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return status.Error(codes.DeadlineExceeded, "deadline exceeded")
		}
		return status.Error(codes.Canceled, "cancelled")
	}
	if st, ok := status.FromError(err); ok && st.Code() != codes.Unavailable {
		return err
	}
	g.auditFailure(ctx, full, ReasonBackendUnavailable, codes.Unavailable, err)
	return status.Error(codes.Unavailable, "backend unavailable")
}

// auditFailure sends the gateway's own event for a call the Guard allowed
// that could not be forwarded.
func (g *Gateway) auditFailure(ctx context.Context, full string, reason interceptor.Reason, code codes.Code, err error) {
	g.audit(ctx, DecisionBackendError, full, reason, code, err)
}

// audit sends one of the gateway's own events.
func (g *Gateway) audit(ctx context.Context, d interceptor.Decision, full string, reason interceptor.Reason, code codes.Code, err error) {
	ev := &interceptor.Event{Time: g.now(), Decision: d, Reason: reason, Code: code, Method: full}
	ev.SetOrigin(ctx)
	if id, ok := interceptor.IdentityFromContext(ctx); ok {
		ev.Subject, ev.Thumbprint = id.Subject, id.Thumbprint
		if id.Token != nil {
			ev.TokenID, ev.ClientID = id.Token.ID, id.Token.ClientID
		}
	}
	if err != nil {
		ev.Detail = err.Error()
	}
	g.sink.Audit(ctx, ev)
}
