package testkit

import (
	"crypto/rand"
	"testing"
	"time"

	"github.com/stepupgrpc/stepup/dpop"
)

// NonceVerifier returns a DPoP verifier that demands server nonces (RFC
// 9449 §8) from a fresh random key, on the real clock, and the nonce
// issuer a server hands to clients in DPoP-Nonce.
func NonceVerifier(t testing.TB) (*dpop.Verifier, *dpop.Nonces) {
	t.Helper()
	key := make([]byte, 32)
	_, _ = rand.Read(key) // crypto/rand.Read never fails (Go 1.24+)
	nonces, err := dpop.NewNonces(key, time.Minute, time.Now)
	if err != nil {
		t.Fatal(err)
	}
	v, err := dpop.NewVerifier(dpop.WithNonces(nonces))
	if err != nil {
		t.Fatal(err)
	}
	return v, nonces
}
