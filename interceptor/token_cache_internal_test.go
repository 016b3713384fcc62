package interceptor

import (
	"context"
	"errors"
	"hash/maphash"
	"testing"
	"time"
)

// verifierFunc adapts a function to TokenVerifier.
type verifierFunc func(ctx context.Context, token string) (*Token, error)

func (f verifierFunc) VerifyToken(ctx context.Context, token string) (*Token, error) {
	return f(ctx, token)
}

// TestTokenCacheConfirmsTheWholeToken: the cache finds entries by a 64-bit
// hash, so two tokens can share a slot. An entry whose hash is another
// token's (planted here, as a collision would leave it) must not answer
// for that token: the token is verified, and refused.
func TestTokenCacheConfirmsTheWholeToken(t *testing.T) {
	c, err := newTokenCache(16)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Unix(1_800_000_000, 0)
	genuine := &Token{Subject: "alice", Expiry: now.Add(time.Hour)}
	var verified []string
	v := verifierFunc(func(_ context.Context, token string) (*Token, error) {
		verified = append(verified, token)
		if token == "genuine" {
			return genuine, nil
		}
		return nil, errors.New("bad signature")
	})
	ctx := context.Background()
	for range 2 {
		if tok, err := c.verify(ctx, v, "genuine", now, 0); err != nil || tok != genuine {
			t.Fatalf("genuine token: %v, %v", tok, err)
		}
	}
	if len(verified) != 1 {
		t.Fatalf("the genuine token was verified %d times, want once (then cached)", len(verified))
	}
	// A forged token whose hash collides with the genuine one's.
	c.lru.Add(maphash.String(c.seed, "forged"), &cachedToken{raw: "genuine", tok: genuine})
	if tok, err := c.verify(ctx, v, "forged", now, 0); err == nil {
		t.Fatalf("forged token answered from the cache as %+v", tok)
	}
	if len(verified) != 2 || verified[1] != "forged" {
		t.Fatalf("verifier calls %q, want the forged token verified", verified)
	}
}
