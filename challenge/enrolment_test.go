package challenge_test

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

	"github.com/stepupgrpc/stepup/challenge"
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
			keys, err := challenge.LoadDeviceKeys(path)
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
			secrets, err := challenge.LoadTOTPSecrets(path)
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
