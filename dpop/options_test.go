package dpop_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"strings"
	"testing"
	"time"

	"github.com/stepupgrpc/stepup/dpop"
	"github.com/stepupgrpc/stepup/testing/testkit"
)

// TestOptionMistakesJoined: NewVerifier and NewSigner report every option
// mistake, joined, each naming its option; a nil option and a nil clock
// are mistakes of both (NewSigner took a nil clock for time.Now before).
func TestOptionMistakesJoined(t *testing.T) {
	_, err := dpop.NewVerifier(dpop.WithAlgorithms("HS256"), dpop.WithClock(nil), nil, dpop.WithIATWindow(0, time.Hour),
		dpop.WithMaxProofSize(0), dpop.WithAuthorities("ok.example", "https://x"), dpop.WithReplayStore(nil),
		dpop.WithKeyCacheSize(0), dpop.WithKeyTables(4))
	testkit.WantMistakes(t, "NewVerifier", err,
		`dpop: WithAlgorithms: algorithm "HS256" is not allowed for proofs`,
		"dpop: WithClock: nil clock",
		"dpop: NewVerifier: option 3 is nil",
		"dpop: WithIATWindow(0s, 1h0m0s): iat past window must be in (0, 1h]",
		"dpop: WithIATWindow(0s, 1h0m0s): iat future window must be in [0, 5m]",
		"dpop: WithMaxProofSize(0)",
		`dpop: WithAuthorities: invalid authority "https://x"`,
		"dpop: WithReplayStore: nil replay store",
		"dpop: WithKeyTables: key tables need the key cache")

	_, err = dpop.NewSigner(nil, dpop.WithAlgorithm("HS256"), dpop.WithClock(nil), nil)
	testkit.WantMistakes(t, "NewSigner", err,
		"dpop: nil signing key",
		`dpop: WithAlgorithm: unsupported algorithm "HS256"`,
		"dpop: WithClock: nil clock",
		"dpop: NewSigner: option 3 is nil")

	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := dpop.NewSigner(key, dpop.WithClock(nil)); err == nil || !strings.Contains(err.Error(), "WithClock") {
		t.Errorf("NewSigner(WithClock(nil)) = %v, want an error naming WithClock", err)
	}
	if _, err := dpop.NewSigner(key, dpop.WithAlgorithm("")); err != nil {
		t.Errorf("NewSigner(WithAlgorithm(\"\")) = %v: the empty name keeps the inferred algorithm", err)
	}
	clock := dpop.WithClock(time.Now)
	var _ dpop.VerifierOption = clock
	var _ dpop.SignerOption = clock
}
