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

	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"

	stepupv1 "github.com/stepupgrpc/stepup/proto/stepup/v1"
)

// policyTable maps full method names to resolved policies. Lookups read an
// immutable map through an atomic pointer and allocate nothing; a method seen
// for the first time is resolved once and published by copy-on-write.
type policyTable struct {
	table      atomic.Pointer[map[string]methodEntry]
	mu         sync.Mutex // serialises writers
	configured map[string]*stepupv1.Policy
	open       map[string]bool // WithInsecureOpenService
	files      *protoregistry.Files
	// enforce is the Guard's enforceability, computed once per entry
	// (nil in ResolvePolicies, which builds no Guard).
	enforce func(*EffectivePolicy) error
}

// methodEntry is one method's policy and whether the Guard can enforce it
// (nil) or why not: calls read it instead of re-deciding.
type methodEntry struct {
	policy        *EffectivePolicy
	unenforceable error
}

// newEntry pairs p with this table's enforceability of it.
func (t *policyTable) newEntry(p *EffectivePolicy) methodEntry {
	e := methodEntry{policy: p}
	if t.enforce != nil {
		e.unenforceable = t.enforce(p)
	}
	return e
}

// newPolicyTable builds the table and resolves, up front, every method of
// every service in files that carries a stepup option or a configured
// policy, so that a policy that cannot be enforced or that contradicts
// itself is reported at construction (every such method, not only the
// first) and annotated methods are never resolved on the request path. A
// configured policy must name a service or method of files.
func newPolicyTable(files *protoregistry.Files, configured map[string]*stepupv1.Policy, open map[string]bool, enforce func(*EffectivePolicy) error) (*policyTable, error) {
	t := &policyTable{files: files, configured: configured, open: open, enforce: enforce}
	if err := checkConfiguredNames(files, configured); err != nil {
		return nil, err
	}
	table := map[string]methodEntry{}
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
					table[full] = t.newEntry(p)
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

// needsVerifier reports, for a Guard with no TokenVerifier, the methods of
// the registry with a policy it cannot enforce (all need an access token):
// every call to them would be refused, which is a configuration mistake,
// not a policy.
func (t *policyTable) needsVerifier() error {
	var methods []string
	for m, e := range *t.table.Load() {
		if e.policy.Defined() && e.unenforceable != nil {
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
	e, err := t.entry(fullMethod)
	return e.policy, err
}

// entry returns the policy of fullMethod and its enforceability,
// resolving both on first use.
func (t *policyTable) entry(fullMethod string) (methodEntry, error) {
	if e, ok := (*t.table.Load())[fullMethod]; ok {
		return e, nil
	}
	return t.resolve(fullMethod)
}

func (t *policyTable) resolve(fullMethod string) (methodEntry, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	cur := *t.table.Load()
	if e, ok := cur[fullMethod]; ok {
		return e, nil
	}
	p, err := t.compute(fullMethod)
	if err != nil {
		return methodEntry{}, err
	}
	e := t.newEntry(p)
	if p.Input == nil {
		// Unknown to the registry (an open service's method included): not
		// cached, so arbitrary names sent by a client cannot grow the table.
		return e, nil
	}
	next := make(map[string]methodEntry, len(cur)+1)
	for k, v := range cur {
		next[k] = v
	}
	next[fullMethod] = e
	t.table.Store(&next)
	return e, nil
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
