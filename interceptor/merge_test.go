package interceptor_test

import (
	"errors"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/stepupgrpc/stepup/interceptor"
	stepupv1 "github.com/stepupgrpc/stepup/proto/stepup/v1"
)

// mergeField is one policy field set to a sample value, as a service
// default or as the method's own policy.
type mergeField struct {
	name     string
	svc, own *stepupv1.Policy
}

var (
	fTOTP, fDevice, fWebAuthn = stepupv1.Factor_FACTOR_TOTP, stepupv1.Factor_FACTOR_DEVICE_KEY, stepupv1.Factor_FACTOR_WEBAUTHN
	mergeFields               = []mergeField{
		{"insecure_no_authentication", &stepupv1.Policy{InsecureNoAuthentication: proto.Bool(true)}, &stepupv1.Policy{InsecureNoAuthentication: proto.Bool(true)}},
		{"insecure_allow_bearer", &stepupv1.Policy{InsecureAllowBearer: proto.Bool(true)}, &stepupv1.Policy{InsecureAllowBearer: proto.Bool(true)}},
		{"max_token_age", &stepupv1.Policy{MaxTokenAge: durationpb.New(time.Hour)}, &stepupv1.Policy{MaxTokenAge: durationpb.New(5 * time.Minute)}},
		{"scopes", &stepupv1.Policy{Scopes: []string{"s"}}, &stepupv1.Policy{Scopes: []string{"m"}}},
		{"step_up", &stepupv1.Policy{StepUp: &stepupv1.StepUp{AcrValues: []string{"a", "b"}, Factors: []stepupv1.Factor{fTOTP, fWebAuthn}, MaxAge: durationpb.New(5 * time.Minute)}},
			&stepupv1.Policy{StepUp: &stepupv1.StepUp{AcrValues: []string{"b", "c"}, Factors: []stepupv1.Factor{fTOTP, fDevice}, MaxAge: durationpb.New(time.Minute), BindRequest: true}}},
		{"shadow", &stepupv1.Policy{Shadow: proto.Bool(true)}, &stepupv1.Policy{Shadow: proto.Bool(true)}},
		{"insecure_no_step_up", &stepupv1.Policy{InsecureNoStepUp: proto.Bool(true)}, &stepupv1.Policy{InsecureNoStepUp: proto.Bool(true)}},
	}
)

// resolveOne resolves /invalid.v1.Svc/M with the given service default and
// method policy (nil: none).
func resolveOne(t *testing.T, svc, own *stepupv1.Policy) (*interceptor.EffectivePolicy, error) {
	t.Helper()
	g, err := policyGuard(t, interceptor.WithFiles(oneMethodFiles(t, svc, own)))
	if err != nil {
		return nil, err
	}
	return g.Policy("/invalid.v1.Svc/M")
}

// mergeExtras are method policies that set an opt-out field to false, to
// claim back what the service default opted out of.
var mergeExtras = []mergeField{
	{name: "insecure_no_authentication: false, scopes", own: &stepupv1.Policy{InsecureNoAuthentication: proto.Bool(false), Scopes: []string{"m"}}},
	{name: "insecure_allow_bearer: false", own: &stepupv1.Policy{InsecureAllowBearer: proto.Bool(false)}},
	{name: "shadow: false, step_up", own: &stepupv1.Policy{Shadow: proto.Bool(false), StepUp: mergeFields[4].own.StepUp}},
	{name: "shadow: true, step_up", own: &stepupv1.Policy{Shadow: proto.Bool(true), StepUp: mergeFields[4].own.StepUp}},
	{name: "step_up, factors [WEBAUTHN]", own: &stepupv1.Policy{StepUp: &stepupv1.StepUp{Factors: []stepupv1.Factor{fWebAuthn}}}},
	{name: "step_up, factors [DEVICE_KEY]", own: &stepupv1.Policy{StepUp: &stepupv1.StepUp{Factors: []stepupv1.Factor{fDevice}}}},
}

// mergeDocRow is one row of the pair table of docs/POLICY.md.
type mergeDocRow struct {
	line           int
	svc, own, want string
}

// mergeDocRows reads the table under "## Every pair" of docs/POLICY.md.
func mergeDocRows(t *testing.T) []mergeDocRow {
	t.Helper()
	b, err := os.ReadFile("../docs/POLICY.md")
	if err != nil {
		t.Fatal(err)
	}
	var rows []mergeDocRow
	in, table := false, false
	for i, line := range strings.Split(string(b), "\n") {
		switch {
		case strings.HasPrefix(line, "## "):
			in, table = line == "## Every pair", false
		case in && strings.HasPrefix(line, "| service default | method |"):
			table = true
		case table && strings.HasPrefix(line, "| ") && !strings.HasPrefix(line, "| ---"):
			cells := strings.Split(strings.Trim(line, "| "), " | ")
			if len(cells) != 3 {
				t.Fatalf("docs/POLICY.md line %d: want 3 cells: %q", i+1, line)
			}
			for j := range cells {
				cells[j] = strings.Trim(cells[j], "`")
			}
			rows = append(rows, mergeDocRow{line: i + 1, svc: cells[0], own: cells[1], want: cells[2]})
		}
	}
	return rows
}

// TestMergeTable resolves every pair of a service-default field and a method
// field (and each alone, and the opt-outs claimed back with false) through
// New, and checks the result against the pair table of docs/POLICY.md: the
// effective policy, or the conflict with its two fields. Every pair must be
// in the table, and every row of the table must be a pair.
func TestMergeTable(t *testing.T) {
	field := func(name string, own bool) *stepupv1.Policy {
		if name == "—" {
			return nil
		}
		for _, f := range append(slices.Clone(mergeFields), mergeExtras...) {
			if f.name == name {
				if own {
					return f.own
				}
				if f.svc != nil {
					return f.svc
				}
			}
		}
		t.Fatalf("docs/POLICY.md names an unknown sample %q", name)
		return nil
	}
	resolve := func(svc, own *stepupv1.Policy) string {
		p, err := resolveOne(t, svc, own)
		var ce *interceptor.PolicyConflictError
		switch {
		case errors.As(err, &ce):
			if !strings.Contains(err.Error(), "/invalid.v1.Svc/M") {
				t.Errorf("conflict %q does not name the method", err)
			}
			return "conflict: " + ce.Field + " / " + ce.Other
		case err != nil:
			t.Fatalf("New: %v", err)
		}
		s := p.String()
		for _, src := range []string{"method+service ", "service ", "method "} {
			s = strings.TrimPrefix(s, src)
		}
		return s
	}
	want := map[[2]string]bool{}
	for _, f := range mergeFields {
		want[[2]string{f.name, "—"}] = true
		want[[2]string{"—", f.name}] = true
		for _, o := range append(slices.Clone(mergeFields), mergeExtras...) {
			want[[2]string{f.name, o.name}] = true
		}
	}
	for _, r := range mergeDocRows(t) {
		key := [2]string{r.svc, r.own}
		if !want[key] {
			t.Errorf("docs/POLICY.md line %d: %s | %s is listed twice or is not a pair of samples", r.line, r.svc, r.own)
			continue
		}
		delete(want, key)
		if got := resolve(field(r.svc, false), field(r.own, true)); got != r.want {
			t.Errorf("docs/POLICY.md line %d: service %s, method %s:\n got  %s\n doc  %s", r.line, r.svc, r.own, got, r.want)
		}
	}
	for k := range want {
		got := resolve(field(k[0], false), field(k[1], true))
		t.Errorf("docs/POLICY.md lacks the row | `%s` | `%s` | `%s` |", k[0], k[1], got)
	}
}
