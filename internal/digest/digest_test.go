package digest_test

import (
	"crypto/sha256"
	"strings"
	"testing"

	"github.com/stepupgrpc/stepup/internal/digest"
)

func TestSHA256(t *testing.T) {
	for _, s := range []string{"", "abc", strings.Repeat("token.", 200)} {
		if got, want := digest.SHA256(s), sha256.Sum256([]byte(s)); got != want {
			t.Errorf("SHA256(%.12q) = %x, want %x", s, got, want)
		}
	}
	long := strings.Repeat("x", 700)
	if n := testing.AllocsPerRun(10, func() { _ = digest.SHA256(long) }); n != 0 {
		t.Errorf("%v allocations, want 0", n)
	}
}

// TestMemo: the memo returns the SHA-256 of every string, on a hit as on a
// miss, with strings that share slots and strings over its length limit;
// a string planted in a slot under another string's hash (as a 64-bit
// collision would leave it) does not answer for that string.
func TestMemo(t *testing.T) {
	m := digest.NewMemo(3, 64) // 4 slots: strings share them
	var all []string
	for i := range 40 {
		all = append(all, strings.Repeat("t", i%7)+"."+strings.Repeat("x", i))
	}
	for round := range 3 {
		for _, s := range all {
			if got, want := m.SHA256(s), sha256.Sum256([]byte(s)); got != want {
				t.Fatalf("round %d: SHA256(%q) wrong", round, s)
			}
		}
	}
	if got, want := m.SHA256(all[1]), sha256.Sum256([]byte(all[1])); got != want {
		t.Fatal("hit returned another string's hash")
	}
	digest.PlantForTest(m, "forged", "genuine")
	if got, want := m.SHA256("forged"), sha256.Sum256([]byte("forged")); got != want {
		t.Fatal("a colliding entry answered for another string")
	}
	s := strings.Repeat("token.", 20)
	m.SHA256(s)
	if a := testing.AllocsPerRun(100, func() { m.SHA256(s) }); a != 0 {
		t.Errorf("a hit allocates %v times", a)
	}
}
