package dpop_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"fmt"
	"time"

	"github.com/stepupgrpc/stepup/dpop"
)

// A client makes a proof for one gRPC call; the server verifies it once and
// refuses the replay.
func ExampleSigner_Proof() {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	now := func() time.Time { return time.Unix(1_800_000_000, 0) }

	signer, _ := dpop.NewSigner(key, dpop.WithClock(now))
	proof, _ := signer.Proof("POST", "https://api.example.com/bank.v1.Accounts/Transfer", "access-token")

	verifier, _ := dpop.NewVerifier(dpop.WithClock(now), dpop.WithAuthorities("api.example.com"))
	req := dpop.Request{
		Proof:       proof,
		Method:      "POST",
		Path:        "/bank.v1.Accounts/Transfer",
		AccessToken: "access-token",
		ExpectedJKT: signer.Thumbprint(), // the token's cnf.jkt
	}
	p, err := verifier.Verify(context.Background(), req)
	fmt.Println(p.Algorithm, p.HTM, p.HTU, p.ATH == dpop.ATH("access-token"), err)

	_, err = verifier.Verify(context.Background(), req)
	fmt.Println(dpop.ReasonOf(err))
	// Output:
	// ES256 POST https://api.example.com/bank.v1.Accounts/Transfer true <nil>
	// DPOP_REPLAYED
}

// Verifying the RFC 9449 §4.1 example proof at the time it was made.
func ExampleVerifier_Verify() {
	const proof = "eyJ0eXAiOiJkcG9wK2p3dCIsImFsZyI6IkVTMjU2IiwiandrIjp7Imt0eSI6IkVDIiwieCI6Imw4dEZyaHgtMzR0VjNoUklDUkRZOXpDa0RscEJoRjQyVVFVZldWQVdCRnMiLCJ5IjoiOVZFNGpmX09rX282NHpiVFRsY3VOSmFqSG10NnY5VERWclUwQ2R2R1JEQSIsImNydiI6IlAtMjU2In19.eyJqdGkiOiItQndDM0VTYzZhY2MybFRjIiwiaHRtIjoiUE9TVCIsImh0dSI6Imh0dHBzOi8vc2VydmVyLmV4YW1wbGUuY29tL3Rva2VuIiwiaWF0IjoxNTYyMjYyNjE2fQ.2-GxA6T8lP4vfrg8v-FdWP0A0zdrj8igiMLvqRMUvwnQg4PtFLbdLXiOSsX0x7NVY-FNyJK70nfbV37xRZT3Lg"
	v, err := dpop.NewVerifier(
		dpop.WithClock(func() time.Time { return time.Unix(1562262620, 0) }),
		dpop.WithAuthorities("server.example.com"),
	)
	if err != nil {
		panic(err)
	}
	p, err := v.Verify(context.Background(), dpop.Request{
		Proof:     proof,
		Method:    "POST",
		Path:      "/token",
		Authority: "server.example.com",
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(p.JTI, p.IssuedAt.Unix())
	fmt.Println(p.Thumbprint)

	// The same proof for another path is refused with a stable reason.
	_, err = v.Verify(context.Background(), dpop.Request{Proof: proof, Method: "POST", Path: "/other"})
	fmt.Println(err)
	// Output:
	// -BwC3ESc6acc2lTc 1562262616
	// 0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I
	// dpop: DPOP_BAD_HTU: htu path "/token" does not match the request's "/other"
}

// The RFC 7638 thumbprint of the RFC 9449 example key: the jkt a server puts
// in cnf of the access tokens it binds to that key.
func ExampleThumbprint() {
	jwk := `{"kty":"EC","x":"l8tFrhx-34tV3hRICRDY9zCkDlpBhF42UQUfWVAWBFs","y":"9VE4jf_Ok_o64zbTTlcuNJajHmt6v9TDVrU0CdvGRDA","crv":"P-256"}`
	jkt, err := dpop.Thumbprint([]byte(jwk))
	fmt.Println(jkt, err)
	// Output: 0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I <nil>
}

// Stateless nonces: replicas sharing the key agree.
func ExampleNonces() {
	key := []byte("32-byte key shared by replicas!!")
	now := func() time.Time { return time.Unix(1_800_000_000, 0) }
	a, _ := dpop.NewNonces(key, 5*time.Minute, now)
	b, _ := dpop.NewNonces(key, 5*time.Minute, now)
	fmt.Println(b.Check(a.Current()))
	fmt.Println(dpop.ReasonOf(b.Check("")))
	// Output:
	// <nil>
	// DPOP_NONCE_REQUIRED
}

// A client that keeps its key gets a verification table on its
// KeyTableAfter-th accepted proof; WithKeyTables bounds how many keys hold
// one (KeyTableSize bytes each).
func ExampleWithKeyTables() {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	now := func() time.Time { return time.Unix(1_800_000_000, 0) }
	signer, _ := dpop.NewSigner(key, dpop.WithClock(now))
	verifier, _ := dpop.NewVerifier(dpop.WithClock(now), dpop.WithAuthorities("api.example.com"),
		dpop.WithKeyTables(8)) // at most 8 × 96 KiB

	for i := 1; i <= dpop.KeyTableAfter; i++ {
		proof, _ := signer.Proof("POST", "https://api.example.com/bank.v1.Accounts/Balance", "")
		req := dpop.Request{Proof: proof, Method: "POST", Path: "/bank.v1.Accounts/Balance"}
		if _, err := verifier.Verify(context.Background(), req); err != nil {
			fmt.Println(err)
			return
		}
		if i == dpop.KeyTableAfter-1 || i == dpop.KeyTableAfter {
			fmt.Printf("after %d proofs: %d key(s) with a table\n", i, verifier.KeyTables())
		}
	}
	// Output:
	// after 15 proofs: 0 key(s) with a table
	// after 16 proofs: 1 key(s) with a table
}
