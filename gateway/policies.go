package gateway

import (
	"slices"
	"time"

	"google.golang.org/protobuf/reflect/protoregistry"

	"github.com/stepupgrpc/stepup/challenge"
	"github.com/stepupgrpc/stepup/interceptor"
	stepupv1 "github.com/stepupgrpc/stepup/proto/stepup/v1"
)

// PolicyRow is the effective policy of one method, in words: one row of
// the table `stepup-gateway --check` and `stepup policies` print.
type PolicyRow struct {
	// Method is the full method, "/pkg.Service/Method".
	Method string `json:"method"`
	// Kind is "unary", "client-stream", "server-stream" or "bidi".
	Kind string `json:"kind"`
	// Source is where the policy comes from (interceptor.PolicySource:
	// "method", "service", "method+service", "configured", "none").
	Source string `json:"source"`
	// Authentication is what a call must carry: "DPoP-bound token",
	// "bearer or DPoP token", "none (insecure_no_authentication)", with
	// the token's largest age when the policy sets one.
	Authentication string `json:"authentication"`
	// Scopes are the scopes the token must all carry: the union of the
	// method's and its service's (docs/POLICY.md).
	Scopes []string `json:"scopes,omitempty"`
	// StepUp: the method requires a step-up.
	StepUp bool `json:"step_up"`
	// Factors are the factors the step-up may be answered with (empty:
	// any factor the server verifies).
	Factors []string `json:"factors,omitempty"`
	// ACRValues are the token acr values that satisfy the step-up.
	ACRValues []string `json:"acr_values,omitempty"`
	// MaxAge is how long a step-up is reused ("every call" when never).
	MaxAge string `json:"max_age,omitempty"`
	// BindRequest: the approval is bound to the exact request.
	BindRequest bool `json:"bind_request,omitempty"`
	// Display are the request fields the challenge summary shows
	// (challenge.DisplayFields.Displayed), for step-up methods.
	Display []string `json:"display,omitempty"`
	// Shadow: refusals are audited, not enforced.
	Shadow bool `json:"shadow,omitempty"`
	// Problem is what is wrong with the method's policy; "" when nothing.
	Problem string `json:"problem,omitempty"`
}

// PolicyTable is the effective policy of every method of a set of
// descriptors, sorted by method.
type PolicyTable []PolicyRow

// Problems counts the rows with a problem.
func (t PolicyTable) Problems() int {
	n := 0
	for _, r := range t {
		if r.Problem != "" {
			n++
		}
	}
	return n
}

// Policies returns the effective policy of every method of the gateway's
// descriptor sets, as the gateway enforces it: its annotations, the
// configuration's policies, insecure_open_services and display.
func (g *Gateway) Policies() PolicyTable { return slices.Clone(g.policies) }

// LoadPolicies reads the configuration file at path and its descriptor
// sets and returns the policy table the gateway would enforce with it,
// without reading its key files, opening its stores or its audit trail,
// or dialling anything (stepup policies --config). A configuration
// mistake is a *ConfigError, as from Load.
func LoadPolicies(path string) (PolicyTable, error) {
	cfg, err := LoadConfig(path)
	if err != nil {
		return nil, err
	}
	if err := check(path, cfg); err != nil {
		return nil, err
	}
	g := &Gateway{path: path, cfg: cfg}
	if g.files, err = loadDescriptorSets(path, cfg.GetDescriptorSets()); err != nil {
		return nil, err
	}
	display, err := g.displayFields()
	if err != nil {
		return nil, err
	}
	t, err := policyTable(g.files, display, policyOptions(cfg))
	if err != nil {
		return nil, g.policyErrors(err)
	}
	return t, nil
}

// DescriptorPolicies returns the policy table of descriptor sets alone,
// from their annotations (no configuration): stepup policies
// --descriptors.
func DescriptorPolicies(files *protoregistry.Files) PolicyTable {
	// With no configured names, ResolvePolicies cannot fail.
	t, _ := policyTable(files, nil, nil)
	return t
}

// policyOptions are the Guard options of cfg that decide policies.
func policyOptions(cfg *stepupv1.GatewayConfig) []interceptor.Option {
	var opts []interceptor.Option
	for _, name := range sortedKeys(cfg.GetPolicies()) {
		opts = append(opts, interceptor.WithPolicy(name, cfg.GetPolicies()[name]))
	}
	for _, name := range cfg.GetInsecureOpenServices() {
		opts = append(opts, interceptor.WithInsecureOpenService(name))
	}
	return opts
}

// policyTable resolves every method of files with the Guard's own
// resolution (interceptor.ResolvePolicies) under opts, and says which
// request fields the challenge summaries show with display.
func policyTable(files *protoregistry.Files, display challenge.DisplayFields, opts []interceptor.Option) (PolicyTable, error) {
	report, err := interceptor.ResolvePolicies(files, opts...)
	if err != nil {
		return nil, err
	}
	t := make(PolicyTable, 0, len(report))
	for _, m := range report {
		t = append(t, policyRow(m, display))
	}
	return t, nil
}

// policyRow says one method's policy in words.
func policyRow(m interceptor.MethodPolicy, display challenge.DisplayFields) PolicyRow {
	row := PolicyRow{Method: m.FullMethod, Kind: streamKind(m.ClientStreaming, m.ServerStreaming)}
	if m.Err != nil {
		row.Problem = m.Err.Error()
		return row
	}
	p := m.Policy
	row.Source = p.Source.String()
	switch {
	case !p.Defined():
		row.Authentication = "none set"
		row.Problem = "no policy: refused by stepup-gateway and under WithRequirePolicy (POLICY_MISSING)"
		return row
	case p.NoAuthentication:
		row.Authentication = "none (insecure_no_authentication)"
		return row
	case p.AllowBearer:
		row.Authentication = "bearer or DPoP token"
	default:
		row.Authentication = "DPoP-bound token"
	}
	if p.MaxTokenAge > 0 {
		row.Authentication += ", at most " + p.MaxTokenAge.String() + " old"
	}
	row.Scopes, row.Shadow = p.Scopes, p.Shadow
	if s := p.StepUp; s != nil {
		row.StepUp, row.ACRValues, row.BindRequest = true, s.ACRValues, s.BindRequest
		for _, f := range s.Factors {
			row.Factors = append(row.Factors, challenge.FactorName(f))
		}
		row.MaxAge = "every call"
		if s.MaxAge > 0 {
			row.MaxAge = s.MaxAge.Round(time.Second).String()
		}
		if p.Input != nil {
			row.Display = display.Displayed(p.Input)
		}
	}
	return row
}

func streamKind(client, server bool) string {
	switch {
	case client && server:
		return "bidi"
	case client:
		return "client-stream"
	case server:
		return "server-stream"
	}
	return "unary"
}
