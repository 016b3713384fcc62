package interceptor

import (
	"context"
	"errors"
	"sync"
	"time"
)

// TokenSource provides the access token for each call.
type TokenSource interface {
	Token(ctx context.Context) (string, error)
}

// TokenSourceFunc adapts a function (one that refreshes, say) to TokenSource.
type TokenSourceFunc func(ctx context.Context) (string, error)

// Token calls f.
func (f TokenSourceFunc) Token(ctx context.Context) (string, error) { return f(ctx) }

// RefreshableTokenSource is a TokenSource that can drop a token the server
// refused. When the Guard refuses a call's token (INVALID_TOKEN, for this
// call's own proof: the handler did not run), the Client calls Invalidate
// with that token and retries the call once with what Token returns next.
type RefreshableTokenSource interface {
	TokenSource
	Invalidate(token string)
}

// CachingTokenSource is a RefreshableTokenSource over fetch (a token
// request to your authorization server): it keeps the token until shortly
// before it expires (a minute, or a quarter of its lifetime when that is
// shorter, so that a token of a minute or less is reused too), or until the
// server refuses it. oauth2token.Source builds one over golang.org/x/oauth2.
type CachingTokenSource struct {
	fetch func(ctx context.Context) (string, time.Time, error)
	now   func() time.Time

	mu    sync.Mutex
	token string
	// renew is when the token is replaced; zero: kept until refused.
	renew time.Time
}

// ErrNotDPoPToken is returned (wrapped) by an oauth2token.Source when the
// authorization server issues a token whose token_type is not DPoP: a
// server that ignored the proof of the token request issues an unbound
// Bearer token (RFC 9449 §5), which a thief could use without the key.
var ErrNotDPoPToken = errors.New("interceptor: the authorization server did not issue a DPoP-bound token")

// NewCachingTokenSource returns a CachingTokenSource over fetch; a zero
// expiry from fetch means the token is kept until refused.
func NewCachingTokenSource(fetch func(ctx context.Context) (token string, expires time.Time, err error)) *CachingTokenSource {
	return &CachingTokenSource{fetch: fetch, now: time.Now}
}

// tokenEarly is how long before its expiry a cached token is replaced, at
// most: a token is replaced when a quarter of its lifetime is left if that
// is less (renewAt).
const tokenEarly = time.Minute

// renewAt is when a token fetched at now and expiring at exp is replaced:
// min(tokenEarly, lifetime/4) before exp, so that a long-lived token is
// replaced a minute early (calls in flight and clock skew do not meet an
// expired token) and a short-lived one (60 s or less, common with DPoP) is
// still reused for three quarters of its life instead of never.
func renewAt(now, exp time.Time) time.Time {
	if exp.IsZero() {
		return time.Time{}
	}
	margin := min(tokenEarly, exp.Sub(now)/4)
	return exp.Add(-max(margin, 0))
}

// Token returns the cached token, fetching a new one when there is none or
// it is due for renewal (a minute before it expires, or when a quarter of
// its lifetime is left if that is shorter).
func (s *CachingTokenSource) Token(ctx context.Context) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.token != "" && (s.renew.IsZero() || s.now().Before(s.renew)) {
		return s.token, nil
	}
	tok, exp, err := s.fetch(ctx)
	if err != nil {
		return "", err
	}
	if tok == "" {
		return "", errors.New("interceptor: the token source fetched an empty token")
	}
	s.token, s.renew = tok, renewAt(s.now(), exp)
	return tok, nil
}

// Invalidate drops token if it is the cached one.
func (s *CachingTokenSource) Invalidate(token string) {
	s.mu.Lock()
	if s.token == token {
		s.token = ""
	}
	s.mu.Unlock()
}

// StaticToken is a TokenSource that always returns the same token.
type StaticToken string

// Token returns t.
func (t StaticToken) Token(context.Context) (string, error) { return string(t), nil }
