package challenge

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"time"

	"github.com/stepupgrpc/stepup/dpop"
	"github.com/stepupgrpc/stepup/internal/base64url"
	stepupv1 "github.com/stepupgrpc/stepup/proto/stepup/v1"
)

// maxDeviceEvidenceSize bounds device evidence before any decoding.
const maxDeviceEvidenceSize = 8 << 10

// verifyFactor checks the evidence of an answer whose challenge verified,
// with the configured Factor of kind f. It returns the refusal reason, ""
// when the evidence is good. detail, when not empty, is the cause in words
// for the audit event.
func (s *Service) verifyFactor(ctx context.Context, call *Call, c *challengeClaims, a *answerPayload, f stepupv1.Factor, now time.Time) (reason Reason, detail string, err error) {
	factor := s.factor(f)
	if factor == nil {
		return ReasonFactorNotAllowed, "", nil
	}
	e := &FactorEvidence{
		Subject: call.Subject, Thumbprint: call.Thumbprint,
		Challenge: a.Challenge, ChallengeID: c.ID,
		Now: now, Store: s.store,
	}
	switch f {
	case stepupv1.Factor_FACTOR_TOTP:
		e.Evidence = a.TOTP
	case stepupv1.Factor_FACTOR_DEVICE_KEY:
		e.Evidence = a.Device
	case stepupv1.Factor_FACTOR_WEBAUTHN:
		e.Evidence = a.WebAuthn
	}
	return factor.Verify(ctx, e)
}

// challengeHash is SHA-256 of the challenge JWS (its ASCII bytes): what
// device evidence (chh) and WebAuthn assertions (challenge) sign.
func challengeHash(token string) [sha256.Size]byte { return sha256.Sum256([]byte(token)) }

// deviceFactor is the device-key factor (WithDeviceKeys).
type deviceFactor struct{ keys DeviceKeys }

func (deviceFactor) Factor() stepupv1.Factor { return stepupv1.Factor_FACTOR_DEVICE_KEY }

func (f deviceFactor) Verify(ctx context.Context, e *FactorEvidence) (Reason, string, error) {
	r, err := f.verifyDevice(ctx, e.Subject, e.Thumbprint, e.Challenge, e.Evidence)
	return r, "", err
}

// verifyDevice checks device evidence: a stepup-device+jwt signed by a key
// registered for the subject, over this challenge.
func (f deviceFactor) verifyDevice(ctx context.Context, subject, thumbprint, chl, evidence string) (Reason, error) {
	jws, err := dpop.VerifyJWS(evidence, dpop.JWSOptions{Type: DeviceType, MaxSize: maxDeviceEvidenceSize})
	if err != nil {
		return ReasonDeviceSignatureInvalid, nil
	}
	d, err := parseDevicePayload(jws.Payload)
	if err != nil {
		return ReasonDeviceSignatureInvalid, nil
	}
	want := challengeHash(chl)
	got, err := base64url.DecodeString(d.ChallengeHash)
	if err != nil || !bytes.Equal(got, want[:]) {
		return ReasonDeviceSignatureInvalid, nil
	}
	// The DPoP key already signed the answer; accepting it as the second
	// factor too would make the step-up prove nothing new.
	if jws.Thumbprint == thumbprint {
		return ReasonDeviceKeyUnknown, nil
	}
	keys, err := f.keys.DeviceKeys(ctx, subject)
	if errors.Is(err, ErrUnknownSubject) {
		return ReasonDeviceKeyUnknown, nil
	}
	if err != nil {
		return "", fmt.Errorf("challenge: device key lookup: %w", err)
	}
	for _, k := range keys {
		if tp, err := dpop.ThumbprintOf(k); err == nil && tp == jws.Thumbprint {
			return "", nil
		}
	}
	return ReasonDeviceKeyUnknown, nil
}
