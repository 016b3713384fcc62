// Package approval is the out-of-band approval factor (FACTOR_APPROVAL,
// docs/APPROVAL.md): a challenge that allows it also creates an approval
// record, listed on the approver page of the challenge's subject. The user
// signs in there with a passkey, sees the summary and the matching code,
// and approves with a WebAuthn assertion whose challenge derives from the
// approval id and the summary's digest (or denies). The waiting client
// retries the call with an answer naming the approval; it is refused as
// pending until the user decides, then accepted once (the challenge's
// single use) or refused as denied.
//
// The factor is a factor.Stateful: the Service calls it when it issues a
// challenge that allows it (Offer, Issued), for an answer naming it
// (Verify), and when such a challenge was answered (Used). The approver
// page (the package approval at the module root) calls its approver-side
// methods: PendingApprovals, ApprovalRequestOptions, Approve, Deny and the
// page's sign-in sessions. Build it with New and wire it with
// challenge.WithFactor; give the same *Factor to the page.
//
// State in the Service's store (id is the challenge's jti):
//
//	apr:{<sub>}:<id>     SetMax/Get: 1 approved, 2 denied, 3 used (by the
//	                     call, or its challenge was answered otherwise)
//	aprd:{<sub>}:<id>    Insert: the user decided (one decision per approval)
//	signin:{<sub>}:<jti> Insert: a sign-in state was used (single use)
//	aprout:{<sub>}:<jti> SetMax/Get: the session was signed out (non-zero)
//	aprrev:{<sub>}       SetMax/Get: sessions begun at or before this Unix
//	                     time are revoked
//
// and the records themselves in the store's approval records (Store).
package approval

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/stepupgrpc/stepup/challenge/factor"
	"github.com/stepupgrpc/stepup/dpop"
	stepupv1 "github.com/stepupgrpc/stepup/proto/stepup/v1"
)

// Approval states, as stored at apr:<id>.
const (
	approvalPending  = 0
	approvalApproved = 1
	approvalDenied   = 2
	approvalUsed     = 3
)

// The token types of the approver page (docs/PROTOCOL.md); the same as
// challenge.SignInType and challenge.SessionType.
const (
	signInType  = "stepup-signin+jwt"
	sessionType = "stepup-approver+jwt"
)

// Defaults and bounds of Options.
const (
	// DefaultPoll is the retry delay the server asks a waiting client for
	// while an approval is pending.
	DefaultPoll = time.Second
	// DefaultSessionTTL is how long an approver page session lasts.
	DefaultSessionTTL = 15 * time.Minute
	// DefaultMaxPending is how many approvals a subject may have pending
	// at once.
	DefaultMaxPending = 3
	// MaxSessionTTL is the longest Options.SessionTTL: how long a
	// revocation of sessions must be remembered.
	MaxSessionTTL = time.Hour
	// maxApprovalRecord bounds a stored approval record before it is read.
	maxApprovalRecord = 16 << 10
	// maxIdentifier bounds a subject or an approval id.
	maxIdentifier = 1024
)

// Options configure the approval factor. Zero fields take the defaults.
type Options struct {
	// Poll is the retry delay sent to a waiting client (google.rpc.RetryInfo)
	// while its approval is pending: 100ms to 10s, default DefaultPoll.
	Poll time.Duration
	// SessionTTL is how long an approver page session lasts after the
	// passkey sign-in: 1 minute to 1 hour, default DefaultSessionTTL.
	SessionTTL time.Duration
	// MaxPending is how many approvals a subject may have pending at once
	// (1 to 20, default DefaultMaxPending). Past it, a challenge offers
	// the method's other factors only, or, when approval is its only
	// factor, the call is refused (ReasonApprovalsLimit), so that a stolen
	// token cannot flood the user's approver page.
	MaxPending int
	// Passkeys checks the approver page's passkey sign-ins and approvals.
	// Required: challenge/webauthn's Factor.Approver builds it, with the
	// approver page's origin as the only origin whose assertions count
	// (assertions made for the WebAuthn factor's other origins, the web
	// app on the first device, are refused) and the approver passkeys
	// registered on the second device (docs/APPROVAL.md, threat model).
	Passkeys Passkeys
}

