package dpop

import (
	"crypto/fips140"
	"testing"

	"github.com/stepupgrpc/stepup/internal/base64url"
	"github.com/stepupgrpc/stepup/internal/p256/p256test"
)

// TestES256Wycheproof runs Wycheproof's P1363 vectors for ECDSA
// P-256/SHA-256, whose signatures are R || S as in a JWS, through the
// verifier's ES256 path: the vector's key as a parsed JWK, the message as
// the signing input, first as a new key (crypto/ecdsa), then once the key
// has earned its table (internal/p256 with the table). The DER file does
// not apply: a JWS carries no DER. TestKeyTablesFIPSMode runs it again in
// FIPS 140-3 mode, where no key gets a table.
func TestES256Wycheproof(t *testing.T) {
	vs, err := p256test.Load("../internal/p256/testdata/wycheproof", p256test.P1363)
	if err != nil {
		t.Fatal(err)
	}
	tables := newKeyTables(len(vs))
	if (tables == nil) != fips140.Enabled() {
		t.Fatalf("tables %v in FIPS 140-3 mode %v", tables != nil, fips140.Enabled())
	}
	var plain, tab p256test.Tally
	hdr := map[any][2]*header{}
	for _, v := range vs {
		h, ok := hdr[v.Key]
		if !ok {
			jwk := `{"kty":"EC","crv":"P-256","x":"` + base64url.EncodeToString(v.Key.X.FillBytes(make([]byte, 32))) +
				`","y":"` + base64url.EncodeToString(v.Key.Y.FillBytes(make([]byte, 32))) + `"}`
			for i := range h {
				k, perr := parseJWK(jwk, false)
				if perr != nil {
					t.Fatalf("%s: %v", v.Name(), perr)
				}
				h[i] = &header{typ: "dpop+jwt", alg: algES256, key: k}
			}
			for range KeyTableAfter {
				tables.note(h[1].key)
			}
			if got := h[1].key.p256.Load() != nil; got == fips140.Enabled() || h[0].key.p256.Load() != nil {
				t.Fatalf("%s: a table for the key that earned one: %v, for the new key: %v (FIPS 140-3 mode %v)",
					v.Name(), got, h[0].key.p256.Load() != nil, fips140.Enabled())
			}
			hdr[v.Key] = h
		}
		okPlain := plain.Add(v, verifySignature(h[0], v.Msg, v.Sig))
		okTab := tab.Add(v, verifySignature(h[1], v.Msg, v.Sig))
		if !okPlain || !okTab {
			t.Errorf("%s %v: want %s; new key right: %v, key with its table right: %v", v.Name(), v.Flags, v.Result, okPlain, okTab)
		}
	}
	t.Logf("ES256, %s, FIPS 140-3 mode %v, %d keys", p256test.P1363, fips140.Enabled(), len(hdr))
	t.Logf("  new key (crypto/ecdsa):        %v", plain)
	if fips140.Enabled() {
		t.Logf("  key past KeyTableAfter, no table in FIPS 140-3 mode (crypto/ecdsa): %v", tab)
	} else {
		t.Logf("  key that earned its table:     %v (%d tables)", tab, tables.count())
	}
}

// count is how many tables t holds (0 for no tables).
func (t *keyTables) count() int64 {
	if t == nil {
		return 0
	}
	return t.live.Load()
}
