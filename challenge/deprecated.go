package challenge

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/stepupgrpc/stepup/challenge/approval"
	"github.com/stepupgrpc/stepup/challenge/devicekey"
	"github.com/stepupgrpc/stepup/challenge/totp"
	stepupv1 "github.com/stepupgrpc/stepup/proto/stepup/v1"
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
	if !s.ApprovalEnabled() {
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
// This name goes in the next release (CHANGELOG.md).
func WithTOTP(secrets TOTPSecrets, opts TOTPOptions) Option {
	return optionFunc(func(c *config) error {
		f, err := totp.New(secrets, opts)
		if err != nil {
			return fmt.Errorf("challenge: WithTOTP: %w", err)
		}
		return c.addFactor(f)
	})
}

// TOTPOptions are the TOTP parameters (RFC 6238 §4, §5.2).
//
// Deprecated: use totp.Options (the same type).
// This name goes in the next release (CHANGELOG.md).
type TOTPOptions = totp.Options

// NoSkew, as TOTPOptions.Skew, accepts the current time step only.
//
// Deprecated: use totp.NoSkew.
// This name goes in the next release (CHANGELOG.md).
const NoSkew = totp.NoSkew

// TOTPSecrets looks up a subject's TOTP secret.
//
// Deprecated: use totp.Secrets (the same type).
// This name goes in the next release (CHANGELOG.md).
type TOTPSecrets = totp.Secrets

// TOTPSecretsFunc adapts a function to TOTPSecrets.
//
// Deprecated: use totp.SecretsFunc (the same type).
// This name goes in the next release (CHANGELOG.md).
type TOTPSecretsFunc = totp.SecretsFunc

// TOTPCode returns the 6-digit, 30-second, SHA-1 TOTP code of secret
// (base32) at t: what an authenticator app shows.
//
// Deprecated: use totp.Code.
// This name goes in the next release (CHANGELOG.md).
func TOTPCode(secret string, t time.Time) (string, error) { return totp.Code(secret, t) }

// The device-key factor's old names: the factor is the package
// challenge/devicekey. They stay for one release; each is the same type.

// WithDeviceKeys enables the device-key factor: a signature over the
// challenge by a key registered for the subject.
//
// Deprecated: build the factor with devicekey.New(keys) and wire it with
// WithFactor.
// This name goes in the next release (CHANGELOG.md).
func WithDeviceKeys(keys DeviceKeys) Option {
	return optionFunc(func(c *config) error {
		f, err := devicekey.New(keys)
		if err != nil {
			return fmt.Errorf("challenge: WithDeviceKeys: %w", err)
		}
		return c.addFactor(f)
	})
}

// DeviceKeys looks up the public keys registered as device keys for a
// subject.
//
// Deprecated: use devicekey.Keys (the same type).
// This name goes in the next release (CHANGELOG.md).
type DeviceKeys = devicekey.Keys

// DeviceKeysFunc adapts a function to DeviceKeys.
//
// Deprecated: use devicekey.KeysFunc (the same type).
// This name goes in the next release (CHANGELOG.md).
type DeviceKeysFunc = devicekey.KeysFunc

// The approval factor's old names: the factor is the package
// challenge/approval, and the approver page takes its *approval.Factor.
// They stay for one release; each is the same type, or calls the factor.

// WithApproval enables the out-of-band approval factor (FACTOR_APPROVAL).
// It needs opts.Passkeys (the approver signs in and approves with a passkey)
// and a store that implements ApprovalStore (the default MemoryStore and
// redisstore.Store do).
//
// Deprecated: build the factor with approval.New(opts) and wire it with
// WithFactor; give the same *approval.Factor to the approver page.
// This name goes in the next release (CHANGELOG.md).
func WithApproval(opts ApprovalOptions) Option {
	return optionFunc(func(c *config) error {
		f, err := approval.New(opts)
		if err != nil {
			return fmt.Errorf("challenge: WithApproval: %w", err)
		}
		return c.addFactor(f)
	})
}

// ApprovalOptions configure the out-of-band approval factor.
//
// Deprecated: use approval.Options (the same type).
// This name goes in the next release (CHANGELOG.md).
type ApprovalOptions = approval.Options

// Passkeys checks the approver page's passkey sign-ins and approvals.
//
// Deprecated: use approval.Passkeys (the same type).
// This name goes in the next release (CHANGELOG.md).
type Passkeys = approval.Passkeys

// Approval is one out-of-band approval, as the approver page shows it.
//
// Deprecated: use approval.Approval (the same type).
// This name goes in the next release (CHANGELOG.md).
type Approval = approval.Approval

// The approval factor's defaults.
//
// Deprecated: use approval.DefaultPoll, approval.DefaultSessionTTL and
// approval.DefaultMaxPending.
// These names go in the next release (CHANGELOG.md).
const (
	DefaultApprovalPoll        = approval.DefaultPoll
	DefaultApproverSessionTTL  = approval.DefaultSessionTTL
	DefaultMaxPendingApprovals = approval.DefaultMaxPending
)

// ApprovalWebAuthnChallenge returns the WebAuthn challenge bytes the
// approver's assertion signs for an approval.
//
// Deprecated: use approval.WebAuthnChallenge.
// This name goes in the next release (CHANGELOG.md).
func ApprovalWebAuthnChallenge(id, summaryDigest string) []byte {
	return approval.WebAuthnChallenge(id, summaryDigest)
}

// approvals returns the Service's approval factor, or an error when it
// has none.
func (s *Service) approvals() (*approval.Factor, error) {
	if f, ok := s.factor(stepupv1.Factor_FACTOR_APPROVAL).(*approval.Factor); ok {
		return f, nil
	}
	return nil, errors.New("challenge: the approval factor is not configured (challenge/approval)")
}

// ApprovalEnabled reports whether the Service has the approval factor of
// challenge/approval.
//
// Deprecated: keep the *approval.Factor wired with WithFactor.
// This name goes in the next release (CHANGELOG.md).
func (s *Service) ApprovalEnabled() bool {
	_, err := s.approvals()
	return err == nil
}

// PendingApprovals calls the approval factor's PendingApprovals.
//
// Deprecated: use (*approval.Factor).PendingApprovals.
// This name goes in the next release (CHANGELOG.md).
func (s *Service) PendingApprovals(ctx context.Context, subject string) ([]*Approval, error) {
	f, err := s.approvals()
	if err != nil {
		return nil, err
	}
	return f.PendingApprovals(ctx, subject)
}

// ApprovalRequestOptions calls the approval factor's ApprovalRequestOptions.
//
// Deprecated: use (*approval.Factor).ApprovalRequestOptions.
// This name goes in the next release (CHANGELOG.md).
func (s *Service) ApprovalRequestOptions(ctx context.Context, subject, id string) ([]byte, *Approval, Reason, error) {
	f, err := s.approvals()
	if err != nil {
		return nil, nil, "", err
	}
	return f.ApprovalRequestOptions(ctx, subject, id)
}

// Approve calls the approval factor's Approve.
//
// Deprecated: use (*approval.Factor).Approve.
// This name goes in the next release (CHANGELOG.md).
func (s *Service) Approve(ctx context.Context, subject, id string, assertion []byte) (*Approval, Reason, error) {
	f, err := s.approvals()
	if err != nil {
		return nil, "", err
	}
	return f.Approve(ctx, subject, id, assertion)
}

// Deny calls the approval factor's Deny.
//
// Deprecated: use (*approval.Factor).Deny.
// This name goes in the next release (CHANGELOG.md).
func (s *Service) Deny(ctx context.Context, subject, id string) (*Approval, Reason, error) {
	f, err := s.approvals()
	if err != nil {
		return nil, "", err
	}
	return f.Deny(ctx, subject, id)
}

// BeginApproverSignIn calls the approval factor's BeginApproverSignIn.
//
// Deprecated: use (*approval.Factor).BeginApproverSignIn.
// This name goes in the next release (CHANGELOG.md).
func (s *Service) BeginApproverSignIn(ctx context.Context, subject string) (state string, options []byte, reason Reason, err error) {
	f, err := s.approvals()
	if err != nil {
		return "", nil, "", err
	}
	return f.BeginApproverSignIn(ctx, subject)
}

// FinishApproverSignIn calls the approval factor's FinishApproverSignIn.
//
// Deprecated: use (*approval.Factor).FinishApproverSignIn.
// This name goes in the next release (CHANGELOG.md).
func (s *Service) FinishApproverSignIn(ctx context.Context, state string, assertion []byte) (session, subject string, reason Reason, err error) {
	f, err := s.approvals()
	if err != nil {
		return "", "", "", err
	}
	return f.FinishApproverSignIn(ctx, state, assertion)
}

// CheckApproverSession calls the approval factor's CheckApproverSession.
//
// Deprecated: use (*approval.Factor).CheckApproverSession.
// This name goes in the next release (CHANGELOG.md).
func (s *Service) CheckApproverSession(ctx context.Context, session string) (subject string, reason Reason, err error) {
	f, err := s.approvals()
	if err != nil {
		return "", "", err
	}
	return f.CheckApproverSession(ctx, session)
}

// EndApproverSession calls the approval factor's EndApproverSession.
//
// Deprecated: use (*approval.Factor).EndApproverSession.
// This name goes in the next release (CHANGELOG.md).
func (s *Service) EndApproverSession(ctx context.Context, session string) error {
	f, err := s.approvals()
	if err != nil {
		return err
	}
	return f.EndApproverSession(ctx, session)
}

// RevokeApproverSessions calls the approval factor's RevokeApproverSessions.
//
// Deprecated: use (*approval.Factor).RevokeApproverSessions.
// This name goes in the next release (CHANGELOG.md).
func (s *Service) RevokeApproverSessions(ctx context.Context, subject string) error {
	f, err := s.approvals()
	if err != nil {
		return err
	}
	return f.RevokeApproverSessions(ctx, subject)
}

// Revoked reports whether RevokeGrants was called for subject at or after
// t, to the second.
//
// Deprecated: use Revocations().GrantsRevoked (Revocations.GrantsRevoked),
// the name paired with RevokeGrants. Revoked goes in the next release.
func (s *Service) Revoked(ctx context.Context, subject string, t time.Time) (bool, error) {
	return s.rev.GrantsRevoked(ctx, subject, t)
}

// RevokeGrants makes every grant of subject issued up to now stop working.
//
// Deprecated: use Revocations().RevokeGrants (Revocations.RevokeGrants),
// which needs no step-up Service. Service.RevokeGrants goes in the next
// release.
func (s *Service) RevokeGrants(ctx context.Context, subject string) error {
	return s.rev.RevokeGrants(ctx, subject)
}

// RevokeTokens makes every access token of subject issued up to now stop
// working.
//
// Deprecated: use Revocations().RevokeTokens (Revocations.RevokeTokens,
// or NewRevocations without a Service). Service.RevokeTokens goes in the
// next release.
func (s *Service) RevokeTokens(ctx context.Context, subject string) error {
	return s.rev.RevokeTokens(ctx, subject)
}

// TokensRevoked reports whether RevokeTokens was called for subject at or
// after issuedAt, to the second.
//
// Deprecated: use Revocations().TokensRevoked (Revocations.TokensRevoked).
// Service.TokensRevoked goes in the next release.
func (s *Service) TokensRevoked(ctx context.Context, subject string, issuedAt time.Time) (bool, error) {
	return s.rev.TokensRevoked(ctx, subject, issuedAt)
}

// RevokeKey makes every access token of subject bound to the DPoP key with
// thumbprint jkt stop working.
//
// Deprecated: use Revocations().RevokeKey (Revocations.RevokeKey, or
// NewRevocations without a Service). Service.RevokeKey goes in the next
// release.
func (s *Service) RevokeKey(ctx context.Context, subject, jkt string) error {
	return s.rev.RevokeKey(ctx, subject, jkt)
}

// CredentialsRevoked reports whether an access token of subject issued at
// issuedAt and bound to the DPoP key jkt was revoked.
//
// Deprecated: use Revocations().CredentialsRevoked
// (Revocations.CredentialsRevoked). Service.CredentialsRevoked goes in the
// next release.
func (s *Service) CredentialsRevoked(ctx context.Context, subject string, issuedAt time.Time, jkt string) (tokens, key bool, err error) {
	return s.rev.CredentialsRevoked(ctx, subject, issuedAt, jkt)
}
