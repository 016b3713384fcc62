package challenge_test

import (
	"crypto"
	"time"

	"github.com/stepupgrpc/stepup/challenge"
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
