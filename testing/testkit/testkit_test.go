package testkit_test

import (
	"context"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jws"
	"github.com/lestrrat-go/jwx/v3/jwt"

	"github.com/stepupgrpc/stepup/testing/testkit"
)

func TestClock(t *testing.T) {
	start := time.Unix(1_800_000_000, 0)
	c := testkit.NewClock(start)
	c.Advance(time.Minute)
	if got := c.Now(); !got.Equal(start.Add(time.Minute)) {
		t.Fatalf("after Advance: %v", got)
	}
	c.Set(start)
	if got := c.Now(); !got.Equal(start) {
		t.Fatalf("after Set: %v", got)
	}
}

func TestIssuerMint(t *testing.T) {
	is := testkit.NewIssuer(t)
	now := time.Unix(1_800_000_000, 0)
	signed := is.Mint(t, now, testkit.TokenOptions{Issuer: "https://issuer.example", Audience: "https://api.example", JKT: "abc", Scope: "a b"})
	msg, err := jws.Parse([]byte(signed))
	if err != nil {
		t.Fatal(err)
	}
	h := msg.Signatures()[0].ProtectedHeaders()
	if typ, _ := h.Type(); typ != "at+jwt" {
		t.Fatalf("typ %q", typ)
	}
	if kid, _ := h.KeyID(); kid != testkit.IssuerKeyID {
		t.Fatalf("kid %q", kid)
	}
	tok, err := jwt.Parse([]byte(signed), jwt.WithKeySet(is.PublicSet()), jwt.WithClock(jwt.ClockFunc(func() time.Time { return now })),
		jwt.WithIssuer("https://issuer.example"), jwt.WithAudience("https://api.example"), jwt.WithContext(context.Background()))
	if err != nil {
		t.Fatal(err)
	}
	if sub, _ := tok.Subject(); sub != "alice" {
		t.Fatalf("sub %q", sub)
	}
	var cnf map[string]any
	if err := tok.Get("cnf", &cnf); err != nil || cnf["jkt"] != "abc" {
		t.Fatalf("cnf %v, %v", cnf, err)
	}
	if exp, _ := tok.Expiration(); !exp.Equal(now.Add(time.Hour)) {
		t.Fatalf("exp %v", exp)
	}
}
