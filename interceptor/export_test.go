package interceptor

import "google.golang.org/grpc/codes"

// RefusalTable returns, for tests, every reason of the refusal table with
// its code, wire reason and hint.
func RefusalTable() map[Reason][3]string {
	out := make(map[Reason][3]string, len(refusals))
	for r, f := range refusals {
		out[r] = [3]string{f.code.String(), f.wire, f.hint}
	}
	return out
}

// RefusalOf returns, for tests, the code, wire reason and hint a reason is
// refused with.
func RefusalOf(r Reason) (codes.Code, string, string) {
	f := wireRefusalOf(r)
	return f.code, f.wire, f.hint
}

// StepUpDecisions is, for tests, the audit decision of a step-up refusal
// by the State of its Outcome.
var StepUpDecisions = stepUpDecisions
