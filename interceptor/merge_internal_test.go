package interceptor

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"

	stepupv1 "github.com/stepupgrpc/stepup/proto/stepup/v1"
)

// policyBytes draws policy fields from a byte string; past its end every
// draw is zero.
type policyBytes struct{ b []byte }

func (r *policyBytes) next(n int) int {
	if len(r.b) == 0 {
		return 0
	}
	v := int(r.b[0]) % n
	r.b = r.b[1:]
	return v
}

// optBool is unset, false or true.
func (r *policyBytes) optBool() *bool {
	switch r.next(3) {
	case 1:
		return proto.Bool(false)
	case 2:
		return proto.Bool(true)
	}
	return nil
}

func (r *policyBytes) duration() *durationpb.Duration {
	switch r.next(4) {
	case 1:
		return durationpb.New(0)
	case 2:
		return durationpb.New(time.Minute)
	case 3:
		return durationpb.New(time.Hour)
	}
	return nil
}

// subset picks a subset of from, in order.
func subset[T any](r *policyBytes, from []T) []T {
	var out []T
	mask := r.next(1 << len(from))
	for i, v := range from {
		if mask&(1<<i) != 0 {
			out = append(out, v)
		}
	}
	return out
}

// genPolicy draws a policy annotation (nil: none) with every field set or
// unset at random, from small value domains so that overlaps are common.
func genPolicy(r *policyBytes) *stepupv1.Policy {
	if r.next(5) == 0 {
		return nil
	}
	p := &stepupv1.Policy{
		InsecureAllowBearer:      r.optBool(),
		MaxTokenAge:              r.duration(),
		Scopes:                   subset(r, []string{"a", "b", "c"}),
		Shadow:                   r.optBool(),
		InsecureNoStepUp:         r.optBool(),
		InsecureNoAuthentication: r.optBool(),
	}
	if r.next(2) == 1 {
		p.StepUp = &stepupv1.StepUp{
			AcrValues:   subset(r, []string{"x", "y"}),
			Factors:     subset(r, []stepupv1.Factor{stepupv1.Factor_FACTOR_DEVICE_KEY, stepupv1.Factor_FACTOR_TOTP, stepupv1.Factor_FACTOR_WEBAUTHN}),
			MaxAge:      r.duration(),
			BindRequest: r.next(2) == 1,
		}
	}
	return p
}

// exemptions are the dimensions of the service default that the method
// overrides with an explicit field of its own.
type exemptions struct{ auth, bearer, stepUp, shadow bool }

// weakerThan lists how the effective policy e fails a requirement of the
// layer l, except in the exempted dimensions.
func weakerThan(e *EffectivePolicy, l *stepupv1.Policy, ex exemptions) []string {
	if l == nil {
		return nil
	}
	var out []string
	fail := func(format string, args ...any) { out = append(out, fmt.Sprintf(format, args...)) }
	hasReqs := len(requirements(l)) > 0
	if e.NoAuthentication {
		if !ex.auth && !l.GetInsecureNoAuthentication() && (hasReqs || l.InsecureNoAuthentication != nil) {
			fail("no authentication, but the layer requires it")
		}
		return out
	}
	if !ex.bearer && l.InsecureAllowBearer != nil && !l.GetInsecureAllowBearer() && e.AllowBearer {
		fail("bearer allowed, the layer requires DPoP")
	}
	if d := l.GetMaxTokenAge().AsDuration(); d > 0 && (e.MaxTokenAge <= 0 || e.MaxTokenAge > d) {
		fail("max_token_age %s, the layer asks %s", e.MaxTokenAge, d)
	}
	for _, s := range l.GetScopes() {
		if !slices.Contains(e.Scopes, s) {
			fail("scope %q dropped", s)
		}
	}
	if su := l.GetStepUp(); su != nil && !l.GetInsecureNoStepUp() && !ex.stepUp {
		switch g := e.StepUp; {
		case g == nil:
			fail("step_up dropped")
		default:
			if f := su.GetFactors(); len(f) > 0 && (len(g.Factors) == 0 || slices.ContainsFunc(g.Factors, func(x stepupv1.Factor) bool { return !slices.Contains(f, x) })) {
				fail("factors %v, the layer allows only %v", g.Factors, f)
			}
			if slices.ContainsFunc(g.ACRValues, func(a string) bool { return !slices.Contains(su.GetAcrValues(), a) }) {
				fail("acr %v, the layer accepts only %v", g.ACRValues, su.GetAcrValues())
			}
			if g.MaxAge > su.GetMaxAge().AsDuration() {
				fail("step-up max_age %s, the layer asks %s", g.MaxAge, su.GetMaxAge().AsDuration())
			}
			if su.GetBindRequest() && !g.BindRequest {
				fail("bind_request dropped")
			}
		}
	}
	if !ex.shadow && e.Shadow && !l.GetShadow() && (hasReqs || l.Shadow != nil) {
		fail("shadow mode, the layer is enforced")
	}
	if e.AllowBearer && e.StepUp != nil {
		fail("bearer allowed on a step-up method")
	}
	return out
}

// checkMerge resolves svc and own as a service default and a method policy
// and fails t when the effective policy is weaker than either, field by
// field, beyond the method's own explicit opt-outs, or when resolving fails
// with anything but a *PolicyConflictError.
func checkMerge(t *testing.T, svc, own *stepupv1.Policy) {
	t.Helper()
	p := &EffectivePolicy{FullMethod: "/merge.v1.Svc/M"}
	err := p.resolve(policyLayer{"default_policy", svc}, policyLayer{"policy", own})
	var ce *PolicyConflictError
	switch {
	case errors.As(err, &ce):
		if ce.Method != p.FullMethod || ce.Field == "" || ce.Other == "" {
			t.Fatalf("conflict without its method or fields: %+v", ce)
		}
		return
	case err != nil:
		t.Fatalf("service %v, method %v: %v", svc, own, err)
	}
	problems := weakerThan(p, own, exemptions{})
	if own.GetInsecureNoAuthentication() {
		// The method opted out itself: nothing of the service applies.
	} else {
		ex := exemptions{
			auth:   own.GetInsecureNoAuthentication() || own != nil && own.InsecureNoAuthentication != nil,
			bearer: own != nil && own.InsecureAllowBearer != nil,
			stepUp: own.GetInsecureNoStepUp(),
			shadow: own != nil && own.Shadow != nil,
		}
		for _, s := range weakerThan(p, svc, ex) {
			problems = append(problems, "service default: "+s)
		}
	}
	if len(problems) > 0 {
		t.Fatalf("service %v\nmethod  %v\neffective %s\nweaker: %v", svc, own, p, problems)
	}
}

// TestPolicyMergeNeverWeaker draws many random service/method policy pairs
// and checks that each resolves to a policy at least as strict as both
// (field by field, beyond the method's own opt-outs) or to a conflict.
func TestPolicyMergeNeverWeaker(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	buf := make([]byte, 40)
	for range 50_000 {
		for i := range buf {
			buf[i] = byte(rng.Uint32())
		}
		r := &policyBytes{b: buf}
		checkMerge(t, genPolicy(r), genPolicy(r))
	}
}

// FuzzPolicyMerge is TestPolicyMergeNeverWeaker with the fuzzer drawing the
// pairs: go test -run '^$' -fuzz '^FuzzPolicyMerge$' ./interceptor/
func FuzzPolicyMerge(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		r := &policyBytes{b: data}
		checkMerge(t, genPolicy(r), genPolicy(r))
	})
}
