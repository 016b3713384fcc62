// Package totp is the TOTP factor of step-up (RFC 6238): codes from an
// authenticator app, each time step accepted at most once per subject. It
// implements challenge.Factor; challenge.WithFactor(totp.New(secrets,
// opts)) wires it.
package totp

import (
	"context"
	"crypto"
	"crypto/subtle"
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/pquerna/otp"
	"github.com/pquerna/otp/hotp"

	"github.com/stepupgrpc/stepup/challenge/factor"
	"github.com/stepupgrpc/stepup/dpop"
	"github.com/stepupgrpc/stepup/internal/base64url"
	stepupv1 "github.com/stepupgrpc/stepup/proto/stepup/v1"
)

// Secrets looks up a subject's TOTP secret (base32, as in an otpauth://
// URI). It returns factor.ErrUnknownSubject when the subject has none.
type Secrets interface {
	TOTPSecret(ctx context.Context, subject string) (string, error)
}

// SecretsFunc adapts a function to Secrets.
type SecretsFunc func(ctx context.Context, subject string) (string, error)

// TOTPSecret calls f.
func (f SecretsFunc) TOTPSecret(ctx context.Context, subject string) (string, error) {
	return f(ctx, subject)
}

// Factor is the TOTP factor (RFC 6238): it implements challenge.Factor
// (factor.Factor) for FACTOR_TOTP. Build it with New; it is immutable and
// safe for concurrent use.
type Factor struct {
	secrets Secrets
	opts    Options
}

// New returns the TOTP factor over the subjects' secrets, with the code
// parameters opts (zero fields take the defaults: 6 digits, 30 s, one step
// of skew, SHA-1, which is what authenticator apps use). Wire it with
// challenge.WithFactor.
func New(secrets Secrets, opts Options) (*Factor, error) {
	if secrets == nil {
		return nil, errors.New("totp: New: nil Secrets")
	}
	o, err := opts.normalize()
	if err != nil {
		return nil, err
	}
	return &Factor{secrets: secrets, opts: o}, nil
}

// Factor implements factor.Factor: FACTOR_TOTP.
func (*Factor) Factor() stepupv1.Factor { return stepupv1.Factor_FACTOR_TOTP }

// Verify implements factor.Factor: e.Evidence is the code. A code is
// accepted at most once per subject and time step, in e.Store.
func (t *Factor) Verify(ctx context.Context, e *factor.Evidence) (factor.Reason, string, error) {
	return t.verifyTOTP(ctx, e.Store, e.Subject, e.Evidence, e.ChallengeID, e.Now)
}

// verifyTOTP checks a TOTP code (RFC 6238) and records its time step so
// that it is accepted at most once per subject (RFC 6238 §5.2), whichever
// challenge it answers. A reused code's detail names the challenge that
// used it first (chID is the challenge answered now).
func (t *Factor) verifyTOTP(ctx context.Context, store factor.Store, subject, code, chID string, now time.Time) (factor.Reason, string, error) {
	secret, err := t.secrets.TOTPSecret(ctx, subject)
	if errors.Is(err, factor.ErrUnknownSubject) || (err == nil && secret == "") {
		return factor.ReasonTOTPInvalid, "", nil
	}
	if err != nil {
		return "", "", fmt.Errorf("totp: TOTP secret lookup: %w", err)
	}
	step, ok, err := t.opts.verify(secret, code, now)
	if err != nil {
		return "", "", err
	}
	if !ok {
		return factor.ReasonTOTPInvalid, "", nil
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
	byKey := factor.SubjectKey("totpby", subject, st)
	switch err := store.Insert(ctx, factor.SubjectKey("totp", subject, st), issued, expires); {
	case errors.Is(err, dpop.ErrReplayed):
		first, _ := store.Get(ctx, byKey) // best effort: for the audit detail only
		return factor.ReasonTOTPReused, fmt.Sprintf("the code of time step %d was already used, first on challenge %s", step, idPrefix(first)), nil
	case errors.Is(err, dpop.ErrEvicted):
		return factor.ReasonReplayWindow, fmt.Sprintf("the store cannot vouch that the code of time step %d was not used: %v", step, err), nil
	case err != nil:
		return "", "", factor.NewStoreError(err)
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
func (o Options) verify(secret, code string, t time.Time) (int64, bool, error) {
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
			return 0, false, fmt.Errorf("totp: the subject's TOTP secret is unusable: %w", err)
		}
		if subtle.ConstantTimeCompare([]byte(want), []byte(code)) == 1 && found == 0 {
			matched, found = step, 1
		}
	}
	return matched, found == 1, nil
}

func (o Options) hotp() hotp.ValidateOpts {
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
func (o Options) Code(secret string, t time.Time) (string, error) {
	o, err := o.normalize()
	if err != nil {
		return "", err
	}
	if t.Unix() < 0 {
		return "", errors.New("totp: TOTP time before 1970")
	}
	step := t.Unix() / int64(o.Period/time.Second)
	code, err := hotp.GenerateCodeCustom(secret, uint64(step), o.hotp())
	if err != nil {
		return "", fmt.Errorf("totp: TOTP: %w", err)
	}
	return code, nil
}

// Code returns the 6-digit, 30-second, SHA-1 TOTP code of secret
// (base32) at t: what an authenticator app shows. For tests and demos; a
// real client asks the user.
func Code(secret string, t time.Time) (string, error) {
	return Options{}.Code(secret, t)
}

// Options are the TOTP parameters (RFC 6238 §4, §5.2). Zero fields take
// the defaults.
type Options struct {
	// Digits is the code length, 6 (default) to 10.
	Digits int
	// Period is the time step, whole seconds, default 30 s.
	Period time.Duration
	// Skew is how many time steps before and after the current one are
	// also accepted, default 1 (RFC 6238 §5.2 recommends at most one);
	// NoSkew accepts the current step only. At most 2.
	Skew int
	// Algorithm is the HMAC hash: crypto.SHA1 (default), crypto.SHA256 or
	// crypto.SHA512.
	Algorithm crypto.Hash
}

// NoSkew, as Options.Skew, accepts the current time step only.
const NoSkew = -1

func (o Options) normalize() (Options, error) {
	if o.Digits == 0 {
		o.Digits = 6
	}
	if o.Period == 0 {
		o.Period = 30 * time.Second
	}
	switch {
	case o.Skew == 0:
		o.Skew = 1
	case o.Skew == NoSkew:
		o.Skew = 0
	}
	if o.Algorithm == 0 {
		o.Algorithm = crypto.SHA1
	}
	if o.Digits < 6 || o.Digits > 10 {
		return o, fmt.Errorf("totp: TOTP digits %d: must be 6 to 10", o.Digits)
	}
	if o.Period < time.Second || o.Period%time.Second != 0 {
		return o, fmt.Errorf("totp: TOTP period %s: must be whole seconds", o.Period)
	}
	if o.Skew < 0 || o.Skew > 2 {
		return o, fmt.Errorf("totp: TOTP skew %d: must be NoSkew, 1 or 2", o.Skew)
	}
	switch o.Algorithm {
	case crypto.SHA1, crypto.SHA256, crypto.SHA512:
	default:
		return o, fmt.Errorf("totp: TOTP algorithm %v: must be SHA-1, SHA-256 or SHA-512", o.Algorithm)
	}
	return o, nil
}
