package challenge

import (
	"github.com/stepupgrpc/stepup/challenge/factor"
	"google.golang.org/protobuf/proto"
	"strconv"
	"time"

	stepupv1 "github.com/stepupgrpc/stepup/proto/stepup/v1"
)

// Requirement is a step-up requirement, with the semantics of RFC 9470.
// It is what a method's (stepup.v1.policy).step_up resolves to.
type Requirement struct {
	// ACRValues are acr values that satisfy the requirement when the access
	// token carries one of them with an auth_time within MaxAge (RFC 9470
	// §3). Only a reusable requirement can be satisfied this way.
	ACRValues []string
	// Factors the user may answer with; empty means every factor the
	// Service has a verifier for.
	Factors []stepupv1.Factor
	// MaxAge is how long a step-up stays valid (RFC 9470 max_age); zero
	// means every call needs its own.
	MaxAge time.Duration
	// BindRequest binds the approval to the exact request message: the
	// challenge carries the request digest and the answer is accepted only
	// for a request with the same digest. A bound approval is never
	// reusable.
	BindRequest bool
}

// Reusable reports whether a successful step-up may be reused, through the
// token's acr/auth_time or a grant: MaxAge > 0 and the request is not
// bound.
func (r *Requirement) Reusable() bool { return r != nil && r.MaxAge > 0 && !r.BindRequest }

// Call is what Check needs to know about one RPC.
type Call struct {
	// Subject is the authenticated subject (the access token's sub).
	Subject string
	// Thumbprint is the RFC 7638 thumbprint of the verified DPoP proof key
	// (the token's cnf.jkt). Challenges, answers and grants are bound to it.
	Thumbprint string
	// Method is the gRPC full method name, "/pkg.Service/Method".
	Method string
	// Requirement is the method's step-up requirement; it must not be nil.
	Requirement *Requirement
	// Request is the request message of a unary call, nil for a stream. A
	// requirement that binds the request cannot be checked without it.
	Request proto.Message
	// Canonical is the canonical encoding of Request (CanonicalRequest),
	// when the caller already has it (the Guard and the gateway compute it
	// once per call); Check computes it when it is nil and needs it. It
	// must be Request's: the digest a challenge binds is computed from it.
	Canonical []byte
	// TokenACR and TokenAuthTime are the access token's acr and auth_time
	// claims (RFC 9470 §4), empty when absent.
	TokenACR      string
	TokenAuthTime time.Time
	// Answer is the "stepup-answer" request metadata value, "" if none.
	Answer string
	// Grant is the "stepup-grant" request metadata value, "" if none.
	Grant string
}

// Via says how a requirement was satisfied.
type Via string

// How a requirement was satisfied.
const (
	// ViaToken: the access token's acr and auth_time (RFC 9470).
	ViaToken Via = "token"
	// ViaGrant: a grant from an earlier step-up.
	ViaGrant Via = "grant"
	// ViaAnswer: an answer to a challenge, on this call.
	ViaAnswer Via = "answer"
)

// State is what Check decided about a call, as one value: the call
// proceeds, or how it is refused and what the client can do next.
// docs/AUDIT.md gives the audit decision of each.
type State int

// The states of an Outcome. The zero State is not one of them: Check
// always sets one.
const (
	// StateSatisfied: the call may proceed; Outcome.Via says how.
	StateSatisfied State = iota + 1
	// StateChallenged: nothing satisfying was presented; refuse with
	// Outcome.Challenge, a fresh challenge (Reason is ReasonRequired).
	StateChallenged
	// StateRefused: a presented grant or answer was refused (Reason says
	// why); refuse with Outcome.Challenge, a fresh challenge to answer
	// instead.
	StateRefused
	// StateLocked: the subject reached a limit (wrong answers, pending
	// approvals) in the current window; refuse without a challenge.
	StateLocked
	// StatePending: the answer names an out-of-band approval still
	// waiting for the user; refuse as unavailable and ask the client to
	// retry the same answer after Outcome.RetryAfter, without a new
	// challenge.
	StatePending
	// StateFinal: the answer was refused for good (the approval was
	// denied, has expired, or the challenge was already used); refuse
	// without a new challenge.
	StateFinal
)

