package challenge

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/stepupgrpc/stepup/dpop"
	"github.com/stepupgrpc/stepup/internal/base64url"
	stepupv1 "github.com/stepupgrpc/stepup/proto/stepup/v1"
)

// Out-of-band approval (FACTOR_APPROVAL, docs/APPROVAL.md): a challenge
// that allows it also creates an approval record, listed on the approver
// page of the challenge's subject. The user signs in there with a passkey,
// sees the summary and the matching code, and approves with a WebAuthn
// assertion whose challenge derives from the approval id and the summary's
// digest (or denies). The waiting client retries the call with an answer
// naming the approval; it is refused as pending until the user decides,
// then accepted once (the challenge's single use) or refused as denied.
//
// State in the Store (id is the challenge's jti):
//
//	apr:{<sub>}:<id>     SetMax/Get: 1 approved, 2 denied, 3 used (by the
//	                     call, or its challenge was answered otherwise)
//	aprd:{<sub>}:<id>    Insert: the user decided (one decision per approval)
//	signin:{<sub>}:<jti> Insert: a sign-in state was used (single use)
//	aprout:{<sub>}:<jti> SetMax/Get: the session was signed out (non-zero)
//	aprrev:{<sub>}       SetMax/Get: sessions begun at or before this Unix
//	                     time are revoked
//
// and the records themselves in an ApprovalStore.

// Approval states, as stored at apr:<id>.
const (
	approvalPending  = 0
	approvalApproved = 1
	approvalDenied   = 2
	approvalUsed     = 3
)

// Defaults and bounds of ApprovalOptions.
const (
	// DefaultApprovalPoll is the retry delay the server asks a waiting
	// client for while an approval is pending.
	DefaultApprovalPoll = time.Second
	// DefaultApproverSessionTTL is how long an approver page session lasts.
	DefaultApproverSessionTTL = 15 * time.Minute
	// DefaultMaxPendingApprovals is how many approvals a subject may have
	// pending at once.
	DefaultMaxPendingApprovals = 3
	// maxApprovalRecord bounds a stored approval record before it is read.
	maxApprovalRecord = 16 << 10
)

