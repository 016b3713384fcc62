package interceptor_test

import (
	"context"
	"crypto"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/stepupgrpc/stepup/challenge"
	"github.com/stepupgrpc/stepup/interceptor"
	policytestv1 "github.com/stepupgrpc/stepup/interceptor/internal/testproto/policytest/v1"
	stepupv1 "github.com/stepupgrpc/stepup/proto/stepup/v1"
)

// TestChallengeAdvertisesExactlyThePolicy: the WWW-Authenticate trailer and
// the step-up challenge of a refused call name exactly what can satisfy the
// method, nothing more (RFC 9470 §3): the factors of the policy that the
// server verifies, acr_values only where a token acr is accepted (a
// reusable requirement), and max_age=0 where every call needs its own
// step-up. A client that followed a wider advertisement would be refused.
func TestChallengeAdvertisesExactlyThePolicy(t *testing.T) {
	const (
		totp   = stepupv1.Factor_FACTOR_TOTP
		device = stepupv1.Factor_FACTOR_DEVICE_KEY
		wan    = stepupv1.Factor_FACTOR_WEBAUTHN // not configured on this server
	)
	day := 24 * time.Hour
	tests := []struct {
		name       string
		stepUp     *stepupv1.StepUp
		factors    []stepupv1.Factor
		acr        string // in WWW-Authenticate, "" for none
		maxAge     string // in WWW-Authenticate
		chMaxAge   time.Duration
		chACR      []string
		notInTrail []string
	}{
		{"reusable, one factor, acr", &stepupv1.StepUp{Factors: []stepupv1.Factor{totp}, AcrValues: []string{"phr"}, MaxAge: durationpb.New(5 * time.Minute)},
			[]stepupv1.Factor{totp}, `acr_values="phr"`, "max_age=300", 5 * time.Minute, []string{"phr"}, nil},
		{"every factor the server has", &stepupv1.StepUp{MaxAge: durationpb.New(time.Minute)},
			[]stepupv1.Factor{device, totp}, "", "max_age=60", time.Minute, nil, []string{"acr_values"}}, // the server's order
		{"a policy factor the server cannot verify is not offered", &stepupv1.StepUp{Factors: []stepupv1.Factor{wan, device}, MaxAge: durationpb.New(time.Minute)},
			[]stepupv1.Factor{device}, "", "max_age=60", time.Minute, nil, []string{"acr_values"}},
		{"bound to the request: no acr, max_age=0", &stepupv1.StepUp{Factors: []stepupv1.Factor{totp, device}, AcrValues: []string{"phr"}, MaxAge: durationpb.New(5 * time.Minute), BindRequest: true},
			[]stepupv1.Factor{totp, device}, "", "max_age=0", 0, nil, []string{"acr_values", "max_age=300"}},
		{"no max_age: every call, no acr", &stepupv1.StepUp{Factors: []stepupv1.Factor{device}, AcrValues: []string{"phr"}},
			[]stepupv1.Factor{device}, "", "max_age=0", 0, nil, []string{"acr_values"}},
		{"max_age beyond the grant cap: the token's window, the grant's cap", &stepupv1.StepUp{Factors: []stepupv1.Factor{totp}, AcrValues: []string{"mfa"}, MaxAge: durationpb.New(2 * day)},
			[]stepupv1.Factor{totp}, `acr_values="mfa"`, "max_age=172800", day, []string{"mfa"}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			keys := challenge.DeviceKeysFunc(func(context.Context, string) ([]crypto.PublicKey, error) { return nil, nil })
			e := newEnv(t, envOpts{
				stepUpOpts: []challenge.Option{challenge.WithDeviceKeys(keys)},
				guardOpts: []interceptor.Option{guardedOnly(t, &stepupv1.Policy{Scopes: []string{"guarded"}},
					map[string]*stepupv1.Policy{mPlain: {StepUp: tc.stepUp}})},
			})
			alice := atkAlice(e)
			var trailer metadata.MD
			_, err := e.raw().Plain(alice.ctx(t, mPlain), &policytestv1.PlainRequest{}, grpc.Trailer(&trailer))
			ch := interceptor.ChallengeFromError(err)
			if ch == nil {
				t.Fatalf("call = %v, want a step-up challenge", err)
			}
			if !slices.Equal(ch.GetFactors(), tc.factors) {
				t.Errorf("challenge factors = %v, want exactly %v", ch.GetFactors(), tc.factors)
			}
			if got := ch.GetMaxAge().AsDuration(); (ch.GetMaxAge() == nil && tc.chMaxAge != 0) || got != tc.chMaxAge {
				t.Errorf("challenge max_age = %v, want %v", ch.GetMaxAge(), tc.chMaxAge)
			}
			if !slices.Equal(ch.GetAcrValues(), tc.chACR) {
				t.Errorf("challenge acr_values = %v, want %v", ch.GetAcrValues(), tc.chACR)
			}
			www := strings.Join(trailer.Get("www-authenticate"), "; ")
			if !strings.Contains(www, `error="insufficient_user_authentication"`) || !strings.Contains(www, tc.maxAge) {
				t.Errorf("www-authenticate = %q, want the error and %s", www, tc.maxAge)
			}
			if tc.acr != "" && !strings.Contains(www, tc.acr) {
				t.Errorf("www-authenticate = %q, want %s", www, tc.acr)
			}
			for _, bad := range tc.notInTrail {
				if strings.Contains(www, bad) {
					t.Errorf("www-authenticate = %q advertises %s", www, bad)
				}
			}
		})
	}
}
