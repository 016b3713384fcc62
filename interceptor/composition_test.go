package interceptor_test

// Attacks on how the parts compose: policy merging, configured policies.
// Each test is a row of docs/SECURITY-TESTS.md.

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"io"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	healthserver "google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/protoadapt"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/stepupgrpc/stepup/challenge"
	"github.com/stepupgrpc/stepup/dpop"
	"github.com/stepupgrpc/stepup/interceptor"
	policytestv1 "github.com/stepupgrpc/stepup/interceptor/internal/testproto/policytest/v1"
	stepupv1 "github.com/stepupgrpc/stepup/proto/stepup/v1"
)

// guardedOnly reannotates GuardedService: its default, and the given
// methods; every other method of it loses its own annotation.
func guardedOnly(t testing.TB, svc *stepupv1.Policy, methods map[string]*stepupv1.Policy) interceptor.Option {
	t.Helper()
	m := map[string]*stepupv1.Policy{"policytest.v1.GuardedService": svc}
	for _, name := range []string{"Plain", "Sensitive", "Reusable", "Granted", "Health", "Watch", "Upload", "Chat"} {
		m[guarded+name] = nil
	}
	for k, v := range methods {
		m[k] = v
	}
	return interceptor.WithFiles(reannotated(t, m))
}

// TestInheritedOptOutRefused: an opt-out in a service default next to a
// method that declares a requirement fails New, naming the method and both
// fields; before, the method silently lost its requirement (a call without
// credentials ran the handler, a bound approval was dropped).
func TestInheritedOptOutRefused(t *testing.T) {
	tests := []struct {
		name   string
		svc    *stepupv1.Policy
		method string
		own    *stepupv1.Policy
		want   string
	}{
		{"service insecure_no_authentication over a method's scopes and max_token_age",
			&stepupv1.Policy{InsecureNoAuthentication: proto.Bool(true)}, mPlain,
			&stepupv1.Policy{Scopes: []string{"admin"}, MaxTokenAge: durationpb.New(time.Minute)},
			mPlain + ": policy.max_token_age contradicts default_policy.insecure_no_authentication"},
		{"service insecure_no_step_up over a method's bound step-up",
			&stepupv1.Policy{InsecureNoStepUp: proto.Bool(true)}, mSensitive,
			&stepupv1.Policy{StepUp: &stepupv1.StepUp{BindRequest: true}},
			mSensitive + ": policy.step_up contradicts default_policy.insecure_no_step_up"},
		{"service shadow over a method's step-up",
			&stepupv1.Policy{Shadow: proto.Bool(true), Scopes: []string{"guarded"}}, mGranted,
			&stepupv1.Policy{StepUp: &stepupv1.StepUp{MaxAge: durationpb.New(time.Minute)}},
			mGranted + ": policy.step_up contradicts default_policy.shadow"},
		{"service and method step-up factors with nothing in common",
			&stepupv1.Policy{StepUp: &stepupv1.StepUp{Factors: []stepupv1.Factor{stepupv1.Factor_FACTOR_WEBAUTHN}}}, mGranted,
			&stepupv1.Policy{StepUp: &stepupv1.StepUp{Factors: []stepupv1.Factor{stepupv1.Factor_FACTOR_TOTP}}},
			mGranted + ": policy.step_up.factors contradicts default_policy.step_up.factors"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := policyGuard(t, guardedOnly(t, tt.svc, map[string]*stepupv1.Policy{tt.method: tt.own}))
			var ce *interceptor.PolicyConflictError
			if !errors.As(err, &ce) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("New = %v, want a conflict %q", err, tt.want)
			}
		})
	}
}

// TestMethodClaimsAuthenticationBack: under a service marked
// insecure_no_authentication, a method that says
// insecure_no_authentication: false needs credentials; a call without any
// never reaches its handler.
func TestMethodClaimsAuthenticationBack(t *testing.T) {
	e := newEnv(t, envOpts{guardOpts: []interceptor.Option{guardedOnly(t,
		&stepupv1.Policy{InsecureNoAuthentication: proto.Bool(true)},
		map[string]*stepupv1.Policy{mPlain: {InsecureNoAuthentication: proto.Bool(false), Scopes: []string{"admin"}}})}})
	err := atkDo(context.Background(), e, mPlain)
	assertRefused(t, e, err, atkToken(interceptor.ReasonTokenMissing))
	if n := e.server.handled(mPlain); n != 0 {
		t.Fatalf("the handler ran %d times", n)
	}
}

