package challenge_test

import (
	"context"
	"strings"
	"testing"

	"github.com/go-webauthn/webauthn/webauthn"

	"github.com/stepupgrpc/stepup/challenge"
)

// TestWithWebAuthnConfigRefusesMistakes: every relying-party mistake is
// reported by NewService, with the field it is about.
func TestWithWebAuthnConfigRefusesMistakes(t *testing.T) {
	keys := newKeySet(t, newKey(t, "k1"))
	store := challenge.NewMemoryWebAuthnCredentials()
	ok := challenge.WebAuthnConfig{RPID: "bank.example", RPOrigins: []string{"https://bank.example"}}
	with := func(edit func(*challenge.WebAuthnConfig)) challenge.WebAuthnConfig {
		c := ok
		c.RPOrigins = append([]string(nil), ok.RPOrigins...)
		edit(&c)
		return c
	}
	if _, err := challenge.NewService(challenge.WithKeys(keys), challenge.WithWebAuthnConfig(ok, store)); err != nil {
		t.Fatalf("the control is refused: %v", err)
	}
	for _, tc := range []struct {
		name  string
		cfg   challenge.WebAuthnConfig
		store challenge.WebAuthnStore
		want  string
	}{
		{"nil store", ok, nil, "nil WebAuthnStore"},
		{"no RPID", with(func(c *challenge.WebAuthnConfig) { c.RPID = "" }), store, "RPID is required"},
		{"RPID with scheme", with(func(c *challenge.WebAuthnConfig) { c.RPID = "https://bank.example" }), store, "lower-case domain"},
		{"RPID with port", with(func(c *challenge.WebAuthnConfig) { c.RPID = "bank.example:443" }), store, "lower-case domain"},
		{"RPID upper case", with(func(c *challenge.WebAuthnConfig) { c.RPID = "Bank.example" }), store, "lower-case domain"},
		{"RPID an IP address", with(func(c *challenge.WebAuthnConfig) { c.RPID = "192.0.2.1" }), store, "lower-case domain"},
		{"no origin", with(func(c *challenge.WebAuthnConfig) { c.RPOrigins = nil }), store, "at least one origin"},
		{"origin with a path", with(func(c *challenge.WebAuthnConfig) { c.RPOrigins = []string{"https://bank.example/app"} }), store, "is not an origin"},
		{"origin with a trailing slash", with(func(c *challenge.WebAuthnConfig) { c.RPOrigins = []string{"https://bank.example/"} }), store, "is not an origin"},
		{"origin upper case", with(func(c *challenge.WebAuthnConfig) { c.RPOrigins = []string{"https://BANK.example"} }), store, "is not an origin"},
		{"plain http", with(func(c *challenge.WebAuthnConfig) { c.RPOrigins = []string{"http://bank.example"} }), store, "must be https"},
		{"another site", with(func(c *challenge.WebAuthnConfig) { c.RPOrigins = []string{"https://evil.example"} }), store, "neither the RPID"},
		{"a suffix that is not a subdomain", with(func(c *challenge.WebAuthnConfig) { c.RPOrigins = []string{"https://notbank.example"} }), store, "neither the RPID"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := challenge.NewService(challenge.WithKeys(keys), challenge.WithWebAuthnConfig(tc.cfg, tc.store))
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "WithWebAuthnConfig") {
				t.Fatalf("err %v, want one naming WithWebAuthnConfig and %q", err, tc.want)
			}
		})
	}
	// A subdomain and http on localhost are origins a browser sends.
	for _, cfg := range []challenge.WebAuthnConfig{
		with(func(c *challenge.WebAuthnConfig) { c.RPOrigins = []string{"https://approve.bank.example:8443"} }),
		{RPID: "localhost", RPOrigins: []string{"http://localhost:8080"}},
	} {
		if _, err := challenge.NewService(challenge.WithKeys(keys), challenge.WithWebAuthnConfig(cfg, store)); err != nil {
			t.Errorf("%v refused: %v", cfg.RPOrigins, err)
		}
	}
}

// TestDeprecatedWebAuthnAPI: a deployment still on go-webauthn's types
// (WithWebAuthn, SoftAuthenticator.Register, MemoryWebAuthnCredentials.Add)
// keeps working for the deprecation period, counter updates included.
func TestDeprecatedWebAuthnAPI(t *testing.T) {
	legacy := challenge.NewMemoryWebAuthnCredentials()
	rp, err := webauthn.New(&webauthn.Config{RPID: rpID, RPDisplayName: "Bank", RPOrigins: []string{rpOrigin}})
	if err != nil {
		t.Fatal(err)
	}
	f := newFixture(t, withOptions(challenge.WithWebAuthn(rp, legacy)))
	authn, err := challenge.NewSoftAuthenticator(rpID, rpOrigin)
	if err != nil {
		t.Fatal(err)
	}
	cred, err := authn.Register([]byte(webauthnUser))
	if err != nil {
		t.Fatal(err)
	}
	legacy.Add(subject, []byte(webauthnUser), *cred)
	for i := 1; i <= 2; i++ {
		call := f.call(bound, transfer(int64(i), "EUR", "DE89"))
		ch := f.challengeFor(call)
		ev, err := challenge.WebAuthnResponder(authn).Respond(context.Background(), ch)
		if err != nil {
			t.Fatal(err)
		}
		call.Answer = f.answer(f.client, ch, ev)
		if out := f.check(call); !out.Satisfied {
			t.Fatalf("step-up %d: %+v", i, out)
		}
		if got := legacy.SignCount(subject); got != uint32(i) {
			t.Fatalf("stored counter %d, want %d", got, i)
		}
	}
	u, err := legacy.WebAuthnUser(context.Background(), subject)
	if err != nil || len(u.WebAuthnCredentials()) != 1 || u.WebAuthnCredentials()[0].Authenticator.SignCount != 2 {
		t.Fatalf("WebAuthnUser: %v %+v", err, u)
	}
	// A cloned authenticator (its counter moved back) is refused on
	// this path too.
	authn.SetCounter(0)
	call := f.call(bound, transfer(3, "EUR", "DE89"))
	ch := f.challengeFor(call)
	ev, err := challenge.WebAuthnResponder(authn).Respond(context.Background(), ch)
	if err != nil {
		t.Fatal(err)
	}
	call.Answer = f.answer(f.client, ch, ev)
	if out := f.check(call); out.Satisfied {
		t.Fatal("a counter moved back was accepted")
	}
}
