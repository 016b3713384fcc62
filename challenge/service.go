package challenge

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	lru "github.com/hashicorp/golang-lru/v2"

	"github.com/stepupgrpc/stepup/dpop"
	"github.com/stepupgrpc/stepup/internal/option"
	stepupv1 "github.com/stepupgrpc/stepup/proto/stepup/v1"
)

// maxAnswerSize bounds an answer (compact JWS) before any decoding.
const maxAnswerSize = 16 << 10

// maxIdentifier bounds Call.Subject, Call.Thumbprint and Call.Method.
const maxIdentifier = 1024

// maxClockSkew is how far in the future a token's auth_time may be.
const maxClockSkew = time.Minute

// Service issues and verifies step-up challenges and grants. Build it once
// with NewService; it is immutable and safe for concurrent use.
type Service struct {
	config
	factors []stepupv1.Factor // configured, in enum order
	// grants holds the claims of grants whose MAC verified, by the exact
	// token: a client presents its grant on every call of its lifetime,
	// and the keys never change (see readGrant).
	grants *lru.Cache[string, *grantClaims]
	// rev reads and writes grant, token and key revocations in the store.
	rev *Revocations
}

// grantCacheSize bounds the verified-grant cache: about 3.5 MiB at most
// (a grant of about 340 bytes, its decoded claims and the LRU entry).
// Only grants this Service signed get in, so a caller cannot fill it with
// forgeries; a miss only costs the full check.
const grantCacheSize = 4096

