package challenge

import (
	"context"
	"crypto"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/stepupgrpc/stepup/dpop"
	"github.com/stepupgrpc/stepup/internal/base64url"
	"github.com/stepupgrpc/stepup/internal/strictjson"
	stepupv1 "github.com/stepupgrpc/stepup/proto/stepup/v1"
)

// Evidence is a client's second-factor evidence for one challenge: exactly
// the member that Factor names is used.
type Evidence struct {
	Factor stepupv1.Factor
	// TOTP is the code the user typed.
	TOTP string
	// Device is the device-key evidence, a compact JWS (see
	// DeviceKeyResponder).
	Device string
	// WebAuthn is the assertion, the JSON of the PublicKeyCredential that
	// navigator.credentials.get() returns (its toJSON() form).
	WebAuthn json.RawMessage
	// Approval is the id of the out-of-band approval the user makes on
	// their second device (see ApprovalResponder).
	Approval string
}

// Responder produces evidence for a challenge: it prompts for a TOTP code,
// signs with a device key, or asks a WebAuthn authenticator.
type Responder interface {
	Respond(ctx context.Context, ch *stepupv1.StepUpChallenge) (*Evidence, error)
}

// ResponderFunc adapts a function to Responder.
type ResponderFunc func(ctx context.Context, ch *stepupv1.StepUpChallenge) (*Evidence, error)

// Respond calls f.
func (f ResponderFunc) Respond(ctx context.Context, ch *stepupv1.StepUpChallenge) (*Evidence, error) {
	return f(ctx, ch)
}

// factorResponder is implemented by the responders of this package (and
// may be by others) so that FirstAllowed can skip factors a challenge does
// not allow.
type factorResponder interface {
	Responder
	Factor() stepupv1.Factor
}

type totpResponder struct {
	code func(ctx context.Context, ch *stepupv1.StepUpChallenge) (string, error)
}

// TOTPResponder answers with a TOTP code that code obtains, typically by
// prompting the user with ch.SummaryText. It reports FACTOR_TOTP.
func TOTPResponder(code func(ctx context.Context, ch *stepupv1.StepUpChallenge) (string, error)) Responder {
	return totpResponder{code: code}
}

func (r totpResponder) Factor() stepupv1.Factor { return stepupv1.Factor_FACTOR_TOTP }

func (r totpResponder) Respond(ctx context.Context, ch *stepupv1.StepUpChallenge) (*Evidence, error) {
	if r.code == nil {
		return nil, errors.New("challenge: TOTPResponder: nil code function")
	}
	c, err := r.code(ctx, ch)
	if err != nil {
		return nil, err
	}
	return &Evidence{Factor: stepupv1.Factor_FACTOR_TOTP, TOTP: c}, nil
}

type deviceResponder struct{ signer *dpop.Signer }

// DeviceKeyResponder answers with a signature by a device key registered
// for the user on the server (see the package challenge/devicekey): a compact JWS with the
// header {"typ":"stepup-device+jwt","alg":..,"jwk":..} and the payload
// {"chh": base64url(SHA-256(challenge)), "iat": now}. The device key must
// not be the DPoP key. It reports FACTOR_DEVICE_KEY.
func DeviceKeyResponder(key crypto.Signer) (Responder, error) {
	s, err := dpop.NewSigner(key)
	if err != nil {
		return nil, fmt.Errorf("challenge: DeviceKeyResponder: %w", err)
	}
	return deviceResponder{signer: s}, nil
}

func (r deviceResponder) Factor() stepupv1.Factor { return stepupv1.Factor_FACTOR_DEVICE_KEY }

func (r deviceResponder) Respond(ctx context.Context, ch *stepupv1.StepUpChallenge) (*Evidence, error) {
	if ch.GetChallenge() == "" {
		return nil, errors.New("challenge: DeviceKeyResponder: empty challenge")
	}
	h := challengeHash(ch.GetChallenge())
	var w jsonWriter
	w.str("chh", base64url.EncodeToString(h[:]))
	w.int("iat", time.Now().Unix())
	jws, err := r.signer.SignJWS(DeviceType, w.bytes())
	if err != nil {
		return nil, fmt.Errorf("challenge: DeviceKeyResponder: %w", err)
	}
	return &Evidence{Factor: stepupv1.Factor_FACTOR_DEVICE_KEY, Device: jws}, nil
}

