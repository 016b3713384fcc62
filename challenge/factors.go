package challenge

import (
	"bytes"
	"context"
	"crypto"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/binary"
	"errors"
	"fmt"
	"github.com/stepupgrpc/stepup/challenge/factor"
	"strconv"
	"time"

	"github.com/pquerna/otp"
	"github.com/pquerna/otp/hotp"

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

// totpFactor is the TOTP factor (WithTOTP).
type totpFactor struct {
	secrets TOTPSecrets
	opts    TOTPOptions
}

func (totpFactor) Factor() stepupv1.Factor { return stepupv1.Factor_FACTOR_TOTP }

func (t totpFactor) Verify(ctx context.Context, e *FactorEvidence) (Reason, string, error) {
	return t.verifyTOTP(ctx, e.Store, e.Subject, e.Evidence, e.ChallengeID, e.Now)
}

// verifyTOTP checks a TOTP code (RFC 6238) and records its time step so
// that it is accepted at most once per subject (RFC 6238 §5.2), whichever
// challenge it answers. A reused code's detail names the challenge that
// used it first (chID is the challenge answered now).
func (t totpFactor) verifyTOTP(ctx context.Context, store factor.Store, subject, code, chID string, now time.Time) (Reason, string, error) {
	secret, err := t.secrets.TOTPSecret(ctx, subject)
	if errors.Is(err, ErrUnknownSubject) || (err == nil && secret == "") {
		return ReasonTOTPInvalid, "", nil
	}
	if err != nil {
		return "", "", fmt.Errorf("challenge: TOTP secret lookup: %w", err)
	}
	step, ok, err := t.opts.verify(secret, code, now)
	if err != nil {
		return "", "", err
	}
	if !ok {
		return ReasonTOTPInvalid, "", nil
	}
	period := int64(t.opts.Period / time.Second)
	// The step is recorded as issued when its code is first accepted,
	// Skew steps before its own (RFC 6238 §5.2): never later than it is
	// recorded, so that a store that lost its data and refuses what was
	// issued before the loss (dpop.ErrEvicted) also refuses a code of a
	// later step used early. It can be accepted until it leaves the skew
	// window; one more period covers clock differences between replicas.
	issued := time.Unix((step-int64(t.opts.Skew))*period, 0)
	expires := time.Unix((step+int64(t.opts.Skew)+2)*period, 0)
	st := strconv.FormatInt(step, 10)
	byKey := subjectKey("totpby", subject, st)
	switch err := store.Insert(ctx, subjectKey("totp", subject, st), issued, expires); {
	case errors.Is(err, dpop.ErrReplayed):
		first, _ := store.Get(ctx, byKey) // best effort: for the audit detail only
		return ReasonTOTPReused, fmt.Sprintf("the code of time step %d was already used, first on challenge %s", step, idPrefix(first)), nil
	case errors.Is(err, dpop.ErrEvicted):
		return ReasonReplayWindow, fmt.Sprintf("the store cannot vouch that the code of time step %d was not used: %v", step, err), nil
	case err != nil:
		return "", "", storeError(err)
	}
	// Remember which challenge used the step, for the audit event of a
	// reuse. Store values are integers: the first 8 bytes of the id stand
	// for it. Best effort: the single use itself is already recorded.
	if p, ok := idValue(chID); ok {
		_ = store.SetMax(ctx, byKey, p, expires)
	}
	return "", "", nil
}

// idValue is the first 8 bytes of a challenge id (base64url of 16 random
// bytes) as an integer; idPrefix turns it back into the id's first 10
// characters (the 60 bits those 8 bytes fully determine), "(unknown)" for 0.
func idValue(id string) (int64, bool) {
	b, err := base64url.DecodeString(id)
	if err != nil || len(b) < 8 {
		return 0, false
	}
	return int64(binary.BigEndian.Uint64(b)), true
}

func idPrefix(v int64) string {
	if v == 0 {
		return "(unknown)"
	}
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], uint64(v))
	return base64url.EncodeToString(b[:])[:10] + "…"
}

// verify checks code against the time steps around t (RFC 6238 §4.2,
// §5.2 for the skew) and returns the step that matched. Every step is
// computed, whether or not an earlier one matched, so the time taken does
// not depend on which step matched. The code must be exactly Digits ASCII
// digits.
func (o TOTPOptions) verify(secret, code string, t time.Time) (int64, bool, error) {
	if len(code) != o.Digits {
		return 0, false, nil
	}
	for i := 0; i < len(code); i++ {
		if code[i] < '0' || code[i] > '9' {
			return 0, false, nil
		}
	}
	period := int64(o.Period / time.Second)
	cur := t.Unix() / period
	var matched int64
	found := 0
	for d := -int64(o.Skew); d <= int64(o.Skew); d++ {
		step := cur + d
		if step < 0 {
			continue
		}
		want, err := hotp.GenerateCodeCustom(secret, uint64(step), o.hotp())
		if err != nil {
			return 0, false, fmt.Errorf("challenge: the subject's TOTP secret is unusable: %w", err)
		}
		if subtle.ConstantTimeCompare([]byte(want), []byte(code)) == 1 && found == 0 {
			matched, found = step, 1
		}
	}
	return matched, found == 1, nil
}

func (o TOTPOptions) hotp() hotp.ValidateOpts {
	alg := otp.AlgorithmSHA1
	switch o.Algorithm {
	case crypto.SHA256:
		alg = otp.AlgorithmSHA256
	case crypto.SHA512:
		alg = otp.AlgorithmSHA512
	}
	return hotp.ValidateOpts{Digits: otp.Digits(o.Digits), Algorithm: alg}
}

// Code returns the TOTP code of secret (base32) at t with these options
// (zero fields take the defaults).
func (o TOTPOptions) Code(secret string, t time.Time) (string, error) {
	o, err := o.normalize()
	if err != nil {
		return "", err
	}
	if t.Unix() < 0 {
		return "", errors.New("challenge: TOTP time before 1970")
	}
	step := t.Unix() / int64(o.Period/time.Second)
	code, err := hotp.GenerateCodeCustom(secret, uint64(step), o.hotp())
	if err != nil {
		return "", fmt.Errorf("challenge: TOTP: %w", err)
	}
	return code, nil
}

// TOTPCode returns the 6-digit, 30-second, SHA-1 TOTP code of secret
// (base32) at t: what an authenticator app shows. For tests and demos; a
// real client asks the user.
func TOTPCode(secret string, t time.Time) (string, error) {
	return TOTPOptions{}.Code(secret, t)
}

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
