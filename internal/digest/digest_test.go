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
