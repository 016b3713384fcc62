package interceptor_test

import (
	"context"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwt"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/stepupgrpc/stepup/dpop"
	"github.com/stepupgrpc/stepup/interceptor"
	policytestv1 "github.com/stepupgrpc/stepup/interceptor/internal/testproto/policytest/v1"
	"github.com/stepupgrpc/stepup/internal/cputime"
)

// bearerCreds sends "authorization: Bearer <token>" over plaintext loopback.
type bearerCreds string

func (t bearerCreds) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"authorization": "Bearer " + string(t)}, nil
}
func (bearerCreds) RequireTransportSecurity() bool { return false }

// bearerJWT is the common baseline: verify the JWT with jwx on every call.
func bearerJWT(e *env) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		md, _ := metadata.FromIncomingContext(ctx)
		v := md.Get("authorization")
		if len(v) != 1 || !strings.HasPrefix(v[0], "Bearer ") {
			return nil, status.Error(codes.Unauthenticated, "no token")
		}
		if _, err := jwt.ParseString(strings.TrimPrefix(v[0], "Bearer "),
			jwt.WithKeySet(e.issuer.PublicSet()), jwt.WithValidate(true), jwt.WithIssuer(testIssuer),
			jwt.WithAudience(testAudience), jwt.WithClock(jwt.ClockFunc(e.clock.Now))); err != nil {
			return nil, status.Error(codes.Unauthenticated, "bad token")
		}
		return h(ctx, req)
	}
}

func discardAudit() interceptor.Option {
	return interceptor.WithAuditSink(interceptor.AuditFunc(func(context.Context, *interceptor.Event) {}))
}

// guardCtxs prebuilds n incoming contexts for method, each with a fresh
// proof, so that the timed loop measures the Guard alone.
func guardCtxs(b *testing.B, e *env, method, token string, n int, extra ...string) []context.Context {
	b.Helper()
	ctxs := make([]context.Context, n)
	for i := range ctxs {
		md := metadata.Pairs(append([]string{"authorization", "DPoP " + token, "dpop", e.proof(method, token), ":authority", "api.example"}, extra...)...)
		ctxs[i] = metadata.NewIncomingContext(context.Background(), md)
	}
	return ctxs
}

// obtainGrant answers one challenge on Granted and returns the grant.
func obtainGrant(b testing.TB, e *env, token string) string {
	b.Helper()
	return obtainGrantVia(b, e, e.raw(), token)
}

// obtainGrantVia obtains a grant for token through raw (a Guard of e's, or
// a gateway that verifies e's tokens and proofs).
func obtainGrantVia(b testing.TB, e *env, raw policytestv1.GuardedServiceClient, token string) string {
	b.Helper()
	call := func(ctx context.Context) error {
		_, err := raw.Granted(ctx, &policytestv1.PlainRequest{})
		return err
	}
	err := call(withCreds(context.Background(), "authorization", "DPoP "+token, "dpop", e.proof(mGranted, token)))
	ch := interceptor.ChallengeFromError(err)
	if ch == nil {
		b.Fatalf("no challenge: %v", err)
	}
	var header metadata.MD
	ctx := withCreds(context.Background(), "authorization", "DPoP "+token, "dpop", e.proof(mGranted, token), "stepup-answer", totpAnswer(b, e, ch))
	if _, err := raw.Granted(ctx, &policytestv1.PlainRequest{}, grpc.Header(&header)); err != nil {
		b.Fatal(err)
	}
	g := header.Get("stepup-grant")
	if len(g) != 1 {
		b.Fatal("no grant")
	}
	return g[0]
}

