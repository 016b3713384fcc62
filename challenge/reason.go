package challenge

import (
	"errors"

	"github.com/stepupgrpc/stepup/challenge/factor"
)

// Reason is a stable reason code for an audit log or a metric: why a
// step-up was not satisfied, or why a presented grant or answer was refused.
// Values never change between releases. Clients should only ever be told
// that a step-up is required; the precise reason is for the server's logs.
// (It is declared in challenge/factor, which the factor packages share.)
type Reason = factor.Reason

// Reason codes. The comment after each says what triggers it.
const (
	// ReasonRequired: nothing satisfying was presented; a challenge is
	// issued.
	ReasonRequired Reason = "STEPUP_REQUIRED"

	// ReasonChallengeMalformed: the challenge embedded in an answer is not
	// a well-formed stepup-challenge+jwt (shape, base64url, JSON, header,
	// typ, alg, missing or ill-typed claims).
	ReasonChallengeMalformed Reason = "STEPUP_CHALLENGE_MALFORMED"
	// ReasonChallengeBadSignature: unknown kid or the MAC does not verify.
	ReasonChallengeBadSignature Reason = "STEPUP_CHALLENGE_BAD_SIGNATURE"
	// ReasonChallengeExpired: now is at or after the challenge's exp.
	ReasonChallengeExpired Reason = "STEPUP_CHALLENGE_EXPIRED"
	// ReasonChallengeWrongSubject: the challenge was issued to another
	// subject.
	ReasonChallengeWrongSubject Reason = "STEPUP_CHALLENGE_WRONG_SUBJECT"
	// ReasonChallengeWrongKey: the challenge was issued to another DPoP key
	// (jkt differs from the caller's key thumbprint).
	ReasonChallengeWrongKey Reason = "STEPUP_CHALLENGE_WRONG_KEY"
	// ReasonChallengeWrongMethod: the challenge was issued for another RPC.
	ReasonChallengeWrongMethod Reason = "STEPUP_CHALLENGE_WRONG_METHOD"
	// ReasonChallengeWrongRequest: the challenge is bound to a request
	// whose digest differs from this request's (for example another
	// amount), or the requirement binds the request and the challenge is
	// not bound.
	ReasonChallengeWrongRequest Reason = "STEPUP_CHALLENGE_WRONG_REQUEST"
	// ReasonChallengeReused: the challenge was already consumed by a
	// successful answer (single use).
	ReasonChallengeReused Reason = factor.ReasonChallengeReused
	// ReasonReplayWindow: the store can no longer vouch for the single use
	// of a challenge, TOTP time step, approval decision or sign-in state
	// issued this early (dpop.ErrEvicted): it lost its data (a shared store
	// that found Redis emptied) or evicted live entries, and what is
	// presented could have been used before. Refused like a reused
	// challenge, and a new challenge is issued; the answer counts against
	// the attempt limits like a reused code.
	ReasonReplayWindow Reason = factor.ReasonReplayWindow

	// ReasonAnswerMalformed: the answer is not a well-formed
	// stepup-answer+jwt signed by an allowed algorithm, or its payload lacks
	// or mistypes a member, or is over 16 KiB.
	ReasonAnswerMalformed Reason = factor.ReasonAnswerMalformed
	// ReasonAnswerWrongKey: the answer is signed by a key other than the
	// caller's DPoP key.
	ReasonAnswerWrongKey Reason = "STEPUP_ANSWER_WRONG_KEY"
	// ReasonAnswerBadSignature: the answer's signature does not verify.
	ReasonAnswerBadSignature Reason = "STEPUP_ANSWER_BAD_SIGNATURE"
	// ReasonFactorNotAllowed: the answer uses a factor that the challenge
	// or the current requirement does not allow, or that the server has no
	// verifier for.
	ReasonFactorNotAllowed Reason = "STEPUP_FACTOR_NOT_ALLOWED"

	// ReasonTOTPInvalid: the code is not valid for the subject's secret in
	// the accepted time steps, or the subject has no TOTP secret.
	ReasonTOTPInvalid Reason = factor.ReasonTOTPInvalid
	// ReasonTOTPReused: the code's time step was already accepted for this
	// subject (RFC 6238 §5.2), even on another challenge.
	ReasonTOTPReused Reason = factor.ReasonTOTPReused
	// ReasonDeviceKeyUnknown: the device evidence is signed by a key that
	// is not registered for the subject (or is the DPoP key itself).
	ReasonDeviceKeyUnknown Reason = factor.ReasonDeviceKeyUnknown
	// ReasonDeviceSignatureInvalid: the device evidence is malformed, its
	// signature does not verify, or it signs another challenge.
	ReasonDeviceSignatureInvalid Reason = factor.ReasonDeviceSignatureInvalid
	// ReasonWebAuthnInvalid: the WebAuthn assertion does not verify (bad
	// signature, wrong challenge, origin or RP ID, unknown credential).
	ReasonWebAuthnInvalid Reason = factor.ReasonWebAuthnInvalid
	// ReasonWebAuthnCounter: the authenticator's signature counter did not
	// increase: a possibly cloned authenticator (WebAuthn §6.1.1).
	ReasonWebAuthnCounter Reason = "STEPUP_WEBAUTHN_COUNTER"
	// ReasonWebAuthnNoUV: the assertion lacks the user-verified flag.
	ReasonWebAuthnNoUV Reason = "STEPUP_WEBAUTHN_NO_UV"
	// ReasonAttemptsExceeded: too many answers for this challenge, or too
	// many wrong answers for this subject in the current window (then
	// the Outcome is in StateLocked).
	ReasonAttemptsExceeded Reason = "STEPUP_ATTEMPTS_EXCEEDED"

	// ReasonGrantMalformed: the grant is not a well-formed
	// stepup-grant+jwt.
	ReasonGrantMalformed Reason = "STEPUP_GRANT_MALFORMED"
	// ReasonGrantBadSignature: unknown kid or the MAC does not verify.
	ReasonGrantBadSignature Reason = "STEPUP_GRANT_BAD_SIGNATURE"
	// ReasonGrantExpired: now is at or after the grant's exp.
	ReasonGrantExpired Reason = "STEPUP_GRANT_EXPIRED"
	// ReasonGrantWrongKey: the grant was issued to another DPoP key.
	ReasonGrantWrongKey Reason = "STEPUP_GRANT_WRONG_KEY"
	// ReasonGrantWrongSubject: the grant was issued to another subject.
	ReasonGrantWrongSubject Reason = "STEPUP_GRANT_WRONG_SUBJECT"
	// ReasonGrantFactorNotAllowed: the grant was earned with a factor the
	// current requirement does not allow.
	ReasonGrantFactorNotAllowed Reason = "STEPUP_GRANT_FACTOR_NOT_ALLOWED"
	// ReasonGrantTooOld: the grant's auth_time is older than the current
	// requirement's max_age.
	ReasonGrantTooOld Reason = "STEPUP_GRANT_TOO_OLD"
	// ReasonGrantRevoked: the subject's grants were revoked after this one
	// was issued (Revocations.RevokeGrants).
	ReasonGrantRevoked Reason = "STEPUP_GRANT_REVOKED"

	// ReasonApprovalPending: the answer names an out-of-band approval the
	// user has not decided yet; the client is asked to retry after a delay
	// (google.rpc.RetryInfo). Not a wrong answer: nothing is counted.
	ReasonApprovalPending Reason = factor.ReasonApprovalPending
	// ReasonApprovalDenied: the user denied the approval on the approver
	// page; no new challenge is issued.
	ReasonApprovalDenied Reason = factor.ReasonApprovalDenied
	// ReasonApprovalExpired: the approval's challenge expired before it was
	// approved and used (on the page: before it was decided); no new
	// challenge is issued.
	ReasonApprovalExpired Reason = factor.ReasonApprovalExpired
	// ReasonApprovalUnknown (approver page): no approval of the signed-in
	// subject has this id: made up, another subject's, or long expired.
	ReasonApprovalUnknown Reason = factor.ReasonApprovalUnknown
	// ReasonApprovalDecided (approver page): the approval was already
	// approved, denied or used: a second or replayed decision.
	ReasonApprovalDecided Reason = factor.ReasonApprovalDecided
	// ReasonApprovalsLimit: the subject already has approval.Options.MaxPending
	// approvals pending and the method accepts no other factor: no new
	// approval is shown (a stolen token cannot flood the approver page and
	// wear the user down); refused like a lock-out, until one is decided or
	// expires.
	ReasonApprovalsLimit Reason = factor.ReasonApprovalsLimit
	// ReasonSignInInvalid (approver page): the sign-in state is forged,
	// expired or was already used.
	ReasonSignInInvalid Reason = factor.ReasonSignInInvalid
	// ReasonApproverSessionInvalid (approver page): the session token is
	// forged, malformed or expired.
	ReasonApproverSessionInvalid Reason = factor.ReasonApproverSessionInvalid
	// ReasonApproverSessionEnded (approver page): the session was signed
	// out (EndApproverSession); a copy of its token is used after.
	ReasonApproverSessionEnded Reason = factor.ReasonApproverSessionEnded
	// ReasonApproverSessionRevoked (approver page): RevokeApproverSessions
	// ended the subject's sessions since this one began.
	ReasonApproverSessionRevoked Reason = factor.ReasonApproverSessionRevoked

	// ReasonRequestUnknownField: the request of a step-up method holds,
	// at some depth, a field its descriptor does not declare, a declared
	// field sent with another wire type, or an extension: the server could
	// neither summarise nor bind all of it (docs/PROTOCOL.md §13). Carried
	// by a *RequestError; the call is refused with INVALID_ARGUMENT.
	ReasonRequestUnknownField Reason = "REQUEST_UNKNOWN_FIELD"
	// ReasonRequestInvalid: the request of a step-up method cannot be read
	// completely: it does not decode as the method's input type, holds a
	// string that is not valid UTF-8, or nests messages deeper than
	// MaxRequestDepth. Carried by a *RequestError; INVALID_ARGUMENT.
	ReasonRequestInvalid Reason = "REQUEST_INVALID"

	// ReasonStoreUnavailable: the shared store could not answer or could
	// not vouch for single use or attempt counts; carried by the *StoreError
	// that Check returns, and the call must be refused (fail closed).
	ReasonStoreUnavailable Reason = factor.ReasonStoreUnavailable
)

// StoreError is the error Check returns when the shared store fails. Reason is
// ReasonStoreUnavailable; Err is the store's error.
type StoreError = factor.StoreError

// ReasonOf returns the Reason of the first *StoreError or *RequestError in
// err's chain, or "".
func ReasonOf(err error) Reason {
	var e *StoreError
	if errors.As(err, &e) {
		return e.Reason
	}
	var r *RequestError
	if errors.As(err, &r) {
		return r.Reason
	}
	return ""
}

func storeError(err error) error { return factor.NewStoreError(err) }
