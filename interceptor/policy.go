package interceptor

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"

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

// policyTable maps full method names to resolved policies. Lookups read an
// immutable map through an atomic pointer and allocate nothing; a method seen
// for the first time is resolved once and published by copy-on-write.
type policyTable struct {
	table      atomic.Pointer[map[string]*EffectivePolicy]
	mu         sync.Mutex // serialises writers
	configured map[string]*stepupv1.Policy
	open       map[string]bool // WithInsecureOpenService
	files      *protoregistry.Files
}

// newPolicyTable builds the table and resolves, up front, every method of
// every service in files that carries a stepup option or a configured
// policy, so that a policy that cannot be enforced or that contradicts
// itself is reported at construction (every such method, not only the
// first) and annotated methods are never resolved on the request path. A
// configured policy must name a service or method of files.
func newPolicyTable(files *protoregistry.Files, configured map[string]*stepupv1.Policy, open map[string]bool) (*policyTable, error) {
	t := &policyTable{files: files, configured: configured, open: open}
	if err := checkConfiguredNames(files, configured); err != nil {
		return nil, err
	}
	table := map[string]*EffectivePolicy{}
	var errs []error
	files.RangeFiles(func(fd protoreflect.FileDescriptor) bool {
		services := fd.Services()
		for i := 0; i < services.Len(); i++ {
			methods := services.Get(i).Methods()
			for j := 0; j < methods.Len(); j++ {
				full := fullMethodName(methods.Get(j))
				p, err := t.compute(full)
				if err != nil {
					errs = append(errs, err)
					continue
				}
				if p.Defined() {
					table[full] = p
				}
			}
		}
		return true
	})
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	t.table.Store(&table)
	return t, nil
}

// needsVerifier reports the methods of the registry whose annotated or
// configured policy needs an access token, for a Guard with no
// TokenVerifier: every call to them would be refused, which is a
// configuration mistake, not a policy.
func (t *policyTable) needsVerifier() error {
	var methods []string
	for m, p := range *t.table.Load() {
		if p.Defined() && !p.NoAuthentication {
			methods = append(methods, m)
		}
	}
	if len(methods) == 0 {
		return nil
	}
	sort.Strings(methods)
	more := ""
	if len(methods) > 3 {
		more = fmt.Sprintf(" and %d more", len(methods)-3)
		methods = methods[:3]
	}
	return fmt.Errorf("%w, but %s%s need an access token: every call to them would be refused", ErrNoTokenVerifier, strings.Join(methods, ", "), more)
}

// ErrNoTokenVerifier is wrapped by New's error for a Guard with no
// TokenVerifier whose registry has methods that need an access token.
var ErrNoTokenVerifier = errors.New("interceptor: no TokenVerifier is configured (WithTokenVerifier)")

// lookup returns the policy of fullMethod, resolving it on first use.
func (t *policyTable) lookup(fullMethod string) (*EffectivePolicy, error) {
	if p, ok := (*t.table.Load())[fullMethod]; ok {
		return p, nil
	}
	return t.resolve(fullMethod)
}

func (t *policyTable) resolve(fullMethod string) (*EffectivePolicy, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	cur := *t.table.Load()
	if p, ok := cur[fullMethod]; ok {
		return p, nil
	}
	p, err := t.compute(fullMethod)
	if err != nil {
		return nil, err
	}
	if p.Input == nil {
		// Unknown to the registry (an open service's method included): not
		// cached, so arbitrary names sent by a client cannot grow the table.
		return p, nil
	}
	next := make(map[string]*EffectivePolicy, len(cur)+1)
	for k, v := range cur {
		next[k] = v
	}
	next[fullMethod] = p
	t.table.Store(&next)
	return p, nil
}

// compute resolves one method: from its configured policies (a method's
// merged over its service's, by the same rules as annotations) when there
// are any, otherwise from the descriptor's options. A configured policy for
// an annotated method is a conflict: it would compete with the annotation.
func (t *policyTable) compute(fullMethod string) (*EffectivePolicy, error) {
	svcName, method, ok := splitFullMethod(fullMethod)
	if !ok {
		return &EffectivePolicy{FullMethod: fullMethod}, nil
	}
	var md protoreflect.MethodDescriptor
	if d, err := t.files.FindDescriptorByName(protoreflect.FullName(svcName)); err == nil {
		if sd, ok := d.(protoreflect.ServiceDescriptor); ok {
			md = sd.Methods().ByName(protoreflect.Name(method))
		}
	}
	cfgSvc, cfgOwn := t.configured[svcName], t.configured[fullMethod]
	if t.open[svcName] {
		return openPolicy(fullMethod, svcName, md, cfgSvc != nil || cfgOwn != nil)
	}
	if md == nil {
		// Not in the registry: no policy, even under a configured service
		// (a proxy cannot tell a unary call from a stream it has no
		// descriptor for, nor decode its request).
		return &EffectivePolicy{FullMethod: fullMethod}, nil
	}
	if cfgSvc == nil && cfgOwn == nil {
		return ResolvePolicy(md)
	}
	p := &EffectivePolicy{FullMethod: fullMethod}
	p.describe(md)
	if svc, own := annotations(md); svc != nil || own != nil {
		name, ann := svcName, "default_policy"
		if cfgOwn != nil {
			name = fullMethod
		}
		if own != nil {
			ann = "policy"
		}
		return nil, &PolicyConflictError{Method: fullMethod, Field: ann, Other: fmt.Sprintf("WithPolicy(%q)", name), Configured: name,
			Fix: "a configured policy is for a .proto that cannot be annotated and would compete with this annotation; change the annotation instead"}
	}
	err := p.resolve(policyLayer{fmt.Sprintf("WithPolicy(%q)", svcName), cfgSvc}, policyLayer{fmt.Sprintf("WithPolicy(%q)", fullMethod), cfgOwn})
	if err != nil {
		return nil, err
	}
	p.Source = SourceConfigured
	return p, nil
}

