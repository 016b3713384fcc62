package interceptor_test

import (
	"strings"
	"testing"

	"google.golang.org/grpc/codes"

	"github.com/stepupgrpc/stepup/challenge"
	"github.com/stepupgrpc/stepup/interceptor"
)

// TestRefusalsComplete: the refusal table (reason -> gRPC code, wire
// reason, hint) has exactly one row for every Reason constant the module
// declares (the packages of docs/AUDIT.md's reason table, read from their
// source), and none for a value no package declares. A reason added
// without a row fails here rather than being refused by a default.
func TestRefusalsComplete(t *testing.T) {
	declared := reasonsDocDeclared(t)
	table := interceptor.RefusalTable()
	for _, r := range reasonsDocSortedKeys(declared) {
		if _, ok := table[interceptor.Reason(r)]; !ok {
			t.Errorf("reason %s (declared in %v) has no row in the refusal table (interceptor/refusals.go)", r, declared[r])
		}
	}
	for r := range table {
		if _, ok := declared[string(r)]; !ok {
			t.Errorf("the refusal table has a row for %s, which no package declares", r)
		}
	}
	doc, err := documentedHints()
	if err != nil {
		t.Fatal(err)
	}
	for r, row := range table {
		if _, ok := doc.byCode[row[2]]; !ok {
			t.Errorf("%s: hint %q is not in docs/PROTOCOL.md §7.4", r, row[2])
		}
	}
}

// TestRefusalOfUnknownReason: a reason no package declares, whatever its
// name, gets the documented default: UNAUTHENTICATED, INVALID_TOKEN,
// hint token_refused (docs/AUDIT.md).
func TestRefusalOfUnknownReason(t *testing.T) {
	for _, r := range []interceptor.Reason{"", "TOKEN_INACTIVE", "DPOP_NEW_CHECK", "STEPUP_NEW_FACTOR", "INSUFFICIENT_SCOPE_2"} {
		code, wire, hint := interceptor.RefusalOf(r)
		if code != codes.Unauthenticated || wire != interceptor.WireInvalidToken || hint != "token_refused" {
			t.Errorf("%q: %s/%s/%s, want Unauthenticated/%s/token_refused", r, code, wire, hint, interceptor.WireInvalidToken)
		}
	}
}

// TestStepUpDecisions: every State of a refused call has one audit
// decision, a step-up one; a satisfied call has none (it is not refused);
// and no value that is not a State has one.
func TestStepUpDecisions(t *testing.T) {
	refusal := map[interceptor.Decision]bool{
		interceptor.DecisionChallenge: true, interceptor.DecisionStepUpFailed: true, interceptor.DecisionApprovalPending: true,
	}
	states := 0
	for st := challenge.State(1); !strings.HasPrefix(st.String(), "State("); st++ {
		states++
		d, ok := interceptor.StepUpDecisions[st]
		switch {
		case st == challenge.StateSatisfied && ok:
			t.Errorf("%s: decision %s, but a satisfied call is not refused", st, d)
		case st != challenge.StateSatisfied && !refusal[d]:
			t.Errorf("%s: decision %q, want one of %v", st, d, refusal)
		}
	}
	if states != 6 {
		t.Errorf("%d States, want 6 (a new State needs a decision here and in docs/AUDIT.md)", states)
	}
	for st := range interceptor.StepUpDecisions {
		if strings.HasPrefix(st.String(), "State(") {
			t.Errorf("a decision for %s, which is not a State", st)
		}
	}
}
