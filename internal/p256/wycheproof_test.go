package p256

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/fips140"
	"crypto/sha256"
	"encoding/asn1"
	"encoding/hex"
	"math/big"
	"os"
	"path/filepath"
	"testing"

	"github.com/stepupgrpc/stepup/internal/p256/p256test"
)

const wycheproofDir = "testdata/wycheproof"

// rsFromDER returns the R || S that a DER signature (a SEQUENCE of two
// INTEGERs) stands for, or ok = false if sig is not exactly that in DER,
// the one encoding that re-encodes to the same bytes, or an integer is
// negative or longer than 32 bytes: the refusals of an ASN.1 verifier,
// made before Verify is reached.
func rsFromDER(sig []byte) (rs []byte, ok bool) {
	var v struct{ R, S *big.Int }
	rest, err := asn1.Unmarshal(sig, &v)
	if err != nil || len(rest) != 0 || v.R.Sign() < 0 || v.S.Sign() < 0 || v.R.BitLen() > 256 || v.S.BitLen() > 256 {
		return nil, false
	}
	if again, err := asn1.Marshal(v); err != nil || !bytes.Equal(again, sig) {
		return nil, false
	}
	return append(v.R.FillBytes(make([]byte, 32)), v.S.FillBytes(make([]byte, 32))...), true
}

// TestWycheproof runs Wycheproof's ECDSA P-256/SHA-256 vectors, DER and
// P1363, through Verify with and without the key's table, and compares
// each answer with crypto/ecdsa's (VerifyASN1 on the DER form). A DER
// signature reaches Verify as the R || S it encodes, when it is strict
// DER. TestFIPSMode runs it again in FIPS 140-3 mode, CI under -tags
// purego.
func TestWycheproof(t *testing.T) {
	for _, file := range []string{p256test.DER, p256test.P1363} {
		vs, err := p256test.Load(wycheproofDir, file)
		if err != nil {
			t.Fatal(err)
		}
		keys := map[*ecdsa.PublicKey][2]*PublicKey{}
		var plain, tab p256test.Tally
		notDER := 0
		for _, v := range vs {
			k, ok := keys[v.Key]
			if !ok {
				k[0], k[1] = twoKeys(t, v.Key)
				wantTable(t, k[1])
				keys[v.Key] = k
			}
			d := sha256.Sum256(v.Msg)
			var got [2]bool
			std := false
			if file == p256test.DER {
				std = ecdsa.VerifyASN1(v.Key, d[:], v.Sig)
				if rs, ok := rsFromDER(v.Sig); ok {
					got[0], got[1] = k[0].Verify(&d, rs), k[1].Verify(&d, rs)
				} else {
					notDER++
				}
			} else {
				std = stdVerify(v.Key, &d, v.Sig)
				got[0], got[1] = k[0].Verify(&d, v.Sig), k[1].Verify(&d, v.Sig)
			}
			okPlain, okTab := plain.Add(v, got[0]), tab.Add(v, got[1])
			if !okPlain || !okTab || got[0] != std || got[1] != std {
				t.Errorf("%s %s %v: Verify %v without the table, %v with it; crypto/ecdsa %v; want %s",
					file, v.Name(), v.Flags, got[0], got[1], std, v.Result)
			}
		}
		t.Logf("%s (%s), %d keys", file, mode(), len(keys))
		if file == p256test.DER {
			t.Logf("  %d signatures not strict DER, refused before Verify; %d reached it", notDER, len(vs)-notDER)
		}
		t.Logf("  without a table: %v", plain)
		if fips140.Enabled() {
			t.Logf("  after Precompute, which builds no table in FIPS 140-3 mode: %v", tab)
		} else {
			t.Logf("  with a table:    %v", tab)
		}
		if plain.Wrong() != 0 || tab.Wrong() != 0 {
			t.Errorf("%s: wrong answers", file)
		}
	}
}

// mode names how the tests run: FIPS 140-3 mode, the purego build.
func mode() string {
	m := "FIPS 140-3 mode " + map[bool]string{true: "on", false: "off"}[fips140.Enabled()]
	if puregoBuild {
		m += ", purego"
	}
	return m
}

// wantTable checks that Precompute gives k a table, except in FIPS 140-3
// mode, where it must not.
func wantTable(t testing.TB, k *PublicKey) {
	t.Helper()
	k.Precompute()
	if k.Precomputed() == fips140.Enabled() {
		t.Fatalf("Precomputed %v in %s", k.Precomputed(), mode())
	}
}

// TestWycheproofFiles checks that the vendored files are the ones
// testdata/wycheproof/README.md names.
func TestWycheproofFiles(t *testing.T) {
	for name, want := range map[string]string{
		p256test.DER:   "182db4f3e230f6f9fa9f800d2a614dede30284b8e8438bbfe1171905402e9332",
		p256test.P1363: "c60de693930e386c3a5472d08081623ef8504decc54b38ac01ec6b2a2575c986",
	} {
		b, err := os.ReadFile(filepath.Join(wycheproofDir, name))
		if err != nil {
			t.Fatal(err)
		}
		if sum := sha256.Sum256(b); hex.EncodeToString(sum[:]) != want {
			t.Errorf("%s: SHA-256 %x, the README says %s", name, sum, want)
		}
	}
}