// openPolicy is the policy of a method of a service opened with
// WithInsecureOpenService: no authentication. An annotation or a configured
// policy on the same service or method is a conflict: which one was meant
// cannot be guessed.
func openPolicy(fullMethod, svcName string, md protoreflect.MethodDescriptor, configured bool) (*EffectivePolicy, error) {
	open := fmt.Sprintf("WithInsecureOpenService(%q)", svcName)
	if configured {
		return nil, &PolicyConflictError{Method: fullMethod, Field: open, Other: "WithPolicy",
			Fix: "an open service takes no policy; remove one of the two"}
	}
	p := &EffectivePolicy{FullMethod: fullMethod, NoAuthentication: true, Source: SourceConfigured}
	if md == nil {
		return p, nil
	}
	p.describe(md)
	if svc, own := annotations(md); svc != nil || own != nil {
		ann := "default_policy"
		if own != nil {
			ann = "policy"
		}
		return nil, &PolicyConflictError{Method: fullMethod, Field: ann, Other: open,
			Fix: "an annotated service cannot be opened; remove it from the open services"}
	}
	return p, nil
}

// checkConfiguredNames refuses a configured policy whose service or method
// is not in files: a typo would otherwise protect nothing while the method
// meant keeps a weaker policy. The error names the closest real name.
func checkConfiguredNames(files *protoregistry.Files, configured map[string]*stepupv1.Policy) error {
	var services, methods []string
	files.RangeFiles(func(fd protoreflect.FileDescriptor) bool {
		for i := 0; i < fd.Services().Len(); i++ {
			sd := fd.Services().Get(i)
			services = append(services, string(sd.FullName()))
			for j := 0; j < sd.Methods().Len(); j++ {
				methods = append(methods, fullMethodName(sd.Methods().Get(j)))
			}
		}
		return true
	})
	var errs []error
	for _, name := range slices.Sorted(maps.Keys(configured)) {
		known, kind := services, "service"
		if strings.HasPrefix(name, "/") {
			known, kind = methods, "method"
		}
		if slices.Contains(known, name) {
			continue
		}
		errs = append(errs, &UnknownNameError{Option: "WithPolicy", Name: name, Kind: kind, Closest: closest(name, known)})
	}
	return errors.Join(errs...)
}

// UnknownNameError is returned by New for a configured policy (WithPolicy)
// or an open service (WithInsecureOpenService) that names no service or
// method of the registry: a typo would otherwise protect nothing while the
// method meant keeps a weaker policy.
type UnknownNameError struct {
	// Option is the option that named it ("WithPolicy").
	Option string
	// Name is the name as configured.
	Name string
	// Kind is "service" or "method".
	Kind string
	// Closest is the registry's nearest name by edit distance, "" when the
	// registry has none of that kind.
	Closest string
}

func (e *UnknownNameError) Error() string {
	msg := fmt.Sprintf("interceptor: %s(%q): no such %s in the registry (WithFiles)", e.Option, e.Name, e.Kind)
	if e.Closest != "" {
		msg += fmt.Sprintf("; did you mean %q?", e.Closest)
	}
	return msg
}

// closest returns the name of known nearest to name by edit distance
// (case-insensitive), "" when known is empty.
func closest(name string, known []string) string {
	best, bestD := "", -1
	for _, k := range known {
		if d := editDistance(strings.ToLower(name), strings.ToLower(k)); bestD < 0 || d < bestD {
			best, bestD = k, d
		}
	}
	return best
}

// editDistance is the Levenshtein distance between a and b, in bytes.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// splitFullMethod splits "/pkg.Svc/Method" into its service and method.
func splitFullMethod(fullMethod string) (service, method string, ok bool) {
	if len(fullMethod) < 4 || fullMethod[0] != '/' {
		return "", "", false
	}
	i := strings.LastIndexByte(fullMethod, '/')
	if i <= 1 || i == len(fullMethod)-1 {
		return "", "", false
	}
	return fullMethod[1:i], fullMethod[i+1:], true
}

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
	cfg := defaultConfig()
	for _, o := range opts {
		if err := o.applyGuard(&cfg); err != nil {
			return nil, err
		}
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
// *grpc.Server) and returns them sorted by name. It returns an error naming
// every method whose policy this Guard cannot enforce (no token verifier, no
// step-up service, none of the allowed factors configured). Resolving also
// primes the Guard's table, so no method is resolved on the request path
// afterwards.
func (g *Guard) Coverage(srv ServiceInfoProvider) (CoverageReport, error) {
	var report CoverageReport
	var problems []string
	for svc, info := range srv.GetServiceInfo() {
		for _, m := range info.Methods {
			full := "/" + svc + "/" + m.Name
			p, err := g.policies.lookup(full)
			if err != nil {
				return nil, err
			}
			// A method without a policy under WithRequirePolicy is refused
			// whatever is configured: CheckCoverage reports it as such.
			if p.Defined() || !g.cfg.requirePolicy {
				if err := g.checkEnforceable(p); err != nil {
					problems = append(problems, err.Error())
				}
			}
			report = append(report, MethodPolicy{
				FullMethod: full, ClientStreaming: m.IsClientStream,
				ServerStreaming: m.IsServerStream, Policy: p,
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
