package challenge

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"

	"github.com/lestrrat-go/jwx/v3/jwk"

	"github.com/stepupgrpc/stepup/dpop"
	"github.com/stepupgrpc/stepup/internal/limited"
)

// maxKeyFile bounds the size of a key file.
const maxKeyFile = 64 << 10

// ParsePrivateKey reads one private key, as a JWK (RFC 7517) or a PEM
// block: PKCS #8 ("PRIVATE KEY"), SEC 1 ("EC PRIVATE KEY") or PKCS #1
// ("RSA PRIVATE KEY"). It returns a crypto.Signer for DeviceKeyResponder
// or dpop.NewSigner: an *ecdsa.PrivateKey (P-256 or P-384), an
// ed25519.PrivateKey or an *rsa.PrivateKey of 2048 to 8192 bits. It
// refuses a public key, an encrypted PEM block, anything after the key
// (a second PEM block, a JWK Set), and key types or sizes DPoP and the
// device-key factor do not accept.
//
// `stepup keygen --format jwk|pem` writes what it reads.
func ParsePrivateKey(data []byte) (crypto.Signer, error) {
	raw, err := parseKeyFile(data, true)
	if err != nil {
		return nil, err
	}
	signer, ok := raw.(crypto.Signer)
	if !ok {
		return nil, errors.New("challenge: ParsePrivateKey: not a private key")
	}
	if err := acceptedKey(signer.Public()); err != nil {
		return nil, fmt.Errorf("challenge: ParsePrivateKey: %w", err)
	}
	return signer, nil
}

// ParsePublicKey reads one public key, as a JWK or a PEM "PUBLIC KEY"
// block (PKIX): what a device registers with the server (LoadDeviceKeys
// takes the same keys as JWKs). It refuses a private key (the server must
// not hold a device's private key), anything after the key, and key types
// or sizes DPoP and the device-key factor do not accept.
func ParsePublicKey(data []byte) (crypto.PublicKey, error) {
	raw, err := parseKeyFile(data, false)
	if err != nil {
		return nil, err
	}
	if _, ok := raw.(crypto.Signer); ok {
		return nil, errors.New("challenge: ParsePublicKey: a private key: register the public key only")
	}
	if err := acceptedKey(raw); err != nil {
		return nil, fmt.Errorf("challenge: ParsePublicKey: %w", err)
	}
	return raw, nil
}

// minRSABits is the smallest RSA modulus a key file may hold (NIST SP
// 800-131A: 2048 bits).
const minRSABits = 2048

// acceptedKey refuses what DPoP and the device-key factor do not verify
// (dpop.ThumbprintOf's rules) and RSA keys under minRSABits.
func acceptedKey(pub crypto.PublicKey) error {
	if _, err := dpop.ThumbprintOf(pub); err != nil {
		return err
	}
	if k, ok := pub.(*rsa.PublicKey); ok && k.N.BitLen() < minRSABits {
		return fmt.Errorf("an RSA key of %d bits, under %d", k.N.BitLen(), minRSABits)
	}
	return nil
}

// LoadPrivateKey reads ParsePrivateKey's formats from a file of at most
// 64 KiB.
func LoadPrivateKey(path string) (crypto.Signer, error) { return loadKey(path, ParsePrivateKey) }

// LoadPublicKey reads ParsePublicKey's formats from a file of at most
// 64 KiB.
func LoadPublicKey(path string) (crypto.PublicKey, error) { return loadKey(path, ParsePublicKey) }

func loadKey[K any](path string, parse func([]byte) (K, error)) (K, error) {
	var zero K
	data, err := limited.ReadFile(path, maxKeyFile)
	if err != nil {
		return zero, err
	}
	k, err := parse(data)
	if err != nil {
		return zero, fmt.Errorf("%s: %w", path, err)
	}
	return k, nil
}

// parseKeyFile returns the key of a JWK or of a single PEM block, as the
// standard library's types (ed25519 private keys as values). want tells
// the error messages which kind the caller expects.
func parseKeyFile(data []byte, wantPrivate bool) (any, error) {
	name := "ParsePublicKey"
	if wantPrivate {
		name = "ParsePrivateKey"
	}
	trimmed := bytes.TrimSpace(data)
	if len(trimmed) == 0 {
		return nil, fmt.Errorf("challenge: %s: empty", name)
	}
	if trimmed[0] == '{' {
		key, err := jwk.ParseKey(trimmed)
		if err != nil {
			return nil, fmt.Errorf("challenge: %s: not a JWK: %w", name, err)
		}
		var raw any
		if err := jwk.Export(key, &raw); err != nil {
			return nil, fmt.Errorf("challenge: %s: %w", name, err)
		}
		return derefKey(raw), nil
	}
	block, rest := pem.Decode(trimmed)
	if block == nil {
		return nil, fmt.Errorf("challenge: %s: neither a JWK nor a PEM block", name)
	}
	if len(bytes.TrimSpace(rest)) != 0 {
		return nil, fmt.Errorf("challenge: %s: data after the %s block (one key per file)", name, block.Type)
	}
	if _, encrypted := block.Headers["Proc-Type"]; encrypted {
		return nil, fmt.Errorf("challenge: %s: an encrypted PEM block: decrypt it first", name)
	}
	var (
		raw any
		err error
	)
	switch block.Type {
	case "PRIVATE KEY":
		raw, err = x509.ParsePKCS8PrivateKey(block.Bytes)
	case "EC PRIVATE KEY":
		raw, err = x509.ParseECPrivateKey(block.Bytes)
	case "RSA PRIVATE KEY":
		raw, err = x509.ParsePKCS1PrivateKey(block.Bytes)
	case "PUBLIC KEY":
		raw, err = x509.ParsePKIXPublicKey(block.Bytes)
	case "ENCRYPTED PRIVATE KEY":
		return nil, fmt.Errorf("challenge: %s: an encrypted PKCS #8 key: decrypt it first", name)
	default:
		return nil, fmt.Errorf("challenge: %s: a PEM %q block, not a key", name, block.Type)
	}
	if err != nil {
		return nil, fmt.Errorf("challenge: %s: %s: %w", name, block.Type, err)
	}
	return derefKey(raw), nil
}

// derefKey gives every key the type the rest of the library uses: jwx
// exports Ed25519 keys as values already, and x509 returns them as values
// too; ECDSA and RSA keys stay pointers.
func derefKey(raw any) any {
	switch k := raw.(type) {
	case *ed25519.PrivateKey:
		return *k
	case *ed25519.PublicKey:
		return *k
	case ecdsa.PrivateKey:
		return &k
	case ecdsa.PublicKey:
		return &k
	case rsa.PrivateKey:
		return &k
	case rsa.PublicKey:
		return &k
	}
	return raw
}
