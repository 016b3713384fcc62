package challenge

import (
	"context"
	"crypto"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"reflect"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/stepupgrpc/stepup/dpop"
	"github.com/stepupgrpc/stepup/internal/base64url"
	"github.com/stepupgrpc/stepup/internal/strictjson"
	stepupv1 "github.com/stepupgrpc/stepup/proto/stepup/v1"
)

// Fixed keys and time, so that the seed corpus under testdata/fuzz holds
// tokens that verify.
var (
	fuzzTime   = time.Date(2026, 3, 2, 9, 30, 0, 0, time.UTC)
	fuzzSecret = []byte("fuzz-secret-fuzz-secret-fuzz-sec")
	fuzzClient = ed25519.NewKeyFromSeed([]byte("fuzz-dpop-key-seed-fuzz-dpop-key"))
	fuzzDevice = ed25519.NewKeyFromSeed([]byte("fuzz-device-key-seed-fuzz-device"))
)

type fuzzEnv struct {
	svc    *Service
	keys   *KeySet
	client *dpop.Signer
	call   Call
}

func newFuzzEnv(t testing.TB) *fuzzEnv {
	t.Helper()
	keys, err := NewKeySet(Key{ID: "fuzz", Secret: fuzzSecret})
	if err != nil {
		t.Fatal(err)
	}
	client, err := dpop.NewSigner(fuzzClient)
	if err != nil {
		t.Fatal(err)
	}
	now := func() time.Time { return fuzzTime }
	svc, err := NewService(WithKeys(keys), WithClock(now),
		WithTOTP(TOTPSecretsFunc(func(context.Context, string) (string, error) { return "JBSWY3DPEHPK3PXP", nil }), TOTPOptions{}),
		WithDeviceKeys(DeviceKeysFunc(func(context.Context, string) ([]crypto.PublicKey, error) {
			return []crypto.PublicKey{fuzzDevice.Public()}, nil
		})))
	if err != nil {
		t.Fatal(err)
	}
	return &fuzzEnv{svc: svc, keys: keys, client: client, call: Call{
		Subject:     "alice",
		Thumbprint:  client.Thumbprint(),
		Method:      "/bank.v1.BankService/Transfer",
		Requirement: &Requirement{MaxAge: 5 * time.Minute},
	}}
}

// FuzzChallenge: the challenge verifier never panics; a token either
// verifies or is refused with a challenge reason; verified claims survive a
// round trip.
func FuzzChallenge(f *testing.F) {
	env := newFuzzEnv(f)
	out, err := env.svc.Check(context.Background(), env.call)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(out.Challenge.GetChallenge(), []byte(`{"jti":"x","sub":"alice","jkt":"t","mth":"/a.B/C","acr":[],"fac":["totp"],"mxa":0,"iat":1,"exp":2}`))
	f.Fuzz(func(t *testing.T, token string, claims []byte) {
		c, reason, err := env.svc.verifyChallenge(token, &env.call, fuzzTime)
		if err != nil {
			t.Fatal(err)
		}
		if reason == "" && c == nil {
			t.Fatal("accepted without claims")
		}
		// Behind a valid MAC: the claims parser.
		signed := env.keys.sign(ChallengeType, claims)
		payload, _, fail := env.keys.verify(signed, ChallengeType)
		if fail != tokenOK {
			if len(signed) <= maxTokenSize {
				t.Fatalf("own token refused: %v", fail)
			}
			return
		}
		parsed, err := parseChallengeClaims(payload)
		if err != nil {
			return
		}
		again, err := parseChallengeClaims(parsed.encode())
		if err != nil || !reflect.DeepEqual(parsed, normalizeChallenge(again, parsed)) {
			t.Fatalf("round trip: %+v != %+v (%v)", parsed, again, err)
		}
	})
}

