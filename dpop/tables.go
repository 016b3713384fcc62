package dpop

import (
	"crypto/fips140"
	"fmt"
	"sync/atomic"

	"github.com/stepupgrpc/stepup/internal/p256"
)

const (
	// DefaultKeyTables is how many P-256 proof keys may hold a verification
	// table at once by default: at most 64 × KeyTableSize, 6.0 MiB.
	DefaultKeyTables = 64
	// KeyTableSize is the memory one key's verification table takes, in
	// bytes: 96 KiB on the Go heap (960 points, 90 KiB, in whole 8 KiB
	// pages).
	KeyTableSize = p256.TableSize
	// KeyTableAfter is the accepted proof of a key whose verification
	// builds the key's table. Building it costs about six verifications;
	// each later ES256 proof of that key then costs a little over half
	// as much to verify, so the table pays for itself within about
	// fifteen more proofs.
	KeyTableAfter = 16
)

// WithKeyTables sets how many P-256 proof keys may hold a precomputed
// verification table at once (KeyTableSize bytes each). A key gets its
// table on its KeyTableAfter-th accepted proof if the budget allows, and
// gives it back when the key cache drops the key; with the budget spent,
// other keys verify as before. The tables need the key cache
// (WithKeyCacheSize). Default: DefaultKeyTables.
//
// Clients that send many proofs with one key (services, long-lived
// sessions) are what the tables are for: verifying their ES256 proofs,
// every check included, costs about 0.6 of crypto/ecdsa's signature
// check alone (docs/PERFORMANCE.md).
//
// A key with a table is verified by the module's own code
// (internal/p256, docs/DPOP.md "ES256"); every other ES256 signature by
// crypto/ecdsa. WithKeyTables(0) therefore means plain crypto/ecdsa for
// every proof. In FIPS 140-3 mode (GODEBUG=fips140=on) no table is
// built, whatever the option says.
func WithKeyTables(n int) VerifierOption {
	return verifierOptionFunc(func(c *verifierConfig) error {
		if n < 0 {
			return fmt.Errorf("dpop: WithKeyTables(%d): negative key table count", n)
		}
		c.keyTables, c.keyTablesSet = n, true
		return nil
	})
}

// keyTables is the budget of keys that hold a table.
type keyTables struct {
	max  int64
	live atomic.Int64
}

// newKeyTables is the budget of n tables, or nil (no tables) when n is 0
// or the Go cryptographic module is in FIPS 140-3 mode.
func newKeyTables(n int) *keyTables {
	if n <= 0 || fips140.Enabled() {
		return nil
	}
	return &keyTables{max: int64(n)}
}

// The table state of a cached key (publicKey.table).
const (
	tableNone     = iota // no table yet
	tableHeld            // has its table, counted in the budget
	tableReleased        // dropped by the key cache: no table from now on
)

// note counts an accepted proof of k and gives k its table on the
// KeyTableAfter-th one, or on a later one once the budget allows. A key
// that has its table costs one atomic load here.
func (t *keyTables) note(k *publicKey) {
	if t == nil || k.typ != keyP256 || k.table.Load() != tableNone {
		return
	}
	if k.uses.Add(1) < KeyTableAfter || t.live.Load() >= t.max {
		return
	}
	if t.live.Add(1) > t.max {
		t.live.Add(-1)
		return
	}
	if !k.table.CompareAndSwap(tableNone, tableHeld) {
		t.live.Add(-1) // another proof of k won, or the cache dropped k
		return
	}
	pk, err := p256.NewPublicKey(k.ec)
	if err != nil { // not reached: parseJWK validated the point
		t.release(k)
		return
	}
	pk.Precompute()
	k.p256.Store(pk)
}

// release gives back the budget of a key the cache dropped.
func (t *keyTables) release(k *publicKey) {
	if k.table.Swap(tableReleased) == tableHeld {
		t.live.Add(-1)
	}
}

// KeyTables reports how many proof keys hold a verification table now.
func (v *Verifier) KeyTables() int {
	if v.tables == nil {
		return 0
	}
	return int(v.tables.live.Load())
}
