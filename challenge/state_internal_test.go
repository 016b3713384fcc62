package challenge

import (
	"fmt"
	"os"
	"sync"
	"testing"
)

// stateChecks counts the Outcomes of Check that every test of this package
// produced, and stateErrs their inconsistencies (checkState).
var (
	stateMu     sync.Mutex
	stateChecks = map[State]int{}
	stateErrs   []string
)

// TestMain runs the tests of this package with checkState watching every
// Outcome Check returns, and fails the run when one was inconsistent.
func TestMain(m *testing.M) {
	checkedOutcome = func(o *Outcome) {
		err := checkState(o)
		stateMu.Lock()
		defer stateMu.Unlock()
		stateChecks[o.State]++
		if err != nil {
			stateErrs = append(stateErrs, err.Error())
		}
	}
	code := m.Run()
	for _, e := range stateErrs {
		fmt.Fprintln(os.Stderr, "inconsistent Outcome:", e)
		code = 1
	}
	if testing.Verbose() {
		fmt.Fprintln(os.Stderr, "Outcomes by State:", stateChecks)
	}
	os.Exit(code)
}

// checkState reports an Outcome whose State disagrees with its deprecated
// booleans or with the fields each State sets.
func checkState(o *Outcome) error {
	if o.Satisfied != (o.State == StateSatisfied) || o.Locked != (o.State == StateLocked) ||
		o.Pending != (o.State == StatePending) || o.Final != (o.State == StateFinal) {
		return fmt.Errorf("state %s with Satisfied %t, Locked %t, Pending %t, Final %t", o.State, o.Satisfied, o.Locked, o.Pending, o.Final)
	}
	fresh := o.Challenge != nil
	switch o.State {
	case StateSatisfied:
		if o.Via == "" || fresh {
			return fmt.Errorf("satisfied with Via %q and a challenge %t", o.Via, fresh)
		}
	case StateChallenged:
		if !fresh || o.Reason != ReasonRequired {
			return fmt.Errorf("challenged with a challenge %t and reason %s", fresh, o.Reason)
		}
	case StateRefused:
		if !fresh || o.Reason == "" || o.Reason == ReasonRequired {
			return fmt.Errorf("refused with a challenge %t and reason %q", fresh, o.Reason)
		}
	case StateLocked, StateFinal:
		if fresh || o.Reason == "" {
			return fmt.Errorf("%s with a challenge %t and reason %q", o.State, fresh, o.Reason)
		}
	case StatePending:
		if fresh || o.Reason != ReasonApprovalPending || o.RetryAfter <= 0 {
			return fmt.Errorf("pending with a challenge %t, reason %s, RetryAfter %s", fresh, o.Reason, o.RetryAfter)
		}
	default:
		return fmt.Errorf("no State (%s)", o.State)
	}
	if o.State != StateSatisfied && o.Via != "" {
		return fmt.Errorf("%s with Via %q", o.State, o.Via)
	}
	return nil
}

// TestStateNames: every State has a name, and String names a value that is
// not one as such.
func TestStateNames(t *testing.T) {
	seen := map[string]bool{}
	for st := StateSatisfied; st <= StateFinal; st++ {
		if n := st.String(); n == "" || seen[n] || n == fmt.Sprintf("State(%d)", int(st)) {
			t.Errorf("State %d: name %q", int(st), n)
		}
		seen[st.String()] = true
	}
	if got := State(0).String(); got != "State(0)" {
		t.Errorf("State(0).String() = %q", got)
	}
	if got := (StateFinal + 1).String(); got != fmt.Sprintf("State(%d)", int(StateFinal+1)) {
		t.Errorf("past the last State: %q", got)
	}
}