// TestInheritedScopesKept: a method's own scopes add to the service's; a
// token with only the method's scope is refused (before, the method's list
// replaced the service's).
func TestInheritedScopesKept(t *testing.T) {
	e := newEnv(t, envOpts{})
	p := atkAs(e, tokenOpts{Scope: "guarded:write"})
	err := atkDo(p.ctx(t, mSensitive), e, mSensitive)
	assertRefused(t, e, err, refusal{codes.PermissionDenied, interceptor.WireInsufficientScope, interceptor.ReasonInsufficientScope})
	if !strings.Contains(e.audit.last(t).Detail, `"guarded"`) {
		t.Errorf("audit detail %q does not name the missing scope", e.audit.last(t).Detail)
	}
}

// TestInheritedFactorsNarrowed: a service default that allows only the
// device key, and a method whose own step-up lists the device key and TOTP:
// the method allows only what both allow, and a TOTP answer (signed by the
// caller's key, with a valid code) is refused.
func TestInheritedFactorsNarrowed(t *testing.T) {
	device, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	keys := challenge.DeviceKeysFunc(func(context.Context, string) ([]crypto.PublicKey, error) {
		return []crypto.PublicKey{device.Public()}, nil
	})
	e := newEnv(t, envOpts{
		stepUpOpts: []challenge.Option{challenge.WithDeviceKeys(keys)},
		guardOpts: []interceptor.Option{guardedOnly(t,
			&stepupv1.Policy{StepUp: &stepupv1.StepUp{Factors: []stepupv1.Factor{stepupv1.Factor_FACTOR_DEVICE_KEY}, MaxAge: durationpb.New(time.Minute)}},
			map[string]*stepupv1.Policy{mGranted: {StepUp: &stepupv1.StepUp{
				Factors: []stepupv1.Factor{stepupv1.Factor_FACTOR_DEVICE_KEY, stepupv1.Factor_FACTOR_TOTP}, MaxAge: durationpb.New(time.Minute)}}})},
	})
	alice := atkAlice(e)
	ch := atkChallenge(t, e, alice, mGranted)
	if f := ch.GetFactors(); len(f) != 1 || f[0] != stepupv1.Factor_FACTOR_DEVICE_KEY {
		t.Fatalf("challenge factors = %v, want only the device key", f)
	}
	h := atkJSON(t, map[string]any{"typ": challenge.AnswerType, "alg": "ES256", "jwk": json.RawMessage(e.signer.PublicJWK())})
	body := atkJSON(t, map[string]any{"chl": ch.GetChallenge(), "fac": "totp", "otp": atkCode(t, e.clock.Now()), "iat": e.clock.Now().Unix()})
	answer := atkCompact(h, body, atkES256(e.key.(*ecdsa.PrivateKey)))
	err = atkDo(alice.ctx(t, mGranted, "stepup-answer", answer), e, mGranted)
	assertRefused(t, e, err, atkStepUp(challenge.ReasonFactorNotAllowed))
	if n := e.server.handled(mGranted); n != 0 {
		t.Fatalf("the handler ran %d times", n)
	}
}

// TestClientNeverSendsADisallowedFactor: a responder that answers with a
// factor the challenge does not allow is stopped by the client: no answer
// reaches the server (no attempt is counted against the user).
func TestClientNeverSendsADisallowedFactor(t *testing.T) {
	device, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	keys := challenge.DeviceKeysFunc(func(context.Context, string) ([]crypto.PublicKey, error) {
		return []crypto.PublicKey{device.Public()}, nil
	})
	e := newEnv(t, envOpts{
		stepUpOpts: []challenge.Option{challenge.WithDeviceKeys(keys)},
		guardOpts: []interceptor.Option{guardedOnly(t,
			&stepupv1.Policy{StepUp: &stepupv1.StepUp{Factors: []stepupv1.Factor{stepupv1.Factor_FACTOR_DEVICE_KEY}, MaxAge: durationpb.New(time.Minute)}}, nil)},
	})
	wrong := challenge.ResponderFunc(func(context.Context, *stepupv1.StepUpChallenge) (*challenge.Evidence, error) {
		return &challenge.Evidence{Factor: stepupv1.Factor_FACTOR_TOTP, TOTP: "123456"}, nil
	})
	_, err = e.client(e.boundToken(tokenOpts{}), interceptor.WithResponder(wrong)).Granted(context.Background(), &policytestv1.PlainRequest{})
	if status.Code(err) != codes.Unauthenticated || !strings.Contains(err.Error(), "does not allow") {
		t.Fatalf("a disallowed answer: %v", err)
	}
	for _, ev := range e.audit.all() {
		if ev.Decision == interceptor.DecisionStepUpFailed {
			t.Errorf("an answer reached the server: %+v", ev)
		}
	}
	if n := e.server.handled(mGranted); n != 0 {
		t.Fatalf("the handler ran %d times", n)
	}
}