// NewService builds a Service. WithKeys is required, and at least one factor
// (WithFactor, or a deprecated option of deprecated.go).
// It binds every Stateful factor to the Service (Stateful.Bind). Every configuration mistake is
// reported here, never on the first call.
func NewService(opts ...Option) (*Service, error) {
	c := config{
		now:          time.Now,
		ttl:          DefaultChallengeTTL,
		perChallenge: DefaultPerChallenge,
		perSubject:   DefaultPerSubject,
		window:       DefaultAttemptWindow,
		maxGrantAge:  DefaultMaxGrantAge,
	}
	errs := []error{option.Apply("challenge", "NewService", opts, func(o Option) error { return o.applyService(&c) })}
	if c.keys == nil {
		errs = append(errs, errors.New("challenge: WithKeys is required"))
	}
	if len(c.plugged) == 0 {
		errs = append(errs, errors.New("challenge: no factor configured (WithTOTP, WithDeviceKeys, WithFactor or WithApproval)"))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if c.store == nil {
		s, err := NewMemoryStore(DefaultStoreSize, c.now)
		if err != nil {
			return nil, err
		}
		c.store = s
	}
	grants, err := lru.New[string, *grantClaims](grantCacheSize)
	if err != nil {
		return nil, err
	}
	s := &Service{config: c, grants: grants, rev: &Revocations{store: c.store, now: c.now}}
	for _, k := range []stepupv1.Factor{stepupv1.Factor_FACTOR_DEVICE_KEY, stepupv1.Factor_FACTOR_TOTP, stepupv1.Factor_FACTOR_WEBAUTHN, stepupv1.Factor_FACTOR_APPROVAL} {
		if c.factor(k) != nil {
			s.factors = append(s.factors, k)
		}
		if f := s.stateful(k); f != nil {
			if err := f.Bind(s.host()); err != nil {
				return nil, fmt.Errorf("challenge: %v: %w", k, err)
			}
		}
	}
	return s, nil
}

// Factors returns the configured factors, in enum order. A caller can
// check at startup that every policy's factors are among them.
func (s *Service) Factors() []stepupv1.Factor { return slices.Clone(s.factors) }

// allowed returns the factors that may answer req: its Factors (in its
// order, without duplicates) that are configured, or every configured
// factor when it names none.
func (s *Service) allowed(req *Requirement) []stepupv1.Factor {
	if len(req.Factors) == 0 {
		return s.factors
	}
	out := make([]stepupv1.Factor, 0, len(req.Factors))
	for _, f := range req.Factors {
		if slices.Contains(s.factors, f) && !slices.Contains(out, f) {
			out = append(out, f)
		}
	}
	return out
}

func validateCall(call *Call) error {
	switch {
	case call.Requirement == nil:
		return errors.New("challenge: Check: nil Requirement")
	case call.Subject == "" || len(call.Subject) > maxIdentifier || !utf8.ValidString(call.Subject):
		return errors.New("challenge: Check: Subject must be 1 to 1024 bytes of UTF-8")
	case call.Thumbprint == "" || len(call.Thumbprint) > maxIdentifier || !utf8.ValidString(call.Thumbprint):
		// Step-up is bound to the DPoP key: without one there is nothing
		// to bind challenges and grants to.
		return errors.New("challenge: Check: Thumbprint (the DPoP key thumbprint) is required")
	case !validMethod(call.Method):
		return errors.New(`challenge: Check: Method must be a full method name "/pkg.Service/Method"`)
	case call.Requirement.BindRequest && call.Request == nil:
		return errors.New("challenge: Check: the requirement binds the request, but the call has no request message (a stream cannot bind its request)")
	}
	return nil
}

func validMethod(m string) bool {
	if len(m) < 4 || len(m) > maxIdentifier || m[0] != '/' || !utf8.ValidString(m) {
		return false
	}
	svc, meth, ok := strings.Cut(m[1:], "/")
	return ok && svc != "" && meth != "" && !strings.Contains(meth, "/")
}

// Check decides whether call satisfies its step-up requirement, in this
// order (cheap and stateless first):
//
//  1. the access token's acr and auth_time (RFC 9470), for a reusable
//     requirement;
//  2. a presented grant;
//  3. a presented answer (which may issue a grant);
//  4. otherwise a fresh challenge (or Locked).
//
// A refused grant or answer never satisfies the call; its reason is kept
// in the Outcome and the next step is tried. Check returns an error only
// when it cannot decide: the call is malformed (no Requirement, no
// Thumbprint, a bound requirement on a stream), the store failed (*StoreError
// with ReasonStoreUnavailable) or a factor lookup failed. The caller must
// then refuse the call: fail closed.
func (s *Service) Check(ctx context.Context, call Call) (*Outcome, error) {
	out, err := s.check(ctx, call)
	if out != nil {
		out.setFlags()
		if checkedOutcome != nil {
			checkedOutcome(out)
		}
	}
	return out, err
}

// checkedOutcome, when set (by this package's tests only), sees every
// Outcome Check returns.
var checkedOutcome func(*Outcome)

// setFlags sets the deprecated booleans of the Outcome from its State.
func (o *Outcome) setFlags() {
	o.Satisfied, o.Locked = o.State == StateSatisfied, o.State == StateLocked
	o.Pending, o.Final = o.State == StatePending, o.State == StateFinal
}

// check is Check; it sets the Outcome's State, not the booleans.
func (s *Service) check(ctx context.Context, call Call) (*Outcome, error) {
	if err := validateCall(&call); err != nil {
		return nil, err
	}
	req := call.Requirement
	now := s.now()

	// 1. RFC 9470 §3: a token whose acr is acceptable and whose
	// auth_time is recent enough already satisfies max_age.
	if req.Reusable() && call.TokenACR != "" && !call.TokenAuthTime.IsZero() && slices.Contains(req.ACRValues, call.TokenACR) {
		if age := now.Sub(call.TokenAuthTime); age <= req.MaxAge && age >= -maxClockSkew {
			return &Outcome{State: StateSatisfied, Via: ViaToken, AuthTime: call.TokenAuthTime}, nil
		}
	}

	allowed := s.allowed(req)
	if len(allowed) == 0 {
		return nil, fmt.Errorf("challenge: Check: none of the factors the requirement of %s allows is configured", call.Method)
	}
	out := &Outcome{}

	// 2. A grant only applies to a reusable requirement; otherwise it is
	// ignored, as a client may hold one from another method.
	if call.Grant != "" && req.Reusable() {
		g, reason, err := s.checkGrant(ctx, &call, allowed, now)
		if err != nil {
			return nil, err
		}
		if g != nil {
			out.GrantID = g.ID
		}
		if reason == "" {
			out.State, out.Via = StateSatisfied, ViaGrant
			out.Factor = ParseFactorName(g.Factor)
			out.AuthTime = time.Unix(g.AuthTime, 0)
			return out, nil
		}
		out.Reason = reason
	}

	// 3. An answer to an earlier challenge.
	if call.Answer != "" {
		if err := s.checkAnswer(ctx, &call, allowed, now, out); err != nil {
			return nil, err
		}
		if out.State != 0 { // satisfied, or refused without a new challenge
			return out, nil
		}
	}

	// 4. A fresh challenge, unless the subject is locked out.
	locked, n, err := s.locked(ctx, call.Subject, now)
	if err != nil {
		return nil, err
	}
	if locked {
		out.State = StateLocked
		out.Detail = s.subjectLimitDetail(n)
		if out.Reason == "" {
			out.Reason = ReasonAttemptsExceeded
		}
		return out, nil
	}
	allowed, limit, detail, err := s.offer(ctx, call.Subject, allowed)
	if err != nil {
		return nil, err
	}
	if len(allowed) == 0 {
		out.State, out.Reason, out.Detail = StateLocked, limit, detail
		return out, nil
	}
	ch, id, err := s.issue(ctx, &call, allowed, now)
	if err != nil {
		return nil, err
	}
	out.Challenge, out.IssuedChallengeID = ch, id
	if ch.GetApprovalId() != "" {
		out.SummaryDigest = SummaryDigest(ch.GetSummaryText())
	}
	out.State = StateRefused
	if out.Reason == "" {
		out.State, out.Reason = StateChallenged, ReasonRequired
	}
	return out, nil
}

// checkGrant verifies a grant. It returns the claims when they could be
// read, and the refusal reason ("" when valid).
func (s *Service) checkGrant(ctx context.Context, call *Call, allowed []stepupv1.Factor, now time.Time) (*grantClaims, Reason, error) {
	g, reason := s.readGrant(call.Grant)
	if reason != "" {
		return nil, reason, nil
	}
	// RFC 7519 §4.1.4: the current time must be before exp.
	if now.Unix() >= g.Expires {
		return g, ReasonGrantExpired, nil
	}
	// The grant is usable only with the DPoP key it was issued to, so a
	// stolen grant is worth nothing without the private key.
	if g.Thumbprint != call.Thumbprint {
		return g, ReasonGrantWrongKey, nil
	}
	if g.Subject != call.Subject {
		return g, ReasonGrantWrongSubject, nil
	}
	if f := ParseFactorName(g.Factor); f == stepupv1.Factor_FACTOR_UNSPECIFIED || !slices.Contains(allowed, f) {
		return g, ReasonGrantFactorNotAllowed, nil
	}
	// RFC 9470 §3 max_age: judged against this method's requirement, which
	// may be stricter than the one that issued the grant.
	if now.Sub(time.Unix(g.AuthTime, 0)) > call.Requirement.MaxAge {
		return g, ReasonGrantTooOld, nil
	}
	// Revocation is the only state a grant needs, read last.
	revoked, err := s.rev.GrantsRevoked(ctx, call.Subject, time.Unix(g.IssuedAt, 0))
	if err != nil {
		return g, "", err
	}
	if revoked {
		return g, ReasonGrantRevoked, nil
	}
	return g, "", nil
}

// readGrant returns the claims of a grant this Service signed, or why it
// is refused as a token. The claims of a grant whose MAC verified are
// kept, by the exact token, so that the calls after the first skip the
// MAC, base64 and JSON: the keys of a Service never change, so the token
// would verify again to the same claims. Everything that depends on the
// call or on time (expiry, key, subject, factor, max age, revocation) is
// checked by the caller on every call. Refused tokens are not kept.
func (s *Service) readGrant(token string) (*grantClaims, Reason) {
	if g, ok := s.grants.Get(token); ok {
		return g, ""
	}
	payload, _, f := s.keys.verify(token, GrantType)
	switch f {
	case tokenMalformed:
		return nil, ReasonGrantMalformed
	case tokenBadSignature:
		return nil, ReasonGrantBadSignature
	}
	g, err := parseGrantClaims(payload)
	if err != nil {
		return nil, ReasonGrantMalformed
	}
	// A clone: the token may be part of a larger string the cache must
	// not keep alive.
	s.grants.Add(strings.Clone(token), g)
	return g, ""
}

// Revocations returns the revocations kept in the service's store: its
// grant revocations are the ones Check honours, and a Guard gives it to
// interceptor.WithTokenRevocationFrom to refuse revoked tokens and keys.
func (s *Service) Revocations() *Revocations { return s.rev }

// verifyChallenge checks a challenge embedded in an answer against the
// call; it returns the claims when they could be read.
func (s *Service) verifyChallenge(token string, call *Call, now time.Time) (*challengeClaims, Reason, error) {
	payload, _, f := s.keys.verify(token, ChallengeType)
	switch f {
	case tokenMalformed:
		return nil, ReasonChallengeMalformed, nil
	case tokenBadSignature:
		return nil, ReasonChallengeBadSignature, nil
	}
	c, err := parseChallengeClaims(payload)
	if err != nil {
		return nil, ReasonChallengeMalformed, nil
	}
	switch {
	case now.Unix() >= c.Expires: // RFC 7519 §4.1.4
		return c, ReasonChallengeExpired, nil
	case c.Subject != call.Subject:
		return c, ReasonChallengeWrongSubject, nil
	case c.Thumbprint != call.Thumbprint:
		return c, ReasonChallengeWrongKey, nil
	case c.Method != call.Method:
		return c, ReasonChallengeWrongMethod, nil
	}
	if c.Digest != "" || call.Requirement.BindRequest {
		if c.Digest == "" || call.Request == nil {
			return c, ReasonChallengeWrongRequest, nil
		}
		d, err := call.digest()
		if err != nil {
			return c, "", err
		}
		if d != c.Digest {
			return c, ReasonChallengeWrongRequest, nil
		}
	}
	return c, "", nil
}

// checkAnswer verifies an answer and records the result in out. It returns
// an error only when it cannot decide.
func (s *Service) checkAnswer(ctx context.Context, call *Call, allowed []stepupv1.Factor, now time.Time, out *Outcome) error {
	// The answer is signed by the caller's DPoP key: a stolen answer is
	// useless on another connection, and nobody else can answer for the
	// caller.
	jws, err := dpop.VerifyJWS(call.Answer, dpop.JWSOptions{Type: AnswerType, MaxSize: maxAnswerSize, Thumbprint: call.Thumbprint})
	if err != nil {
		switch dpop.ReasonOf(err) {
		case dpop.ReasonKeyMismatch:
			out.Reason = ReasonAnswerWrongKey
		case dpop.ReasonBadSignature:
			out.Reason = ReasonAnswerBadSignature
		default:
			out.Reason = ReasonAnswerMalformed
		}
		return nil
	}
	a, err := parseAnswerPayload(jws.Payload)
	if err != nil {
		out.Reason = ReasonAnswerMalformed
		return nil
	}
	c, reason, err := s.verifyChallenge(a.Challenge, call, now)
	if c != nil {
		out.ChallengeID = c.ID
	}
	if err != nil {
		return err
	}
	factor := ParseFactorName(a.Factor)
	if reason == ReasonChallengeExpired && factor == stepupv1.Factor_FACTOR_APPROVAL && slices.Contains(c.Factors, a.Factor) {
		// The user did not approve in time: final, so that a new approval
		// does not appear on the page while nobody waits for it.
		out.Reason, out.State, out.Factor, out.SummaryDigest = ReasonApprovalExpired, StateFinal, factor, c.SummaryDigest
		return nil
	}
	if reason != "" {
		out.Reason = reason
		return nil
	}
	out.Factor = factor
	if factor == stepupv1.Factor_FACTOR_UNSPECIFIED || !slices.Contains(allowed, factor) || !slices.Contains(c.Factors, a.Factor) {
		out.Reason = ReasonFactorNotAllowed
		return nil
	}
	if f := s.stateful(factor); f != nil {
		return s.checkStateful(ctx, call, f, c, a, now, out)
	}

	// The challenge's own limit first: of many answers to one challenge (a
	// client's retries, copies sent at once) only the first perChallenge
	// reach the subject's budget at all.
	expires := time.Unix(c.Expires, 0)
	n, err := s.store.Increment(ctx, subjectKey("chlatt", call.Subject, c.ID), expires)
	if err != nil {
		return storeError(err)
	}
	if n > int64(s.perChallenge) {
		out.Reason = ReasonAttemptsExceeded
		out.Detail = fmt.Sprintf("per-challenge limit: attempt %d on challenge %s, the limit is %d (WithAttemptLimits)", n, c.ID, s.perChallenge)
		return nil
	}

	// The subject's budget is spent before the factor is verified, so that
	// concurrent guesses are counted too. Every answer that turns out not
	// to be wrong gives its attempt back, whatever ends it: refused at the
	// limit, right, refused for another reason, interrupted by a store
	// failure. The refund is set up as soon as the attempt is counted, so
	// that no return path keeps it (STEPUP.md §6).
	win := now.UnixNano() / int64(s.window)
	winEnd := time.Unix(0, (win+1)*int64(s.window))
	w := strconv.FormatInt(win, 10)
	attKey, okKey := subjectKey("att", call.Subject, w), subjectKey("ok", call.Subject, w)
	// The refunds are read before the attempt is counted: a refund read
	// then was given by an attempt counted before this one. Read after,
	// it could be the refund of an attempt counted after this one (refused
	// at the limit while this one was between its two steps), and then
	// one guess more than the limit would be checked.
	refunded, err := s.store.Get(ctx, okKey)
	if err != nil {
		return storeError(err)
	}
	if n, err = s.store.Increment(ctx, attKey, winEnd); err != nil {
		// Not counted as far as we know: nothing to give back.
		return storeError(err)
	}
	wrong := false
	defer func() {
		if !wrong {
			// Best effort: a failed refund only makes the limit
			// stricter.
			_, _ = s.store.Increment(context.WithoutCancel(ctx), okKey, winEnd)
		}
	}()
	if n-refunded > int64(s.perSubject) {
		out.Reason, out.State = ReasonAttemptsExceeded, StateLocked
		out.Detail = s.subjectLimitDetail(n - refunded)
		return nil
	}

	reason, detail, err := s.verifyFactor(ctx, call, c, a, factor, now)
	if err != nil {
		return err
	}
	if reason != "" {
		wrong = countsAsWrong(reason)
		out.Reason, out.Detail = reason, detail
		return nil
	}

	// The challenge is consumed last, atomically: of concurrent correct
	// answers exactly one wins, and a wrong answer never burns it.
	if reason, err := s.consume(ctx, c); err != nil || reason != "" {
		out.Reason = reason
		return err
	}
	return s.satisfy(call, c, a.Factor, now, out)
}

// countsAsWrong reports whether a factor's refusal spends the subject's
// budget: evidence that is wrong (a code that is not the code, a
// signature that does not verify, a key that is not registered). A code
// that was right but whose time step was already used (TOTP_REUSED) and
// an assertion that verified but whose signature counter did not move
// (WEBAUTHN_COUNTER) are refused, not counted: they are not guesses, and a
// copy of an accepted answer (a client's retry, an answer sent twice at
// once) gets them.
func countsAsWrong(r Reason) bool {
	return r != ReasonTOTPReused && r != ReasonWebAuthnCounter
}

// satisfy records an accepted answer in out, with a new grant when the
// requirement is reusable. A grant refused earlier in this call keeps its
// reason for the audit log; the call itself is satisfied.
func (s *Service) satisfy(call *Call, c *challengeClaims, factor string, now time.Time, out *Outcome) error {
	out.State, out.Via, out.AuthTime = StateSatisfied, ViaAnswer, now
	life := min(call.Requirement.MaxAge, time.Duration(c.MaxAge)*time.Second, s.maxGrantAge)
	if call.Requirement.Reusable() && life >= time.Second {
		g := grantClaims{
			tokenClaims: tokenClaims{
				Subject:    call.Subject,
				Thumbprint: call.Thumbprint,
				IssuedAt:   now.Unix(),
				Expires:    now.Unix() + int64(life/time.Second),
			},
			Factor:   factor,
			AuthTime: now.Unix(),
		}
		var err error
		if g.ID, err = newID(); err != nil {
			return fmt.Errorf("challenge: %w", err)
		}
		out.Grant = s.keys.sign(GrantType, g.encode())
		out.GrantExpires = time.Unix(g.Expires, 0)
		out.IssuedGrantID = g.ID
	}
	return nil
}

// locked reports whether subject has used up its wrong answers in the
// current window.
func (s *Service) locked(ctx context.Context, subject string, now time.Time) (bool, int64, error) {
	w := strconv.FormatInt(now.UnixNano()/int64(s.window), 10)
	// One read of both counters (one round trip with a MultiGetter, a
	// snapshot in MemoryStore and Redis): issuing a challenge costs one
	// store operation. Without a MultiGetter the refunds are read first,
	// for the reason given in checkAnswer: read after the attempts, they
	// could include attempts this read did not count.
	vals, err := getMany(ctx, s.store, subjectKey("ok", subject, w), subjectKey("att", subject, w))
	if err != nil {
		return false, 0, err
	}
	refunded, n := vals[0], vals[1]
	if n == 0 {
		return false, 0, nil
	}
	return n-refunded >= int64(s.perSubject), n - refunded, nil
}

// subjectLimitDetail names the per-subject limit a lock-out reached.
func (s *Service) subjectLimitDetail(wrong int64) string {
	return fmt.Sprintf("per-subject limit: %d wrong or unfinished answers within the %s window, the limit is %d (WithAttemptLimits)", wrong, s.window, s.perSubject)
}

// consume marks the challenge used, atomically (single use); of concurrent
// correct answers exactly one wins. The Stateful factors the challenge
// allowed are told (an approval stops being listed).
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
	s.used(ctx, c)
	return "", nil
}
