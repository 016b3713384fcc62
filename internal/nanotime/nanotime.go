// Package nanotime converts times to int64 nanoseconds without overflow,
// for the bounded stores that keep expiries as integers.
package nanotime

import (
	"math"
	"time"
)

// maxSec is the largest whole second whose nanoseconds fit an int64.
const maxSec = math.MaxInt64/int64(time.Second) - 1

// Unix returns t.UnixNano saturated to the int64 range: UnixNano is
// undefined outside the years 1678-2262, and a far expiry must stay far,
// never wrap into the past.
func Unix(t time.Time) int64 {
	switch sec := t.Unix(); {
	case sec > maxSec:
		return math.MaxInt64
	case sec < -maxSec:
		return math.MinInt64 + 1
	}
	return t.UnixNano()
}
