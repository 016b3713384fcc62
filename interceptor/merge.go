package interceptor

import (
	"fmt"
	"slices"

	"google.golang.org/protobuf/types/known/durationpb"

	stepupv1 "github.com/stepupgrpc/stepup/proto/stepup/v1"
)

// PolicyConflictError is a policy that contradicts itself or what it
// inherits: an opt-out (insecure_no_authentication, insecure_no_step_up,
// shadow) next to a requirement it would silently weaken, step-up factor
// lists with nothing in common, or a configured policy competing with an
// annotation. New and CheckCoverage report it; it never reaches a call.
type PolicyConflictError struct {
	// Method is the full method whose effective policy could not be built.
	Method string
	// Field is the requirement that would have been weakened, named where it
	// is declared: "policy.scopes" (the method's option),
	// "default_policy.step_up" (the service's), or
	// `WithPolicy("pkg.Svc").scopes` (configured).
	Field string
	// Other is the field it contradicts, named the same way.
	Other string
	// Configured is the service or method name of the configured policy
	// (WithPolicy) involved, "" when only annotations are.
	Configured string
	// Fix says how to resolve it.
	Fix string
}

// Error names the method, both fields and the fix.
func (e *PolicyConflictError) Error() string {
	return fmt.Sprintf("interceptor: policy of %s: %s contradicts %s: %s", e.Method, e.Field, e.Other, e.Fix)
}

// policyLayer is one policy message and the name of where it is declared,
// for error messages.
type policyLayer struct {
	where string // "policy", "default_policy", `WithPolicy("x")`
	p     *stepupv1.Policy
}

func (l policyLayer) field(name string) string { return l.where + "." + name }

// requirements lists the fields of p that ask something of a caller, in
// declaration order: each would be weakened by an inherited opt-out.
func requirements(p *stepupv1.Policy) []string {
	var out []string
	if p.InsecureAllowBearer != nil {
		// Even "bearer allowed" expects a token.
		out = append(out, "insecure_allow_bearer")
	}
	if p.GetMaxTokenAge().AsDuration() != 0 {
		out = append(out, "max_token_age")
	}
	if len(p.GetScopes()) > 0 {
		out = append(out, "scopes")
	}
	if p.StepUp != nil {
		out = append(out, "step_up")
	}
	return out
}

// checkLayer refuses a policy message that contradicts itself.
func checkLayer(method string, l policyLayer) error {
	if l.p.GetInsecureNoAuthentication() {
		if req := requirements(l.p); len(req) > 0 {
			return &PolicyConflictError{Method: method, Field: l.field(req[0]), Other: l.field("insecure_no_authentication"),
				Fix: "a method that needs no credentials has no requirement; drop one of them"}
		}
	}
	if l.p.GetInsecureNoStepUp() && l.p.StepUp != nil {
		return &PolicyConflictError{Method: method, Field: l.field("step_up"), Other: l.field("insecure_no_step_up"),
			Fix: "drop one of them"}
	}
	return nil
}