var stateNames = [...]string{
	StateSatisfied: "satisfied", StateChallenged: "challenged", StateRefused: "refused",
	StateLocked: "locked", StatePending: "pending", StateFinal: "final",
}

// String returns the state's lower-case name ("satisfied", "locked"...),
// or "State(n)" for a value that is not a State.
func (st State) String() string {
	if st > 0 && int(st) < len(stateNames) {
		return stateNames[st]
	}
	return "State(" + strconv.Itoa(int(st)) + ")"
}

// Outcome is the result of Check.
type Outcome struct {
	// State is what Check decided: the call proceeds, or how it is
	// refused.
	State State
	// Satisfied: the call may proceed (State is StateSatisfied).
	//
	// Deprecated: use State == StateSatisfied. Check still sets it; it
	// goes in the next release (CHANGELOG.md).
	Satisfied bool
	// Via says how, when Satisfied.
	Via Via
	// Factor is the factor that satisfied the requirement (grant or
	// answer), or that a refused answer used.
	Factor stepupv1.Factor
	// AuthTime is when the user last authenticated with the factor (the
	// token's auth_time, the grant's auth_time, or now for an answer).
	AuthTime time.Time

	// Grant is a new grant to return in the "stepup-grant" response
	// metadata: set when an answer satisfied a reusable requirement. It
	// is a bearer secret bound to the DPoP key; never log it.
	Grant string
	// GrantExpires is when Grant stops being accepted.
	GrantExpires time.Time

	// Challenge is a fresh challenge for the refusal's details, set in
	// StateChallenged and StateRefused.
	Challenge *stepupv1.StepUpChallenge
	// Locked: State is StateLocked.
	//
	// Deprecated: use State == StateLocked. Check still sets it; it goes
	// in the next release (CHANGELOG.md).
	Locked bool
	// Detail is the cause of a refusal in words, for the audit event (which
	// limit, after how many attempts); never a secret. Empty when the
	// reason says it all.
	Detail string

	// Pending: State is StatePending.
	//
	// Deprecated: use State == StatePending. Check still sets it; it goes
	// in the next release (CHANGELOG.md).
	Pending bool
	// RetryAfter is how long a client waits before it sends the same
	// answer again, in StatePending.
	RetryAfter time.Duration
	// Final: State is StateFinal.
	//
	// Deprecated: use State == StateFinal. Check still sets it; it goes in
	// the next release (CHANGELOG.md).
	Final bool
	// SummaryDigest is SummaryDigest of the summary text of an approval
	// (issued, or answered), for the audit event; "" otherwise.
	SummaryDigest string

	// Reason is the audit reason when not satisfied (ReasonRequired when
	// nothing was presented), or when a presented grant was refused but
	// an answer satisfied the call.
	Reason Reason

	// ChallengeID is the jti of the answered challenge, when the answer
	// got far enough to read it. IssuedChallengeID is the jti of
	// Challenge. GrantID is the jti of the presented grant, when readable;
	// IssuedGrantID the jti of Grant. Ids are not secrets: they are for
	// audit logs and correlation.
	ChallengeID       string
	IssuedChallengeID string
	GrantID           string
	IssuedGrantID     string
}

// ErrUnknownSubject is returned by a totp.Secrets, devicekey.Keys or
// webauthn.Store lookup when the subject has no such factor enrolled.
// Check then refuses the answer (wrong answer), rather than failing.
var ErrUnknownSubject = factor.ErrUnknownSubject

// digest is the request digest of the call (docs/PROTOCOL.md §13.3).
func (c *Call) digest() (string, error) {
	if c.Canonical != nil {
		return DigestCanonical(c.Method, c.Canonical), nil
	}
	return RequestDigest(c.Method, c.Request)
}
