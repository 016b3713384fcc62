package challenge

import (
	"context"
	"crypto/sha256"
	"time"

	stepupv1 "github.com/stepupgrpc/stepup/proto/stepup/v1"
)

// verifyFactor checks the evidence of an answer whose challenge verified,
// with the configured Factor of kind f. It returns the refusal reason, ""
// when the evidence is good. detail, when not empty, is the cause in words
// for the audit event.
func (s *Service) verifyFactor(ctx context.Context, call *Call, c *challengeClaims, a *answerPayload, f stepupv1.Factor, now time.Time) (reason Reason, detail string, err error) {
	factor := s.factor(f)
	if factor == nil {
		return ReasonFactorNotAllowed, "", nil
	}
	return factor.Verify(ctx, s.evidence(call, c, a, f, now))
}

// evidence is what a Factor of kind f verifies of answer a.
func (s *Service) evidence(call *Call, c *challengeClaims, a *answerPayload, f stepupv1.Factor, now time.Time) *FactorEvidence {
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
	case stepupv1.Factor_FACTOR_APPROVAL:
		e.Evidence = a.Approval
	}
	return e
}

// challengeHash is SHA-256 of the challenge JWS (its ASCII bytes): what
// device evidence (chh) and WebAuthn assertions (challenge) sign.
func challengeHash(token string) [sha256.Size]byte { return sha256.Sum256([]byte(token)) }