// TestConfiguredPolicyForUnknownName: a configured policy for a method or
// service that does not exist (a typo) fails New and names the closest real
// one; before, New succeeded and the method meant kept its weaker policy.
func TestConfiguredPolicyForUnknownName(t *testing.T) {
	strict := &stepupv1.Policy{Scopes: []string{"admin"}}
	tests := []struct{ name, configured, want string }{
		{"method name with a typo", unguard + "Forgoten", `did you mean "` + unguard + `Forgotten"?`},
		{"method of another case", "/policytest.v1.unguardedservice/Forgotten", `did you mean "` + unguard + `Forgotten"?`},
		{"service name with a typo", "policytest.v1.UnguardedServce", `did you mean "policytest.v1.UnguardedService"?`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := policyGuard(t, interceptor.WithPolicy(tt.configured, strict))
			if err == nil || !strings.Contains(err.Error(), `WithPolicy("`+tt.configured+`")`) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("New = %v, want the name refused and %s", err, tt.want)
			}
		})
	}
}

// TestConfiguredPolicyOverAnnotation: a configured policy for an annotated
// method, or for a service with annotations, fails New: it would be a second
// source of truth, and a weaker one could win (bearer tokens on a step-up
// method).
func TestConfiguredPolicyOverAnnotation(t *testing.T) {
	for name, configured := range map[string]string{"method": mGranted, "service": "policytest.v1.GuardedService"} {
		t.Run(name, func(t *testing.T) {
			_, err := policyGuard(t, interceptor.WithPolicy(configured, &stepupv1.Policy{InsecureAllowBearer: proto.Bool(true)}))
			var ce *interceptor.PolicyConflictError
			if !errors.As(err, &ce) || !strings.Contains(err.Error(), `WithPolicy("`+configured+`")`) {
				t.Fatalf("New = %v, want a conflict naming WithPolicy(%q)", err, configured)
			}
		})
	}
}

// ---- the client acts only on the Guard's own refusals ----

// stepupStatus is a refusal shaped like the Guard's, as a handler would
// propagate it from a downstream Stepup-protected call: wire reason, and
// optionally the proof hash and a challenge.
func stepupStatus(t testing.TB, wire, hash string, ch *stepupv1.StepUpChallenge) error {
	t.Helper()
	info := &errdetails.ErrorInfo{Reason: wire, Domain: interceptor.ErrorDomain}
	if hash != "" {
		info.Metadata = map[string]string{interceptor.ErrorInfoProofHash: hash}
	}
	details := []protoadapt.MessageV1{info}
	if ch != nil {
		details = append(details, protoadapt.MessageV1Of(ch))
	}
	st, err := status.New(codes.Unauthenticated, "downstream refused").WithDetails(details...)
	if err != nil {
		t.Fatal(err)
	}
	return st.Err()
}

// callerProofHash is what a hostile handler computes from the caller's own
// dpop header, to make its status read as a refusal of that very call.
func callerProofHash(ctx context.Context) string {
	md, _ := metadata.FromIncomingContext(ctx)
	v := md.Get("dpop")
	if len(v) != 1 {
		return ""
	}
	h := sha256.Sum256([]byte(v[0]))
	return b64u.EncodeToString(h[:])
}

// TestHandlerStatusNeverRetried: a handler that returns a Stepup-shaped
// refusal (propagated from a downstream call, or forged to name the
// caller's own proof) runs once per client call: the Guard strips the
// stepup details from it, and the client neither retries nor answers it.
// Before, the client re-sent the call and the handler ran twice (a double
// debit).
func TestHandlerStatusNeverRetried(t *testing.T) {
	downstream := &stepupv1.StepUpChallenge{Challenge: "x.y.z", Method: mPlain, Factors: []stepupv1.Factor{stepupv1.Factor_FACTOR_TOTP}}
	tests := []struct {
		name string
		fail func(ctx context.Context) error
	}{
		{"handler propagates USE_DPOP_NONCE", func(context.Context) error {
			return stepupStatus(t, interceptor.WireUseDPoPNonce, "", nil)
		}},
		{"handler forges USE_DPOP_NONCE naming the caller's proof", func(ctx context.Context) error {
			return stepupStatus(t, interceptor.WireUseDPoPNonce, callerProofHash(ctx), nil)
		}},
		{"handler propagates a step-up challenge naming the caller's proof", func(ctx context.Context) error {
			return stepupStatus(t, interceptor.WireInsufficientUserAuthentication, callerProofHash(ctx), downstream)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, envOpts{})
			e.server.failWith(tt.fail)
			app := &totpApp{e: e}
			_, err := e.client(e.boundToken(tokenOpts{}), interceptor.WithResponder(app.responder())).
				Plain(context.Background(), &policytestv1.PlainRequest{Text: "debit"})
			if status.Code(err) != codes.Unauthenticated || status.Convert(err).Message() != "downstream refused" {
				t.Fatalf("call = %v, want the handler's status", err)
			}
			if got := interceptor.ReasonFromError(err); got != "" || interceptor.ChallengeFromError(err) != nil {
				t.Errorf("the handler's status kept stepup details (reason %q) out of the Guard", got)
			}
			if n := e.server.handled(mPlain); n != 1 {
				t.Errorf("the handler ran %d times for one client call", n)
			}
			if n := len(app.challenges()); n != 0 {
				t.Errorf("the responder was asked %d times", n)
			}
		})
	}
}

