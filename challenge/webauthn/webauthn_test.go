package webauthn_test

import (
	"strings"
	"testing"

	"github.com/stepupgrpc/stepup/challenge"
	"github.com/stepupgrpc/stepup/challenge/webauthn"
)

// TestWithRefusesMistakes: every relying-party mistake is reported by
// NewService, with the field it is about.
func TestWithRefusesMistakes(t *testing.T) {
	key, err := challenge.GenerateKey("k1")
	if err != nil {
		t.Fatal(err)
	}
	keys, err := challenge.NewKeySet(key)
	if err != nil {
		t.Fatal(err)
	}
	store := webauthn.NewMemoryCredentials()
	ok := webauthn.Config{RPID: "bank.example", RPOrigins: []string{"https://bank.example"}}
	with := func(edit func(*webauthn.Config)) webauthn.Config {
		c := ok
		c.RPOrigins = append([]string(nil), ok.RPOrigins...)
		edit(&c)
		return c
	}
	if _, err := challenge.NewService(challenge.WithKeys(keys), webauthn.With(ok, store)); err != nil {
		t.Fatalf("the control is refused: %v", err)
	}
	for _, tc := range []struct {
		name  string
		cfg   webauthn.Config
		store webauthn.Store
		want  string
	}{
		{"nil store", ok, nil, "nil Store"},
		{"no RPID", with(func(c *webauthn.Config) { c.RPID = "" }), store, "RPID is required"},
		{"RPID with scheme", with(func(c *webauthn.Config) { c.RPID = "https://bank.example" }), store, "lower-case domain"},
		{"RPID with port", with(func(c *webauthn.Config) { c.RPID = "bank.example:443" }), store, "lower-case domain"},
		{"RPID upper case", with(func(c *webauthn.Config) { c.RPID = "Bank.example" }), store, "lower-case domain"},
		{"RPID an IP address", with(func(c *webauthn.Config) { c.RPID = "192.0.2.1" }), store, "lower-case domain"},
		{"no origin", with(func(c *webauthn.Config) { c.RPOrigins = nil }), store, "at least one origin"},
		{"origin with a path", with(func(c *webauthn.Config) { c.RPOrigins = []string{"https://bank.example/app"} }), store, "is not an origin"},
		{"origin with a trailing slash", with(func(c *webauthn.Config) { c.RPOrigins = []string{"https://bank.example/"} }), store, "is not an origin"},
		{"origin upper case", with(func(c *webauthn.Config) { c.RPOrigins = []string{"https://BANK.example"} }), store, "is not an origin"},
		{"plain http", with(func(c *webauthn.Config) { c.RPOrigins = []string{"http://bank.example"} }), store, "must be https"},
		{"another site", with(func(c *webauthn.Config) { c.RPOrigins = []string{"https://evil.example"} }), store, "neither the RPID"},
		{"a suffix that is not a subdomain", with(func(c *webauthn.Config) { c.RPOrigins = []string{"https://notbank.example"} }), store, "neither the RPID"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := challenge.NewService(challenge.WithKeys(keys), webauthn.With(tc.cfg, tc.store))
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "webauthn: New") {
				t.Fatalf("err %v, want one naming webauthn: New and %q", err, tc.want)
			}
		})
	}
	// A subdomain and http on localhost are origins a browser sends.
	for _, cfg := range []webauthn.Config{
		with(func(c *webauthn.Config) { c.RPOrigins = []string{"https://approve.bank.example:8443"} }),
		{RPID: "localhost", RPOrigins: []string{"http://localhost:8080"}},
	} {
		if _, err := challenge.NewService(challenge.WithKeys(keys), webauthn.With(cfg, store)); err != nil {
			t.Errorf("%v refused: %v", cfg.RPOrigins, err)
		}
	}
}
