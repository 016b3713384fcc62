package auditlog_test

import (
	"os/exec"
	"strings"
	"testing"
)

// TestCoreDoesNotImportAuditlog holds the line of a plug-in: the Guard,
// the challenge protocol and the proof verifier link nothing of auditlog
// (a service that does not write the trail does not carry it).
func TestCoreDoesNotImportAuditlog(t *testing.T) {
	const self = "github.com/stepupgrpc/stepup/auditlog"
	for _, pkg := range []string{"interceptor", "challenge", "dpop"} {
		out, err := exec.Command("go", "list", "-deps", "github.com/stepupgrpc/stepup/"+pkg).Output()
		if err != nil {
			t.Fatalf("go list %s: %v", pkg, err)
		}
		deps := strings.Fields(string(out))
		if len(deps) < 10 {
			t.Fatalf("go list %s listed %d packages", pkg, len(deps))
		}
		for _, d := range deps {
			if d == self {
				t.Errorf("%s imports %s", pkg, self)
			}
		}
	}
}