// Passkeys checks the approver page's passkey sign-ins and approvals:
// WebAuthn assertions (W3C WebAuthn §7.2) whose WebAuthn challenge is
// SHA-256 of a string the factor chooses. The package challenge/webauthn
// implements it (Factor.Approver).
type Passkeys interface {
	// PasskeyOptions returns the PublicKeyCredentialRequestOptions JSON
	// of a ceremony whose challenge is SHA-256 of signed, user
	// verification required. With a subject, it names the subject's
	// credentials, and is nil when they have none; with subject "", it
	// names none (a discoverable credential answers).
	PasskeyOptions(ctx context.Context, subject, signed string, timeout time.Duration) ([]byte, error)
	// VerifyPasskey checks assertion (the PublicKeyCredential JSON) by
	// subject over SHA-256 of signed, and records the credential's new
	// counter. It returns "" or a WebAuthn reason.
	VerifyPasskey(ctx context.Context, subject, signed string, assertion []byte) (factor.Reason, error)
}

// Store is the part of the Service's store the factor needs: single use
// and states (factor.Store), and approval records by subject, so that any
// replica can list a subject's pending approvals. challenge.MemoryStore
// and redisstore.Store implement it (challenge.ApprovalStore).
type Store interface {
	factor.Store
	// PutApproval keeps record under (subject, id) until expires.
	PutApproval(ctx context.Context, subject, id string, record []byte, expires time.Time) error
	// Approvals returns the records of subject that have not expired, by id.
	Approvals(ctx context.Context, subject string) (map[string][]byte, error)
}

// Factor is the approval factor: a factor.Stateful for the Service, and
// the approver page's handle. Build it with New; it is bound to one
// Service (challenge.WithFactor) and safe for concurrent use.
type Factor struct {
	opts Options
	// b is set once, by Bind: a method called before reads nil.
	b atomic.Pointer[binding]
}

// binding is what Bind gives the factor: the Service's host and store.
type binding struct {
	host  *factor.Host
	store Store
}

var _ factor.Stateful = (*Factor)(nil)

// New builds the approval factor. It needs opts.Passkeys (the approver
// signs in and approves with a passkey); the Service it is wired to needs
// a store that keeps approval records (Store).
func New(opts Options) (*Factor, error) {
	o := opts
	o.Poll = cmp.Or(o.Poll, DefaultPoll)
	o.SessionTTL = cmp.Or(o.SessionTTL, DefaultSessionTTL)
	o.MaxPending = cmp.Or(o.MaxPending, DefaultMaxPending)
	if o.MaxPending < 1 || o.MaxPending > 20 {
		return nil, fmt.Errorf("approval: New: MaxPending %d must be between 1 and 20", o.MaxPending)
	}
	if o.Poll < 100*time.Millisecond || o.Poll > 10*time.Second {
		return nil, fmt.Errorf("approval: New: Poll %s must be between 100ms and 10s", o.Poll)
	}
	if o.SessionTTL < time.Minute || o.SessionTTL > MaxSessionTTL {
		return nil, fmt.Errorf("approval: New: SessionTTL %s must be between 1m and 1h", o.SessionTTL)
	}
	if o.Passkeys == nil {
		return nil, errors.New("approval: New: the approval factor needs Options.Passkeys (challenge/webauthn's Factor.Approver): the approver signs in and approves with a passkey")
	}
	return &Factor{opts: o}, nil
}

// Factor implements factor.Factor: FACTOR_APPROVAL.
func (f *Factor) Factor() stepupv1.Factor { return stepupv1.Factor_FACTOR_APPROVAL }

// Bind implements factor.Stateful. A Factor serves one Service: a second
// Bind fails.
func (f *Factor) Bind(h *factor.Host) error {
	as, ok := h.Store.(Store)
	if !ok {
		return fmt.Errorf("approval: the approval factor needs a store that keeps approval records (challenge.ApprovalStore); %T does not", h.Store)
	}
	if !f.b.CompareAndSwap(nil, &binding{host: h, store: as}) {
		return errors.New("approval: the approval factor is already wired to a Service: build one per Service")
	}
	return nil
}

// RetryAfter implements factor.Stateful: Options.Poll.
func (f *Factor) RetryAfter() time.Duration { return f.opts.Poll }

// bound returns the factor's binding, or an error before Bind.
func (f *Factor) bound() (*binding, error) {
	b := f.b.Load()
	if b == nil {
		return nil, errors.New("approval: the approval factor is not wired to a Service (challenge.WithFactor)")
	}
	return b, nil
}