// Authenticator is a WebAuthn authenticator, as reached through a browser,
// a platform API or a security key library: it takes
// PublicKeyCredentialRequestOptions JSON and returns the assertion
// (PublicKeyCredential) JSON.
type Authenticator interface {
	GetAssertion(ctx context.Context, requestOptionsJSON []byte) (assertionJSON []byte, err error)
}

type webAuthnResponder struct{ a Authenticator }

// WebAuthnResponder answers with an assertion from a. The challenge's
// webauthn_request_options are passed unchanged; their challenge is
// SHA-256 of the server challenge. It reports FACTOR_WEBAUTHN.
func WebAuthnResponder(a Authenticator) Responder { return webAuthnResponder{a: a} }

func (r webAuthnResponder) Factor() stepupv1.Factor { return stepupv1.Factor_FACTOR_WEBAUTHN }

func (r webAuthnResponder) Respond(ctx context.Context, ch *stepupv1.StepUpChallenge) (*Evidence, error) {
	if r.a == nil {
		return nil, errors.New("challenge: WebAuthnResponder: nil Authenticator")
	}
	if len(ch.GetWebauthnRequestOptions()) == 0 {
		return nil, errors.New("challenge: WebAuthnResponder: the challenge has no WebAuthn request options (no credential registered?)")
	}
	a, err := r.a.GetAssertion(ctx, ch.GetWebauthnRequestOptions())
	if err != nil {
		return nil, err
	}
	return &Evidence{Factor: stepupv1.Factor_FACTOR_WEBAUTHN, WebAuthn: a}, nil
}

type approvalResponder struct {
	show func(ctx context.Context, ch *stepupv1.StepUpChallenge, matchingCode string) error
}

// ApprovalResponder answers with an out-of-band approval (FACTOR_APPROVAL):
// the user approves the call on their second device, on the approver page.
// show is called first with the challenge and its matching code, to tell
// the user where to approve and which code they will see there (the code
// is recomputed from the challenge, never taken from the server's word: a
// challenge whose code disagrees is refused). An error from show abandons
// the approval. The interceptor.Client then retries the call while the
// server answers that the approval is pending, as often as the server's
// retry delay says, until the user decides, the challenge expires or the
// call's context ends: give the call a deadline. It reports FACTOR_APPROVAL.
func ApprovalResponder(show func(ctx context.Context, ch *stepupv1.StepUpChallenge, matchingCode string) error) Responder {
	return approvalResponder{show: show}
}

func (r approvalResponder) Factor() stepupv1.Factor { return stepupv1.Factor_FACTOR_APPROVAL }

func (r approvalResponder) Respond(ctx context.Context, ch *stepupv1.StepUpChallenge) (*Evidence, error) {
	if ch.GetApprovalId() == "" || ch.GetChallenge() == "" {
		return nil, errors.New("challenge: ApprovalResponder: the challenge has no approval")
	}
	code := MatchingCode(ch.GetChallenge())
	if ch.GetMatchingCode() != code {
		return nil, errors.New("challenge: ApprovalResponder: the challenge's matching code is not the one it derives")
	}
	if r.show != nil {
		if err := r.show(ctx, ch, code); err != nil {
			return nil, err
		}
	}
	return &Evidence{Factor: stepupv1.Factor_FACTOR_APPROVAL, Approval: ch.GetApprovalId()}, nil
}

