package main

import (
	"bytes"
	"os"
	"os/exec"
	"strings"
	"testing"
)

// TestDemo runs the whole demo and checks that every step behaved as its
// transcript says: the same check `make demo` makes with its exit code.
func TestDemo(t *testing.T) {
	var out bytes.Buffer
	ok, err := run(&out)
	if err != nil {
		t.Fatal(err)
	}
	if !ok {
		t.Fatalf("the demo did not behave as shown:\n%s", out.String())
	}
	for _, want := range []string{
		"approve BankService.Transfer: amount 120.00 EUR, to DE89370400440532013000",
		`"reason":"DPOP_KEY_MISMATCH"`,
		`"reason":"TOKEN_BOUND_AS_BEARER"`,
		`"reason":"DPOP_REPLAYED"`,
		`"reason":"STEPUP_CHALLENGE_WRONG_REQUEST"`,
		`"via":"grant"`,
		"Decision counters (stepup_decisions_total",
		// What the client sees, what the server logs, what waiting means.
		`client sees: Unauthenticated INVALID_DPOP_PROOF ("stepup: authentication failed (hint proof_key; fix: client)`,
		"server logs: {",
		`"client sees" is all the caller gets`,
		"x approval_pending while alice decided",
		"approval_pending counts the retries",
		"approve BankService.Transfer: amount 250.00 EUR, to DE02120300000000202051",
		`"factor":"approval"`,
		"stepup audit verify: ",
		"valid checkpoints, closed: verified",
		"allowed calls to step-up methods without step-up evidence: 0 (must be 0)",
		"(mallory-tool/0.1 grpc-go/",
		"Approver page: ",
		"22 of 22 checks behaved as shown.",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("transcript lacks %q", want)
		}
	}
}

// TestGatewayDemo runs `make gateway-demo`'s transcript: the Node backend
// behind the gateway. It needs node and the backend's modules (CI installs
// them; elsewhere the test is skipped without them).
func TestGatewayDemo(t *testing.T) {
	if _, err := exec.LookPath("node"); err != nil {
		skipOrFail(t, "node is not installed")
	}
	t.Chdir("../..") // the demo runs from the repository root
	if _, err := os.Stat(NodeBackendDir + "/node_modules"); err != nil {
		skipOrFail(t, "npm ci --prefix "+NodeBackendDir)
	}
	var out bytes.Buffer
	ok, err := runGateway(&out)
	if err != nil {
		t.Fatal(err)
	}
	if !ok {
		t.Fatalf("the gateway demo did not behave as shown:\n%s", out.String())
	}
	for _, want := range []string{
		"approve BankService.Transfer: amount 120.00 EUR, to DE89370400440532013000",
		`"reason":"DPOP_KEY_MISMATCH"`,
		`"reason":"DPOP_REPLAYED"`,
		`"decision":"step_up_passed"`,
		"every refused call stopped at the gateway",
		"11 of 11 checks behaved as shown.",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("transcript lacks %q", want)
		}
	}
}

func skipOrFail(t *testing.T, msg string) {
	t.Helper()
	if os.Getenv("CI") != "" {
		t.Fatal(msg)
	}
	t.Skip(msg)
}
