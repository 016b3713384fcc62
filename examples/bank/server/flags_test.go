package main

import (
	"strings"
	"testing"
)

func TestValidate(t *testing.T) {
	base := func() *config {
		return &config{listen: "127.0.0.1:0", issuer: "https://issuer.example", audience: "https://bank.example",
			jwks: "jwks.json", totpSecrets: "totp.json", insecurePlaintext: true}
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
		{"no factor", func(c *config) { c.totpSecrets = "" }, "--totp-secrets or --device-keys"},
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
