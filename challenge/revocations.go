package challenge

import (
	"context"
	"errors"
	"time"
)

// MaxTokenLifetime is the longest access token lifetime (exp - iat) a
// revocation covers: RevokeTokens and RevokeKey remember a revocation for
// MaxTokenLifetime plus 5 minutes, and a Guard built with
// interceptor.WithTokenRevocationFrom refuses tokens that live longer
// (TOKEN_LIFETIME_TOO_LONG), which would work again once it is forgotten.
const MaxTokenLifetime = 24 * time.Hour

// revocationMemory is how long a token or key revocation is kept:
// MaxTokenLifetime, and the largest clock skew a Guard tolerates past a
// token's exp (interceptor.WithLeeway, at most 5 minutes).
const revocationMemory = MaxTokenLifetime + 5*time.Minute

// Revocations records and reads the three kinds of revocation a Store
// holds, each under a pair of names, Revoke<Kind> to revoke and
// <Kind>Revoked to ask:
//
//   - grants (RevokeGrants, GrantsRevoked): the step-up grants of a
//     subject, which a Service's Check refuses (STEPUP_GRANT_REVOKED), and
//     step-ups under which a Guard holds a stream open;
//   - tokens (RevokeTokens, TokensRevoked): the access tokens of a subject,
//     which a Guard built with interceptor.WithTokenRevocationFrom refuses
//     (TOKEN_REVOKED);
//   - a key (RevokeKey, KeyRevoked): the access tokens bound to one DPoP key
//     of a subject, which that Guard refuses (DPOP_KEY_REVOKED).
//
// CredentialsRevoked asks about tokens and a key at once (one store read),
// as the Guard does on every call. Every replica sharing the store sees a
// revocation on its next check.
//
// Token and key revocation need no step-up: NewRevocations makes a
// Revocations over any store, without keys or factors, for a Guard without
// step-up or for a program that only revokes (an administration tool).
// Service.Revocations returns the one over a Service's own store.
type Revocations struct {
	store Store
	now   func() time.Time
}

// NewRevocations returns the revocations kept in store (the same keys as a
// Service over that store reads and writes). now nil is time.Now.
func NewRevocations(store Store, now func() time.Time) (*Revocations, error) {
	if store == nil {
		return nil, errors.New("challenge: NewRevocations: nil store")
	}
	if now == nil {
		now = time.Now
	}
	return &Revocations{store: store, now: now}, nil
}

// grantRevocationMemory is how long RevokeGrants remembers a revocation:
// as long as any grant can live (DefaultMaxGrantAge, the longest
// WithMaxGrantAge), plus a minute, whoever writes it, so that Services
// with different grant ages and programs with only a store can share one.
const grantRevocationMemory = DefaultMaxGrantAge + time.Minute

// RevokeGrants makes every grant of subject issued up to now (including
// within the current second) stop working, and ends the streams a Guard
// holds open under a step-up verified up to now. New step-ups issue new
// grants as usual.
func (r *Revocations) RevokeGrants(ctx context.Context, subject string) error {
	if subject == "" {
		return errors.New("challenge: RevokeGrants: empty subject")
	}
	now := r.now()
	if err := r.store.SetMax(ctx, grantRevocationKey(subject), now.Unix(), now.Add(grantRevocationMemory)); err != nil {
		return storeError(err)
	}
	return nil
}

// GrantsRevoked reports whether RevokeGrants was called for subject at or
// after t, to the second: whether a grant issued at t, or a step-up
// verified at t, has been revoked since. A store failure is a *StoreError
// with ReasonStoreUnavailable: treat it as revoked (fail closed).
func (r *Revocations) GrantsRevoked(ctx context.Context, subject string, t time.Time) (bool, error) {
	return r.revokedSince(ctx, grantRevocationKey(subject), t)
}

func grantRevocationKey(sub string) string { return subjectKey("rev", sub) }

// revokedSince reports whether the revocation kept under key was made at or
// after t, to the second.
func (r *Revocations) revokedSince(ctx context.Context, key string, t time.Time) (bool, error) {
	rev, err := r.store.Get(ctx, key)
	if err != nil {
		return false, storeError(err)
	}
	return rev != 0 && t.Unix() <= rev, nil
}