// normalizeChallenge makes nil and empty slices compare equal.
func normalizeChallenge(c, like *challengeClaims) *challengeClaims {
	if c == nil {
		return nil
	}
	if len(c.ACR) == 0 && len(like.ACR) == 0 {
		c.ACR = like.ACR
	}
	if len(c.Factors) == 0 && len(like.Factors) == 0 {
		c.Factors = like.Factors
	}
	return c
}

// FuzzGrant: the grant verifier never panics and only accepts grants it
// could have issued.
func FuzzGrant(f *testing.F) {
	env := newFuzzEnv(f)
	out, err := env.svc.Check(context.Background(), env.call)
	if err != nil {
		f.Fatal(err)
	}
	code, _ := TOTPCode("JBSWY3DPEHPK3PXP", fuzzTime)
	call := env.call
	call.Answer, err = Answer(env.client, out.Challenge, &Evidence{Factor: stepupv1.Factor_FACTOR_TOTP, TOTP: code})
	if err != nil {
		f.Fatal(err)
	}
	out, err = env.svc.Check(context.Background(), call)
	if err != nil || out.Grant == "" {
		f.Fatal(err, out)
	}
	f.Add(out.Grant, []byte(`{"jti":"x","sub":"alice","jkt":"t","fac":"totp","auth_time":1,"iat":1,"exp":2}`))
	f.Fuzz(func(t *testing.T, grant string, claims []byte) {
		c := env.call
		c.Grant = grant
		out, err := env.svc.Check(context.Background(), c)
		if err != nil {
			t.Fatal(err)
		}
		if out.Satisfied {
			payload, _, fail := env.keys.verify(grant, GrantType)
			g, err := parseGrantClaims(payload)
			if fail != tokenOK || err != nil || g.Subject != "alice" || g.Thumbprint != env.call.Thumbprint {
				t.Fatalf("accepted a grant that does not verify: %q", grant)
			}
		}
		signed := env.keys.sign(GrantType, claims)
		payload, _, fail := env.keys.verify(signed, GrantType)
		if fail != tokenOK {
			return
		}
		if g, err := parseGrantClaims(payload); err == nil {
			if again, err := parseGrantClaims(g.encode()); err != nil || *again != *g {
				t.Fatalf("round trip: %+v != %+v (%v)", g, again, err)
			}
		}
	})
}

// FuzzAnswer: any answer metadata value is refused or accepted without a
// panic, an error or a hang; the payload parser keeps its invariants.
func FuzzAnswer(f *testing.F) {
	env := newFuzzEnv(f)
	f.Add("garbage", []byte(`{"chl":"a.b.c","fac":"totp","otp":"123456","iat":1}`))
	f.Add("garbage", []byte(`{"chl":"a.b.c","fac":"approval","apr":"x","iat":1}`))
	f.Fuzz(func(t *testing.T, answer string, payload []byte) {
		c := env.call
		c.Answer = answer
		if _, err := env.svc.Check(context.Background(), c); err != nil {
			t.Fatal(err)
		}
		a, err := parseAnswerPayload(payload)
		if err != nil {
			return
		}
		if a.Challenge == "" {
			t.Fatal("accepted without a challenge")
		}
		switch a.Factor {
		case factorNameTOTP:
			if a.TOTP == "" || a.Device != "" || a.WebAuthn != "" {
				t.Fatalf("totp answer with other evidence: %+v", a)
			}
		case factorNameDeviceKey:
			if a.Device == "" || a.TOTP != "" || a.WebAuthn != "" {
				t.Fatalf("device answer with other evidence: %+v", a)
			}
		case factorNameWebAuthn:
			if a.WebAuthn == "" || a.TOTP != "" || a.Device != "" {
				t.Fatalf("webauthn answer with other evidence: %+v", a)
			}
			if err := strictjson.ParseObject(a.WebAuthn, nil); err != nil {
				t.Fatalf("webauthn evidence is not an object: %v", err)
			}
		case factorNameApproval:
			if a.Approval == "" || a.TOTP != "" || a.Device != "" || a.WebAuthn != "" {
				t.Fatalf("approval answer with other evidence: %+v", a)
			}
		}
	})
}