// Approval is one out-of-band approval, as the approver page shows it.
// Every field comes from the signed challenge or is checked against it.
type Approval struct {
	// ID is the approval id: the challenge's jti.
	ID string
	// Subject is the user who must approve.
	Subject string
	// Method is the gRPC full method name of the call waiting for it.
	Method string
	// Summary are the request fields marked for display.
	Summary []*stepupv1.SummaryItem
	// SummaryText is the one-line summary ("approve BankService.Transfer: ...").
	SummaryText string
	// SummaryDigest is challenge.SummaryDigest(SummaryText), signed in the
	// challenge.
	SummaryDigest string
	// MatchingCode is the code the waiting client shows too.
	MatchingCode string
	// IssuedAt and ExpiresAt are the challenge's iat and exp.
	IssuedAt, ExpiresAt time.Time
}

// signed is the string whose SHA-256 is the WebAuthn challenge of an
// approval: it names the approval and the digest of what it approves.
func signed(id, summaryDigest string) string {
	return "stepup-approval-v1." + id + "." + summaryDigest
}

// WebAuthnChallenge returns the WebAuthn challenge bytes the approver's
// assertion signs for an approval: SHA-256 of
// "stepup-approval-v1." + id + "." + summaryDigest.
func WebAuthnChallenge(id, summaryDigest string) []byte {
	h := sha256.Sum256([]byte(signed(id, summaryDigest)))
	return h[:]
}

// record is what the store keeps for an approval: the challenge (whose MAC
// is verified on every read) and the summary items, which must render to
// the signed digest.
type record struct {
	Challenge string                  `json:"chl"`
	Summary   []*stepupv1.SummaryItem `json:"sum"`
}

// Issued implements factor.Stateful: it writes the approval record.
func (f *Factor) Issued(ctx context.Context, c *factor.Issued) error {
	b, err := f.bound()
	if err != nil {
		return err
	}
	rec, err := json.Marshal(record{Challenge: c.Challenge, Summary: c.Summary})
	if err != nil {
		return fmt.Errorf("approval: %w", err)
	}
	if err := b.store.PutApproval(ctx, c.Subject, c.ID, rec, c.Expires); err != nil {
		return factor.NewStoreError(err)
	}
	return nil
}

// read verifies a stored record: the challenge's MAC and type, its subject
// and id, and that the items render to the signed summary digest. A record
// that fails is ignored (nil): it was not written by this service.
func (b *binding) read(subject, id string, rec []byte) *Approval {
	if len(rec) > maxApprovalRecord {
		return nil
	}
	var r record
	if json.Unmarshal(rec, &r) != nil {
		return nil
	}
	c, ok := b.host.ReadChallenge(r.Challenge)
	if !ok || c.ID != id || c.Subject != subject || c.SummaryDigest == "" || !slices.Contains(c.Factors, stepupv1.Factor_FACTOR_APPROVAL) {
		return nil
	}
	// The page shows the items themselves: they must be exactly what the
	// signed digest covers (the Service's summariser wrote them so; only
	// a tampered record differs).
	text, ok := b.host.SummaryText(c.Method, r.Summary)
	if !ok || factor.SummaryDigest(text) != c.SummaryDigest {
		return nil
	}
	return &Approval{
		ID: c.ID, Subject: c.Subject, Method: c.Method,
		Summary: r.Summary, SummaryText: text, SummaryDigest: c.SummaryDigest,
		MatchingCode: factor.MatchingCode(r.Challenge),
		IssuedAt:     c.IssuedAt, ExpiresAt: c.Expires,
	}
}

// Offer implements factor.Stateful: it leaves the approval out when
// subject already has MaxPending approvals pending.
func (f *Factor) Offer(ctx context.Context, subject string) (factor.Reason, string, error) {
	pending, err := f.PendingApprovals(ctx, subject)
	if err != nil {
		return "", "", err
	}
	if len(pending) < f.opts.MaxPending {
		return "", "", nil
	}
	return factor.ReasonApprovalsLimit, fmt.Sprintf("approval limit: %d approvals pending, the limit is %d (ApprovalOptions.MaxPending)", len(pending), f.opts.MaxPending), nil
}