// TestGuardNonceRefusalRetried is the control: the Guard's own
// USE_DPOP_NONCE names the proof and is retried once; the handler runs once.
func TestGuardNonceRefusalRetried(t *testing.T) {
	e := newEnv(t, envOpts{nonces: true})
	if _, err := e.client(e.boundToken(tokenOpts{})).Plain(context.Background(), &policytestv1.PlainRequest{Text: "hi"}); err != nil {
		t.Fatal(err)
	}
	evs := e.audit.all()
	if len(evs) != 2 || evs[0].Reason != interceptor.Reason(dpop.ReasonNonceRequired) || evs[1].Reason != interceptor.ReasonAllowed {
		t.Fatalf("audit = %+v, want a nonce refusal then an allowed call", evs)
	}
	if n := e.server.handled(mPlain); n != 1 {
		t.Fatalf("the handler ran %d times", n)
	}
}

// hostile serves GuardedService with no Guard at all: a server that answers
// every call with what fail returns.
func hostile(t *testing.T, e *env, fail func(ctx context.Context) error) (*testServer, policytestv1.GuardedServiceClient, *totpApp) {
	t.Helper()
	srv := grpc.NewServer()
	bad := &testServer{}
	bad.failWith(fail)
	policytestv1.RegisterGuardedServiceServer(srv, bad)
	h := &env{t: t, clock: e.clock, signer: e.signer, key: e.key}
	h.serve(srv, false)
	app := &totpApp{e: e}
	return bad, policytestv1.NewGuardedServiceClient(h.conn(e.signing(e.boundToken(tokenOpts{}), interceptor.WithResponder(app.responder()))...)), app
}

// TestClientIgnoresRefusalOfAnotherProof: a server without a Guard that
// relays a genuine Guard refusal of another call (it names another proof)
// gets no retry: its handler runs once.
func TestClientIgnoresRefusalOfAnotherProof(t *testing.T) {
	e := newEnv(t, envOpts{nonces: true})
	relayed := atkDo(atkAlice(e).ctx(t, mPlain), e, mPlain) // a genuine USE_DPOP_NONCE of another call
	if interceptor.ReasonFromError(relayed) != interceptor.WireUseDPoPNonce {
		t.Fatalf("setup: %v", relayed)
	}
	bad, c, _ := hostile(t, e, func(context.Context) error { return relayed })
	if _, err := c.Plain(context.Background(), &policytestv1.PlainRequest{}); interceptor.ReasonFromError(err) != interceptor.WireUseDPoPNonce {
		t.Fatalf("call = %v", err)
	}
	if n := bad.handled(mPlain); n != 1 {
		t.Fatalf("the handler ran %d times", n)
	}
}