// FirstAllowed returns a Responder that tries rs in order, skipping those
// that report (through a Factor() stepupv1.Factor method) a factor the
// challenge does not allow, a WebAuthn responder when the challenge has
// no WebAuthn options, and an approval responder when it has no approval. The first evidence obtained wins; if every allowed
// responder fails, their errors are joined. It stops when ctx is done.
func FirstAllowed(rs ...Responder) Responder {
	return ResponderFunc(func(ctx context.Context, ch *stepupv1.StepUpChallenge) (*Evidence, error) {
		var errs []error
		for _, r := range rs {
			if fr, ok := r.(factorResponder); ok {
				f := fr.Factor()
				if !slices.Contains(ch.GetFactors(), f) {
					continue
				}
				if f == stepupv1.Factor_FACTOR_WEBAUTHN && len(ch.GetWebauthnRequestOptions()) == 0 {
					continue
				}
				if f == stepupv1.Factor_FACTOR_APPROVAL && ch.GetApprovalId() == "" {
					continue
				}
			}
			ev, err := r.Respond(ctx, ch)
			if err == nil && ev != nil && !slices.Contains(ch.GetFactors(), ev.Factor) {
				// A wrapper that hides its factor answered with one the
				// challenge does not allow: the server would refuse it and
				// count a failed attempt.
				err = fmt.Errorf("challenge: a responder answered with %v, which the challenge does not allow (%v)", ev.Factor, ch.GetFactors())
			}
			if err == nil {
				return ev, nil
			}
			errs = append(errs, err)
			if ctx.Err() != nil {
				break
			}
		}
		if len(errs) == 0 {
			return nil, fmt.Errorf("challenge: no responder for the factors %v", ch.GetFactors())
		}
		return nil, errors.Join(errs...)
	})
}

// Answer builds the "stepup-answer" metadata value: a compact JWS signed by
// the client's DPoP key, with the header {"typ":"stepup-answer+jwt",
// "alg":..,"jwk":..} and the payload {"chl": the challenge unchanged,
// "fac": the factor name, one of "otp", "dev", "wan" or "apr" with the evidence,
// "iat": now}. Retry the same call with it.
func Answer(signer *dpop.Signer, ch *stepupv1.StepUpChallenge, ev *Evidence) (string, error) {
	if signer == nil || ch == nil || ev == nil {
		return "", errors.New("challenge: Answer: nil signer, challenge or evidence")
	}
	if ch.GetChallenge() == "" {
		return "", errors.New("challenge: Answer: empty challenge")
	}
	if !slices.Contains(ch.GetFactors(), ev.Factor) {
		return "", fmt.Errorf("challenge: Answer: the challenge does not allow %s", ev.Factor)
	}
	var w jsonWriter
	w.str("chl", ch.GetChallenge())
	w.str("fac", FactorName(ev.Factor))
	switch ev.Factor {
	case stepupv1.Factor_FACTOR_TOTP:
		if ev.TOTP == "" {
			return "", errors.New("challenge: Answer: empty TOTP code")
		}
		w.str("otp", ev.TOTP)
	case stepupv1.Factor_FACTOR_DEVICE_KEY:
		if ev.Device == "" {
			return "", errors.New("challenge: Answer: empty device evidence")
		}
		w.str("dev", ev.Device)
	case stepupv1.Factor_FACTOR_WEBAUTHN:
		if err := strictjson.ParseObject(string(ev.WebAuthn), nil); err != nil {
			return "", fmt.Errorf("challenge: Answer: the WebAuthn assertion is not a JSON object: %w", err)
		}
		w.raw("wan", ev.WebAuthn)
	case stepupv1.Factor_FACTOR_APPROVAL:
		if ev.Approval == "" || ev.Approval != ch.GetApprovalId() {
			return "", errors.New("challenge: Answer: the approval id is not the challenge's")
		}
		w.str("apr", ev.Approval)
	default:
		return "", fmt.Errorf("challenge: Answer: unknown factor %s", ev.Factor)
	}
	w.int("iat", time.Now().Unix())
	a, err := signer.SignJWS(AnswerType, w.bytes())
	if err != nil {
		return "", fmt.Errorf("challenge: Answer: %w", err)
	}
	return a, nil
}
