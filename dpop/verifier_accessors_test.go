package dpop_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"slices"
	"strings"
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

// TestHTUErrorNamesExpectedAndReceived: a refused htu authority names the
// proof's and the server's, for the audit event's detail.
func TestHTUErrorNamesExpectedAndReceived(t *testing.T) {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	signer, err := dpop.NewSigner(key)
	if err != nil {
		t.Fatal(err)
	}
	proof, err := signer.Proof("POST", "https://evil.example/pkg.S/M", "")
	if err != nil {
		t.Fatal(err)
	}
	served, _ := dpop.NewVerifier(dpop.WithAuthorities("api.example:8443", "API.example"))
	_, err = served.Verify(context.Background(), dpop.Request{Proof: proof, Method: "POST", Path: "/pkg.S/M"})
	if err == nil || !strings.Contains(err.Error(), `htu authority "evil.example" port 443 is not served here (configured: api.example:8443, api.example)`) {
		t.Errorf("configured authorities: %v", err)
	}
	open, _ := dpop.NewVerifier()
	_, err = open.Verify(context.Background(), dpop.Request{Proof: proof, Method: "POST", Path: "/pkg.S/M", Authority: "api.example"})
	if err == nil || !strings.Contains(err.Error(), `htu authority "evil.example" port 443 does not match the request's "api.example"`) {
		t.Errorf("the request's authority: %v", err)
	}
}
