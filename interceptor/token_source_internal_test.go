package interceptor

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stepupgrpc/stepup/testing/testkit"
)

// TestCachingTokenSourceReusesShortLivedTokens: a token is replaced a
// minute before it expires, or when a quarter of its lifetime is left if
// that is shorter. A 60 s or 30 s token (common with DPoP-bound tokens) is
// reused for three quarters of its life, not fetched again on every call;
// an hour's token is still replaced a minute early.
func TestCachingTokenSourceReusesShortLivedTokens(t *testing.T) {
	for _, tc := range []struct {
		lifetime, renewAfter time.Duration
	}{
		{30 * time.Second, 22500 * time.Millisecond},
		{60 * time.Second, 45 * time.Second},
		{2 * time.Minute, 90 * time.Second},
		{time.Hour, 59 * time.Minute},
	} {
		t.Run(tc.lifetime.String(), func(t *testing.T) {
			clock := testkit.NewClock(time.Unix(1_800_000_000, 0))
			fetches := 0
			s := NewCachingTokenSource(func(context.Context) (string, time.Time, error) {
				fetches++
				return fmt.Sprintf("token-%d", fetches), clock.Now().Add(tc.lifetime), nil
			})
			s.now = clock.Now
			get := func() string {
				t.Helper()
				tok, err := s.Token(context.Background())
				if err != nil {
					t.Fatal(err)
				}
				return tok
			}
			if get() != "token-1" {
				t.Fatal("first call")
			}
			clock.Advance(tc.renewAfter - time.Millisecond)
			if tok := get(); tok != "token-1" || fetches != 1 {
				t.Errorf("just before renewal: %s after %d fetches, want token-1 reused", tok, fetches)
			}
			clock.Advance(time.Millisecond)
			if tok := get(); tok != "token-2" || fetches != 2 {
				t.Errorf("at renewal (%s before expiry): %s after %d fetches, want a new token", tc.lifetime-tc.renewAfter, tok, fetches)
			}
		})
	}
	t.Run("no expiry", func(t *testing.T) {
		clock := testkit.NewClock(time.Unix(1_800_000_000, 0))
		fetches := 0
		s := NewCachingTokenSource(func(context.Context) (string, time.Time, error) { fetches++; return "t", time.Time{}, nil })
		s.now = clock.Now
		for range 3 {
			if _, err := s.Token(context.Background()); err != nil {
				t.Fatal(err)
			}
			clock.Advance(24 * time.Hour)
		}
		if fetches != 1 {
			t.Errorf("%d fetches of a token without expiry, want 1 (kept until refused)", fetches)
		}
	})
}
