// Package factor is what the step-up Service and a factor share: the
// Factor interface the Service calls, the evidence it verifies, the
// reason codes a built-in factor returns, and the part of the store a
// factor may use. It imports nothing of the step-up protocol, so that a
// factor package (challenge/totp, challenge/devicekey) imports it and not
// challenge, and challenge can keep the TOTP and device-key factors' old
// names. Package challenge re-exports every name here (challenge.Factor,
// challenge.FactorEvidence, challenge.Reason, challenge.StoreError...):
// users need not import it.
package factor

import (
	"context"
	"errors"
	"time"

	"github.com/stepupgrpc/stepup/dpop"
	stepupv1 "github.com/stepupgrpc/stepup/proto/stepup/v1"
)

// Reason is a stable reason code for an audit log or a metric: why a
// step-up was not satisfied, or why a presented grant or answer was refused.
// Values never change between releases. Clients should only ever be told
// that a step-up is required; the precise reason is for the server's logs.
// It is challenge.Reason, which lists every code.
type Reason string

// The reason codes of the built-in factors and of the store; challenge
// re-exports each under the same name.
const (
	// ReasonReplayWindow: the store can no longer vouch for the single use
	// of what is presented (see challenge.ReasonReplayWindow).
	ReasonReplayWindow Reason = "STEPUP_REPLAY_WINDOW"
	// ReasonTOTPInvalid: the code is not valid for the subject's secret in
	// the accepted time steps, or the subject has no TOTP secret.
	ReasonTOTPInvalid Reason = "STEPUP_TOTP_INVALID"
	// ReasonTOTPReused: the code's time step was already accepted for this
	// subject (RFC 6238 §5.2), even on another challenge.
	ReasonTOTPReused Reason = "STEPUP_TOTP_REUSED"
	// ReasonDeviceKeyUnknown: the device evidence is signed by a key that
	// is not registered for the subject (or is the DPoP key itself).
	ReasonDeviceKeyUnknown Reason = "STEPUP_DEVICE_KEY_UNKNOWN"
	// ReasonDeviceSignatureInvalid: the device evidence is malformed, its
	// signature does not verify, or it signs another challenge.
	ReasonDeviceSignatureInvalid Reason = "STEPUP_DEVICE_SIGNATURE_INVALID"
	// ReasonStoreUnavailable: the shared store could not answer or could
	// not vouch for single use or attempt counts (see
	// challenge.ReasonStoreUnavailable).
	ReasonStoreUnavailable Reason = "STEPUP_STORE_UNAVAILABLE"
)

// DeviceType is the typ of device-key evidence (a stepup-device+jwt),
// signed by the device key: what the client's responder makes and the
// device-key factor verifies (docs/PROTOCOL.md).
const DeviceType = "stepup-device+jwt"

// ErrUnknownSubject is returned by an enrolment lookup (TOTP secrets,
// device keys, WebAuthn credentials) when the subject has no such factor
// enrolled. The factor then refuses the answer (wrong answer), rather than
// failing.
var ErrUnknownSubject = errors.New("challenge: unknown subject")

// StoreError is the error a check returns when the shared store fails.
// Reason is ReasonStoreUnavailable; Err is the store's error.
type StoreError struct {
	Reason Reason
	Err    error
}

// Error returns "challenge: " + reason + ": " + the cause.
func (e *StoreError) Error() string {
	if e.Err == nil {
		return "challenge: " + string(e.Reason)
	}
	return "challenge: " + string(e.Reason) + ": " + e.Err.Error()
}

// Unwrap returns the underlying cause.
func (e *StoreError) Unwrap() error { return e.Err }

// NewStoreError wraps a store failure: a *StoreError with
// ReasonStoreUnavailable.
func NewStoreError(err error) error {
	return &StoreError{Reason: ReasonStoreUnavailable, Err: err}
}

// Store is the part of the Service's shared store a factor may use (every
// challenge.Store is one): single-use keys and the largest value seen.
type Store interface {
	// Insert records a single-use key (dpop.ReplayStore).
	dpop.ReplayStore
	// SetMax sets the value at key to max(current, value) and its expiry
	// to the later of the current one and expires.
	SetMax(ctx context.Context, key string, value int64, expires time.Time) error
	// Get returns the value at key; 0 when absent or expired.
	Get(ctx context.Context, key string) (int64, error)
}

// SubjectKey is the store key of kind for subject: kind, the subject in
// braces, then rest, joined by ':'. The braces are a Redis Cluster hash
// tag: every key of one subject (attempt counters, consumed challenges and
// TOTP steps, revocations) hashes to one slot, so the keys one operation
// touches live on one shard, and fail over together. A factor's keys use
// a kind of their own (challenge.Store lists the kinds in use).
func SubjectKey(kind, subject string, rest ...string) string {
	k := kind + ":{" + subject + "}"
	for _, r := range rest {
		k += ":" + r
	}
	return k
}

// Factor verifies one kind of second-factor evidence. The Service calls it
// for an answer whose challenge, key, method and request verified, after
// the answer was counted against the attempt limits; it knows nothing of
// how the factor works. A Factor must be safe for concurrent use.
type Factor interface {
	// Factor is the factor this verifies: FACTOR_TOTP, FACTOR_DEVICE_KEY
	// or FACTOR_WEBAUTHN (FACTOR_APPROVAL is the Service's own, see
	// challenge.WithApproval).
	Factor() stepupv1.Factor
	// Verify checks the evidence of an answer. It returns "" when the
	// evidence is good, else the refusal reason (a wrong answer, counted
	// against the subject unless the reason is TOTP_REUSED or
	// WEBAUTHN_COUNTER) and, optionally, the cause in words for the audit
	// event. An error means it could not decide (a lookup failed; a
	// *StoreError when the store did): the call is refused, fail closed.
	Verify(ctx context.Context, e *Evidence) (reason Reason, detail string, err error)
}

// Evidence is what a Factor verifies: the evidence of one answer and what
// it answers.
type Evidence struct {
	// Subject is the caller's subject; Thumbprint its DPoP key's RFC 7638
	// thumbprint (the key that signed the answer).
	Subject, Thumbprint string
	// Challenge is the challenge JWS the answer embeds, unchanged (it
	// verified); ChallengeID its jti.
	Challenge, ChallengeID string
	// Evidence is the answer's evidence member for this factor: the TOTP
	// code (otp), the device evidence JWS (dev) or the WebAuthn assertion
	// JSON (wan) (docs/PROTOCOL.md).
	Evidence string
	// Now is the Service's clock at the check.
	Now time.Time
	// Store is the Service's store, for what a factor must accept once
	// only (a TOTP time step, RFC 6238 §5.2).
	Store Store
}

// Prompter is implemented by a Factor that tells the client how to answer
// a challenge: the WebAuthn factor's request options, sent in
// StepUpChallenge.webauthn_request_options.
type Prompter interface {
	// RequestOptions returns what the client needs to answer challenge
	// (the challenge JWS) as subject, nil when the subject has nothing
	// enrolled. timeout is how long the challenge is accepted.
	RequestOptions(ctx context.Context, subject, challenge string, timeout time.Duration) ([]byte, error)
}
