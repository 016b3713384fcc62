// Package serverkit builds the server-side components that the example
// bank server and stepup-gateway both configure from files: the factor
// enrolments (TOTP secrets, device keys), the step-up service, the DPoP
// verifier and the shared Redis store.
package serverkit

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"strings"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwk"

	"github.com/stepupgrpc/stepup/challenge"
	"github.com/stepupgrpc/stepup/dpop"
)

// maxConfigFile bounds the size of the JSON files the server reads.
const maxConfigFile = 1 << 20

// LoadTOTPSecrets reads a JSON object mapping subjects to base32 TOTP
// secrets, and checks that every secret decodes.
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
		if _, err := challenge.TOTPCode(secret, time.Now()); err != nil {
			return nil, fmt.Errorf("%s: subject %q: the secret is not valid base32", path, sub)
		}
		secrets[sub] = secret
	}
	return secrets, nil
}

// LoadDeviceKeys reads a JSON object mapping subjects to arrays of public
// JWKs. Private keys are refused: the server must never hold a device's
// private key, and a file that has one was written by mistake.
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
	data, err := ReadFile(path, maxConfigFile)
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

// ReadFile reads at most limit bytes of path, and fails on a larger file.
func ReadFile(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("%s: larger than %d bytes", path, limit)
	}
	return data, nil
}

// CheckLoopback accepts a listen address whose host is a loopback IP or
// "localhost". Any other address, including an empty host or 0.0.0.0, would
// expose tokens and proofs in clear text on the network.
func CheckLoopback(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("listen address %q: %w", addr, err)
	}
	if !isLoopbackHost(host) {
		return fmt.Errorf("listen address %q is not a loopback address (use 127.0.0.1, [::1] or localhost, or serve TLS)", addr)
	}
	return nil
}

func isLoopbackHost(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.IsLoopback()
}
