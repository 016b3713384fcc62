package challenge

import (
	"context"
	"errors"
	"fmt"
	"time"

	stepupv1 "github.com/stepupgrpc/stepup/proto/stepup/v1"
)

// Factor verifies one kind of second-factor evidence. The Service calls it
// for an answer whose challenge, key, method and request verified, after
// the answer was counted against the attempt limits; it knows nothing of
// how the factor works. WithTOTP and WithDeviceKeys enable the built-in
// TOTP and device-key factors; the package challenge/webauthn implements
// the WebAuthn factor, enabled with WithFactor. A Factor must be safe for
// concurrent use.
type Factor interface {
	// Factor is the factor this verifies: FACTOR_TOTP, FACTOR_DEVICE_KEY
	// or FACTOR_WEBAUTHN (FACTOR_APPROVAL is the Service's own, see
	// WithApproval).
	Factor() stepupv1.Factor
	// Verify checks the evidence of an answer. It returns "" when the
	// evidence is good, else the refusal reason (a wrong answer, counted
	// against the subject unless the reason is TOTP_REUSED or
	// WEBAUTHN_COUNTER) and, optionally, the cause in words for the audit
	// event. An error means it could not decide (a lookup failed): the
	// call is refused, fail closed.
	Verify(ctx context.Context, e *FactorEvidence) (reason Reason, detail string, err error)
}

// FactorEvidence is what a Factor verifies: the evidence of one answer and
// what it answers.
type FactorEvidence struct {
	// Subject is the caller's subject; Thumbprint its DPoP key's RFC 7638
	// thumbprint (the key that signed the answer).
	Subject, Thumbprint string
	// Challenge is the challenge JWS the answer embeds, unchanged (it
	// verified); ChallengeID its jti.
	Challenge, ChallengeID string
	// Evidence is the answer's evidence member for this factor: the TOTP
	// code (otp), the device evidence JWS (dev) or the WebAuthn assertion
	// JSON (wan) (docs/PROTOCOL.md).
	Evidence string
	// Now is the Service's clock at the check.
	Now time.Time
	// Store is the Service's store, for what a factor must accept once
	// only (a TOTP time step, RFC 6238 §5.2).
	Store Store
}

// FactorPrompter is implemented by a Factor that tells the client how to
// answer a challenge: the WebAuthn factor's request options, sent in
// StepUpChallenge.webauthn_request_options.
type FactorPrompter interface {
	// RequestOptions returns what the client needs to answer challenge
	// (the challenge JWS) as subject, nil when the subject has nothing
	// enrolled. timeout is how long the challenge is accepted.
	RequestOptions(ctx context.Context, subject, challenge string, timeout time.Duration) ([]byte, error)
}

// Passkeys checks the approver page's passkey sign-ins and approvals
// (WithApproval): WebAuthn assertions (W3C WebAuthn §7.2) whose WebAuthn
// challenge is SHA-256 of a string the Service chooses. The package
// challenge/webauthn implements it (Factor.Approver).
type Passkeys interface {
	// PasskeyOptions returns the PublicKeyCredentialRequestOptions JSON
	// of a ceremony whose challenge is SHA-256 of signed, user
	// verification required. With a subject, it names the subject's
	// credentials, and is nil when they have none; with subject "", it
	// names none (a discoverable credential answers).
	PasskeyOptions(ctx context.Context, subject, signed string, timeout time.Duration) ([]byte, error)
	// VerifyPasskey checks assertion (the PublicKeyCredential JSON) by
	// subject over SHA-256 of signed, and records the credential's new
	// counter. It returns "" or a WebAuthn reason.
	VerifyPasskey(ctx context.Context, subject, signed string, assertion []byte) (Reason, error)
}

// WithFactor enables factor f, such as the WebAuthn factor of the package
// challenge/webauthn. Of two factors of the same kind (WithTOTP and
// WithDeviceKeys included) the later replaces the earlier, as with every
// other option.
func WithFactor(f Factor) Option {
	return func(c *config) error {
		if f == nil {
			return errors.New("challenge: WithFactor: nil Factor")
		}
		return c.addFactor(f)
	}
}

// OptionError is an Option that makes NewService fail with err: for a
// package that builds an Option (a factor's) whose own construction failed.
func OptionError(err error) Option {
	return func(*config) error {
		if err == nil {
			return errors.New("challenge: OptionError: nil error")
		}
		return err
	}
}

func (c *config) addFactor(f Factor) error {
	k := f.Factor()
	switch k {
	case stepupv1.Factor_FACTOR_TOTP, stepupv1.Factor_FACTOR_DEVICE_KEY, stepupv1.Factor_FACTOR_WEBAUTHN:
	default:
		return fmt.Errorf("challenge: a Factor cannot verify %v", k)
	}
	for i, g := range c.plugged {
		if g.Factor() == k {
			// An option given twice replaces the first, as every other
			// option does.
			c.plugged[i] = f
			return nil
		}
	}
	c.plugged = append(c.plugged, f)
	return nil
}

// factor returns the configured Factor for k, nil when none.
func (c *config) factor(k stepupv1.Factor) Factor {
	for _, f := range c.plugged {
		if f.Factor() == k {
			return f
		}
	}
	return nil
}
