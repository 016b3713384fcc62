package auditlog_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lestrrat-go/jwx/v3/jwk"

	"github.com/stepupgrpc/stepup/auditlog"
)

// TestKeyFiles: a key written by MarshalPrivateJWK (the format of `stepup
// keygen`) reads back with ReadSigningKey and signs checkpoints its public
// JWKS verifies; ParseKeySet refuses what a verifier must not take.
func TestKeyFiles(t *testing.T) {
	dir := t.TempDir()
	ec, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ed, err := auditlog.GenerateKey("audit-ed")
	if err != nil {
		t.Fatal(err)
	}
	for _, key := range []auditlog.SigningKey{ed, {ID: "audit-ec", Signer: ec}} {
		data, err := auditlog.MarshalPrivateJWK(key)
		if err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(dir, key.ID+".jwk")
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		read, err := auditlog.ReadSigningKey(path)
		if err != nil || read.ID != key.ID {
			t.Fatalf("%s: %v %+v", key.ID, err, read)
		}
		jwks, err := auditlog.PublicJWKS(read)
		if err != nil {
			t.Fatal(err)
		}
		keys, err := auditlog.ParseKeySet(jwks)
		if err != nil {
			t.Fatal(err)
		}
		trail := filepath.Join(dir, key.ID)
		s, _ := openSink(t, trail, read)
		writeEvents(s, 0, 3)
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		if res := verify(t, keys, []string{trail}); !res.OK() || res.Chains[0].KeyIDs[0] != key.ID {
			t.Errorf("%s: %s", key.ID, problems(res))
		}
		// The private file is not a key set for verifiers.
		if _, err := auditlog.ParseKeySet(data); err == nil || !strings.Contains(err.Error(), "private key") {
			t.Errorf("%s: a private key taken as a verifier's key: %v", key.ID, err)
		}
	}

	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	pubJWK := func(raw any, set map[string]any) string {
		k, err := jwk.Import(raw)
		if err != nil {
			t.Fatal(err)
		}
		for name, v := range set {
			if err := k.Set(name, v); err != nil {
				t.Fatal(err)
			}
		}
		data, err := json.Marshal(k)
		if err != nil {
			t.Fatal(err)
		}
		return string(data)
	}
	edPub := ed.Signer.Public()
	for _, c := range []struct{ name, doc, want string }{
		{"no kid", `{"keys":[` + pubJWK(edPub, nil) + `]}`, "has no kid"},
		{"two keys with one kid", `{"keys":[` + pubJWK(edPub, map[string]any{"kid": "a"}) + `,` + pubJWK(&ec.PublicKey, map[string]any{"kid": "a"}) + `]}`, `two keys with kid "a"`},
		{"an RSA key", `{"keys":[` + pubJWK(&rsaKey.PublicKey, map[string]any{"kid": "r"}) + `]}`, "Ed25519 or ECDSA P-256 only"},
		{"an alg that does not fit", pubJWK(edPub, map[string]any{"kid": "e", "alg": "ES256"}), `alg "ES256" does not fit`},
		{"no keys", `{"keys":[]}`, "no keys"},
		{"not JSON", `{"keys":`, "not a JWK"},
	} {
		if _, err := auditlog.ParseKeySet([]byte(c.doc)); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want %q", c.name, err, c.want)
		}
	}
	if _, err := auditlog.ParseKeySet([]byte(pubJWK(edPub, map[string]any{"kid": "e", "alg": "EdDSA"}))); err != nil {
		t.Errorf("one public JWK with alg EdDSA: %v", err)
	}
	if _, err := auditlog.MarshalPrivateJWK(auditlog.SigningKey{ID: "x", Signer: &blockingSigner{Signer: ed.Signer}}); err == nil {
		t.Error("an opaque signer marshalled as a private key")
	}
}