// BenchmarkGuardGrantOverhead runs the Guard's unary interceptor directly,
// alternating a DPoP-only call (Plain) and a call presenting a grant on a
// step-up method (Granted), and reports the cost ratio grant/dpop measured
// in the same loop (goal: <= 1.10).
func BenchmarkGuardGrantOverhead(b *testing.B) {
	e := newEnv(b, envOpts{guardOpts: []interceptor.Option{discardAudit()}})
	tok := e.boundToken(tokenOpts{})
	grant := obtainGrant(b, e, tok)
	plain := guardCtxs(b, e, mPlain, tok, b.N)
	granted := guardCtxs(b, e, mGranted, tok, b.N, "stepup-grant", grant)
	unary := e.guard.UnaryServerInterceptor()
	req := &policytestv1.PlainRequest{}
	ok := func(context.Context, any) (any, error) { return nil, nil }
	infoPlain := &grpc.UnaryServerInfo{FullMethod: mPlain}
	infoGranted := &grpc.UnaryServerInfo{FullMethod: mGranted}
	var tPlain, tGranted time.Duration
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		t0 := time.Now()
		if _, err := unary(plain[i], req, infoPlain, ok); err != nil {
			b.Fatal(err)
		}
		t1 := time.Now()
		if _, err := unary(granted[i], req, infoGranted, ok); err != nil {
			b.Fatal(err)
		}
		tPlain += t1.Sub(t0)
		tGranted += time.Since(t1)
	}
	b.ReportMetric(float64(tPlain.Nanoseconds())/float64(b.N), "dpop-ns/call")
	b.ReportMetric(float64(tGranted.Nanoseconds())/float64(b.N), "grant-ns/call")
	b.ReportMetric(float64(tGranted)/float64(tPlain), "grant/dpop")
}

// BenchmarkGuardBeyondVerifier runs, in process and alternately, the
// Guard's unary interceptor on a DPoP call and the same Verifier
// configuration's Verify alone on a proof of the same shape, and reports
// what the Guard adds per call in the calling thread's CPU time
// (guard-extra-ns: token, metadata, policy, audit event, identity) and the
// ratio of the two. The clock stands still, so b.N must stay under the
// replay store's 100 000 entries (-benchtime 5000x).
func BenchmarkGuardBeyondVerifier(b *testing.B) {
	if !cputime.Available {
		b.Skip("needs the thread CPU clock (Linux)")
	}
	e := newEnv(b, envOpts{guardOpts: []interceptor.Option{discardAudit()}})
	tok := e.boundToken(tokenOpts{})
	ctxs := guardCtxs(b, e, mPlain, tok, b.N+1)
	v, err := dpop.NewVerifier(dpop.WithClock(e.clock.Now), dpop.WithAuthorities("api.example"))
	if err != nil {
		b.Fatal(err)
	}
	proofs := make([]string, b.N+1)
	for i := range proofs {
		proofs[i] = e.proof(mPlain, tok)
	}
	unary := e.guard.UnaryServerInterceptor()
	req := &policytestv1.PlainRequest{}
	ok := func(context.Context, any) (any, error) { return nil, nil }
	info := &grpc.UnaryServerInfo{FullMethod: mPlain}
	dreq := dpop.Request{Method: "POST", Path: mPlain, AccessToken: tok, ExpectedJKT: e.signer.Thumbprint()}
	ctx := context.Background()
	// Untimed first calls: the token is verified and cached, the proof
	// key parsed and cached.
	if _, err := unary(ctxs[b.N], req, info, ok); err != nil {
		b.Fatal(err)
	}
	dreq.Proof = proofs[b.N]
	if _, err := v.Verify(ctx, dreq); err != nil {
		b.Fatal(err)
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	var guard, verify time.Duration
	b.ResetTimer()
	for i := range b.N {
		t0 := cputime.Thread()
		if _, err := unary(ctxs[i], req, info, ok); err != nil {
			b.Fatal(err)
		}
		t1 := cputime.Thread()
		dreq.Proof = proofs[i]
		if _, err := v.Verify(ctx, dreq); err != nil {
			b.Fatal(err)
		}
		t2 := cputime.Thread()
		guard, verify = guard+t1-t0, verify+t2-t1
	}
	b.ReportMetric(float64((guard-verify).Nanoseconds())/float64(b.N), "guard-extra-ns")
	b.ReportMetric(float64(guard)/float64(verify), "x-verify")
}