// PendingApprovals returns subject's approvals that are still waiting for
// a decision and have not expired, oldest first.
func (f *Factor) PendingApprovals(ctx context.Context, subject string) ([]*Approval, error) {
	b, err := f.bound()
	if err != nil {
		return nil, err
	}
	recs, err := b.store.Approvals(ctx, subject)
	if err != nil {
		return nil, factor.NewStoreError(err)
	}
	now := b.host.Now()
	var listed []*Approval
	var keys []string
	for id, rec := range recs {
		if a := b.read(subject, id, rec); a != nil && now.Before(a.ExpiresAt) {
			listed = append(listed, a)
			keys = append(keys, factor.SubjectKey("apr", subject, id))
		}
	}
	var out []*Approval
	if len(keys) > 0 {
		// Their states in one read (one round trip with a MultiGetter),
		// however many records the subject has.
		states, err := b.host.GetMany(ctx, keys...)
		if err != nil {
			return nil, err
		}
		for i, a := range listed {
			if states[i] == approvalPending {
				out = append(out, a)
			}
		}
	}
	slices.SortFunc(out, func(a, b *Approval) int {
		return cmp.Or(a.IssuedAt.Compare(b.IssuedAt), cmp.Compare(a.ID, b.ID))
	})
	return out, nil
}

// pending returns subject's approval id when it can still be decided, or
// the reason it cannot, with the factor's binding.
func (f *Factor) pending(ctx context.Context, subject, id string) (*binding, *Approval, factor.Reason, error) {
	b, err := f.bound()
	if err != nil {
		return nil, nil, "", err
	}
	if id == "" || len(id) > maxIdentifier || !utf8.ValidString(id) {
		return b, nil, factor.ReasonApprovalUnknown, nil
	}
	recs, err := b.store.Approvals(ctx, subject)
	if err != nil {
		return b, nil, "", factor.NewStoreError(err)
	}
	rec, ok := recs[id]
	if !ok {
		// Another subject's approval, a made-up id, or one long expired.
		return b, nil, factor.ReasonApprovalUnknown, nil
	}
	a := b.read(subject, id, rec)
	if a == nil {
		return b, nil, factor.ReasonApprovalUnknown, nil
	}
	if !b.host.Now().Before(a.ExpiresAt) {
		return b, a, factor.ReasonApprovalExpired, nil
	}
	st, err := b.store.Get(ctx, factor.SubjectKey("apr", subject, id))
	if err != nil {
		return b, a, "", factor.NewStoreError(err)
	}
	if st != approvalPending {
		return b, a, factor.ReasonApprovalDecided, nil
	}
	return b, a, "", nil
}

// ApprovalRequestOptions returns the WebAuthn PublicKeyCredentialRequestOptions
// JSON for approving subject's approval id: their credentials, user
// verification required, and the challenge WebAuthnChallenge. A refusal
// has a reason (ReasonApprovalUnknown, ReasonApprovalExpired,
// ReasonApprovalDecided, ReasonWebAuthnInvalid when the subject has no
// credential).
func (f *Factor) ApprovalRequestOptions(ctx context.Context, subject, id string) ([]byte, *Approval, factor.Reason, error) {
	b, a, reason, err := f.pending(ctx, subject, id)
	if err != nil || reason != "" {
		return nil, a, reason, err
	}
	opts, err := f.opts.Passkeys.PasskeyOptions(ctx, subject, signed(a.ID, a.SummaryDigest), b.host.TTL)
	if err != nil {
		return nil, a, "", err
	}
	if opts == nil {
		return nil, a, factor.ReasonWebAuthnInvalid, nil
	}
	return opts, a, "", nil
}

// Approve records subject's approval of id, given a WebAuthn assertion
// (the PublicKeyCredential JSON) over WebAuthnChallenge. It returns the
// approval and "" when it was recorded, or the reason it was refused:
// ReasonApprovalUnknown, ReasonApprovalExpired, ReasonApprovalDecided (a
// second decision, or a replayed one), or a WebAuthn reason. The waiting
// call is then accepted once.
func (f *Factor) Approve(ctx context.Context, subject, id string, assertion []byte) (*Approval, factor.Reason, error) {
	b, a, reason, err := f.pending(ctx, subject, id)
	if err != nil || reason != "" {
		return a, reason, err
	}
	reason, err = f.opts.Passkeys.VerifyPasskey(ctx, subject, signed(a.ID, a.SummaryDigest), assertion)
	if err != nil || reason != "" {
		return a, reason, err
	}
	reason, err = b.decide(ctx, a, approvalApproved)
	return a, reason, err
}

