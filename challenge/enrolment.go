package challenge

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/stepupgrpc/stepup/internal/limited"

	"github.com/lestrrat-go/jwx/v3/jwk"

	"github.com/stepupgrpc/stepup/dpop"
)

// maxEnrolmentFile bounds the size of an enrolment file.
const maxEnrolmentFile = 1 << 20

// LoadTOTPSecrets reads a JSON object mapping subjects to base32 TOTP
// secrets ({"alice": "JBSWY3DP..."}), and checks that every secret decodes.
// TOTPSecretsMap serves the result to totp.New.
func LoadTOTPSecrets(path string) (map[string]string, error) {
	members, err := readObject(path)
	if err != nil {
		return nil, err
	}
	secrets := make(map[string]string, len(members))
	for sub, raw := range members {
		var secret string
		if err := json.Unmarshal(raw, &secret); err != nil {
			return nil, fmt.Errorf("%s: subject %q: the secret must be a string", path, sub)
		}
		if _, err := TOTPCode(secret, time.Now()); err != nil {
			return nil, fmt.Errorf("%s: subject %q: the secret is not valid base32", path, sub)
		}
		secrets[sub] = secret
	}
	return secrets, nil
}

// LoadDeviceKeys reads a JSON object mapping subjects to arrays of public
// JWKs ({"alice": [{"kty": "EC", ...}]}). Private keys are refused: the
// server must never hold a device's private key, and a file that has one
// was written by mistake. DeviceKeysMap serves the result to devicekey.New.
func LoadDeviceKeys(path string) (map[string][]crypto.PublicKey, error) {
	members, err := readObject(path)
	if err != nil {
		return nil, err
	}
	keys := make(map[string][]crypto.PublicKey, len(members))
	for sub, raw := range members {
		var jwks []json.RawMessage
		if err := json.Unmarshal(raw, &jwks); err != nil {
			return nil, fmt.Errorf("%s: subject %q: expected an array of JWKs", path, sub)
		}
		if len(jwks) == 0 {
			return nil, fmt.Errorf("%s: subject %q: no keys", path, sub)
		}
		for i, j := range jwks {
			pub, err := parsePublicJWK(j)
			if err != nil {
				return nil, fmt.Errorf("%s: subject %q: key %d: %w", path, sub, i, err)
			}
			keys[sub] = append(keys[sub], pub)
		}
	}
	return keys, nil
}

// parsePublicJWK parses one public JWK into the key types that the
// device-key factor verifies.
func parsePublicJWK(data []byte) (crypto.PublicKey, error) {
	key, err := jwk.ParseKey(data)
	if err != nil {
		return nil, fmt.Errorf("not a JWK: %w", err)
	}
	private, err := jwk.IsPrivateKey(key)
	if err != nil {
		return nil, errors.New("not an asymmetric key")
	}
	if private {
		return nil, errors.New("a private key: register the public key only")
	}
	var raw any
	if err := jwk.Export(key, &raw); err != nil {
		return nil, err
	}
	switch k := raw.(type) {
	case *ecdsa.PublicKey, ed25519.PublicKey, *rsa.PublicKey:
		// ThumbprintOf also refuses curves and sizes the factor does not accept.
		if _, err := dpop.ThumbprintOf(k); err != nil {
			return nil, err
		}
		return k, nil
	default:
		return nil, fmt.Errorf("unsupported key type %T", raw)
	}
}

// readObject reads a JSON object, refusing duplicate members (a subject
// listed twice is a mistake that would otherwise silently keep one entry)
// and trailing data.
func readObject(path string) (map[string]json.RawMessage, error) {
	data, err := limited.ReadFile(path, maxEnrolmentFile)
	if err != nil {
		return nil, err
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return nil, fmt.Errorf("%s: expected a JSON object", path)
	}
	members := map[string]json.RawMessage{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		name := tok.(string) // object keys are always strings
		if name == "" {
			return nil, fmt.Errorf("%s: empty subject", path)
		}
		if _, dup := members[name]; dup {
			return nil, fmt.Errorf("%s: subject %q listed twice", path, name)
		}
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return nil, fmt.Errorf("%s: subject %q: %w", path, name, err)
		}
		members[name] = v
	}
	if _, err := dec.Token(); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("%s: unexpected data after the object", path)
	}
	return members, nil
}

// TOTPSecretsMap serves TOTP secrets from a map (LoadTOTPSecrets), a
// subject absent from it being ErrUnknownSubject. The map must not change
// once in use.
func TOTPSecretsMap(secrets map[string]string) TOTPSecrets {
	return TOTPSecretsFunc(func(_ context.Context, sub string) (string, error) {
		if s, ok := secrets[sub]; ok {
			return s, nil
		}
		return "", ErrUnknownSubject
	})
}

// DeviceKeysMap serves device keys from a map (LoadDeviceKeys), a subject
// absent from it being ErrUnknownSubject. The map must not change once in
// use.
func DeviceKeysMap(keys map[string][]crypto.PublicKey) DeviceKeys {
	return DeviceKeysFunc(func(_ context.Context, sub string) ([]crypto.PublicKey, error) {
		if k, ok := keys[sub]; ok {
			return k, nil
		}
		return nil, ErrUnknownSubject
	})
}
