package main

import (
	"context"
	"strings"
	"testing"
	"time"
)

func TestValidate(t *testing.T) {
	base := func() *config {
		return &config{listen: "127.0.0.1:0", issuer: "https://issuer.example", audience: "https://bank.example",
			jwks: "jwks.json", totpSecrets: "totp.json", insecurePlaintext: true,
			jwksRefresh: 5 * time.Minute, tokenLeeway: 30 * time.Second}
	}
	for _, tc := range []struct {
		name    string
		edit    func(*config)
		wantErr string
	}{
		{"plaintext on 127.0.0.1", func(*config) {}, ""},
		{"plaintext on [::1]", func(c *config) { c.listen = "[::1]:8443" }, ""},
		{"plaintext on localhost", func(c *config) { c.listen = "localhost:8443" }, ""},
		{"plaintext on 0.0.0.0", func(c *config) { c.listen = "0.0.0.0:8443" }, "not a loopback address"},
		{"plaintext on every interface", func(c *config) { c.listen = ":8443" }, "not a loopback address"},
		{"TLS anywhere", func(c *config) {
			c.insecurePlaintext, c.tlsCert, c.tlsKey, c.listen, c.authorities = false, "c.pem", "k.pem", ":8443", []string{"bank.example"}
		}, ""},
		{"TLS without an authority", func(c *config) { c.insecurePlaintext, c.tlsCert, c.tlsKey = false, "c.pem", "k.pem" }, "--authority is required with TLS"},
		{"TLS and plaintext", func(c *config) { c.tlsCert, c.tlsKey = "c.pem", "k.pem" }, "cannot be combined"},
		{"certificate without key", func(c *config) { c.insecurePlaintext, c.tlsCert = false, "c.pem" }, "go together"},
		{"no transport", func(c *config) { c.insecurePlaintext = false }, "are required"},
		{"no factor", func(c *config) { c.totpSecrets = "" }, "--totp-secrets, --device-keys or --webauthn-credentials"},
		{"webauthn alone", func(c *config) {
			c.totpSecrets, c.webauthnCreds, c.webauthnOrigin = "", "wa.json", "http://localhost:9000"
		}, ""},
		{"webauthn without an origin", func(c *config) { c.webauthnCreds = "wa.json" }, "--webauthn-credentials and --webauthn-origin go together"},
		{"approval without webauthn", func(c *config) { c.approvalListen = "127.0.0.1:0" }, "--approval-listen needs --webauthn-credentials"},
		{"keys from a URL", func(c *config) { c.jwks, c.jwksURL = "", "https://issuer.example/jwks" }, ""},
		{"keys by discovery", func(c *config) { c.jwks, c.discover = "", true }, ""},
		{"two sources of keys", func(c *config) { c.jwksURL = "https://issuer.example/jwks" }, "exactly one of --jwks, --jwks-url and --discover"},
		{"no keys", func(c *config) { c.jwks = "" }, "exactly one of --jwks, --jwks-url and --discover"},
		{"a leeway of 10 minutes", func(c *config) { c.tokenLeeway = 10 * time.Minute }, "--token-leeway 10m0s is outside 1s..5m"},
		{"no issuer", func(c *config) { c.issuer = "" }, "--issuer is required"},
		{"an audit trail", func(c *config) { c.auditDir, c.auditKey, c.auditCopy = "audit", "audit.jwk", "copies.jsonl" }, ""},
		{"an audit directory without a key", func(c *config) { c.auditDir = "audit" }, "--audit-dir and --audit-key go together"},
		{"an audit key without a directory", func(c *config) { c.auditKey = "audit.jwk" }, "--audit-dir and --audit-key go together"},
		{"checkpoint copies without a trail", func(c *config) { c.auditCopy = "copies.jsonl" }, "--audit-checkpoint-copy needs --audit-dir"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := base()
			tc.edit(c)
			err := c.validate()
			if tc.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("error %v, want one containing %q", err, tc.wantErr)
			}
		})
	}
}

// TestHelpListsFactorsAndFlags: --help names the four factors and the flag
// that turns each on, and the key and leeway flags.
func TestHelpListsFactorsAndFlags(t *testing.T) {
	var out strings.Builder
	if code := run(context.Background(), []string{"--help"}, &out, &out); code != 0 {
		t.Fatalf("exit %d", code)
	}
	for _, want := range []string{"totp", "--totp-secrets", "device_key", "--device-keys", "webauthn", "--webauthn-credentials",
		"approval", "--approval-listen", "--jwks-url", "--discover", "--jwks-refresh", "--token-leeway"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("--help lacks %q", want)
		}
	}
}
