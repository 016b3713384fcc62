package interceptor

import (
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"

	"github.com/stepupgrpc/stepup/challenge"
)

// ServiceInfoProvider is what a *grpc.Server offers to list its services.
type ServiceInfoProvider interface {
	GetServiceInfo() map[string]grpc.ServiceInfo
}

// MethodPolicy is one row of a coverage report.
type MethodPolicy struct {
	// FullMethod is "/pkg.Service/Method".
	FullMethod string
	// ClientStreaming and ServerStreaming describe the method's kind.
	ClientStreaming, ServerStreaming bool
	// Policy is the effective policy; nil when Err is set.
	Policy *EffectivePolicy
	// Err is why the method's policy cannot be resolved (ResolvePolicies
	// only; Coverage returns such errors as its error).
	Err error
	// Unenforceable is why the Guard refuses every call to the method
	// (INTERNAL) although its policy resolved: no TokenVerifier, no
	// step-up service, none of the allowed factors configured. Nil when
	// the Guard can enforce it, and in ResolvePolicies' rows.
	Unenforceable error
}

// ResolvePolicies resolves the effective policy of every method of every
// service in files as a Guard built with WithFiles(files) and opts would:
// from the annotations, the policies configured with WithPolicy and the
// services opened with WithInsecureOpenService (opts of other kinds are
// applied and otherwise ignored; nothing is built, dialled or read). It
// is the Guard's own resolution, for tools that print the policy table of
// a configuration without serving it (stepup policies, stepup-gateway
// --check). The rows are sorted by method; a method whose policy cannot be
// resolved (a *PolicyConflictError, a policy no one can enforce) has a nil
// Policy and the reason in Err. The error is for bad options and for
// configured names that are not in files (*UnknownNameError, joined).
func ResolvePolicies(files *protoregistry.Files, opts ...Option) (CoverageReport, error) {
	cfg, err := applyGuardOptions(opts)
	if err != nil {
		return nil, err
	}
	if err := checkConfiguredNames(files, cfg.configured); err != nil {
		return nil, err
	}
	t := &policyTable{files: files, configured: cfg.configured, open: cfg.open}
	var report CoverageReport
	files.RangeFiles(func(fd protoreflect.FileDescriptor) bool {
		for i := 0; i < fd.Services().Len(); i++ {
			methods := fd.Services().Get(i).Methods()
			for j := 0; j < methods.Len(); j++ {
				md := methods.Get(j)
				row := MethodPolicy{FullMethod: fullMethodName(md), ClientStreaming: md.IsStreamingClient(), ServerStreaming: md.IsStreamingServer()}
				row.Policy, row.Err = t.compute(row.FullMethod)
				report = append(report, row)
			}
		}
		return true
	})
	sort.Slice(report, func(i, j int) bool { return report[i].FullMethod < report[j].FullMethod })
	return report, nil
}

// CoverageReport lists every method of a server with its effective policy.
type CoverageReport []MethodPolicy

// Unprotected returns the methods that have no policy at all.
func (r CoverageReport) Unprotected() []string {
	var out []string
	for _, m := range r {
		if m.Err == nil && !m.Policy.Defined() {
			out = append(out, m.FullMethod)
		}
	}
	return out
}

// String renders the report as aligned text, one method a line.
func (r CoverageReport) String() string {
	width := 0
	for _, m := range r {
		width = max(width, len(m.FullMethod))
	}
	var b strings.Builder
	for _, m := range r {
		if m.Err != nil {
			fmt.Fprintf(&b, "%-*s  error: %v\n", width, m.FullMethod, m.Err)
			continue
		}
		fmt.Fprintf(&b, "%-*s  %s\n", width, m.FullMethod, m.Policy)
	}
	return b.String()
}

// Coverage resolves the policy of every method registered on srv (a
// *grpc.Server) and returns them sorted by name, each with whether this
// Guard can enforce it (MethodPolicy.Unenforceable). It returns an error
// naming every method whose policy this Guard cannot enforce. Resolving
// also primes the Guard's table, so no method is resolved on the request
// path afterwards.
func (g *Guard) Coverage(srv ServiceInfoProvider) (CoverageReport, error) {
	var report CoverageReport
	var problems []string
	for svc, info := range srv.GetServiceInfo() {
		for _, m := range info.Methods {
			full := "/" + svc + "/" + m.Name
			e, err := g.policies.entry(full)
			if err != nil {
				return nil, err
			}
			// A method without a policy under WithRequirePolicy is refused
			// whatever is configured: CheckCoverage reports it as such.
			if e.unenforceable != nil && (e.policy.Defined() || !g.cfg.requirePolicy) {
				problems = append(problems, e.unenforceable.Error())
			}
			report = append(report, MethodPolicy{
				FullMethod: full, ClientStreaming: m.IsClientStream,
				ServerStreaming: m.IsServerStream, Policy: e.policy,
				Unenforceable: e.unenforceable,
			})
		}
	}
	sort.Slice(report, func(i, j int) bool { return report[i].FullMethod < report[j].FullMethod })
	if len(problems) > 0 {
		sort.Strings(problems)
		return report, errors.New(strings.Join(problems, "; "))
	}
	return report, nil
}