// Deny records subject's refusal of id: the waiting call is refused with
// ReasonApprovalDenied. The reasons are those of Approve.
func (f *Factor) Deny(ctx context.Context, subject, id string) (*Approval, factor.Reason, error) {
	b, a, reason, err := f.pending(ctx, subject, id)
	if err != nil || reason != "" {
		return a, reason, err
	}
	reason, err = b.decide(ctx, a, approvalDenied)
	return a, reason, err
}

// decide records one decision: of concurrent decisions (two tabs, a
// replayed request) exactly one wins; the others get ReasonApprovalDecided.
func (b *binding) decide(ctx context.Context, a *Approval, state int64) (factor.Reason, error) {
	switch err := b.store.Insert(ctx, factor.SubjectKey("aprd", a.Subject, a.ID), a.IssuedAt, a.ExpiresAt); {
	case errors.Is(err, dpop.ErrReplayed):
		return factor.ReasonApprovalDecided, nil
	case errors.Is(err, dpop.ErrEvicted):
		return factor.ReasonReplayWindow, nil
	case err != nil:
		return "", factor.NewStoreError(err)
	}
	if err := b.store.SetMax(ctx, factor.SubjectKey("apr", a.Subject, a.ID), state, a.ExpiresAt.Add(time.Minute)); err != nil {
		return "", factor.NewStoreError(err)
	}
	return "", nil
}

// Verify implements factor.Factor for an answer naming an approval (its
// evidence is the approval id, the challenge's jti). Nothing here can be
// guessed (the decision is made on the approver page), so the Service
// does not count the answer: a waiting client polls as often as the server
// asks. It returns ReasonApprovalPending until the user decides, then ""
// (approved), ReasonApprovalDenied, or ReasonChallengeReused (already
// used).
func (f *Factor) Verify(ctx context.Context, e *factor.Evidence) (factor.Reason, string, error) {
	b, err := f.bound()
	if err != nil {
		return "", "", err
	}
	if e.Evidence != e.ChallengeID {
		return factor.ReasonAnswerMalformed, "", nil
	}
	st, err := b.store.Get(ctx, factor.SubjectKey("apr", e.Subject, e.ChallengeID))
	if err != nil {
		return "", "", factor.NewStoreError(err)
	}
	switch st {
	case approvalPending:
		return factor.ReasonApprovalPending, "", nil
	case approvalDenied:
		return factor.ReasonApprovalDenied, "", nil
	case approvalApproved:
		return "", "", nil
	}
	return factor.ReasonChallengeReused, "", nil
}

// Used implements factor.Stateful: the approval of a challenge that was
// answered stops being listed. Best effort: the page only lists it a
// little longer.
func (f *Factor) Used(ctx context.Context, subject, challengeID string, expires time.Time) {
	b := f.b.Load()
	if b == nil {
		return
	}
	_ = b.store.SetMax(ctx, factor.SubjectKey("apr", subject, challengeID), approvalUsed, expires.Add(time.Minute))
}

// BeginApproverSignIn starts the approver page's passkey sign-in of
// subject: it returns the sign-in state (a signed token the page keeps in
// a cookie until the second step; not a secret, single use) and the
// WebAuthn request options, whose challenge is SHA-256 of the state. The
// options name no credential (a discoverable one, a passkey, answers),
// and nothing is looked up: the answer is the same whether or not subject
// has approver passkeys, so that the page does not tell who has one. A
// subject that is empty, over 1024 bytes or not UTF-8 gets
// ReasonWebAuthnInvalid.
func (f *Factor) BeginApproverSignIn(ctx context.Context, subject string) (state string, options []byte, reason factor.Reason, err error) {
	b, err := f.bound()
	if err != nil {
		return "", nil, "", err
	}
	if subject == "" || len(subject) > maxIdentifier || !utf8.ValidString(subject) {
		return "", nil, factor.ReasonWebAuthnInvalid, nil
	}
	if state, err = b.host.SignToken(signInType, subject, b.host.TTL); err != nil {
		return "", nil, "", err
	}
	if options, err = f.opts.Passkeys.PasskeyOptions(ctx, "", state, b.host.TTL); err != nil {
		return "", nil, "", err
	}
	return state, options, "", nil
}

