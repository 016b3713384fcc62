package dpop_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/fips140"
	"crypto/rand"
	"strings"
	"sync"
	"testing"

	"github.com/stepupgrpc/stepup/dpop"
	"github.com/stepupgrpc/stepup/internal/p256/p256test"
	"github.com/stepupgrpc/stepup/testing/testkit"
)

// tableClient is a client key with its signer.
type tableClient struct {
	key    *ecdsa.PrivateKey
	signer *dpop.Signer
}

func newTableClient(t *testing.T, clock *testkit.Clock) tableClient {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	s, err := dpop.NewSigner(k, dpop.WithClock(clock.Now))
	if err != nil {
		t.Fatal(err)
	}
	return tableClient{k, s}
}

// send verifies n fresh proofs of c, which must all be accepted.
func (c tableClient) send(t *testing.T, v *dpop.Verifier, n int) {
	t.Helper()
	for range n {
		p, err := c.signer.Proof("POST", testHTU, testToken)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := v.Verify(context.Background(), testRequest(p)); err != nil {
			t.Fatalf("a valid proof was refused: %v", err)
		}
	}
}

func wantTables(t *testing.T, v *dpop.Verifier, want int, when string) {
	t.Helper()
	if got := v.KeyTables(); got != want {
		t.Fatalf("%s: %d keys hold a table, want %d", when, got, want)
	}
}

// TestKeyTablesBudget follows the table budget through a key cache of
// three keys: a key gets its table on its KeyTableAfter-th accepted proof,
// no more keys than the budget hold one, and a key the cache drops gives
// its table back, which the next key in line then gets.
func TestKeyTablesBudget(t *testing.T) {
	clock := newClock(testNow)
	v := newTestVerifier(t, clock, dpop.WithAuthorities(testAuthority), dpop.WithKeyCacheSize(3), dpop.WithKeyTables(2))
	a, b, c := newTableClient(t, clock), newTableClient(t, clock), newTableClient(t, clock)
	a.send(t, v, dpop.KeyTableAfter-1)
	wantTables(t, v, 0, "before the threshold")
	a.send(t, v, 1)
	wantTables(t, v, 1, "on a's threshold")
	a.send(t, v, 5) // verified with the table
	b.send(t, v, dpop.KeyTableAfter)
	c.send(t, v, dpop.KeyTableAfter+3)
	wantTables(t, v, 2, "budget of two spent, c waits")
	// The cache (a, b, c) drops a, its least recently used key, for d.
	d := newTableClient(t, clock)
	d.send(t, v, 1)
	wantTables(t, v, 1, "a dropped")
	c.send(t, v, 1) // c was over its threshold: it takes the freed table
	wantTables(t, v, 2, "c took a's place")
	for _, k := range []tableClient{newTableClient(t, clock), newTableClient(t, clock), newTableClient(t, clock)} {
		k.send(t, v, 1)
	}
	wantTables(t, v, 0, "b and c dropped")
	// a comes back as a new key: its count starts again.
	a.send(t, v, dpop.KeyTableAfter-1)
	wantTables(t, v, 0, "a again, before its threshold")
	a.send(t, v, 1)
	wantTables(t, v, 1, "a again, on its threshold")
}

