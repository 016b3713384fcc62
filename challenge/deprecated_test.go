package challenge_test

import (
	"context"
	"crypto"
	"time"

	"github.com/stepupgrpc/stepup/challenge"
	"github.com/stepupgrpc/stepup/challenge/approval"
	"github.com/stepupgrpc/stepup/challenge/webauthn"
)

// The TOTP and device-key names of the previous release, with their
// signatures: this file stops compiling if one of them goes or changes
// before its deprecation period ends (CHANGELOG.md). Their behaviour is
// what the rest of the package's tests check: the fixture (helpers_test.go)
// builds every Service with WithTOTP and WithDeviceKeys.
var (
	_ func(challenge.TOTPSecrets, challenge.TOTPOptions) challenge.Option = challenge.WithTOTP
	_ func(challenge.DeviceKeys) challenge.Option                         = challenge.WithDeviceKeys
	_ func(string, time.Time) (string, error)                             = challenge.TOTPCode
	_ func(challenge.TOTPOptions, string, time.Time) (string, error)      = challenge.TOTPOptions.Code
	_ func(map[string]string) challenge.TOTPSecrets                       = challenge.TOTPSecretsMap
	_ func(map[string][]crypto.PublicKey) challenge.DeviceKeys            = challenge.DeviceKeysMap
	_ challenge.TOTPSecrets                                               = challenge.TOTPSecretsFunc(nil)
	_ challenge.DeviceKeys                                                = challenge.DeviceKeysFunc(nil)
	_                                                                     = challenge.TOTPOptions{Digits: 6, Period: 30 * time.Second, Skew: challenge.NoSkew, Algorithm: crypto.SHA1}
	_ string                                                              = challenge.DeviceType
	_ error                                                               = challenge.ErrUnknownSubject
	_ error                                                               = &challenge.StoreError{Reason: challenge.ReasonStoreUnavailable}
)

// The approval factor's names of the previous release (challenge/approval
// now): TestWithApprovalConfiguration, TestApproverSessionEndsOnTheServer
// and the approver page's TestNewConfigApprovals run them.
var (
	_ func(challenge.ApprovalOptions) challenge.Option                                                                 = challenge.WithApproval
	_ challenge.ApprovalOptions                                                                                        = approval.Options{}
	_ challenge.Passkeys                                                                                               = approval.Passkeys(nil)
	_ *challenge.Approval                                                                                              = (*approval.Approval)(nil)
	_ func(string, string) []byte                                                                                      = challenge.ApprovalWebAuthnChallenge
	_                                                                                                                  = []time.Duration{challenge.DefaultApprovalPoll, challenge.DefaultApproverSessionTTL}
	_ int                                                                                                              = challenge.DefaultMaxPendingApprovals
	_ func(*webauthn.Factor, string, webauthn.Store, challenge.ApprovalOptions) challenge.Option                       = (*webauthn.Factor).WithApproval
	_ func(*challenge.Service) bool                                                                                    = (*challenge.Service).ApprovalEnabled
	_ func(*challenge.Service, context.Context, string) ([]*challenge.Approval, error)                                 = (*challenge.Service).PendingApprovals
	_ func(*challenge.Service, context.Context, string, string) ([]byte, *challenge.Approval, challenge.Reason, error) = (*challenge.Service).ApprovalRequestOptions
	_ func(*challenge.Service, context.Context, string, string, []byte) (*challenge.Approval, challenge.Reason, error) = (*challenge.Service).Approve
	_ func(*challenge.Service, context.Context, string, string) (*challenge.Approval, challenge.Reason, error)         = (*challenge.Service).Deny
	_ func(*challenge.Service, context.Context, string) (string, []byte, challenge.Reason, error)                      = (*challenge.Service).BeginApproverSignIn
	_ func(*challenge.Service, context.Context, string, []byte) (string, string, challenge.Reason, error)              = (*challenge.Service).FinishApproverSignIn
	_ func(*challenge.Service, context.Context, string) (string, challenge.Reason, error)                              = (*challenge.Service).CheckApproverSession
	_ func(*challenge.Service, context.Context, string) error                                                          = (*challenge.Service).EndApproverSession
	_ func(*challenge.Service, context.Context, string) error                                                          = (*challenge.Service).RevokeApproverSessions
)

// The Service's revocation methods of the previous release (Revocations
// now, with paired names): TestServiceRevocationWrappers runs them.
var (
	_ func(*challenge.Service, context.Context, string, time.Time) (bool, error)               = (*challenge.Service).Revoked
	_ func(*challenge.Service, context.Context, string) error                                  = (*challenge.Service).RevokeGrants
	_ func(*challenge.Service, context.Context, string) error                                  = (*challenge.Service).RevokeTokens
	_ func(*challenge.Service, context.Context, string, time.Time) (bool, error)               = (*challenge.Service).TokensRevoked
	_ func(*challenge.Service, context.Context, string, string) error                          = (*challenge.Service).RevokeKey
	_ func(*challenge.Service, context.Context, string, time.Time, string) (bool, bool, error) = (*challenge.Service).CredentialsRevoked
)
