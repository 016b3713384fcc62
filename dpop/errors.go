package dpop

import "errors"

// Reason is a stable, documented reason code for a refusal. It is meant for
// audit logs and metrics; its values never change between releases.
type Reason string

// Reason codes. The comment after each names what triggers it.
const (
	// ReasonMalformed: not a compact JWS, bad base64url or JSON, a missing
	// or ill-typed claim, duplicate JSON member names, JSON nested too deep.
	ReasonMalformed Reason = "DPOP_MALFORMED"
	// ReasonTooLarge: the proof is over the size limit (default 8 KiB).
	ReasonTooLarge Reason = "DPOP_TOO_LARGE"
	// ReasonBadType: the typ header is not the expected one ("dpop+jwt").
	ReasonBadType Reason = "DPOP_BAD_TYP"
	// ReasonBadAlgorithm: alg is not in the allowlist ("none", HS256 and
	// unknown names never are) or does not match the key type or curve.
	ReasonBadAlgorithm Reason = "DPOP_BAD_ALG"
	// ReasonBadKey: the jwk is missing or invalid (unsupported kty or crv,
	// a point not on the curve, bad sizes), or the header has crit.
	ReasonBadKey Reason = "DPOP_BAD_KEY"
	// ReasonPrivateKey: the jwk contains private members (d, p, q, dp, dq,
	// qi, oth, k).
	ReasonPrivateKey Reason = "DPOP_PRIVATE_KEY"
	// ReasonWeakKey: the RSA modulus is under the minimum (default 2048
	// bits) or over 8192 bits.
	ReasonWeakKey Reason = "DPOP_WEAK_KEY"
	// ReasonBadSignature: the signature does not verify.
	ReasonBadSignature Reason = "DPOP_BAD_SIGNATURE"
	// ReasonBadMethod: htm does not match the request method.
	ReasonBadMethod Reason = "DPOP_BAD_HTM"
	// ReasonBadURI: htu does not match the request URI (scheme, authority or
	// path), or carries a query, fragment or userinfo.
	ReasonBadURI Reason = "DPOP_BAD_HTU"
	// ReasonIssuedTooOld: iat is before the acceptance window.
	ReasonIssuedTooOld Reason = "DPOP_IAT_TOO_OLD"
	// ReasonIssuedInFuture: iat is after the allowed clock skew.
	ReasonIssuedInFuture Reason = "DPOP_IAT_IN_FUTURE"
	// ReasonBadATH: an access token was presented and ath is missing or is
	// not the hash of that token.
	ReasonBadATH Reason = "DPOP_BAD_ATH"
	// ReasonKeyMismatch: the proof key's thumbprint is not the expected one
	// (the access token's cnf.jkt).
	ReasonKeyMismatch Reason = "DPOP_KEY_MISMATCH"
	// ReasonNonceRequired: the server demands a nonce and the proof has
	// none. Maps to the use_dpop_nonce error (RFC 9449 §8).
	ReasonNonceRequired Reason = "DPOP_NONCE_REQUIRED"
	// ReasonNonceInvalid: the nonce is wrong or expired. Maps to the
	// use_dpop_nonce error (RFC 9449 §8).
	ReasonNonceInvalid Reason = "DPOP_NONCE_INVALID"
	// ReasonReplayed: the proof's jti was seen before.
	ReasonReplayed Reason = "DPOP_REPLAYED"
	// ReasonReplayWindow: the replay store evicted an entry that had not
	// expired, or lost its data, so it can no longer vouch for proofs
	// issued this early; the proof is refused (fail closed). See
	// [ErrEvicted].
	ReasonReplayWindow Reason = "DPOP_REPLAY_WINDOW"
	// ReasonStoreUnavailable: the replay store could not answer; without
	// its answer the proof cannot be vouched for and is refused.
	ReasonStoreUnavailable Reason = "DPOP_STORE_UNAVAILABLE"
)

// ProofError is the typed refusal returned by every verification function of this
// package. Reason is stable and safe to log; Detail is a short English
// explanation that never contains the proof, token or key material; Err is
// the underlying cause, if any.
type ProofError struct {
	Reason Reason
	Detail string
	Err    error
}

// Error returns "dpop: " + reason + ": " + detail.
func (e *ProofError) Error() string {
	if e.Detail == "" {
		return "dpop: " + string(e.Reason)
	}
	return "dpop: " + string(e.Reason) + ": " + e.Detail
}

// Unwrap returns the underlying cause, if any.
func (e *ProofError) Unwrap() error { return e.Err }

// Is reports whether target is a *ProofError with the same Reason, so that
// errors.Is(err, &dpop.ProofError{Reason: dpop.ReasonReplayed}) works.
func (e *ProofError) Is(target error) bool {
	t, ok := target.(*ProofError)
	return ok && t.Reason == e.Reason
}

// UseNonce reports whether the client should retry with the server's current
// nonce, that is whether the refusal maps to the use_dpop_nonce error code of
// RFC 9449 §8 (ReasonNonceRequired or ReasonNonceInvalid).
func (e *ProofError) UseNonce() bool {
	return e.Reason == ReasonNonceRequired || e.Reason == ReasonNonceInvalid
}

// ReasonOf returns the Reason of the first *ProofError in err's chain, or "" if
// there is none.
func ReasonOf(err error) Reason {
	var e *ProofError
	if errors.As(err, &e) {
		return e.Reason
	}
	return ""
}

func newError(r Reason, detail string) *ProofError { return &ProofError{Reason: r, Detail: detail} }
