package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lestrrat-go/jwx/v3/jwk"
)

func TestLoadDeviceKeys(t *testing.T) {
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	privJWK, err := jwk.Import(priv)
	if err != nil {
		t.Fatal(err)
	}
	pubJWK, err := privJWK.PublicKey()
	if err != nil {
		t.Fatal(err)
	}
	privJSON, _ := json.Marshal(privJWK)
	pubJSON, _ := json.Marshal(pubJWK)

	for _, tc := range []struct {
		name, content, wantErr string
	}{
		{"public key", `{"alice": [` + string(pubJSON) + `]}`, ""},
		{"private key", `{"alice": [` + string(privJSON) + `]}`, "private key"},
		{"symmetric key", `{"alice": [{"kty": "oct", "k": "c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0"}]}`, "not an asymmetric key"},
		{"no keys", `{"alice": []}`, "no keys"},
		{"not an array", `{"alice": ` + string(pubJSON) + `}`, "expected an array"},
		{"subject twice", `{"alice": [` + string(pubJSON) + `], "alice": [` + string(pubJSON) + `]}`, "listed twice"},
		{"empty subject", `{"": [` + string(pubJSON) + `]}`, "empty subject"},
		{"trailing data", `{"alice": [` + string(pubJSON) + `]} {}`, "after the object"},
		{"not an object", `[]`, "expected a JSON object"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "device-keys.json")
			if err := os.WriteFile(path, []byte(tc.content), 0o600); err != nil {
				t.Fatal(err)
			}
			keys, err := loadDeviceKeys(path)
			if tc.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				if _, ok := keys["alice"][0].(*ecdsa.PublicKey); !ok || len(keys["alice"]) != 1 {
					t.Errorf("keys = %v, want alice's ECDSA public key", keys)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("error %v, want one containing %q", err, tc.wantErr)
			}
		})
	}
}

func TestLoadTOTPSecrets(t *testing.T) {
	for _, tc := range []struct {
		name, content, wantErr string
	}{
		{"valid", `{"alice": "KRSXG5CTMVRXEZLUKN2XAZLSKNSWG4TF"}`, ""},
		{"not base32", `{"alice": "not base32!"}`, "not valid base32"},
		{"not a string", `{"alice": 42}`, "must be a string"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "totp.json")
			if err := os.WriteFile(path, []byte(tc.content), 0o600); err != nil {
				t.Fatal(err)
			}
			secrets, err := loadTOTPSecrets(path)
			if tc.wantErr == "" {
				if err != nil || secrets["alice"] == "" {
					t.Fatalf("secrets %v, error %v", secrets, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("error %v, want one containing %q", err, tc.wantErr)
			}
		})
	}
}

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
		{"TLS anywhere", func(c *config) { c.insecurePlaintext, c.tlsCert, c.tlsKey, c.listen = false, "c.pem", "k.pem", ":8443" }, ""},
		{"TLS and plaintext", func(c *config) { c.tlsCert, c.tlsKey = "c.pem", "k.pem" }, "cannot be combined"},
		{"certificate without key", func(c *config) { c.insecurePlaintext, c.tlsCert = false, "c.pem" }, "go together"},
		{"no transport", func(c *config) { c.insecurePlaintext = false }, "are required"},
		{"no factor", func(c *config) { c.totpSecrets = "" }, "--totp-secrets or --device-keys"},
		{"no issuer", func(c *config) { c.issuer = "" }, "--issuer is required"},
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
