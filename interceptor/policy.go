package interceptor

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/stepupgrpc/stepup/challenge"
	stepupv1 "github.com/stepupgrpc/stepup/proto/stepup/v1"
)

// PolicySource says where a method's effective policy comes from.
type PolicySource int

const (
	// SourceNone: neither the method nor its service is annotated, and no
	// policy was configured for it. Such a method gets the Guard's baseline
	// (a DPoP-bound token, nothing else) or is refused under RequirePolicy.
	SourceNone PolicySource = iota
	// SourceService: the service's default_policy, unchanged.
	SourceService
	// SourceMethod: the method's own policy (no service default).
	SourceMethod
	// SourceMerged: the method's policy merged over the service default.
	SourceMerged
	// SourceConfigured: a policy given to the Guard with WithPolicy, for
	// services whose .proto cannot be annotated (health, reflection).
	SourceConfigured
)

// String returns the source's name as used in coverage reports.
func (s PolicySource) String() string {
	switch s {
	case SourceService:
		return "service"
	case SourceMethod:
		return "method"
	case SourceMerged:
		return "method+service"
	case SourceConfigured:
		return "configured"
	default:
		return "none"
	}
}

// EffectivePolicy is the effective policy of one method, resolved from the method
// and service options of its compiled descriptor. It is read-only once built.
type EffectivePolicy struct {
	// FullMethod is the gRPC full method name, "/pkg.Service/Method".
	FullMethod string
	// Source says where the policy comes from.
	Source PolicySource
	// NoAuthentication: the method needs no credentials (Insecure opt-out).
	NoAuthentication bool
	// AllowBearer: a bearer token that is not DPoP-bound is accepted
	// (Insecure opt-out). Otherwise a DPoP-bound token and proof are required.
	// Never set together with StepUp: answers and grants are bound to the
	// DPoP key, so step-up always requires DPoP.
	AllowBearer bool
	// MaxTokenAge is the largest accepted access-token age; 0 means no limit
	// beyond the token's expiry.
	MaxTokenAge time.Duration
	// Scopes must all be carried by the token.
	Scopes []string
	// StepUp is the step-up requirement, nil when none.
	StepUp *challenge.Requirement
	// Shadow: refusals are audited but not enforced.
	Shadow bool
	// ClientStreaming and ServerStreaming describe the method's kind.
	ClientStreaming, ServerStreaming bool
	// Input is the request message descriptor (for request digests and the
	// challenge summary); nil when the method's descriptor is unknown.
	Input protoreflect.MessageDescriptor
}

// Defined reports whether the method has a policy of its own, from its
// service, or from configuration.
func (p *EffectivePolicy) Defined() bool { return p.Source != SourceNone }

// String renders the policy on one line, as in coverage reports.
func (p *EffectivePolicy) String() string {
	var b strings.Builder
	b.WriteString(p.Source.String())
	switch {
	case p.NoAuthentication:
		b.WriteString(" insecure-no-authentication")
	case p.AllowBearer:
		b.WriteString(" bearer-allowed")
	default:
		b.WriteString(" dpop")
	}
	if p.MaxTokenAge > 0 {
		fmt.Fprintf(&b, " max-token-age=%s", p.MaxTokenAge)
	}
	if len(p.Scopes) > 0 {
		fmt.Fprintf(&b, " scopes=%s", strings.Join(p.Scopes, ","))
	}
	if s := p.StepUp; s != nil {
		b.WriteString(" step-up(")
		var parts []string
		if len(s.ACRValues) > 0 {
			parts = append(parts, "acr="+strings.Join(s.ACRValues, ","))
		}
		if len(s.Factors) > 0 {
			f := make([]string, len(s.Factors))
			for i, x := range s.Factors {
				f[i] = challenge.FactorName(x)
			}
			parts = append(parts, "factors="+strings.Join(f, ","))
		}
		parts = append(parts, "max-age="+s.MaxAge.String())
		if s.BindRequest {
			parts = append(parts, "bound")
		}
		b.WriteString(strings.Join(parts, " "))
		b.WriteString(")")
	}
	if p.Shadow {
		b.WriteString(" shadow")
	}
	return b.String()
}

