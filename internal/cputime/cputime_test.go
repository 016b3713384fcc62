package cputime_test

import (
	"crypto/sha256"
	"runtime"
	"testing"

	"github.com/stepupgrpc/stepup/internal/cputime"
)

// TestClocksAdvanceWithWork: both clocks count work done on this thread,
// and the process clock counts at least what the thread's did.
func TestClocksAdvanceWithWork(t *testing.T) {
	if !cputime.Available {
		t.Skip("no CPU-time clocks on this system")
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	p0, t0 := cputime.Process(), cputime.Thread()
	sum := sha256.Sum256(nil)
	for range 20000 {
		sum = sha256.Sum256(sum[:])
	}
	t1, p1 := cputime.Thread(), cputime.Process()
	if t1 <= t0 {
		t.Fatalf("thread clock did not advance: %v then %v", t0, t1)
	}
	if p1-p0 < t1-t0 {
		t.Fatalf("process clock advanced %v, less than the thread's %v", p1-p0, t1-t0)
	}
}
