// Package p256test reads the Wycheproof ECDSA P-256/SHA-256 vectors kept
// in internal/p256/testdata/wycheproof, for the tests of internal/p256 and
// of dpop's ES256 verification. It is for tests only.
package p256test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
)

// The two vector files.
const (
	// DER holds signatures in their ASN.1 DER encoding.
	DER = "ecdsa_secp256r1_sha256_test.json"
	// P1363 holds signatures as R || S, 32 bytes each: the form of a JWS
	// ES256 signature (RFC 7518 §3.4).
	P1363 = "ecdsa_secp256r1_sha256_p1363_test.json"
)

// Vector is one test case.
type Vector struct {
	TcID    int
	Comment string
	Flags   []string
	Key     *ecdsa.PublicKey // the group's key
	Msg     []byte           // signed with SHA-256
	Sig     []byte           // DER or R || S, as the file has it
	Result  string           // "valid", "invalid" or "acceptable"
}

// Name identifies v in a test's output.
func (v Vector) Name() string { return fmt.Sprintf("tcId %d (%s)", v.TcID, v.Comment) }

type file struct {
	Algorithm     string `json:"algorithm"`
	NumberOfTests int    `json:"numberOfTests"`
	TestGroups    []struct {
		Type      string `json:"type"`
		SHA       string `json:"sha"`
		PublicKey struct {
			Curve        string `json:"curve"`
			Uncompressed string `json:"uncompressed"`
		} `json:"publicKey"`
		Tests []struct {
			TcID    int      `json:"tcId"`
			Comment string   `json:"comment"`
			Flags   []string `json:"flags"`
			Msg     string   `json:"msg"`
			Sig     string   `json:"sig"`
			Result  string   `json:"result"`
		} `json:"tests"`
	} `json:"testGroups"`
}

// Load reads the vectors of name (DER or P1363) from dir. It refuses a
// file whose groups are not ECDSA verification over P-256 with SHA-256,
// whose key is not a valid P-256 point, or whose count of vectors is not
// the one it declares.
func Load(dir, name string) ([]Vector, error) {
	raw, err := os.ReadFile(filepath.Join(dir, name))
	if err != nil {
		return nil, err
	}
	var f file
	if err := json.Unmarshal(raw, &f); err != nil {
		return nil, fmt.Errorf("%s: %v", name, err)
	}
	if f.Algorithm != "ECDSA" {
		return nil, fmt.Errorf("%s: algorithm %q", name, f.Algorithm)
	}
	var out []Vector
	for _, g := range f.TestGroups {
		if g.SHA != "SHA-256" || g.PublicKey.Curve != "secp256r1" || (g.Type != "EcdsaVerify" && g.Type != "EcdsaP1363Verify") {
			return nil, fmt.Errorf("%s: a group of type %s, curve %s, hash %s", name, g.Type, g.PublicKey.Curve, g.SHA)
		}
		point, err := hex.DecodeString(g.PublicKey.Uncompressed)
		if err != nil {
			return nil, fmt.Errorf("%s: key: %v", name, err)
		}
		key, err := ecdsa.ParseUncompressedPublicKey(elliptic.P256(), point)
		if err != nil {
			return nil, fmt.Errorf("%s: key %x: %v", name, point, err)
		}
		for _, t := range g.Tests {
			msg, err := hex.DecodeString(t.Msg)
			if err != nil {
				return nil, fmt.Errorf("%s: tcId %d: msg: %v", name, t.TcID, err)
			}
			sig, err := hex.DecodeString(t.Sig)
			if err != nil {
				return nil, fmt.Errorf("%s: tcId %d: sig: %v", name, t.TcID, err)
			}
			switch t.Result {
			case "valid", "invalid", "acceptable":
			default:
				return nil, fmt.Errorf("%s: tcId %d: result %q", name, t.TcID, t.Result)
			}
			out = append(out, Vector{t.TcID, t.Comment, t.Flags, key, msg, sig, t.Result})
		}
	}
	if len(out) != f.NumberOfTests {
		return nil, fmt.Errorf("%s: %d vectors, the file declares %d", name, len(out), f.NumberOfTests)
	}
	return out, nil
}

// Tally counts how a verifier's answers meet the vectors' results.
type Tally struct {
	Valid, Invalid, Acceptable int // vectors of each result
	ValidRefused               int // wrong
	InvalidAccepted            int // wrong
	AcceptableAccepted         int // either answer is right
}

// Add counts one answer and reports whether it is right: a valid vector
// must verify, an invalid one must not, an acceptable one may do either.
func (t *Tally) Add(v Vector, accepted bool) bool {
	switch v.Result {
	case "valid":
		t.Valid++
		if !accepted {
			t.ValidRefused++
			return false
		}
	case "invalid":
		t.Invalid++
		if accepted {
			t.InvalidAccepted++
			return false
		}
	default:
		t.Acceptable++
		if accepted {
			t.AcceptableAccepted++
		}
	}
	return true
}

// Wrong is how many answers were wrong.
func (t Tally) Wrong() int { return t.ValidRefused + t.InvalidAccepted }

func (t Tally) String() string {
	return fmt.Sprintf("%d vectors: valid %d/%d accepted, invalid %d/%d refused, acceptable %d (%d accepted); %d wrong",
		t.Valid+t.Invalid+t.Acceptable, t.Valid-t.ValidRefused, t.Valid, t.Invalid-t.InvalidAccepted, t.Invalid,
		t.Acceptable, t.AcceptableAccepted, t.Wrong())
}
