package challenge

import (
	"context"
	"slices"
	"time"

	"github.com/stepupgrpc/stepup/challenge/factor"
	stepupv1 "github.com/stepupgrpc/stepup/proto/stepup/v1"
)

// What the Service does for a factor that holds state across a challenge
// (factor.Stateful: the approval factor, challenge/approval). It binds the
// factor to its store, clock and keys (host), lets it leave itself out of a
// challenge (offer), tells it of an issued challenge (issued) and of an
// answered one (used), and maps its answers' reasons to the outcome
// (checkStateful). The Service knows nothing else of it.

// Stateful is implemented by a Factor that holds state across a challenge
// (factor.Stateful), such as the approval factor of challenge/approval.
type Stateful = factor.Stateful

// ApprovalStore is a Store that also keeps approval records, by subject,
// so that any replica can list a subject's pending approvals: what the
// approval factor (challenge/approval) needs of the Service's store.
// MemoryStore and redisstore.Store implement it.
type ApprovalStore interface {
	Store
	// PutApproval keeps record under (subject, id) until expires.
	PutApproval(ctx context.Context, subject, id string, record []byte, expires time.Time) error
	// Approvals returns the records of subject that have not expired, by id.
	Approvals(ctx context.Context, subject string) (map[string][]byte, error)
}

// SummaryDigest returns base64url (no padding) of SHA-256 of a summary
// text: what audit events name, and what an approval's passkey signature
// covers (through the approval's WebAuthn challenge).
func SummaryDigest(summaryText string) string { return factor.SummaryDigest(summaryText) }

// MatchingCode returns the six-digit code of a challenge (its compact JWS):
// the first 32 bits of SHA-256("stepup-matching-code-v1." + challenge),
// modulo 10^6. The approver page and the client both show it, so that the
// user approves the call in front of them, not a look-alike one.
func MatchingCode(challenge string) string { return factor.MatchingCode(challenge) }

// host is what the Service shares with its Stateful factors.
func (s *Service) host() *factor.Host {
	return &factor.Host{
		Store: s.store,
		Now:   s.now,
		TTL:   s.ttl,
		ReadChallenge: func(token string) (*factor.Challenge, bool) {
			payload, _, f := s.keys.verify(token, ChallengeType)
			if f != tokenOK {
				return nil, false
			}
			c, err := parseChallengeClaims(payload)
			if err != nil {
				return nil, false
			}
			fc := &factor.Challenge{
				ID: c.ID, Subject: c.Subject, Method: c.Method, SummaryDigest: c.SummaryDigest,
				IssuedAt: time.Unix(c.IssuedAt, 0), Expires: time.Unix(c.Expires, 0),
			}
			for _, n := range c.Factors {
				fc.Factors = append(fc.Factors, ParseFactorName(n))
			}
			return fc, true
		},
		SummaryText: func(method string, items []*stepupv1.SummaryItem) (string, bool) {
			for _, it := range items {
				if it.GetLabel() != clean(it.GetLabel()) || it.GetValue() != clean(it.GetValue()) {
					return "", false
				}
			}
			return SummaryText(method, items), true
		},
		SignToken: func(typ, subject string, ttl time.Duration) (string, error) {
			id, err := newID()
			if err != nil {
				return "", err
			}
			now := s.now()
			t := tokenClaims{ID: id, Subject: subject, IssuedAt: now.Unix(), Expires: now.Add(ttl).Unix()}
			return s.keys.sign(typ, t.encode(func(*jsonWriter) {})), nil
		},
		ReadToken: func(token, typ string) (*factor.Token, bool) {
			payload, _, f := s.keys.verify(token, typ)
			if f != tokenOK {
				return nil, false
			}
			var t tokenClaims
			if readClaims(payload, claimsShared, t.read) != nil || t.Subject == "" || s.now().Unix() >= t.Expires {
				return nil, false
			}
			return &factor.Token{ID: t.ID, Subject: t.Subject, IssuedAt: time.Unix(t.IssuedAt, 0), Expires: time.Unix(t.Expires, 0)}, true
		},
		GetMany: func(ctx context.Context, keys ...string) ([]int64, error) { return getMany(ctx, s.store, keys...) },
	}
}

// stateful returns the configured Stateful factor of kind k, nil when none.
func (s *Service) stateful(k stepupv1.Factor) Stateful {
	f, _ := s.factor(k).(Stateful)
	return f
}

// offer returns allowed without the Stateful factors that leave
// themselves out of a challenge for subject, with the reason and detail
// of the last one for the audit event; allowed itself otherwise.
func (s *Service) offer(ctx context.Context, subject string, allowed []stepupv1.Factor) ([]stepupv1.Factor, Reason, string, error) {
	var reason Reason
	var detail string
	out := allowed
	for _, k := range allowed {
		f := s.stateful(k)
		if f == nil {
			continue
		}
		r, d, err := f.Offer(ctx, subject)
		if err != nil {
			return nil, "", "", err
		}
		if r != "" {
			reason, detail = r, d
			out = slices.DeleteFunc(slices.Clone(out), func(g stepupv1.Factor) bool { return g == k })
		}
	}
	return out, reason, detail, nil
}

// issued tells the Stateful factors of a challenge that it was issued.
func (s *Service) issued(ctx context.Context, allowed []stepupv1.Factor, is *factor.Issued) error {
	for _, k := range allowed {
		if f := s.stateful(k); f != nil {
			if err := f.Issued(ctx, is); err != nil {
				return err
			}
		}
	}
	return nil
}

// used tells the Stateful factors a challenge allowed that it was
// answered (best effort).
func (s *Service) used(ctx context.Context, c *challengeClaims) {
	for _, n := range c.Factors {
		if f := s.stateful(ParseFactorName(n)); f != nil {
			f.Used(context.WithoutCancel(ctx), c.Subject, c.ID, time.Unix(c.Expires, 0))
		}
	}
}

// checkStateful decides an answer for a Stateful factor, for a challenge
// that verified and allows it. Nothing in it can be guessed (it is decided
// elsewhere, as on the approver page), so attempts are not counted: a
// waiting client polls as often as the server asks.
func (s *Service) checkStateful(ctx context.Context, call *Call, f Stateful, c *challengeClaims, a *answerPayload, now time.Time, out *Outcome) error {
	out.SummaryDigest = c.SummaryDigest
	reason, detail, err := f.Verify(ctx, s.evidence(call, c, a, f.Factor(), now))
	if err != nil {
		return err
	}
	out.Detail = detail
	switch reason {
	case "":
	case ReasonApprovalPending:
		out.Reason, out.State, out.RetryAfter = reason, StatePending, f.RetryAfter()
		return nil
	case ReasonApprovalDenied, ReasonChallengeReused:
		out.Reason, out.State = reason, StateFinal
		return nil
	default:
		out.Reason = reason
		return nil
	}
	if reason, err := s.consume(ctx, c); err != nil || reason != "" {
		out.Reason = reason
		if reason != "" {
			out.State = StateFinal
		}
		return err
	}
	return s.satisfy(call, c, FactorName(f.Factor()), now, out)
}
