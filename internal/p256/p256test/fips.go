package p256test

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

// RunInFIPSMode runs the tests that match run (a -test.run pattern) again,
// in a child process of the current test binary with the Go
// cryptographic module in FIPS 140-3 mode (GODEBUG=fips140=on), and fails
// t unless they pass and their verbose output holds each of want. It
// returns that output.
func RunInFIPSMode(t testing.TB, run string, want ...string) string {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run="+run, "-test.v", "-test.count=1")
	cmd.Env = append(os.Environ(), "GODEBUG=fips140=on")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("in FIPS 140-3 mode: %v\n%s", err, out)
	}
	for _, w := range want {
		if !strings.Contains(string(out), w) {
			t.Fatalf("did not run in FIPS 140-3 mode as expected (no %q):\n%s", w, out)
		}
	}
	return string(out)
}
