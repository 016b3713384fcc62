package webauthn

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/go-webauthn/webauthn/protocol"
	gowebauthn "github.com/go-webauthn/webauthn/webauthn"

	"github.com/stepupgrpc/stepup/challenge"
	"github.com/stepupgrpc/stepup/challenge/approval"
	stepupv1 "github.com/stepupgrpc/stepup/proto/stepup/v1"
)

// Factor is the WebAuthn factor: it verifies assertions (W3C WebAuthn
// §7.2) whose WebAuthn challenge is SHA-256 of the step-up challenge (the
// JWS, docs/PROTOCOL.md), against a relying party and a credential database, and gives
// the client the request options of each challenge. User verification is
// always required. It implements challenge.Factor,
// challenge.FactorPrompter and approval.Passkeys. Build it with New; it
// is immutable and safe for concurrent use.
type Factor struct {
	rp    *gowebauthn.WebAuthn
	users storeUsers
}

// New returns the WebAuthn factor for the relying party cfg and the
// credentials in store. A configuration mistake (no RPID, no origin, an
// origin outside RPID) is an error naming it.
func New(cfg Config, store Store) (*Factor, error) {
	if store == nil {
		return nil, errors.New("webauthn: New: nil Store")
	}
	rp, err := cfg.relyingParty()
	if err != nil {
		return nil, fmt.Errorf("webauthn: New: %w", err)
	}
	return &Factor{rp: rp, users: storeUsers{store}}, nil
}

// With is the Option that enables the WebAuthn factor New(cfg, store)
// builds; NewService reports New's error. Default (without it): no
// WebAuthn factor.
func With(cfg Config, store Store) challenge.Option {
	f, err := New(cfg, store)
	if err != nil {
		return challenge.OptionError(err)
	}
	return challenge.WithFactor(f)
}

// Factor implements challenge.Factor: FACTOR_WEBAUTHN.
func (*Factor) Factor() stepupv1.Factor { return stepupv1.Factor_FACTOR_WEBAUTHN }

// Verify implements challenge.Factor: e.Evidence is the assertion, the
// PublicKeyCredential JSON. The session data a WebAuthn server would keep
// between the ceremony's two steps is rebuilt from the signed challenge,
// so nothing is stored.
func (f *Factor) Verify(ctx context.Context, e *challenge.FactorEvidence) (challenge.Reason, string, error) {
	r, err := f.verify(ctx, e.Subject, e.Challenge, []byte(e.Evidence))
	return r, "", err
}

// RequestOptions implements challenge.FactorPrompter: the
// PublicKeyCredentialRequestOptions JSON for a challenge, naming the
// subject's credentials, or nil when the subject has none.
func (f *Factor) RequestOptions(ctx context.Context, subject, chl string, timeout time.Duration) ([]byte, error) {
	return f.PasskeyOptions(ctx, subject, chl, timeout)
}

// PasskeyOptions implements approval.Passkeys.
func (f *Factor) PasskeyOptions(ctx context.Context, subject, signed string, timeout time.Duration) ([]byte, error) {
	if subject == "" {
		return f.requestOptions(signed, nil, timeout)
	}
	user, err := f.users.user(ctx, subject)
	if errors.Is(err, challenge.ErrUnknownSubject) || (err == nil && user == nil) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("webauthn: user lookup: %w", err)
	}
	creds := user.WebAuthnCredentials()
	if len(creds) == 0 {
		return nil, nil
	}
	return f.requestOptions(signed, creds, timeout)
}

// VerifyPasskey implements approval.Passkeys.
func (f *Factor) VerifyPasskey(ctx context.Context, subject, signed string, assertion []byte) (challenge.Reason, error) {
	return f.verify(ctx, subject, signed, assertion)
}

// Approver returns the passkeys of the approver page
// (approval.Options.Passkeys): this factor's relying party with
// origin as its only origin (no cross-origin use), and the approver
// passkeys in creds, registered on the second device. origin must be one
// of the factor's RPOrigins. A nil creds uses the factor's credentials:
// then a passkey the first device can also use (a synced passkey, a
// security key plugged into it) lets malware there approve without the
// second device (docs/APPROVAL.md, threat model).
func (f *Factor) Approver(origin string, creds Store) (*Factor, error) {
	if origin == "" {
		return nil, errors.New("webauthn: Approver: the approver page's origin is required")
	}
	if !slices.Contains(f.rp.Config.RPOrigins, origin) {
		return nil, fmt.Errorf("webauthn: Approver: origin %q is not among the RPOrigins %q", origin, f.rp.Config.RPOrigins)
	}
	cfg := *f.rp.Config
	cfg.RPOrigins = []string{origin}
	cfg.RPTopOrigins, cfg.RPOpaqueOrigins, cfg.RPAllowCrossOrigin = nil, nil, false
	own, err := gowebauthn.New(&cfg)
	if err != nil {
		return nil, fmt.Errorf("webauthn: Approver: %w", err)
	}
	p := &Factor{rp: own, users: f.users}
	if creds != nil {
		p.users = storeUsers{creds}
	}
	return p, nil
}

