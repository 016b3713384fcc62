package main

import (
	"bytes"
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
		"17 of 17 checks behaved as shown.",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("transcript lacks %q", want)
		}
	}
}
