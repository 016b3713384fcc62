package dpop

import (
	"strconv"

	"github.com/stepupgrpc/stepup/internal/strictjson"
)

// Refusals for JSON the strict parser does not accept: one message per
// cause, no echo of the input (which may be attacker-controlled and is never
// logged).
var (
	errJSONSyntax = jsonError(strictjson.ErrSyntax)
	errJSONDup    = jsonError(strictjson.ErrDuplicate)
	errJSONDeep   = jsonError(strictjson.ErrTooDeep)
	errJSONObject = jsonError(strictjson.ErrNotObject)
)

func jsonError(err error) *ProofError { return newError(ReasonMalformed, err.Error()) }

// parseJSONObject is [strictjson.ParseObject] with its refusals mapped to
// ReasonMalformed: s must be exactly one JSON object with no duplicate
// member names at any level and at most 16 levels (RFC 8725 §3.4). visit,
// when not nil, is called for each top-level member in order; a *ProofError it
// returns is returned as is.
func parseJSONObject(s string, visit func(name string, v strictjson.Value) error) *ProofError {
	switch err := strictjson.ParseObject(s, visit); err {
	case nil:
		return nil
	case strictjson.ErrDuplicate:
		return errJSONDup
	case strictjson.ErrTooDeep:
		return errJSONDeep
	case strictjson.ErrNotObject:
		return errJSONObject
	default:
		if e, ok := err.(*ProofError); ok {
			return e
		}
		return errJSONSyntax
	}
}

// parseNumericDate converts a JSON number (RFC 7519 NumericDate, seconds
// since the epoch, possibly fractional) to seconds and nanoseconds. Values
// far outside any plausible date are clamped; the iat window refuses them.
func parseNumericDate(raw string) (sec, nsec int64, ok bool) {
	const limit = 1 << 40 // about year 36812: clamps absurd values
	if len(raw) > 0 && len(raw) <= 12 {
		var n int64
		digits := true
		for i := 0; i < len(raw); i++ {
			c := raw[i]
			if c < '0' || c > '9' {
				digits = false
				break
			}
			n = n*10 + int64(c-'0')
		}
		if digits {
			return n, 0, true
		}
	}
	f, err := strconv.ParseFloat(raw, 64)
	if err != nil {
		if ne, isNum := err.(*strconv.NumError); isNum && ne.Err == strconv.ErrRange {
			// ±Inf or an underflow to zero: clamp by sign of the input.
			if len(raw) > 0 && raw[0] == '-' {
				return -limit, 0, true
			}
			if f == 0 {
				return 0, 0, true
			}
			return limit, 0, true
		}
		return 0, 0, false
	}
	switch {
	case f > limit:
		return limit, 0, true
	case f < -limit:
		return -limit, 0, true
	}
	sec = int64(f)
	frac := f - float64(sec)
	if frac < 0 {
		sec--
		frac++
	}
	return sec, int64(frac * 1e9), true
}