// RevokeTokens makes every access token of subject issued up to now
// (within the current second included) stop working, for a Guard with
// interceptor.WithTokenRevocationFrom — even while its verified-token cache
// holds it. Tokens issued later work as usual. The revocation is
// remembered for MaxTokenLifetime plus 5 minutes: every token it covers has
// expired by then (the Guard refuses longer-lived ones).
func (r *Revocations) RevokeTokens(ctx context.Context, subject string) error {
	if subject == "" {
		return errors.New("challenge: RevokeTokens: empty subject")
	}
	now := r.now()
	if err := r.store.SetMax(ctx, tokenRevocationKey(subject), now.Unix(), now.Add(revocationMemory)); err != nil {
		return storeError(err)
	}
	return nil
}

// TokensRevoked reports whether RevokeTokens was called for subject at or
// after issuedAt, to the second. A store failure is a *StoreError with
// ReasonStoreUnavailable: treat it as revoked (fail closed).
func (r *Revocations) TokensRevoked(ctx context.Context, subject string, issuedAt time.Time) (bool, error) {
	return r.revokedSince(ctx, tokenRevocationKey(subject), issuedAt)
}

func tokenRevocationKey(sub string) string { return subjectKey("revtok", sub) }

func keyRevocationKey(sub, jkt string) string { return subjectKey("revkey", sub, jkt) }

// RevokeKey makes every access token of subject bound to the DPoP key with
// RFC 7638 thumbprint jkt (cnf.jkt) stop working, for a Guard with
// interceptor.WithTokenRevocationFrom: a stolen or lost key is refused on its
// next call, whatever token it presents. The subject's other keys keep
// working. The revocation is remembered for MaxTokenLifetime (plus 5
// minutes) after the last RevokeKey of the key: tokens bound to it before
// then are all refused; the token issuer must stop binding new tokens to
// the key, which would work again afterwards.
func (r *Revocations) RevokeKey(ctx context.Context, subject, jkt string) error {
	if subject == "" || jkt == "" {
		return errors.New("challenge: RevokeKey: empty subject or thumbprint")
	}
	now := r.now()
	if err := r.store.SetMax(ctx, keyRevocationKey(subject, jkt), now.Unix(), now.Add(revocationMemory)); err != nil {
		return storeError(err)
	}
	return nil
}

// KeyRevoked reports whether RevokeKey was called for the DPoP key of
// subject with RFC 7638 thumbprint jkt within the last MaxTokenLifetime
// (plus 5 minutes): whether tokens bound to it are refused. A store failure
// is a *StoreError with ReasonStoreUnavailable: treat it as revoked (fail
// closed).
func (r *Revocations) KeyRevoked(ctx context.Context, subject, jkt string) (bool, error) {
	rev, err := r.store.Get(ctx, keyRevocationKey(subject, jkt))
	if err != nil {
		return false, storeError(err)
	}
	return rev != 0, nil
}

// CredentialsRevoked reports whether an access token of subject issued at
// issuedAt and bound to the DPoP key jkt ("" for none) was revoked: by
// RevokeTokens (tokens) or by RevokeKey (key). With a store that is a
// MultiGetter both are one read (one Redis round trip: the keys share the
// subject's hash tag). A store failure is a *StoreError with
// ReasonStoreUnavailable: treat it as revoked (fail closed).
func (r *Revocations) CredentialsRevoked(ctx context.Context, subject string, issuedAt time.Time, jkt string) (tokens, key bool, err error) {
	keys := []string{tokenRevocationKey(subject)}
	if jkt != "" {
		keys = append(keys, keyRevocationKey(subject, jkt))
	}
	vals, err := getMany(ctx, r.store, keys...)
	if err != nil {
		return false, false, err
	}
	tokens = vals[0] != 0 && issuedAt.Unix() <= vals[0]
	key = len(vals) > 1 && vals[1] != 0
	return tokens, key, nil
}
