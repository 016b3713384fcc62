package cli

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"os"

	"github.com/lestrrat-go/jwx/v3/jwk"

	"github.com/stepupgrpc/stepup/internal/limited"
)

// MaxKeyFile bounds the size of a key or token file.
const MaxKeyFile = 64 << 10

// ReadFile reads the file at path, refusing one larger than limit bytes.
func ReadFile(path string, limit int64) ([]byte, error) {
	return limited.ReadFile(path, limit)
}

// WriteNewFile creates path with perm and writes data to it. It never
// overwrites an existing file.
func WriteNewFile(path string, data []byte, perm os.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// NewP256Key creates a P-256 private key and returns it both as is and as
// a private JWK.
func NewP256Key() (*ecdsa.PrivateKey, jwk.Key, error) {
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	key, err := jwk.Import(priv)
	if err != nil {
		return nil, nil, err
	}
	return priv, key, nil
}

// WritePrivateJWK writes key as JSON on one line to a new file at path,
// readable by its owner only (mode 0600). It never overwrites a file.
func WritePrivateJWK(path string, key jwk.Key) error {
	data, err := json.Marshal(key)
	if err != nil {
		return err
	}
	return WriteNewFile(path, append(data, '\n'), 0o600)
}

// ReadPrivateJWK reads a private JWK file of at most MaxKeyFile bytes; see
// ParsePrivateJWK.
func ReadPrivateJWK(path string) (jwk.Key, error) {
	data, err := ReadFile(path, MaxKeyFile)
	if err != nil {
		return nil, err
	}
	return ParsePrivateJWK(path, data)
}

// ParsePrivateJWK parses data, read from the file at path, as a JWK and
// checks that it is an asymmetric private key. Its errors name path.
func ParsePrivateJWK(path string, data []byte) (jwk.Key, error) {
	key, err := jwk.ParseKey(data)
	if err != nil {
		return nil, fmt.Errorf("%s: not a JWK: %w", path, err)
	}
	if private, err := jwk.IsPrivateKey(key); err != nil || !private {
		return nil, fmt.Errorf("%s: not an asymmetric private key", path)
	}
	return key, nil
}
