package dpop_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"testing"
	"time"

	"github.com/stepupgrpc/stepup/dpop"
)

// TestOneClockOption: WithClock configures a Signer and a Verifier alike.
// A signer on a clock a day ahead makes proofs that a verifier on the same
// clock accepts and a verifier on the real clock refuses as issued in the
// future; the deprecated WithSignerClock is the same option.
func TestOneClockOption(t *testing.T) {
	day := time.Now().Add(24 * time.Hour)
	clock := func() time.Time { return day }
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	for name, opt := range map[string]dpop.SignerOption{"WithClock": dpop.WithClock(clock), "WithSignerClock": dpop.WithSignerClock(clock)} {
		t.Run(name, func(t *testing.T) {
			signer, err := dpop.NewSigner(key, opt)
			if err != nil {
				t.Fatal(err)
			}
			req := func() dpop.Request {
				proof, err := signer.Proof("POST", "https://api.example.com/a.v1.S/M", "")
				if err != nil {
					t.Fatal(err)
				}
				return dpop.Request{Proof: proof, Method: "POST", Path: "/a.v1.S/M"}
			}
			same, _ := dpop.NewVerifier(dpop.WithClock(clock), dpop.WithAuthorities("api.example.com"))
			p, err := same.Verify(context.Background(), req())
			if err != nil {
				t.Fatalf("verifier on the signer's clock: %v", err)
			}
			if !p.IssuedAt.Equal(day.Truncate(time.Second)) {
				t.Errorf("iat = %v, want the signer's clock %v", p.IssuedAt, day.Truncate(time.Second))
			}
			real, _ := dpop.NewVerifier(dpop.WithAuthorities("api.example.com"))
			if _, err := real.Verify(context.Background(), req()); dpop.ReasonOf(err) != dpop.ReasonIssuedInFuture {
				t.Errorf("verifier on the real clock: %v, want %s", err, dpop.ReasonIssuedInFuture)
			}
		})
	}
}
