// Package factor is what the step-up Service and a factor share: the
// Factor interface the Service calls (and Stateful, for a factor that
// holds state across a challenge), the evidence it verifies, the reason
// codes a built-in factor returns, and the part of the store a factor may
// use. It imports nothing of the step-up protocol, so that a factor package
// (challenge/totp, challenge/devicekey, challenge/approval) imports it and
// not challenge, and challenge can keep those factors' old names. Package challenge re-exports every name here (challenge.Factor,
// challenge.FactorEvidence, challenge.Reason, challenge.StoreError...):
// users need not import it.
package factor

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"strconv"
	"time"

	"github.com/stepupgrpc/stepup/dpop"
	"github.com/stepupgrpc/stepup/internal/base64url"
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
	// Factor is the factor this verifies: FACTOR_TOTP, FACTOR_DEVICE_KEY,
	// FACTOR_WEBAUTHN, or FACTOR_APPROVAL for a Stateful factor only (the
	// package challenge/approval).
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

// Stateful is implemented by a Factor that holds state across a challenge
// rather than checking evidence carried by the answer alone: the approval
// factor (challenge/approval), whose record is written when the challenge
// is issued, decided on another device, and read when the waiting client
// retries the call. The Service calls its hooks in this order: Bind once
// (NewService), Offer and Issued when it issues a challenge that allows
// the factor, Verify for an answer naming it (not counted against the
// attempt limits: nothing in it can be guessed), and Used once a
// challenge that allowed it was answered, by any factor. Only
// FACTOR_APPROVAL may be Stateful: challenge.NewService refuses a Stateful
// factor for TOTP, device key or WebAuthn, whose answers are guesses the
// limits must count.
//
// Verify returns ReasonApprovalPending while the answer cannot be decided
// yet: the Service refuses the call as pending (challenge.StatePending), asking
// the client to retry after RetryAfter. ReasonApprovalDenied and
// ReasonChallengeReused are final (challenge.StateFinal). "" accepts the answer,
// once: the Service then consumes the challenge as for any factor.
type Stateful interface {
	Factor
	// Bind gives the factor what it shares with the Service. NewService
	// calls it once, before any other method; an error fails NewService.
	Bind(h *Host) error
	// Offer is called before a challenge that allows the factor is issued
	// to subject. A reason leaves the factor out of that challenge, with
	// detail for the audit event; when no factor is left, the call is
	// refused with that reason.
	Offer(ctx context.Context, subject string) (reason Reason, detail string, err error)
	// Issued is called once the challenge is signed, before it is sent.
	// An error fails the call (fail closed).
	Issued(ctx context.Context, c *Issued) error
	// Used is called, best effort, once a challenge that allowed the
	// factor was answered by any factor: its state may end.
	Used(ctx context.Context, subject, challengeID string, expires time.Time)
	// RetryAfter is how long a client waits before it retries a pending
	// answer (google.rpc.RetryInfo).
	RetryAfter() time.Duration
}

// The reason codes of the approval factor (challenge/approval) and of
// the answers a Stateful factor decides; challenge re-exports each under
// the same name, where each is documented (docs/STEPUP.md lists them).
const (
	// ReasonWebAuthnInvalid: see challenge.ReasonWebAuthnInvalid.
	ReasonWebAuthnInvalid Reason = "STEPUP_WEBAUTHN_INVALID"
	// ReasonApprovalPending: see challenge.ReasonApprovalPending.
	ReasonApprovalPending Reason = "STEPUP_APPROVAL_PENDING"
	// ReasonApprovalDenied: see challenge.ReasonApprovalDenied.
	ReasonApprovalDenied Reason = "STEPUP_APPROVAL_DENIED"
	// ReasonApprovalExpired: see challenge.ReasonApprovalExpired.
	ReasonApprovalExpired Reason = "STEPUP_APPROVAL_EXPIRED"
	// ReasonApprovalUnknown: see challenge.ReasonApprovalUnknown.
	ReasonApprovalUnknown Reason = "STEPUP_APPROVAL_UNKNOWN"
	// ReasonApprovalDecided: see challenge.ReasonApprovalDecided.
	ReasonApprovalDecided Reason = "STEPUP_APPROVAL_DECIDED"
	// ReasonApprovalsLimit: see challenge.ReasonApprovalsLimit.
	ReasonApprovalsLimit Reason = "STEPUP_APPROVALS_LIMIT"
	// ReasonSignInInvalid: see challenge.ReasonSignInInvalid.
	ReasonSignInInvalid Reason = "STEPUP_SIGNIN_INVALID"
	// ReasonApproverSessionInvalid: see challenge.ReasonApproverSessionInvalid.
	ReasonApproverSessionInvalid Reason = "STEPUP_APPROVER_SESSION_INVALID"
	// ReasonApproverSessionEnded: see challenge.ReasonApproverSessionEnded.
	ReasonApproverSessionEnded Reason = "STEPUP_APPROVER_SESSION_ENDED"
	// ReasonApproverSessionRevoked: see challenge.ReasonApproverSessionRevoked.
	ReasonApproverSessionRevoked Reason = "STEPUP_APPROVER_SESSION_REVOKED"
	// ReasonChallengeReused: see challenge.ReasonChallengeReused.
	ReasonChallengeReused Reason = "STEPUP_CHALLENGE_REUSED"
	// ReasonAnswerMalformed: see challenge.ReasonAnswerMalformed.
	ReasonAnswerMalformed Reason = "STEPUP_ANSWER_MALFORMED"
)

