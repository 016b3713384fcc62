package dpop_test

import (
	"slices"
	"testing"

	"github.com/stepupgrpc/stepup/dpop"
)

func TestVerifierAccessors(t *testing.T) {
	v, err := dpop.NewVerifier(dpop.WithAlgorithms("Ed25519", "ES256"), dpop.WithMaxProofSize(12<<10))
	if err != nil {
		t.Fatal(err)
	}
	if got := v.Algorithms(); !slices.Equal(got, []string{"ES256", "Ed25519"}) {
		t.Fatalf("Algorithms() = %v", got)
	}
	if v.MaxProofSize() != 12<<10 {
		t.Fatalf("MaxProofSize() = %d", v.MaxProofSize())
	}
	v, _ = dpop.NewVerifier()
	if got := v.Algorithms(); !slices.Equal(got, dpop.DefaultAlgorithms()) || v.MaxProofSize() != dpop.DefaultMaxSize {
		t.Fatalf("defaults: %v %d", got, v.MaxProofSize())
	}
}