// TestClientRefusesForeignChallenge: a hostile server answers the call
// with a genuine challenge, issued by the real server to this client's key,
// but not for this call, or with the summary rewritten. The client never
// shows it (the responder is not asked), never answers it, and says why.
func TestClientRefusesForeignChallenge(t *testing.T) {
	e := newEnv(t, envOpts{})
	// A genuine challenge for a transfer of 120.00 EUR, to this key.
	genuine := func() *stepupv1.StepUpChallenge {
		err := atkDo(atkAlice(e).ctx(t, mSensitive), e, mSensitive)
		return interceptor.ChallengeFromError(err)
	}
	tests := []struct {
		name   string
		method string // the method called
		amount int64
		ch     func() *stepupv1.StepUpChallenge
		want   challenge.Mismatch
	}{
		{"challenge for another method", mPlain, 0, genuine, challenge.MismatchMethod},
		{"challenge relabelled with the called method", mPlain, 0, func() *stepupv1.StepUpChallenge {
			ch := genuine()
			ch.Method = mPlain
			return ch
		}, challenge.MismatchMethod},
		{"challenge for another request", mSensitive, 99_900, genuine, challenge.MismatchRequest},
		{"summary rewritten by the server", mSensitive, 12_000, func() *stepupv1.StepUpChallenge {
			ch := genuine()
			ch.SummaryText = "approve GuardedService.Sensitive: amount 1.00 EUR, to your own savings"
			return ch
		}, challenge.MismatchSummary},
		{"summary item rewritten by the server", mSensitive, 12_000, func() *stepupv1.StepUpChallenge {
			ch := genuine()
			ch.Summary[0].Value = "1.00 EUR"
			return ch
		}, challenge.MismatchSummary},
		{"challenge issued to another key", mSensitive, 12_000, func() *stepupv1.StepUpChallenge {
			return atkChallenge(t, e, atkOther(t, e, "alice"), mSensitive)
		}, challenge.MismatchKey},
		{"expired challenge", mSensitive, 12_000, func() *stepupv1.StepUpChallenge {
			ch := genuine()
			e.clock.Advance(10 * time.Minute)
			return ch
		}, challenge.MismatchExpired},
		{"displayed factors not in the signed claims", mSensitive, 12_000, func() *stepupv1.StepUpChallenge {
			ch := genuine()
			ch.Factors = append(ch.Factors, stepupv1.Factor_FACTOR_WEBAUTHN)
			return ch
		}, challenge.MismatchMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ch := tt.ch()
			if ch == nil {
				t.Fatal("setup: no genuine challenge")
			}
			bad, c, app := hostile(t, e, func(ctx context.Context) error {
				return stepupStatus(t, interceptor.WireInsufficientUserAuthentication, callerProofHash(ctx), ch)
			})
			var err error
			if tt.method == mPlain {
				_, err = c.Plain(context.Background(), &policytestv1.PlainRequest{})
			} else {
				_, err = c.Sensitive(context.Background(), transferRequest(tt.amount))
			}
			var ce *challenge.CheckError
			if !errors.As(err, &ce) || ce.Mismatch != tt.want {
				t.Fatalf("call = %v, want the challenge refused locally (%s)", err, tt.want)
			}
			if status.Code(err) != codes.Unauthenticated || interceptor.ChallengeFromError(err) != nil {
				t.Errorf("the error %v still carries the challenge", err)
			}
			if n := len(app.challenges()); n != 0 {
				t.Errorf("the challenge was shown %d times", n)
			}
			if n := bad.handled(tt.method); n != 1 {
				t.Errorf("the hostile handler ran %d times", n)
			}
		})
	}
}

// ---- streams end with their credentials ----

// chatUntilRefused sends and receives on s until the stream fails, at most
// for 10 s of real time (the Guard re-checks every few milliseconds): the
// error that ended it.
func chatUntilRefused(t *testing.T, s grpc.BidiStreamingClient[policytestv1.PlainRequest, policytestv1.PlainResponse]) error {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if err := s.Send(&policytestv1.PlainRequest{Text: "again"}); err != nil {
			_, err = s.Recv()
			return err
		}
		if _, err := s.Recv(); err != nil {
			return err
		}
	}
	t.Fatal("the stream outlived its credentials")
	return nil
}