// enforceability is the one answer to "can this Guard enforce p": nil, or
// why every call to p's method is refused (INTERNAL). The policy table
// computes it once per method; Coverage, CheckCoverage, Unenforceable and
// the calls read it there.
func (g *Guard) enforceability(p *EffectivePolicy) error {
	if p.NoAuthentication {
		return nil
	}
	if g.cfg.verifier == nil {
		return fmt.Errorf("interceptor: %s needs an access token but no TokenVerifier is configured (WithTokenVerifier)", p.FullMethod)
	}
	if p.StepUp == nil {
		return nil
	}
	if g.cfg.stepUp == nil {
		return fmt.Errorf("interceptor: %s requires step-up but no challenge service is configured (WithStepUp)", p.FullMethod)
	}
	if !g.factorsConfigured(p.StepUp) {
		return fmt.Errorf("interceptor: %s allows step-up factors %v, none of which the challenge service has a verifier for", p.FullMethod, p.StepUp.Factors)
	}
	return nil
}

// factorsConfigured reports whether the challenge service can verify at
// least one factor the requirement allows.
func (g *Guard) factorsConfigured(req *challenge.Requirement) bool {
	if len(req.Factors) == 0 {
		return len(g.factors) > 0
	}
	for _, f := range req.Factors {
		if slices.Contains(g.factors, f) {
			return true
		}
	}
	return false
}

// checkRegistry keeps for Unenforceable the step-up methods of the
// registry this Guard cannot enforce. They are reported, not refused at
// New: a registry can hold services this server does not register, which
// CheckCoverage(server) tells apart.
func (g *Guard) checkRegistry() {
	for _, e := range *g.policies.table.Load() {
		if e.unenforceable != nil && e.policy.Defined() && e.policy.StepUp != nil {
			g.unenforceable = append(g.unenforceable, e.unenforceable.Error())
		}
	}
	sort.Strings(g.unenforceable)
}

// Unenforceable returns what New found it cannot enforce among the step-up
// methods of its registry: each entry names a method that requires step-up
// while no challenge service is configured, or whose allowed factors the
// challenge service has no verifier for. Calls to those methods are refused
// (INTERNAL). Empty when every step-up method can be enforced.
// Log it at startup; CheckCoverage(server) fails on those of them that
// the server registers.
func (g *Guard) Unenforceable() []string {
	if g == nil {
		return nil
	}
	return slices.Clone(g.unenforceable)
}

// ErrNoAuthorities is the error CheckCoverage returns (wrapped) when every
// policy of the server can be enforced but the Guard does not know which
// authorities it answers for: no dpop.WithAuthorities in the verifier given
// to WithDPoP, and no WithInsecureRequestAuthority. Over TLS, every DPoP
// call would then be refused (INTERNAL, audit reason
// AUTHORITY_NOT_CONFIGURED). Its text says what to set. A test server on
// an in-process plaintext connection may ignore it (stepuptest.Serve
// does): plaintext calls check htu against the call's :authority.
var ErrNoAuthorities = errors.New("interceptor: no DPoP authorities configured, so every DPoP call over TLS would be refused (AUTHORITY_NOT_CONFIGURED): " +
	"pass interceptor.WithDPoP(v) with v from dpop.NewVerifier(dpop.WithAuthorities(\"api.example.com\")), " +
	"naming the :authority your clients send (grpc-go sends the TLS ServerName without a port when its tls.Config sets one, else the dial target's host:port); " +
	"for a plaintext server used in local tests only, interceptor.WithInsecureRequestAuthority()")

// CheckCoverage returns an error naming every method of srv whose policy
// this Guard cannot enforce, or that has no policy at all (neither an
// annotation nor a configured policy). When every policy is enforceable
// and some method of srv takes credentials, it returns ErrNoAuthorities if
// the Guard's DPoP verifier names no authorities and
// WithInsecureRequestAuthority was not given. Call it at startup, before
// Serve, and from a test so that a newly added, unannotated method fails
// the build:
//
//	if err := guard.CheckCoverage(server); err != nil { t.Fatal(err) }
func (g *Guard) CheckCoverage(srv ServiceInfoProvider) error {
	report, err := g.Coverage(srv)
	if err != nil {
		return err
	}
	if missing := report.Unprotected(); len(missing) > 0 {
		return fmt.Errorf("interceptor: %d method(s) without a stepup policy: %s", len(missing), strings.Join(missing, ", "))
	}
	if !g.cfg.dpop.HasAuthorities() && !g.cfg.clientAuthority && slices.ContainsFunc(report, func(m MethodPolicy) bool {
		return !m.Policy.NoAuthentication
	}) {
		return ErrNoAuthorities
	}
	return nil
}