// Issued is a challenge that allows a Stateful factor, as the Service
// issued it.
type Issued struct {
	// Subject is the challenge's sub; ID its jti; Challenge the compact
	// JWS, as sent.
	Subject, ID, Challenge string
	// Method is the gRPC full method name of the call.
	Method string
	// Summary are the request fields marked for display; SummaryText their
	// one-line rendering, whose digest the challenge signs.
	Summary     []*stepupv1.SummaryItem
	SummaryText string
	// IssuedAt and Expires are the challenge's iat and exp.
	IssuedAt, Expires time.Time
}

// Host is what a Stateful factor shares with the Service that holds it:
// its store, clock and keys. The Service fills every field.
type Host struct {
	// Store is the Service's store (challenge.WithStore). A factor that
	// needs more of it type-asserts it.
	Store Store
	// Now is the Service's clock; TTL how long its challenges last.
	Now func() time.Time
	TTL time.Duration
	// ReadChallenge verifies a challenge JWS signed by the Service (its
	// MAC and type; not its expiry) and returns its claims, or false.
	ReadChallenge func(token string) (*Challenge, bool)
	// SummaryText renders summary items as the challenge's summary text
	// (challenge.SummaryText); false when an item is not as the Service's
	// summariser writes it (a tampered record).
	SummaryText func(method string, items []*stepupv1.SummaryItem) (string, bool)
	// SignToken signs a token of type typ (one of the Service's token
	// types, such as challenge.SignInType) for subject, valid for ttl, with
	// a fresh id; ReadToken verifies one, its type and expiry.
	SignToken func(typ, subject string, ttl time.Duration) (string, error)
	ReadToken func(token, typ string) (*Token, bool)
	// GetMany reads keys of one subject from Store, in one operation when
	// the store can (challenge.MultiGetter). A failure is a *StoreError.
	GetMany func(ctx context.Context, keys ...string) ([]int64, error)
}

// SummaryDigest returns base64url (no padding) of SHA-256 of a summary
// text: what audit events name, and what an approval's passkey signature
// covers (challenge.SummaryDigest).
func SummaryDigest(summaryText string) string {
	h := sha256.Sum256([]byte(summaryText))
	return base64url.EncodeToString(h[:])
}

// MatchingCode returns the six-digit code of a challenge (its compact JWS)
// (challenge.MatchingCode): the first 32 bits of
// SHA-256("stepup-matching-code-v1." + challenge), modulo 10^6.
func MatchingCode(challenge string) string {
	h := sha256.Sum256([]byte("stepup-matching-code-v1." + challenge))
	n := binary.BigEndian.Uint32(h[:4]) % 1_000_000
	s := strconv.FormatUint(uint64(n), 10)
	for len(s) < 6 {
		s = "0" + s
	}
	return s
}

// Challenge is the claims of a challenge, as Host.ReadChallenge reads them.
type Challenge struct {
	// ID is the jti; Subject the sub; Method the gRPC method.
	ID, Subject, Method string
	// SummaryDigest is the sdg claim: the digest of the summary text, set
	// when the challenge allows an approval.
	SummaryDigest string
	// Factors are the factors it allows.
	Factors []stepupv1.Factor
	// IssuedAt and Expires are its iat and exp.
	IssuedAt, Expires time.Time
}

// Token is a token of the Service's shared claims (Host.ReadToken).
type Token struct {
	// ID is the jti, Subject the sub.
	ID, Subject string
	// IssuedAt and Expires are its iat and exp.
	IssuedAt, Expires time.Time
}