// FuzzDeviceEvidence: the device-evidence verifier never panics and
// accepts only evidence signed by the registered key over this challenge;
// a payload that the registered key signs is accepted only when it names
// this challenge (chh).
func FuzzDeviceEvidence(f *testing.F) {
	env := newFuzzEnv(f)
	out, err := env.svc.Check(context.Background(), env.call)
	if err != nil {
		f.Fatal(err)
	}
	chl := out.Challenge.GetChallenge()
	dev, err := DeviceKeyResponder(fuzzDevice)
	if err != nil {
		f.Fatal(err)
	}
	ev, err := dev.Respond(context.Background(), out.Challenge)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(ev.Device, []byte(`{"chh":"x","iat":1}`))
	devThumb, _ := dpop.ThumbprintOf(fuzzDevice.Public())
	devSigner, err := dpop.NewSigner(fuzzDevice)
	if err != nil {
		f.Fatal(err)
	}
	h := challengeHash(chl)
	wantChh := base64url.EncodeToString(h[:])
	f.Add("", []byte(`{"chh":"`+wantChh+`","iat":1}`))
	verify := func(t *testing.T, evidence string) Reason {
		reason, _, err := env.svc.factor(stepupv1.Factor_FACTOR_DEVICE_KEY).Verify(context.Background(), &FactorEvidence{
			Subject: env.call.Subject, Thumbprint: env.call.Thumbprint, Challenge: chl, Evidence: evidence,
		})
		if err != nil {
			t.Fatal(err)
		}
		return reason
	}
	f.Fuzz(func(t *testing.T, evidence string, payload []byte) {
		if verify(t, evidence) == "" {
			jws, err := dpop.VerifyJWS(evidence, dpop.JWSOptions{Type: DeviceType})
			if err != nil || jws.Thumbprint != devThumb {
				t.Fatalf("accepted evidence not signed by the device key: %q", evidence)
			}
		}
		signed, err := devSigner.SignJWS(DeviceType, payload)
		if err != nil {
			return // the signer signs JSON objects only
		}
		if verify(t, signed) == "" {
			var claims struct {
				Chh string `json:"chh"`
			}
			if err := json.Unmarshal(payload, &claims); err != nil || claims.Chh != wantChh {
				t.Fatalf("accepted a payload that does not name this challenge: %q", payload)
			}
		}
	})
}

// FuzzCheckChallenge: the client's check of a challenge from an untrusted
// server never panics, and whatever it accepts was issued for the expected
// method and the client's own key.
func FuzzCheckChallenge(f *testing.F) {
	env := newFuzzEnv(f)
	out, err := env.svc.Check(context.Background(), env.call)
	if err != nil {
		f.Fatal(err)
	}
	outer, err := proto.Marshal(out.Challenge)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(out.Challenge.GetChallenge(), outer)
	f.Add("e30.e30.", []byte{})
	f.Fuzz(func(t *testing.T, token string, outer []byte) {
		ch := &stepupv1.StepUpChallenge{}
		if proto.Unmarshal(outer, ch) != nil {
			return
		}
		ch.Challenge = token
		for _, trusted := range []*KeySet{nil, env.keys} {
			err := CheckChallenge(ch, Expected{Method: env.call.Method, Thumbprint: env.call.Thumbprint, Now: fuzzTime, Trusted: trusted})
			if err != nil {
				var ce *CheckError
				if !errors.As(err, &ce) || ce.Mismatch == "" {
					t.Fatalf("error %v is not a *CheckError", err)
				}
				continue
			}
			payload, ok := unverifiedPayload(token)
			if !ok {
				t.Fatal("accepted a token whose payload cannot be read")
			}
			c, err := parseChallengeClaims(payload)
			if err != nil || c.Method != env.call.Method || c.Thumbprint != env.call.Thumbprint || fuzzTime.Unix() >= c.Expires {
				t.Fatalf("accepted a challenge for %+v", c)
			}
		}
	})
}
