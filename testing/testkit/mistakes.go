package testkit

import (
	"strings"
	"testing"
)

// WantMistakes fails t unless err reports every one of want: for a
// constructor that joins all its option mistakes (errors.Join), each
// naming its option. call names the constructor in the failure.
func WantMistakes(t testing.TB, call string, err error, want ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("%s accepted its mistakes", call)
	}
	for _, w := range want {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("%s: %q does not report %q", call, err, w)
		}
	}
}
