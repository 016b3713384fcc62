package challenge_test

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"testing"

	"github.com/stepupgrpc/stepup/challenge"
)

// TestMatchingCodeVectors checks docs/examples/matching-code-vectors.json,
// written from the text of docs/PROTOCOL.md §8.4, against MatchingCode:
// what the client and the approver page both show the user.
func TestMatchingCodeVectors(t *testing.T) {
	b, err := os.ReadFile("../docs/examples/matching-code-vectors.json")
	if err != nil {
		t.Fatal(err)
	}
	var vf struct {
		Vectors []struct {
			Note, Challenge string
			First4          string `json:"sha256_first4_hex"`
			Code            string `json:"matching_code"`
		}
	}
	if err := json.Unmarshal(b, &vf); err != nil {
		t.Fatal(err)
	}
	if len(vf.Vectors) < 4 {
		t.Fatalf("%d vectors, want at least 4", len(vf.Vectors))
	}
	for _, v := range vf.Vectors {
		h := sha256.Sum256([]byte("stepup-matching-code-v1." + v.Challenge))
		if got := hex.EncodeToString(h[:4]); got != v.First4 {
			t.Errorf("%s: first four bytes %s, the file says %s", v.Note, got, v.First4)
		}
		if got := challenge.MatchingCode(v.Challenge); got != v.Code {
			t.Errorf("%s: MatchingCode = %s, want %s", v.Note, got, v.Code)
		}
	}
}
