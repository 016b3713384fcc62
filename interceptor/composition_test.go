package interceptor_test

// Attacks on how the parts compose: policy merging, configured policies.
// Each test is a row of docs/SECURITY-TESTS.md.

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/stepupgrpc/stepup/challenge"
	"github.com/stepupgrpc/stepup/interceptor"
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
