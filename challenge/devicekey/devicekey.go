// Package devicekey is the device-key factor of step-up: a signature over
// the challenge by a key registered for the subject on another device (a
// stepup-device+jwt, docs/PROTOCOL.md). It implements challenge.Factor;
// challenge.WithFactor(devicekey.New(keys)) wires it, and
// challenge.DeviceKeyResponder makes the evidence on the device.
package devicekey

import (
	"bytes"
	"context"
	"crypto"
	"crypto/sha256"
	"errors"
	"fmt"

	"github.com/stepupgrpc/stepup/challenge/factor"
	"github.com/stepupgrpc/stepup/dpop"
	"github.com/stepupgrpc/stepup/internal/base64url"
	"github.com/stepupgrpc/stepup/internal/strictjson"
	stepupv1 "github.com/stepupgrpc/stepup/proto/stepup/v1"
)

// Type is the typ of device-key evidence, signed by the device key
// (factor.DeviceType, challenge.DeviceType).
const Type = factor.DeviceType

// maxEvidenceSize bounds device evidence before any decoding.
const maxEvidenceSize = 8 << 10

// Keys looks up the public keys registered as device keys for a subject
// (*ecdsa.PublicKey, ed25519.PublicKey or *rsa.PublicKey). It returns
// challenge.ErrUnknownSubject, or no keys, when the subject has none.
type Keys interface {
	DeviceKeys(ctx context.Context, subject string) ([]crypto.PublicKey, error)
}

// KeysFunc adapts a function to Keys.
type KeysFunc func(ctx context.Context, subject string) ([]crypto.PublicKey, error)

// DeviceKeys calls f.
func (f KeysFunc) DeviceKeys(ctx context.Context, subject string) ([]crypto.PublicKey, error) {
	return f(ctx, subject)
}

// Factor is the device-key factor: it implements challenge.Factor
// (factor.Factor) for FACTOR_DEVICE_KEY. Build it with New; it is
// immutable and safe for concurrent use.
type Factor struct{ keys Keys }

// New returns the device-key factor over the subjects' registered keys.
// Wire it with challenge.WithFactor.
func New(keys Keys) (*Factor, error) {
	if keys == nil {
		return nil, errors.New("devicekey: New: nil Keys")
	}
	return &Factor{keys: keys}, nil
}

// Factor implements factor.Factor: FACTOR_DEVICE_KEY.
func (*Factor) Factor() stepupv1.Factor { return stepupv1.Factor_FACTOR_DEVICE_KEY }

// Verify implements factor.Factor: e.Evidence is the device evidence, a
// stepup-device+jwt signed by a key registered for the subject, over this
// challenge.
func (f *Factor) Verify(ctx context.Context, e *factor.Evidence) (factor.Reason, string, error) {
	r, err := f.verify(ctx, e.Subject, e.Thumbprint, e.Challenge, e.Evidence)
	return r, "", err
}

func (f *Factor) verify(ctx context.Context, subject, thumbprint, chl, evidence string) (factor.Reason, error) {
	jws, err := dpop.VerifyJWS(evidence, dpop.JWSOptions{Type: Type, MaxSize: maxEvidenceSize})
	if err != nil {
		return factor.ReasonDeviceSignatureInvalid, nil
	}
	d, err := parsePayload(jws.Payload)
	if err != nil {
		return factor.ReasonDeviceSignatureInvalid, nil
	}
	// chh is SHA-256 of the challenge JWS (its ASCII bytes).
	want := sha256.Sum256([]byte(chl))
	got, err := base64url.DecodeString(d.ChallengeHash)
	if err != nil || !bytes.Equal(got, want[:]) {
		return factor.ReasonDeviceSignatureInvalid, nil
	}
	// The DPoP key already signed the answer; accepting it as the second
	// factor too would make the step-up prove nothing new.
	if jws.Thumbprint == thumbprint {
		return factor.ReasonDeviceKeyUnknown, nil
	}
	keys, err := f.keys.DeviceKeys(ctx, subject)
	if errors.Is(err, factor.ErrUnknownSubject) {
		return factor.ReasonDeviceKeyUnknown, nil
	}
	if err != nil {
		return "", fmt.Errorf("challenge: device key lookup: %w", err)
	}
	for _, k := range keys {
		if tp, err := dpop.ThumbprintOf(k); err == nil && tp == jws.Thumbprint {
			return "", nil
		}
	}
	return factor.ReasonDeviceKeyUnknown, nil
}

// payload is the payload of a stepup-device+jwt.
type payload struct {
	ChallengeHash string // chh: base64url(SHA-256(challenge JWS))
	IssuedAt      int64  // iat: the device's clock; informational
}

// parsePayload reads device evidence: chh and iat are required.
func parsePayload(b []byte) (*payload, error) {
	var d payload
	err := strictjson.ReadMembers(b, 3, func(name string, v strictjson.Value) (uint16, bool) {
		var ok bool
		switch name {
		case "chh":
			d.ChallengeHash, ok = v.Str()
			return 1, ok
		case "iat":
			d.IssuedAt, ok = v.Int()
			return 2, ok
		}
		return 0, true
	})
	if err != nil {
		return nil, err
	}
	return &d, nil
}