// inheritPolicy merges a method's own policy over its service default (or a
// configured method policy over a configured service policy). The effective
// policy is at least as strict as each of the two, field by field, except
// where the method itself opts out with a field of its own
// (insecure_no_authentication, insecure_allow_bearer, insecure_no_step_up,
// shadow). An opt-out the method inherits never weakens a requirement the
// method declares: that is a *PolicyConflictError. docs/POLICY.md has the
// rules as a table.
func inheritPolicy(method string, svc, own policyLayer) (*stepupv1.Policy, error) {
	for _, l := range []policyLayer{svc, own} {
		if l.p != nil {
			if err := checkLayer(method, l); err != nil {
				return nil, err
			}
		}
	}
	switch {
	case svc.p == nil:
		return own.p, nil
	case own.p == nil:
		return svc.p, nil
	}
	s, m := svc.p, own.p
	conflict := func(field, other, fix string) error {
		return &PolicyConflictError{Method: method, Field: own.field(field), Other: svc.field(other), Fix: fix}
	}
	req := requirements(m)

	// Authentication: the method's own choice wins; an inherited
	// insecure_no_authentication holds only for a method that asks nothing.
	if m.InsecureNoAuthentication != nil {
		if m.GetInsecureNoAuthentication() {
			return &stepupv1.Policy{InsecureNoAuthentication: m.InsecureNoAuthentication}, nil
		}
	} else if s.GetInsecureNoAuthentication() {
		if len(req) > 0 {
			return nil, conflict(req[0], "insecure_no_authentication",
				"an inherited opt-out never weakens a method's own requirement; set insecure_no_authentication: false on the method, or drop the method's requirement")
		}
		return &stepupv1.Policy{InsecureNoAuthentication: s.InsecureNoAuthentication}, nil
	}

	out := &stepupv1.Policy{
		InsecureAllowBearer: s.InsecureAllowBearer,
		MaxTokenAge:         stricterAge(s.GetMaxTokenAge(), m.GetMaxTokenAge()),
		Scopes:              unionScopes(s.GetScopes(), m.GetScopes()),
		Shadow:              s.Shadow,
	}
	if m.InsecureAllowBearer != nil {
		out.InsecureAllowBearer = m.InsecureAllowBearer
	}

	// Step-up: the method may drop an inherited requirement explicitly; an
	// inherited insecure_no_step_up never drops the method's own.
	switch {
	case m.GetInsecureNoStepUp():
	case m.StepUp != nil && s.GetInsecureNoStepUp():
		return nil, conflict("step_up", "insecure_no_step_up",
			"an inherited opt-out never weakens a method's own requirement; drop insecure_no_step_up from the service")
	case m.StepUp != nil && s.StepUp != nil:
		su, err := stricterStepUp(s.StepUp, m.StepUp)
		if err != nil {
			return nil, conflict("step_up.factors", "step_up.factors", err.Error())
		}
		out.StepUp = su
	case m.StepUp != nil:
		out.StepUp = m.StepUp
	default:
		out.StepUp = s.StepUp
	}

	// Shadow: an inherited shadow mode never switches off enforcement of a
	// requirement the method declares itself.
	switch {
	case m.Shadow != nil:
		out.Shadow = m.Shadow
	case s.GetShadow() && len(req) > 0:
		return nil, conflict(req[0], "shadow",
			"an inherited shadow mode would leave the method's own requirement unenforced; set shadow: true or shadow: false on the method")
	}
	return out, nil
}

// stricterAge is the shorter of two max_token_age values; zero or unset
// means no limit, so any positive value is stricter.
func stricterAge(a, b *durationpb.Duration) *durationpb.Duration {
	da, db := a.AsDuration(), b.AsDuration()
	switch {
	case a == nil || da == 0:
		return b
	case b == nil || db == 0:
		return a
	case db < da:
		return b
	}
	return a
}

// unionScopes is a followed by the scopes of b it lacks: a token must carry
// every scope either asks for.
func unionScopes(a, b []string) []string {
	if len(b) == 0 {
		return a
	}
	if len(a) == 0 {
		return b
	}
	out := slices.Clone(a)
	for _, s := range b {
		if !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	return out
}

// stricterStepUp merges two step-up requirements that must both hold: the
// acr values both accept, the factors both allow (an empty list allows
// every factor), the shorter max_age (unset is zero: every call steps up),
// and a bound request if either binds it.
func stricterStepUp(a, b *stepupv1.StepUp) (*stepupv1.StepUp, error) {
	out := &stepupv1.StepUp{BindRequest: a.GetBindRequest() || b.GetBindRequest()}
	// An empty acr list accepts no token acr: it is already the strictest.
	for _, v := range a.GetAcrValues() {
		if slices.Contains(b.GetAcrValues(), v) {
			out.AcrValues = append(out.AcrValues, v)
		}
	}
	switch fa, fb := a.GetFactors(), b.GetFactors(); {
	case len(fa) == 0:
		out.Factors = fb
	case len(fb) == 0:
		out.Factors = fa
	default:
		for _, f := range fa {
			if slices.Contains(fb, f) {
				out.Factors = append(out.Factors, f)
			}
		}
		if len(out.Factors) == 0 {
			return nil, fmt.Errorf("the two factor lists %v and %v have no factor in common, so no answer could satisfy both; list the factors on the method only, from those the service allows", fb, fa)
		}
	}
	if ma, mb := a.GetMaxAge(), b.GetMaxAge(); ma.AsDuration() <= mb.AsDuration() {
		out.MaxAge = ma
	} else {
		out.MaxAge = mb
	}
	return out, nil
}