// TestStreamOutlivesCredentials: a bidi stream opened with valid
// credentials ends, with UNAUTHENTICATED and an audit event, when its token
// expires, when its step-up's max_age passes, when its step-ups are revoked
// and when the token verifier stops accepting its token. Before, the stream
// kept serving as the stepped-up user.
func TestStreamOutlivesCredentials(t *testing.T) {
	var revokedToken atomic.Bool
	stepUpChat := func(maxAge time.Duration) interceptor.Option {
		return interceptor.WithFiles(reannotated(t, map[string]*stepupv1.Policy{
			mChat: {StepUp: &stepupv1.StepUp{MaxAge: durationpb.New(maxAge)}}}))
	}
	tests := []struct {
		name   string
		opts   []interceptor.Option
		expiry time.Duration // token lifetime; 0: an hour
		act    func(t *testing.T, e *env)
		want   refusal
	}{
		{"token expires", nil, 2 * time.Minute,
			func(t *testing.T, e *env) { e.clock.Advance(3 * time.Minute) },
			atkToken(interceptor.ReasonStreamTokenExpired)},
		{"token outlives max_token_age", nil, 0,
			func(t *testing.T, e *env) { e.clock.Advance(61 * time.Minute) }, // Chat inherits max_token_age 1h
			atkToken(interceptor.ReasonStreamTokenExpired)},
		{"step-up max_age passes", []interceptor.Option{stepUpChat(time.Minute)}, 0,
			func(t *testing.T, e *env) { e.clock.Advance(61 * time.Second) },
			refusal{codes.Unauthenticated, interceptor.WireInsufficientUserAuthentication, interceptor.ReasonStreamStepUpExpired}},
		{"step-ups revoked", []interceptor.Option{stepUpChat(5 * time.Minute)}, 0,
			func(t *testing.T, e *env) {
				if err := e.stepUp.Revocations().RevokeGrants(context.Background(), "alice"); err != nil {
					t.Fatal(err)
				}
			},
			atkToken(interceptor.ReasonStreamRevoked)},
		{"token revoked at the verifier", nil, 0,
			func(t *testing.T, e *env) { revokedToken.Store(true) },
			atkToken(interceptor.ReasonStreamRevoked)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			revokedToken.Store(false)
			var e *env
			// A verifier that can be told the token is revoked, as an
			// introspection endpoint would.
			revocable := interceptor.TokenVerifierFunc(func(ctx context.Context, tok string) (*interceptor.Token, error) {
				if revokedToken.Load() {
					return nil, &interceptor.TokenError{Reason: interceptor.ReasonTokenBadSignature}
				}
				return e.jwt.VerifyToken(ctx, tok)
			})
			opts := append([]interceptor.Option{interceptor.WithStreamRecheck(2 * time.Millisecond), interceptor.WithTokenVerifier(revocable)}, tt.opts...)
			e = newEnv(t, envOpts{guardOpts: opts})
			o := tokenOpts{}
			if tt.expiry > 0 {
				o.Expiry = e.clock.Now().Add(tt.expiry)
			}
			app := &totpApp{e: e}
			s, err := e.client(e.boundToken(o), interceptor.WithResponder(app.responder())).Chat(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if err := s.Send(&policytestv1.PlainRequest{Text: "first"}); err != nil {
				t.Fatal(err)
			}
			if _, err := s.Recv(); err != nil {
				t.Fatalf("the stream did not open: %v", err)
			}
			tt.act(t, e)
			err = chatUntilRefused(t, s)
			if st := status.Convert(err); st.Code() != tt.want.code || interceptor.ReasonFromError(err) != tt.want.wire {
				t.Fatalf("stream ended with %v, want %s %s", err, tt.want.code, tt.want.wire)
			}
			var ended *interceptor.Event
			for _, ev := range e.audit.all() {
				if ev.Stream && ev.Decision == interceptor.DecisionDeny {
					ended = &ev
				}
			}
			if ended == nil || ended.Reason != tt.want.reason || ended.Subject != "alice" || ended.Method != mChat {
				t.Fatalf("audit = %+v, want a deny %s for alice's stream", e.audit.all(), tt.want.reason)
			}
		})
	}
}

