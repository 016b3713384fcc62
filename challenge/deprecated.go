package challenge

import (
	"context"
	"fmt"
	"time"

	"github.com/stepupgrpc/stepup/challenge/devicekey"
	"github.com/stepupgrpc/stepup/challenge/totp"
)

// Names kept for one release; CHANGELOG.md says what replaces them.

// Error is the error Check returns when the shared store fails.
//
// Deprecated: use StoreError (the same type); dpop has an error of its own.
// Error goes in the next release.
type Error = StoreError

// ApproverSession returns the subject of a valid approver page session
// token, and false when it is forged, malformed, expired, signed out or
// revoked, or when the store cannot say (fail closed).
//
// Deprecated: use CheckApproverSession, which takes the request's context
// and tells a store failure and the reason apart. ApproverSession goes in
// the next release.
func (s *Service) ApproverSession(session string) (subject string, ok bool) {
	if s.approval == nil {
		return "", false
	}
	sub, reason, err := s.CheckApproverSession(context.Background(), session)
	return sub, err == nil && reason == ""
}

// The TOTP factor's old names: the factor is the package challenge/totp.
// They stay for one release; each is the same type or function.

// WithTOTP enables the TOTP factor (RFC 6238) with the subjects' secrets and
// the code parameters (zero fields take the defaults: 6 digits, 30 s, one
// step of skew, SHA-1, which is what authenticator apps use).
//
// Deprecated: build the factor with totp.New(secrets, opts) and wire it
// with WithFactor.
func WithTOTP(secrets TOTPSecrets, opts TOTPOptions) Option {
	return func(c *config) error {
		f, err := totp.New(secrets, opts)
		if err != nil {
			return fmt.Errorf("challenge: WithTOTP: %w", err)
		}
		return c.addFactor(f)
	}
}

// TOTPOptions are the TOTP parameters (RFC 6238 §4, §5.2).
//
// Deprecated: use totp.Options (the same type).
type TOTPOptions = totp.Options

// NoSkew, as TOTPOptions.Skew, accepts the current time step only.
//
// Deprecated: use totp.NoSkew.
const NoSkew = totp.NoSkew

// TOTPSecrets looks up a subject's TOTP secret.
//
// Deprecated: use totp.Secrets (the same type).
type TOTPSecrets = totp.Secrets

// TOTPSecretsFunc adapts a function to TOTPSecrets.
//
// Deprecated: use totp.SecretsFunc (the same type).
type TOTPSecretsFunc = totp.SecretsFunc

// TOTPCode returns the 6-digit, 30-second, SHA-1 TOTP code of secret
// (base32) at t: what an authenticator app shows.
//
// Deprecated: use totp.Code.
func TOTPCode(secret string, t time.Time) (string, error) { return totp.Code(secret, t) }

// The device-key factor's old names: the factor is the package
// challenge/devicekey. They stay for one release; each is the same type.

// WithDeviceKeys enables the device-key factor: a signature over the
// challenge by a key registered for the subject.
//
// Deprecated: build the factor with devicekey.New(keys) and wire it with
// WithFactor.
func WithDeviceKeys(keys DeviceKeys) Option {
	return func(c *config) error {
		f, err := devicekey.New(keys)
		if err != nil {
			return fmt.Errorf("challenge: WithDeviceKeys: %w", err)
		}
		return c.addFactor(f)
	}
}

// DeviceKeys looks up the public keys registered as device keys for a
// subject.
//
// Deprecated: use devicekey.Keys (the same type).
type DeviceKeys = devicekey.Keys

// DeviceKeysFunc adapts a function to DeviceKeys.
//
// Deprecated: use devicekey.KeysFunc (the same type).
type DeviceKeysFunc = devicekey.KeysFunc