// verify checks an assertion by subject whose WebAuthn challenge is
// SHA-256 of signed.
func (f *Factor) verify(ctx context.Context, subject, signed string, assertion []byte) (challenge.Reason, error) {
	parsed, err := protocol.ParseCredentialRequestResponseBytes(assertion)
	if err != nil {
		return challenge.ReasonWebAuthnInvalid, nil
	}
	user, err := f.users.user(ctx, subject)
	if errors.Is(err, challenge.ErrUnknownSubject) || (err == nil && user == nil) {
		return challenge.ReasonWebAuthnInvalid, nil
	}
	if err != nil {
		return "", fmt.Errorf("webauthn: user lookup: %w", err)
	}
	h := sha256.Sum256([]byte(signed))
	session := gowebauthn.SessionData{
		Challenge:        protocol.URLEncodedBase64(h[:]).String(),
		RelyingPartyID:   f.rp.Config.RPID,
		UserID:           user.WebAuthnID(),
		UserVerification: protocol.VerificationRequired,
	}
	for _, c := range user.WebAuthnCredentials() {
		session.AllowedCredentialIDs = append(session.AllowedCredentialIDs, c.ID)
	}
	cred, err := f.rp.ValidateLogin(user, session, parsed)
	if err != nil {
		// Tell a missing user-verification flag apart from a bad
		// assertion: verify once more without requiring it.
		if !parsed.Response.AuthenticatorData.Flags.HasUserVerified() {
			session.UserVerification = protocol.VerificationPreferred
			if _, err2 := f.rp.ValidateLogin(user, session, parsed); err2 == nil {
				return challenge.ReasonWebAuthnNoUV, nil
			}
		}
		return challenge.ReasonWebAuthnInvalid, nil
	}
	// WebAuthn §6.1.1: a counter that did not increase signals a cloned
	// authenticator. (Authenticators without a counter always send 0,
	// which the check lets through, as the specification says.)
	if cred.Authenticator.CloneWarning {
		return challenge.ReasonWebAuthnCounter, nil
	}
	if err := f.users.update(ctx, subject, cred); err != nil {
		return "", fmt.Errorf("webauthn: credential update: %w", err)
	}
	return "", nil
}

// requestOptions is the PublicKeyCredentialRequestOptions JSON of a
// ceremony whose WebAuthn challenge is SHA-256 of signed, allowing creds;
// with none, any discoverable credential of the RP ID may answer.
func (f *Factor) requestOptions(signed string, creds []gowebauthn.Credential, timeout time.Duration) ([]byte, error) {
	h := sha256.Sum256([]byte(signed))
	opts := protocol.PublicKeyCredentialRequestOptions{
		Challenge:        h[:],
		Timeout:          int(min(timeout.Milliseconds(), math.MaxInt32)),
		RelyingPartyID:   f.rp.Config.RPID,
		UserVerification: protocol.VerificationRequired,
	}
	for _, c := range creds {
		opts.AllowedCredentials = append(opts.AllowedCredentials, c.Descriptor())
	}
	b, err := json.Marshal(opts)
	if err != nil {
		return nil, fmt.Errorf("webauthn: %w", err)
	}
	return b, nil
}

// NewApproval builds the approval factor (challenge/approval) with opts
// whose Passkeys are f.Approver(origin, creds): the approver page at
// origin, with the approver passkeys in creds (nil: this factor's
// credentials). Wire it with challenge.WithFactor and give it to the
// approver page (approval.Config.Approvals).
func (f *Factor) NewApproval(origin string, creds Store, opts approval.Options) (*approval.Factor, error) {
	p, err := f.Approver(origin, creds)
	if err != nil {
		return nil, err
	}
	opts.Passkeys = p
	return approval.New(opts)
}
