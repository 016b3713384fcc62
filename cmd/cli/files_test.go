package cli

import (
	"bytes"
	"crypto/ecdsa"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/lestrrat-go/jwx/v3/jwk"
)

func TestReadFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "f")
	if err := os.WriteFile(path, []byte("12345"), 0o600); err != nil {
		t.Fatal(err)
	}
	if data, err := ReadFile(path, 5); err != nil || string(data) != "12345" {
		t.Errorf("ReadFile(limit 5) = %q, %v; want the content", data, err)
	}
	if _, err := ReadFile(path, 4); err == nil || err.Error() != path+": larger than 4 bytes" {
		t.Errorf("ReadFile(limit 4) = %v, want %q", err, path+": larger than 4 bytes")
	}
	if _, err := ReadFile(filepath.Join(dir, "missing"), 5); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("ReadFile(missing) = %v, want os.ErrNotExist", err)
	}
}

func TestWriteNewFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "f")
	if err := WriteNewFile(path, []byte("one"), 0o640); err != nil {
		t.Fatal(err)
	}
	if err := WriteNewFile(path, []byte("two"), 0o640); !errors.Is(err, os.ErrExist) {
		t.Errorf("second WriteNewFile = %v, want os.ErrExist", err)
	}
	data, err := os.ReadFile(path)
	if err != nil || string(data) != "one" {
		t.Errorf("file holds %q, %v; want the first content", data, err)
	}
	checkMode(t, path, 0o640)
}

func TestPrivateJWKRoundTrip(t *testing.T) {
	priv, key, err := NewP256Key()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "key.jwk")
	if err := WritePrivateJWK(path, key); err != nil {
		t.Fatal(err)
	}
	if err := WritePrivateJWK(path, key); !errors.Is(err, os.ErrExist) {
		t.Errorf("second WritePrivateJWK = %v, want os.ErrExist", err)
	}
	checkMode(t, path, 0o600)
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasSuffix(data, []byte("}\n")) || bytes.Count(data, []byte("\n")) != 1 {
		t.Errorf("file is not one JSON line: %q", data)
	}

	got, err := ReadPrivateJWK(path)
	if err != nil {
		t.Fatal(err)
	}
	var raw any
	if err := jwk.Export(got, &raw); err != nil {
		t.Fatal(err)
	}
	if k, ok := raw.(*ecdsa.PrivateKey); !ok || !k.Equal(priv) {
		t.Errorf("read back %T, want the written P-256 key", raw)
	}
}

func TestReadPrivateJWKRefuses(t *testing.T) {
	_, key, err := NewP256Key()
	if err != nil {
		t.Fatal(err)
	}
	pub, err := key.PublicKey()
	if err != nil {
		t.Fatal(err)
	}
	pubJSON, err := json.Marshal(pub)
	if err != nil {
		t.Fatal(err)
	}
	privJSON, err := json.Marshal(key)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	for _, tc := range []struct {
		name, content, want string
	}{
		{"public", string(pubJSON), "not an asymmetric private key"},
		{"symmetric", `{"kty": "oct", "k": "c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0"}`, "not an asymmetric private key"},
		{"garbage", "not json", "not a JWK: "},
		{"too large", strings.Repeat(" ", MaxKeyFile) + string(privJSON), "larger than 65536 bytes"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(dir, tc.name)
			if err := os.WriteFile(path, []byte(tc.content), 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := ReadPrivateJWK(path)
			if err == nil || !strings.HasPrefix(err.Error(), path+": "+tc.want) {
				t.Errorf("ReadPrivateJWK = %v, want %q", err, path+": "+tc.want)
			}
		})
	}
	// ParsePrivateJWK itself has no size bound.
	big := []byte(strings.Repeat(" ", MaxKeyFile) + string(privJSON))
	if _, err := ParsePrivateJWK("big", big); err != nil {
		t.Errorf("ParsePrivateJWK of a large padded key = %v", err)
	}
}

func checkMode(t *testing.T, path string, want os.FileMode) {
	t.Helper()
	if runtime.GOOS == "windows" {
		return
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	// The umask may clear bits, never add them.
	if got := st.Mode().Perm(); got&^want != 0 {
		t.Errorf("mode %v, want at most %v", got, want)
	}
}
