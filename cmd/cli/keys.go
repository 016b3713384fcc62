package cli

import (
	"crypto"
	"crypto/ed25519"
	"fmt"

	"github.com/lestrrat-go/jwx/v3/jwk"
)

// ReadKey reads a JWK or PEM key file.
func ReadKey(path string) (jwk.Key, error) {
	data, err := ReadFile(path, MaxKeyFile)
	if err != nil {
		return nil, err
	}
	key, err := jwk.ParseKey(data)
	if err != nil {
		if key, err = jwk.ParseKey(data, jwk.WithPEM(true)); err != nil {
			return nil, fmt.Errorf("%s: neither a JWK nor a PEM key: %w", path, err)
		}
	}
	return key, nil
}

// ReadPublicKey reads a key file and returns its public key.
func ReadPublicKey(path string) (crypto.PublicKey, error) {
	key, err := ReadKey(path)
	if err != nil {
		return nil, err
	}
	pub, err := key.PublicKey()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	var raw any
	if err := jwk.Export(pub, &raw); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return raw, nil
}

// ReadSigner reads a private key file as a crypto.Signer.
func ReadSigner(path string) (crypto.Signer, jwk.Key, error) {
	key, err := ReadKey(path)
	if err != nil {
		return nil, nil, err
	}
	if private, err := jwk.IsPrivateKey(key); err != nil || !private {
		return nil, nil, fmt.Errorf("%s: not a private key", path)
	}
	var raw any
	if err := jwk.Export(key, &raw); err != nil {
		return nil, nil, fmt.Errorf("%s: %w", path, err)
	}
	s, ok := raw.(crypto.Signer)
	if !ok {
		// jwk exports ed25519 keys as values.
		if k, isEd := raw.(ed25519.PrivateKey); isEd {
			return k, key, nil
		}
		return nil, nil, fmt.Errorf("%s: a %T cannot sign", path, raw)
	}
	return s, key, nil
}
