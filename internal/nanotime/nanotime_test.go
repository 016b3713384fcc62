package nanotime_test

import (
	"math"
	"testing"
	"time"

	"github.com/stepupgrpc/stepup/internal/nanotime"
)

func TestUnix(t *testing.T) {
	now := time.Unix(1_800_000_000, 123)
	if got := nanotime.Unix(now); got != now.UnixNano() {
		t.Fatalf("in range: %d, want %d", got, now.UnixNano())
	}
	if got := nanotime.Unix(time.Date(3000, 1, 1, 0, 0, 0, 0, time.UTC)); got != math.MaxInt64 {
		t.Fatalf("year 3000: %d, want saturation at MaxInt64", got)
	}
	if got := nanotime.Unix(time.Date(1000, 1, 1, 0, 0, 0, 0, time.UTC)); got != math.MinInt64+1 {
		t.Fatalf("year 1000: %d, want saturation at MinInt64+1", got)
	}
	if nanotime.Unix(time.Time{}) >= nanotime.Unix(now) {
		t.Fatal("the zero time must order before now")
	}
}
