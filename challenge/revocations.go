package challenge

import (
	"context"
	"errors"
	"time"
)

// MaxTokenLifetime is the longest access token lifetime (exp - iat) a
// revocation covers: RevokeTokens and RevokeKey remember a revocation for
// MaxTokenLifetime plus 5 minutes, and a Guard built with
// interceptor.WithTokenRevocation refuses tokens that live longer
// (TOKEN_LIFETIME_TOO_LONG), which would work again once it is forgotten.
const MaxTokenLifetime = 24 * time.Hour

// revocationMemory is how long a token or key revocation is kept:
// MaxTokenLifetime, and the largest clock skew a Guard tolerates past a
// token's exp (interceptor.WithLeeway, at most 5 minutes).
const revocationMemory = MaxTokenLifetime + 5*time.Minute

// Revocations records and reads revocations of access tokens and DPoP keys
// in a Store: what a Guard built with interceptor.WithTokenRevocation
// checks on every call, on every replica that shares the store. A Service
// has one over its own store (Service.RevokeTokens, RevokeKey);
// NewRevocations makes one over any store, without keys or factors: for a
// program that only revokes (an administration tool), or for a Guard
// without step-up (interceptor.WithTokenRevocationFrom).
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

// RevokeTokens makes every access token of subject issued up to now
// (within the current second included) stop working, for a Guard with
// interceptor.WithTokenRevocation — even while its verified-token cache
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
	rev, err := r.store.Get(ctx, tokenRevocationKey(subject))
	if err != nil {
		return false, storeError(err)
	}
	return rev != 0 && issuedAt.Unix() <= rev, nil
}

func tokenRevocationKey(sub string) string { return subjectKey("revtok", sub) }

func keyRevocationKey(sub, jkt string) string { return subjectKey("revkey", sub, jkt) }

// RevokeKey makes every access token of subject bound to the DPoP key with
// RFC 7638 thumbprint jkt (cnf.jkt) stop working, for a Guard with
// interceptor.WithTokenRevocation: a stolen or lost key is refused on its
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