// ApprovalOptions configure the out-of-band approval factor. Zero fields
// take the defaults.
type ApprovalOptions struct {
	// Poll is the retry delay sent to a waiting client (google.rpc.RetryInfo)
	// while its approval is pending: 100ms to 10s, default DefaultApprovalPoll.
	Poll time.Duration
	// SessionTTL is how long an approver page session lasts after the
	// passkey sign-in: 1 minute to 1 hour, default DefaultApproverSessionTTL.
	SessionTTL time.Duration
	// MaxPending is how many approvals a subject may have pending at once
	// (1 to 20, default DefaultMaxPendingApprovals). Past it, a challenge
	// offers the method's other factors only, or, when approval is its only
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

// ApprovalStore is a Store that also keeps approval records, by subject,
// so that any replica can list a subject's pending approvals. MemoryStore
// and redisstore.Store implement it.
type ApprovalStore interface {
	Store
	// PutApproval keeps record under (subject, id) until expires.
	PutApproval(ctx context.Context, subject, id string, record []byte, expires time.Time) error
	// Approvals returns the records of subject that have not expired, by id.
	Approvals(ctx context.Context, subject string) (map[string][]byte, error)
}

// WithApproval enables the out-of-band approval factor (FACTOR_APPROVAL).
// It needs opts.Passkeys (the approver signs in and approves with a passkey)
// and a store that implements ApprovalStore (the default MemoryStore and
// redisstore.Store do).
func WithApproval(opts ApprovalOptions) Option {
	return func(c *config) error {
		o := opts
		o.Poll = cmp.Or(o.Poll, DefaultApprovalPoll)
		o.SessionTTL = cmp.Or(o.SessionTTL, DefaultApproverSessionTTL)
		o.MaxPending = cmp.Or(o.MaxPending, DefaultMaxPendingApprovals)
		if o.MaxPending < 1 || o.MaxPending > 20 {
			return fmt.Errorf("challenge: WithApproval: MaxPending %d must be between 1 and 20", o.MaxPending)
		}
		if o.Poll < 100*time.Millisecond || o.Poll > 10*time.Second {
			return fmt.Errorf("challenge: WithApproval: Poll %s must be between 100ms and 10s", o.Poll)
		}
		if o.SessionTTL < time.Minute || o.SessionTTL > maxSessionTTL {
			return fmt.Errorf("challenge: WithApproval: SessionTTL %s must be between 1m and 1h", o.SessionTTL)
		}
		c.approval = &o
		return nil
	}
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
	// SummaryDigest is SummaryDigest(SummaryText), signed in the challenge.
	SummaryDigest string
	// MatchingCode is the code the waiting client shows too.
	MatchingCode string
	// IssuedAt and ExpiresAt are the challenge's iat and exp.
	IssuedAt, ExpiresAt time.Time
}

// SummaryDigest returns base64url (no padding) of SHA-256 of a summary
// text: what audit events name, and what an approval's passkey signature
// covers (through ApprovalWebAuthnChallenge).
func SummaryDigest(summaryText string) string {
	h := sha256.Sum256([]byte(summaryText))
	return base64url.EncodeToString(h[:])
}

// MatchingCode returns the six-digit code of a challenge (its compact JWS):
// the first 32 bits of SHA-256("stepup-matching-code-v1." + challenge),
// modulo 10^6. The approver page and the client both show it, so that the
// user approves the call in front of them, not a look-alike one.
func MatchingCode(challenge string) string {
	h := sha256.Sum256([]byte("stepup-matching-code-v1." + challenge))
	n := binary.BigEndian.Uint32(h[:4]) % 1_000_000
	s := strconv.FormatUint(uint64(n), 10)
	for len(s) < 6 {
		s = "0" + s
	}
	return s
}

// approvalSigned is the string whose SHA-256 is the WebAuthn challenge of
// an approval: it names the approval and the digest of what it approves.
func approvalSigned(id, summaryDigest string) string {
	return "stepup-approval-v1." + id + "." + summaryDigest
}

// ApprovalWebAuthnChallenge returns the WebAuthn challenge bytes the
// approver's assertion signs for an approval: SHA-256 of
// "stepup-approval-v1." + id + "." + summaryDigest.
func ApprovalWebAuthnChallenge(id, summaryDigest string) []byte {
	h := challengeHash(approvalSigned(id, summaryDigest))
	return h[:]
}

// approvalRecord is what the store keeps for an approval: the challenge
// (whose MAC is verified on every read) and the summary items, which must
// render to the signed digest.
type approvalRecord struct {
	Challenge string                  `json:"chl"`
	Summary   []*stepupv1.SummaryItem `json:"sum"`
}

func (s *Service) putApproval(ctx context.Context, c *challengeClaims, token string, items []*stepupv1.SummaryItem) error {
	rec, err := json.Marshal(approvalRecord{Challenge: token, Summary: items})
	if err != nil {
		return fmt.Errorf("challenge: %w", err)
	}
	if err := s.approvals.PutApproval(ctx, c.Subject, c.ID, rec, time.Unix(c.Expires, 0)); err != nil {
		return storeError(err)
	}
	return nil
}

// readApproval verifies a stored record: the challenge's MAC and type, its
// subject and id, and that the items render to the signed summary digest.
// A record that fails is ignored (nil): it was not written by this service.
func (s *Service) readApproval(subject, id string, rec []byte) *Approval {
	if len(rec) > maxApprovalRecord {
		return nil
	}
	var r approvalRecord
	if json.Unmarshal(rec, &r) != nil {
		return nil
	}
	payload, _, f := s.keys.verify(r.Challenge, ChallengeType)
	if f != tokenOK {
		return nil
	}
	c, err := parseChallengeClaims(payload)
	if err != nil || c.ID != id || c.Subject != subject || c.SummaryDigest == "" || !slices.Contains(c.Factors, factorNameApproval) {
		return nil
	}
	// The page shows the items themselves: they must be exactly what the
	// signed digest covers (SummaryText sanitises and cuts them; Summarize
	// wrote them that way, so only a tampered record differs).
	for _, it := range r.Summary {
		if it.GetLabel() != clean(it.GetLabel()) || it.GetValue() != clean(it.GetValue()) {
			return nil
		}
	}
	text := SummaryText(c.Method, r.Summary)
	if SummaryDigest(text) != c.SummaryDigest {
		return nil
	}
	return &Approval{
		ID: c.ID, Subject: c.Subject, Method: c.Method,
		Summary: r.Summary, SummaryText: text, SummaryDigest: c.SummaryDigest,
		MatchingCode: MatchingCode(r.Challenge),
		IssuedAt:     time.Unix(c.IssuedAt, 0), ExpiresAt: time.Unix(c.Expires, 0),
	}
}

// approvalAllowed returns allowed without FACTOR_APPROVAL when subject
// already has MaxPending approvals pending, with the detail for the audit
// event; allowed itself otherwise.
func (s *Service) approvalAllowed(ctx context.Context, subject string, allowed []stepupv1.Factor) ([]stepupv1.Factor, string, error) {
	if s.approval == nil || !slices.Contains(allowed, stepupv1.Factor_FACTOR_APPROVAL) {
		return allowed, "", nil
	}
	pending, err := s.PendingApprovals(ctx, subject)
	if err != nil {
		return nil, "", err
	}
	if len(pending) < s.approval.MaxPending {
		return allowed, "", nil
	}
	detail := fmt.Sprintf("approval limit: %d approvals pending, the limit is %d (ApprovalOptions.MaxPending)", len(pending), s.approval.MaxPending)
	return slices.DeleteFunc(slices.Clone(allowed), func(f stepupv1.Factor) bool { return f == stepupv1.Factor_FACTOR_APPROVAL }), detail, nil
}

// ApprovalEnabled reports whether the Service was built WithApproval.
func (s *Service) ApprovalEnabled() bool { return s.approval != nil }

func (s *Service) approvalEnabled() error {
	if s.approval == nil {
		return errors.New("challenge: the approval factor is not configured (WithApproval)")
	}
	return nil
}

// PendingApprovals returns subject's approvals that are still waiting for
// a decision and have not expired, oldest first.
func (s *Service) PendingApprovals(ctx context.Context, subject string) ([]*Approval, error) {
	if err := s.approvalEnabled(); err != nil {
		return nil, err
	}
	recs, err := s.approvals.Approvals(ctx, subject)
	if err != nil {
		return nil, storeError(err)
	}
	now := s.now()
	var out []*Approval
	for id, rec := range recs {
		a := s.readApproval(subject, id, rec)
		if a == nil || !now.Before(a.ExpiresAt) {
			continue
		}
		st, err := s.store.Get(ctx, subjectKey("apr", subject, id))
		if err != nil {
			return nil, storeError(err)
		}
		if st == approvalPending {
			out = append(out, a)
		}
	}
	slices.SortFunc(out, func(a, b *Approval) int {
		return cmp.Or(a.IssuedAt.Compare(b.IssuedAt), cmp.Compare(a.ID, b.ID))
	})
	return out, nil
}

// pendingApproval returns subject's approval id when it can still be
// decided, or the reason it cannot.
func (s *Service) pendingApproval(ctx context.Context, subject, id string) (*Approval, Reason, error) {
	if err := s.approvalEnabled(); err != nil {
		return nil, "", err
	}
	if id == "" || len(id) > maxIdentifier || !utf8.ValidString(id) {
		return nil, ReasonApprovalUnknown, nil
	}
	recs, err := s.approvals.Approvals(ctx, subject)
	if err != nil {
		return nil, "", storeError(err)
	}
	rec, ok := recs[id]
	if !ok {
		// Another subject's approval, a made-up id, or one long expired.
		return nil, ReasonApprovalUnknown, nil
	}
	a := s.readApproval(subject, id, rec)
	if a == nil {
		return nil, ReasonApprovalUnknown, nil
	}
	if !s.now().Before(a.ExpiresAt) {
		return a, ReasonApprovalExpired, nil
	}
	st, err := s.store.Get(ctx, subjectKey("apr", subject, id))
	if err != nil {
		return a, "", storeError(err)
	}
	if st != approvalPending {
		return a, ReasonApprovalDecided, nil
	}
	return a, "", nil
}

// ApprovalRequestOptions returns the WebAuthn PublicKeyCredentialRequestOptions
// JSON for approving subject's approval id: their credentials, user
// verification required, and the challenge ApprovalWebAuthnChallenge. A
// refusal has a Reason (ReasonApprovalUnknown, ReasonApprovalExpired,
// ReasonApprovalDecided, ReasonWebAuthnInvalid when the subject has no
// credential).
func (s *Service) ApprovalRequestOptions(ctx context.Context, subject, id string) ([]byte, *Approval, Reason, error) {
	a, reason, err := s.pendingApproval(ctx, subject, id)
	if err != nil || reason != "" {
		return nil, a, reason, err
	}
	opts, err := s.approver.PasskeyOptions(ctx, subject, approvalSigned(a.ID, a.SummaryDigest), s.ttl)
	if err != nil {
		return nil, a, "", err
	}
	if opts == nil {
		return nil, a, ReasonWebAuthnInvalid, nil
	}
	return opts, a, "", nil
}

// Approve records subject's approval of id, given a WebAuthn assertion
// (the PublicKeyCredential JSON) over ApprovalWebAuthnChallenge. It returns
// the approval and "" when it was recorded, or the reason it was refused:
// ReasonApprovalUnknown, ReasonApprovalExpired, ReasonApprovalDecided (a
// second decision, or a replayed one), or a WebAuthn reason. The waiting
// call is then accepted once.
func (s *Service) Approve(ctx context.Context, subject, id string, assertion []byte) (*Approval, Reason, error) {
	a, reason, err := s.pendingApproval(ctx, subject, id)
	if err != nil || reason != "" {
		return a, reason, err
	}
	reason, err = s.approver.VerifyPasskey(ctx, subject, approvalSigned(a.ID, a.SummaryDigest), assertion)
	if err != nil || reason != "" {
		return a, reason, err
	}
	return a, "", s.decide(ctx, a, approvalApproved, &reason)
}

// Deny records subject's refusal of id: the waiting call is refused with
// ReasonApprovalDenied. The reasons are those of Approve.
func (s *Service) Deny(ctx context.Context, subject, id string) (*Approval, Reason, error) {
	a, reason, err := s.pendingApproval(ctx, subject, id)
	if err != nil || reason != "" {
		return a, reason, err
	}
	var r Reason
	if err := s.decide(ctx, a, approvalDenied, &r); err != nil || r != "" {
		return a, r, err
	}
	return a, "", nil
}

// decide records one decision: of concurrent decisions (two tabs, a
// replayed request) exactly one wins; the others get ReasonApprovalDecided.
func (s *Service) decide(ctx context.Context, a *Approval, state int64, reason *Reason) error {
	switch err := s.store.Insert(ctx, subjectKey("aprd", a.Subject, a.ID), a.IssuedAt, a.ExpiresAt); {
	case errors.Is(err, dpop.ErrReplayed):
		*reason = ReasonApprovalDecided
		return nil
	case errors.Is(err, dpop.ErrEvicted):
		*reason = ReasonReplayWindow
		return nil
	case err != nil:
		return storeError(err)
	}
	if err := s.store.SetMax(ctx, subjectKey("apr", a.Subject, a.ID), state, a.ExpiresAt.Add(time.Minute)); err != nil {
		return storeError(err)
	}
	return nil
}

// checkApproval decides an answer naming an approval, for a challenge
// that verified and allows the factor. Nothing here can be guessed (the
// decision is made on the approver page), so attempts are not counted:
// a waiting client polls as often as the server asks.
func (s *Service) checkApproval(ctx context.Context, call *Call, c *challengeClaims, a *answerPayload, now time.Time, out *Outcome) error {
	out.SummaryDigest = c.SummaryDigest
	if a.Approval != c.ID {
		out.Reason = ReasonAnswerMalformed
		return nil
	}
	st, err := s.store.Get(ctx, subjectKey("apr", c.Subject, c.ID))
	if err != nil {
		return storeError(err)
	}
	switch st {
	case approvalPending:
		out.Reason, out.Pending, out.RetryAfter = ReasonApprovalPending, true, s.approval.Poll
		return nil
	case approvalDenied:
		out.Reason, out.Final = ReasonApprovalDenied, true
		return nil
	case approvalApproved:
	default:
		out.Reason, out.Final = ReasonChallengeReused, true
		return nil
	}
	if reason, err := s.consume(ctx, c); err != nil || reason != "" {
		out.Reason, out.Final = reason, reason != ""
		return err
	}
	return s.satisfy(call, c, factorNameApproval, now, out)
}

// consume marks the challenge used, atomically (single use); of concurrent
// correct answers exactly one wins. When the challenge also allowed an
// approval, the approval stops being listed.
func (s *Service) consume(ctx context.Context, c *challengeClaims) (Reason, error) {
	expires := time.Unix(c.Expires, 0)
	switch err := s.store.Insert(ctx, subjectKey("chl", c.Subject, c.ID), time.Unix(c.IssuedAt, 0), expires); {
	case errors.Is(err, dpop.ErrReplayed):
		return ReasonChallengeReused, nil
	case errors.Is(err, dpop.ErrEvicted):
		return ReasonReplayWindow, nil
	case err != nil:
		return "", storeError(err)
	}
	if slices.Contains(c.Factors, factorNameApproval) {
		// Best effort: the page only lists it a little longer.
		_ = s.store.SetMax(context.WithoutCancel(ctx), subjectKey("apr", c.Subject, c.ID), approvalUsed, expires.Add(time.Minute))
	}
	return "", nil
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
func (s *Service) BeginApproverSignIn(ctx context.Context, subject string) (state string, options []byte, reason Reason, err error) {
	if err := s.approvalEnabled(); err != nil {
		return "", nil, "", err
	}
	if subject == "" || len(subject) > maxIdentifier || !utf8.ValidString(subject) {
		return "", nil, ReasonWebAuthnInvalid, nil
	}
	id, err := newID()
	if err != nil {
		return "", nil, "", fmt.Errorf("challenge: %w", err)
	}
	now := s.now()
	t := tokenClaims{ID: id, Subject: subject, IssuedAt: now.Unix(), Expires: now.Add(s.ttl).Unix()}
	state = s.keys.sign(SignInType, t.encode(func(*jsonWriter) {}))
	if options, err = s.approver.PasskeyOptions(ctx, "", state, s.ttl); err != nil {
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
func (s *Service) FinishApproverSignIn(ctx context.Context, state string, assertion []byte) (session, subject string, reason Reason, err error) {
	if err := s.approvalEnabled(); err != nil {
		return "", "", "", err
	}
	now := s.now()
	t, ok := s.readSimpleToken(state, SignInType, now)
	if !ok {
		return "", "", ReasonSignInInvalid, nil
	}
	if reason, err = s.approver.VerifyPasskey(ctx, t.Subject, state, assertion); err != nil || reason != "" {
		return "", "", reason, err
	}
	switch err := s.store.Insert(ctx, subjectKey("signin", t.Subject, t.ID), time.Unix(t.IssuedAt, 0), time.Unix(t.Expires, 0)); {
	case errors.Is(err, dpop.ErrReplayed):
		return "", "", ReasonSignInInvalid, nil
	case errors.Is(err, dpop.ErrEvicted):
		return "", "", ReasonReplayWindow, nil
	case err != nil:
		return "", "", "", storeError(err)
	}
	id, err := newID()
	if err != nil {
		return "", "", "", fmt.Errorf("challenge: %w", err)
	}
	sess := tokenClaims{ID: id, Subject: t.Subject, IssuedAt: now.Unix(), Expires: now.Add(s.approval.SessionTTL).Unix()}
	return s.keys.sign(SessionType, sess.encode(func(*jsonWriter) {})), t.Subject, "", nil
}

// maxSessionTTL is the longest ApprovalOptions.SessionTTL: how long a
// revocation of sessions must be remembered.
const maxSessionTTL = time.Hour

func signedOutKey(sub, id string) string { return subjectKey("aprout", sub, id) }

func sessionRevocationKey(sub string) string { return subjectKey("aprrev", sub) }

// CheckApproverSession returns the subject of a valid approver page
// session token: its MAC, type and expiry verify, it was not signed out
// (EndApproverSession) and the subject's sessions were not revoked since it
// began (RevokeApproverSessions), on any replica sharing the store.
// Otherwise it returns the reason: ReasonApproverSessionInvalid (forged,
// malformed, expired), ReasonApproverSessionEnded or
// ReasonApproverSessionRevoked. With a store that is a MultiGetter the
// state is one read. A store failure is a *StoreError: refuse the request
// (fail closed).
func (s *Service) CheckApproverSession(ctx context.Context, session string) (subject string, reason Reason, err error) {
	if err := s.approvalEnabled(); err != nil {
		return "", "", err
	}
	t, ok := s.readSimpleToken(session, SessionType, s.now())
	if !ok {
		return "", ReasonApproverSessionInvalid, nil
	}
	vals, err := getMany(ctx, s.store, signedOutKey(t.Subject, t.ID), sessionRevocationKey(t.Subject))
	switch {
	case err != nil:
		return "", "", err
	case vals[0] != 0:
		return "", ReasonApproverSessionEnded, nil
	case vals[1] != 0 && t.IssuedAt <= vals[1]:
		return "", ReasonApproverSessionRevoked, nil
	}
	return t.Subject, "", nil
}

// EndApproverSession signs a session out on every replica sharing the
// store: the token, and every copy of it, is refused from now until it
// would have expired (ReasonApproverSessionEnded). The page's sign-out
// calls it. A token that is not a valid session has nothing to end: nil.
func (s *Service) EndApproverSession(ctx context.Context, session string) error {
	if err := s.approvalEnabled(); err != nil {
		return err
	}
	t, ok := s.readSimpleToken(session, SessionType, s.now())
	if !ok {
		return nil
	}
	if err := s.store.SetMax(ctx, signedOutKey(t.Subject, t.ID), 1, time.Unix(t.Expires, 0).Add(time.Minute)); err != nil {
		return storeError(err)
	}
	return nil
}

// RevokeApproverSessions ends every approver page session of subject begun
// up to now (within the current second included), on every replica sharing
// the store (ReasonApproverSessionRevoked); sessions begun later work as
// usual. Call it when the approver's device is lost or their account is
// compromised, with RevokeGrants and RevokeTokens.
func (s *Service) RevokeApproverSessions(ctx context.Context, subject string) error {
	if err := s.approvalEnabled(); err != nil {
		return err
	}
	if subject == "" {
		return errors.New("challenge: RevokeApproverSessions: empty subject")
	}
	now := s.now()
	// Remember it for as long as a session begun now could live.
	if err := s.store.SetMax(ctx, sessionRevocationKey(subject), now.Unix(), now.Add(maxSessionTTL+time.Minute)); err != nil {
		return storeError(err)
	}
	return nil
}

// readSimpleToken verifies a token of the shared claims only (sign-in
// state, session) and its expiry.
func (s *Service) readSimpleToken(token, typ string, now time.Time) (*tokenClaims, bool) {
	payload, _, f := s.keys.verify(token, typ)
	if f != tokenOK {
		return nil, false
	}
	var t tokenClaims
	if readClaims(payload, claimsShared, t.read) != nil || t.Subject == "" || now.Unix() >= t.Expires {
		return nil, false
	}
	return &t, true
}