// ResolvePolicy computes the effective policy of a method from its descriptor:
// the method's (stepup.v1.policy) merged over its service's
// (stepup.v1.default_policy), following the rules documented on
// stepup.v1.Policy and in docs/POLICY.md: the result is at least as strict as
// each of the two, except where the method opts out itself. It returns a
// *PolicyConflictError for an annotation that contradicts itself or what it
// inherits, and an error for a policy that cannot be enforced (a negative
// duration, an unspecified factor).
func ResolvePolicy(md protoreflect.MethodDescriptor) (*EffectivePolicy, error) {
	svc, own := annotations(md)
	p := &EffectivePolicy{FullMethod: fullMethodName(md)}
	p.describe(md)
	if err := p.resolve(policyLayer{"default_policy", svc}, policyLayer{"policy", own}); err != nil {
		return nil, err
	}
	return p, nil
}

// annotations returns the service default and the method's own policy, nil
// when absent.
func annotations(md protoreflect.MethodDescriptor) (svc, own *stepupv1.Policy) {
	if sd, ok := md.Parent().(protoreflect.ServiceDescriptor); ok {
		svc = policyExtension(sd.Options(), stepupv1.E_DefaultPolicy)
	}
	return svc, policyExtension(md.Options(), stepupv1.E_Policy)
}

// describe records the method's kind and request type.
func (p *EffectivePolicy) describe(md protoreflect.MethodDescriptor) {
	p.Input = md.Input()
	p.ClientStreaming, p.ServerStreaming = md.IsStreamingClient(), md.IsStreamingServer()
}

// resolve merges own over svc into p and sets its source (the configured
// source is set by the caller).
func (p *EffectivePolicy) resolve(svc, own policyLayer) error {
	switch {
	case svc.p != nil && own.p != nil:
		p.Source = SourceMerged
	case own.p != nil:
		p.Source = SourceMethod
	case svc.p != nil:
		p.Source = SourceService
	default:
		return nil
	}
	merged, err := inheritPolicy(p.FullMethod, svc, own)
	if err != nil {
		return err
	}
	if err := p.apply(merged); err != nil {
		return fmt.Errorf("interceptor: policy of %s: %w", p.FullMethod, err)
	}
	return nil
}

// policyExtension returns the extension when it is present, nil otherwise.
func policyExtension(opts proto.Message, xt protoreflect.ExtensionType) *stepupv1.Policy {
	if opts == nil || !proto.HasExtension(opts, xt) {
		return nil
	}
	p, _ := proto.GetExtension(opts, xt).(*stepupv1.Policy)
	return p
}

// apply fills p from a merged policy message, validating it.
func (p *EffectivePolicy) apply(m *stepupv1.Policy) error {
	p.NoAuthentication = m.GetInsecureNoAuthentication()
	// Step-up answers are signed by the DPoP key: a step-up method takes
	// DPoP whatever insecure_allow_bearer says.
	p.AllowBearer = m.GetInsecureAllowBearer() && (m.GetStepUp() == nil || m.GetInsecureNoStepUp())
	p.Shadow = m.GetShadow()
	p.Scopes = slices.Clone(m.GetScopes())
	if d := m.GetMaxTokenAge(); d != nil {
		if err := d.CheckValid(); err != nil {
			return err
		}
		if p.MaxTokenAge = d.AsDuration(); p.MaxTokenAge < 0 {
			return errors.New("max_token_age is negative")
		}
	}
	for _, s := range p.Scopes {
		if s == "" || strings.ContainsAny(s, " \t\r\n") {
			return fmt.Errorf("scope %q is not a single scope token", s)
		}
	}
	su := m.GetStepUp()
	if su == nil || m.GetInsecureNoStepUp() {
		return nil
	}
	p.StepUp = &challenge.Requirement{
		ACRValues:   slices.Clone(su.GetAcrValues()),
		Factors:     slices.Clone(su.GetFactors()),
		BindRequest: su.GetBindRequest(),
	}
	if d := su.GetMaxAge(); d != nil {
		if err := d.CheckValid(); err != nil {
			return err
		}
		if p.StepUp.MaxAge = d.AsDuration(); p.StepUp.MaxAge < 0 {
			return errors.New("step_up.max_age is negative")
		}
	}
	for _, f := range p.StepUp.Factors {
		if _, ok := stepupv1.Factor_name[int32(f)]; !ok || f == stepupv1.Factor_FACTOR_UNSPECIFIED {
			return fmt.Errorf("step_up.factors holds %v, which is not a factor", f)
		}
	}
	if p.StepUp.BindRequest && (p.ClientStreaming || p.ServerStreaming) {
		// A stream is checked when it opens, before any message: there is no
		// request to bind the approval to.
		return errors.New("step_up.bind_request needs a unary method")
	}
	return nil
}

func fullMethodName(md protoreflect.MethodDescriptor) string {
	return "/" + string(md.Parent().FullName()) + "/" + string(md.Name())
}