// TestStreamSendAfterRefusal: a message sent after the Guard's step-up
// refusal of the stream reached the client (Header returns once it has) is
// kept and replayed on the answered stream, not reported as io.EOF; the
// handler sees it exactly once.
func TestStreamSendAfterRefusal(t *testing.T) {
	e := newEnv(t, envOpts{guardOpts: []interceptor.Option{interceptor.WithFiles(reannotated(t, map[string]*stepupv1.Policy{
		mChat: {StepUp: &stepupv1.StepUp{MaxAge: durationpb.New(time.Minute)}}}))}})
	app := &totpApp{e: e}
	s, err := e.client(e.boundToken(tokenOpts{}), interceptor.WithResponder(app.responder())).Chat(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	_, _ = s.Header() // the refusal (a trailers-only response) has arrived
	if err := s.Send(&policytestv1.PlainRequest{Text: "after the refusal"}); err != nil {
		t.Fatalf("Send after the refusal: %v, want nil (the message is replayed)", err)
	}
	resp, err := s.Recv()
	if err != nil {
		t.Fatalf("Recv: %v", err)
	}
	if got := resp.GetText(); !strings.Contains(got, "after the refusal") {
		t.Errorf("reply %q, want the echo of the replayed message", got)
	}
	var challenged, passed int
	for _, ev := range e.audit.all() {
		switch ev.Decision {
		case interceptor.DecisionChallenge:
			challenged++
		case interceptor.DecisionStepUpPassed:
			passed++
		}
	}
	if challenged != 1 || passed != 1 {
		t.Errorf("audit: %d challenges and %d step-ups passed, want 1 and 1", challenged, passed)
	}
}

// TestStreamLivesWithItsCredentials is the control: a stream whose
// credentials stay valid keeps working across many re-checks.
func TestStreamLivesWithItsCredentials(t *testing.T) {
	e := newEnv(t, envOpts{guardOpts: []interceptor.Option{interceptor.WithStreamRecheck(time.Millisecond)}})
	s, err := e.client(e.boundToken(tokenOpts{})).Chat(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for i := range 50 {
		e.clock.Advance(time.Second)
		if err := s.Send(&policytestv1.PlainRequest{Text: "m"}); err != nil {
			t.Fatalf("send %d: %v", i, err)
		}
		if _, err := s.Recv(); err != nil {
			t.Fatalf("recv %d: %v", i, err)
		}
	}
	if err := s.CloseSend(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Recv(); !errors.Is(err, io.EOF) {
		t.Fatalf("end = %v, want EOF", err)
	}
	// The goroutine that sent the stream's messages ended with it.
	waitFor(t, "the stream's sender has ended", func() bool { return sendersRunning() == 0 })
}

// TestAccessorsNilSafe: the context accessors take a nil context.
func TestAccessorsNilSafe(t *testing.T) {
	var ctx context.Context // nil on purpose
	if id, ok := interceptor.IdentityFromContext(ctx); ok || id != nil {
		t.Error("an identity from a nil context")
	}
	if interceptor.SubjectFromContext(ctx) != "" || interceptor.ThumbprintFromContext(ctx) != "" ||
		interceptor.TokenFromContext(ctx) != nil || interceptor.StepUpFromContext(ctx) != nil {
		t.Error("a value from a nil context")
	}
}

// TestInsecureInfrastructure opens health and reflection, audited, and
// leaves every other unannotated method refused.
func TestInsecureInfrastructure(t *testing.T) {
	refuse := interceptor.TokenVerifierFunc(func(context.Context, string) (*interceptor.Token, error) { return nil, errors.New("no") })
	g, err := interceptor.New(interceptor.WithInsecureInfrastructure(), interceptor.WithRequirePolicy(), interceptor.WithTokenVerifier(refuse))
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range []string{"/grpc.health.v1.Health/Check", "/grpc.health.v1.Health/Watch", "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo"} {
		p, err := g.Policy(m)
		if err != nil || !p.NoAuthentication {
			t.Errorf("%s: %v %v", m, p, err)
		}
	}
	if p, _ := g.Policy("/grpc.other.v1.Thing/Do"); p.Defined() {
		t.Errorf("another service got a policy: %v", p)
	}
}

// TestTLSAuthorityDefault: over TLS, a Guard whose DPoP verifier has no
// authorities refuses DPoP calls (AUTHORITY_NOT_CONFIGURED) instead of
// trusting the :authority the client chose; WithInsecureRequestAuthority
// restores that, explicitly; plaintext connections are unaffected.
func TestTLSAuthorityDefault(t *testing.T) {
	call := func(e *env, c policytestv1.GuardedServiceClient) error {
		_, err := c.Plain(atkAlice(e).ctx(t, mPlain), &policytestv1.PlainRequest{})
		return err
	}
	e := newEnv(t, envOpts{noAuthorities: true})
	err := call(e, e.serveTLS())
	if status.Code(err) != codes.Internal {
		t.Fatalf("TLS, no authorities: %v", err)
	}
	// The client learns that the fix is on the server, not what it is.
	assertHint(t, err, interceptor.ReasonAuthorityNotConfigured)
	if h, _ := interceptor.HintFromError(err); h.Code != "server_authorities" || h.FixSide != "server" {
		t.Errorf("TLS, no authorities: hint %+v", h)
	}
	// The audit detail names what was received and what is configured:
	// grpc-go sent the TLS ServerName, without port.
	if ev := e.audit.last(t); ev.Reason != interceptor.ReasonAuthorityNotConfigured || ev.Decision != interceptor.DecisionDeny ||
		!strings.Contains(ev.Detail, `configured: none; the call's :authority is "api.example"`) ||
		!strings.Contains(ev.Detail, "dpop.WithAuthorities") {
		t.Errorf("audit %+v", ev)
	}
	if err := call(e, policytestv1.NewGuardedServiceClient(e.conn())); err != nil {
		t.Errorf("plaintext, no authorities: %v", err)
	}
	opted := newEnv(t, envOpts{noAuthorities: true, guardOpts: []interceptor.Option{interceptor.WithInsecureRequestAuthority()}})
	if err := call(opted, opted.serveTLS()); err != nil {
		t.Errorf("TLS with WithInsecureRequestAuthority: %v", err)
	}
	configured := newEnv(t, envOpts{})
	if err := call(configured, configured.serveTLS()); err != nil {
		t.Errorf("TLS with authorities: %v", err)
	}
	// The usual mistake: the port of the address dialled, which grpc-go
	// does not send when the TLS config names the server.
	withPort := newEnv(t, envOpts{noAuthorities: true, dpopOpts: []dpop.VerifierOption{dpop.WithAuthorities("api.example:8443")}})
	err = call(withPort, withPort.serveTLS())
	if status.Code(err) != codes.Unauthenticated {
		t.Fatalf("TLS, authority with a port the client does not send: %v", err)
	}
	assertHint(t, err, interceptor.Reason(dpop.ReasonBadURI))
	if strings.Contains(status.Convert(err).Message(), "8443") {
		t.Errorf("the client is told the configured authority: %v", err)
	}
	if ev := withPort.audit.last(t); ev.Reason != interceptor.Reason(dpop.ReasonBadURI) ||
		!strings.Contains(ev.Detail, `htu authority "api.example" port 443 is not served here (configured: api.example:8443); the call's :authority is "api.example"`) {
		t.Errorf("audit %+v", ev)
	}
}

// TestCheckCoverageNeedsAuthorities: the Quick start's mistake, a TLS
// server whose Guard names no authorities, fails CheckCoverage before
// serving (ErrNoAuthorities, naming the options to set) instead of
// refusing every call; authorities, or the explicit opt-out, pass.
func TestCheckCoverageNeedsAuthorities(t *testing.T) {
	srv := grpc.NewServer()
	policytestv1.RegisterGuardedServiceServer(srv, policytestv1.UnimplementedGuardedServiceServer{})
	err := newEnv(t, envOpts{noAuthorities: true}).guard.CheckCoverage(srv)
	if !errors.Is(err, interceptor.ErrNoAuthorities) {
		t.Fatalf("no authorities: CheckCoverage = %v", err)
	}
	for _, want := range []string{"dpop.WithAuthorities", "interceptor.WithDPoP", "TLS ServerName without a port", "interceptor.WithInsecureRequestAuthority()"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("the error does not name %q: %v", want, err)
		}
	}
	opted := newEnv(t, envOpts{noAuthorities: true, guardOpts: []interceptor.Option{interceptor.WithInsecureRequestAuthority()}})
	if err := opted.guard.CheckCoverage(srv); err != nil {
		t.Errorf("WithInsecureRequestAuthority: %v", err)
	}
	if err := newEnv(t, envOpts{}).guard.CheckCoverage(srv); err != nil {
		t.Errorf("with authorities: %v", err)
	}
	// A server whose every method needs no credentials takes no proofs.
	health := grpc.NewServer()
	healthpb.RegisterHealthServer(health, healthserver.NewServer())
	open := newEnv(t, envOpts{noAuthorities: true, guardOpts: []interceptor.Option{interceptor.WithInsecureInfrastructure()}})
	if err := open.guard.CheckCoverage(health); err != nil {
		t.Errorf("only open services: %v", err)
	}
}

// TestNewReportsEnforceability: New reports through Unenforceable the
// step-up methods of its registry it cannot enforce (no step-up service, or
// none of their factors verifiable), as CheckCoverage does for a server's
// services; calls to them are refused.
func TestNewReportsEnforceability(t *testing.T) {
	e := newEnv(t, envOpts{})
	g, err := interceptor.New(interceptor.WithTokenVerifier(e.jwt))
	if err != nil {
		t.Fatal(err)
	}
	if u := strings.Join(g.Unenforceable(), "\n"); !strings.Contains(u, "/bank.v1.BankService/Transfer requires step-up but no challenge service is configured") {
		t.Fatalf("Unenforceable without WithStepUp = %q, want the step-up methods", u)
	}
	// e's service verifies TOTP only: StepUpService/Approve allows WebAuthn alone.
	g, err = interceptor.New(interceptor.WithTokenVerifier(e.jwt), interceptor.WithStepUp(e.stepUp))
	if err != nil {
		t.Fatal(err)
	}
	var webauthnOnly []string
	for _, u := range g.Unenforceable() {
		if strings.Contains(u, "none of which the challenge service has a verifier for") {
			webauthnOnly = append(webauthnOnly, u)
		}
	}
	if len(webauthnOnly) != 1 || !strings.Contains(webauthnOnly[0], "/policytest.v1.StepUpService/Approve") {
		t.Fatalf("Unenforceable = %q, want StepUpService/Approve (WebAuthn only) among the factor problems", g.Unenforceable())
	}
	// With WebAuthn configured too, Approve is enforceable.
	w, _, _ := newWebAuthnEnv(t)
	for _, u := range w.guard.Unenforceable() {
		if strings.Contains(u, "/policytest.v1.StepUpService/Approve") {
			t.Errorf("with WebAuthn configured, Unenforceable still has %q", u)
		}
	}
	// A call to an unenforceable method is refused, as the report says.
	alice := atkAlice(e)
	if err := atkDo(alice.ctx(t, "/policytest.v1.StepUpService/Approve"), e, "/policytest.v1.StepUpService/Approve"); status.Code(err) != codes.Internal {
		t.Errorf("a call to an unenforceable method = %v, want INTERNAL", err)
	}
	var none *interceptor.Guard
	if none.Unenforceable() != nil {
		t.Error("a nil Guard reports something")
	}
}