// TestKeyTablesRefuse checks, from the attacker's side, that a key with a
// table refuses what it refused without one, and that refused proofs do
// not count towards a table.
func TestKeyTablesRefuse(t *testing.T) {
	keys(t)
	clock := newClock(testNow)
	v := newTestVerifier(t, clock, dpop.WithAuthorities(testAuthority))
	victim := newTableClient(t, clock)
	// Proofs refused for their signature or as replays do not count.
	valid, err := victim.signer.Proof("POST", testHTU, testToken)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := v.Verify(context.Background(), testRequest(valid)); err != nil {
		t.Fatal(err)
	}
	for range 2 * dpop.KeyTableAfter {
		_, err := v.Verify(context.Background(), testRequest(valid))
		wantReason(t, err, dpop.ReasonReplayed)
		forged := sign(t, "ES256", ecKey, proofHeader(t, "ES256", &victim.key.PublicKey), claimsJSON(newJTI(t), clock.Now().Unix()))
		_, err = v.Verify(context.Background(), testRequest(forged))
		wantReason(t, err, dpop.ReasonBadSignature)
	}
	wantTables(t, v, 0, "after replays and forgeries")
	victim.send(t, v, dpop.KeyTableAfter-1)
	wantTables(t, v, 1, "after the victim's own proofs")

	forged := func(name string, p string) {
		t.Run(name, func(t *testing.T) {
			_, err := v.Verify(context.Background(), testRequest(p))
			wantReason(t, err, dpop.ReasonBadSignature)
		})
	}
	header := proofHeader(t, "ES256", &victim.key.PublicKey)
	forged("another key's signature", sign(t, "ES256", ecKey, header, claimsJSON(newJTI(t), clock.Now().Unix())))
	p, err := victim.signer.Proof("POST", testHTU, testToken)
	if err != nil {
		t.Fatal(err)
	}
	dot := strings.LastIndexByte(p, '.')
	sig, err := b64.DecodeString(p[dot+1:])
	if err != nil {
		t.Fatal(err)
	}
	for _, i := range []int{0, 31, 32, 63} {
		bad := append([]byte{}, sig...)
		bad[i] ^= 1
		forged("signature byte "+itoa(int64(i))+" flipped", p[:dot+1]+b64.EncodeToString(bad))
	}
	forged("r and s swapped", p[:dot+1]+b64.EncodeToString(append(append([]byte{}, sig[32:]...), sig[:32]...)))
	// The proof itself, untouched, is still accepted with the table.
	if _, err := v.Verify(context.Background(), testRequest(p)); err != nil {
		t.Fatal(err)
	}
}

// TestKeyTablesConcurrent crosses the threshold from many goroutines at
// once: one table, counted once (run with -race).
func TestKeyTablesConcurrent(t *testing.T) {
	clock := newClock(testNow)
	v := newTestVerifier(t, clock, dpop.WithAuthorities(testAuthority))
	c := newTableClient(t, clock)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range dpop.KeyTableAfter {
				p, err := c.signer.Proof("POST", testHTU, testToken)
				if err == nil {
					_, err = v.Verify(context.Background(), testRequest(p))
				}
				if err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	wantTables(t, v, 1, "after 8 × KeyTableAfter concurrent proofs")
}

func TestKeyTablesOptions(t *testing.T) {
	clock := newClock(testNow)
	off := newTestVerifier(t, clock, dpop.WithAuthorities(testAuthority), dpop.WithKeyTables(0))
	newTableClient(t, clock).send(t, off, 2*dpop.KeyTableAfter)
	wantTables(t, off, 0, "WithKeyTables(0)")
	for name, opts := range map[string][]dpop.VerifierOption{
		"negative":        {dpop.WithKeyTables(-1)},
		"without a cache": {dpop.WithKeyCacheSize(0), dpop.WithKeyTables(4)},
	} {
		if _, err := dpop.NewVerifier(opts...); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	// Without a cache and without the option, there are no tables and
	// no error.
	if _, err := dpop.NewVerifier(dpop.WithKeyCacheSize(0)); err != nil {
		t.Error(err)
	}
}

// TestKeyTablesFIPSMode checks, in a process with the Go cryptographic
// module in FIPS 140-3 mode, that no key gets a table, whatever
// WithKeyTables says, so that every ES256 proof is verified by
// crypto/ecdsa; and runs TestES256Wycheproof there.
func TestKeyTablesFIPSMode(t *testing.T) {
	if !fips140.Enabled() {
		if testing.Short() {
			t.Skip("starts a process")
		}
		out := p256test.RunInFIPSMode(t, "^(TestKeyTablesFIPSMode|TestES256Wycheproof)$",
			"--- PASS: TestKeyTablesFIPSMode", "--- PASS: TestES256Wycheproof", "FIPS 140-3 mode true")
		t.Logf("in FIPS 140-3 mode:\n%s", out)
		return
	}
	clock := newClock(testNow)
	for _, opts := range [][]dpop.VerifierOption{nil, {dpop.WithKeyTables(4)}} {
		v := newTestVerifier(t, clock, append(opts, dpop.WithAuthorities(testAuthority))...)
		newTableClient(t, clock).send(t, v, 2*dpop.KeyTableAfter)
		wantTables(t, v, 0, "FIPS 140-3 mode")
	}
}

// newJTI is a fresh jti for a hand-made proof.
func newJTI(t *testing.T) string {
	t.Helper()
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	return b64.EncodeToString(b[:])
}