// FinishApproverSignIn completes a sign-in with the assertion over the
// state's challenge. It returns the session token (a bearer secret for
// the page's HttpOnly cookie) and the subject, or the reason it refused:
// ReasonSignInInvalid (state forged, expired or already used) or a WebAuthn
// reason (ReasonWebAuthnInvalid too when the subject has no approver
// passkey, or the assertion is not one of theirs).
func (f *Factor) FinishApproverSignIn(ctx context.Context, state string, assertion []byte) (session, subject string, reason factor.Reason, err error) {
	b, err := f.bound()
	if err != nil {
		return "", "", "", err
	}
	t, ok := b.host.ReadToken(state, signInType)
	if !ok {
		return "", "", factor.ReasonSignInInvalid, nil
	}
	if reason, err = f.opts.Passkeys.VerifyPasskey(ctx, t.Subject, state, assertion); err != nil || reason != "" {
		return "", "", reason, err
	}
	switch err := b.store.Insert(ctx, factor.SubjectKey("signin", t.Subject, t.ID), t.IssuedAt, t.Expires); {
	case errors.Is(err, dpop.ErrReplayed):
		return "", "", factor.ReasonSignInInvalid, nil
	case errors.Is(err, dpop.ErrEvicted):
		return "", "", factor.ReasonReplayWindow, nil
	case err != nil:
		return "", "", "", factor.NewStoreError(err)
	}
	if session, err = b.host.SignToken(sessionType, t.Subject, f.opts.SessionTTL); err != nil {
		return "", "", "", err
	}
	return session, t.Subject, "", nil
}

func signedOutKey(sub, id string) string { return factor.SubjectKey("aprout", sub, id) }

func sessionRevocationKey(sub string) string { return factor.SubjectKey("aprrev", sub) }

// CheckApproverSession returns the subject of a valid approver page
// session token: its MAC, type and expiry verify, it was not signed out
// (EndApproverSession) and the subject's sessions were not revoked since it
// began (RevokeApproverSessions), on any replica sharing the store.
// Otherwise it returns the reason: ReasonApproverSessionInvalid (forged,
// malformed, expired), ReasonApproverSessionEnded or
// ReasonApproverSessionRevoked. With a store that is a MultiGetter the
// state is one read. A store failure is a *StoreError: refuse the request
// (fail closed).
func (f *Factor) CheckApproverSession(ctx context.Context, session string) (subject string, reason factor.Reason, err error) {
	b, err := f.bound()
	if err != nil {
		return "", "", err
	}
	t, ok := b.host.ReadToken(session, sessionType)
	if !ok {
		return "", factor.ReasonApproverSessionInvalid, nil
	}
	vals, err := b.host.GetMany(ctx, signedOutKey(t.Subject, t.ID), sessionRevocationKey(t.Subject))
	switch {
	case err != nil:
		return "", "", err
	case vals[0] != 0:
		return "", factor.ReasonApproverSessionEnded, nil
	case vals[1] != 0 && t.IssuedAt.Unix() <= vals[1]:
		return "", factor.ReasonApproverSessionRevoked, nil
	}
	return t.Subject, "", nil
}

// EndApproverSession signs a session out on every replica sharing the
// store: the token, and every copy of it, is refused from now until it
// would have expired (ReasonApproverSessionEnded). The page's sign-out
// calls it. A token that is not a valid session has nothing to end: nil.
func (f *Factor) EndApproverSession(ctx context.Context, session string) error {
	b, err := f.bound()
	if err != nil {
		return err
	}
	t, ok := b.host.ReadToken(session, sessionType)
	if !ok {
		return nil
	}
	if err := b.store.SetMax(ctx, signedOutKey(t.Subject, t.ID), 1, t.Expires.Add(time.Minute)); err != nil {
		return factor.NewStoreError(err)
	}
	return nil
}

// RevokeApproverSessions ends every approver page session of subject begun
// up to now (within the current second included), on every replica sharing
// the store (ReasonApproverSessionRevoked); sessions begun later work as
// usual. Call it when the approver's device is lost or their account is
// compromised, with RevokeGrants and RevokeTokens.
func (f *Factor) RevokeApproverSessions(ctx context.Context, subject string) error {
	b, err := f.bound()
	if err != nil {
		return err
	}
	if subject == "" {
		return errors.New("approval: RevokeApproverSessions: empty subject")
	}
	now := b.host.Now()
	// Remember it for as long as a session begun now could live.
	if err := b.store.SetMax(ctx, sessionRevocationKey(subject), now.Unix(), now.Add(MaxSessionTTL+time.Minute)); err != nil {
		return factor.NewStoreError(err)
	}
	return nil
}
