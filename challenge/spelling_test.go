package challenge_test

import (
	"testing"

	"github.com/stepupgrpc/stepup/challenge"
	"github.com/stepupgrpc/stepup/dpop"
	stepupv1 "github.com/stepupgrpc/stepup/proto/stepup/v1"
)

// TestDeviceEvidenceOneSpelling: device evidence whose chh (base64url of
// the challenge's SHA-256) is written with an escaped line break, signed
// by the registered device key over this very challenge, is refused: the
// JSON escape decodes to a CR or LF that encoding/base64 skips, which
// made it a second spelling of the same hash. The evidence without the
// escape, on a fresh challenge, passes.
func TestDeviceEvidenceOneSpelling(t *testing.T) {
	f := newFixture(t)
	msg := transfer(12000, "EUR", "DE89370400440532013000")
	device, err := dpop.NewSigner(f.device)
	if err != nil {
		t.Fatal(err)
	}
	evidence := func(ch *stepupv1.StepUpChallenge, esc string) *challenge.Evidence {
		h := challengeHashB64(ch.Challenge)
		dev, err := device.SignJWS(challenge.DeviceType, []byte(`{"chh":"`+h[:20]+esc+h[20:]+`","iat":1}`))
		if err != nil {
			t.Fatal(err)
		}
		return &challenge.Evidence{Factor: stepupv1.Factor_FACTOR_DEVICE_KEY, Device: dev}
	}
	for _, esc := range []string{`\n`, `\r`, `\r\n`, `\n\r\n\r`} {
		t.Run(esc, func(t *testing.T) {
			f.t = t
			call := f.call(bound, msg)
			ch := f.challengeFor(call)
			call.Answer = f.answer(f.client, ch, evidence(ch, esc))
			out := f.check(call)
			expectReason(t, out, challenge.ReasonDeviceSignatureInvalid)
		})
	}
	t.Run("control: the same evidence without the escape", func(t *testing.T) {
		f.t = t
		call := f.call(bound, msg)
		ch := f.challengeFor(call)
		call.Answer = f.answer(f.client, ch, evidence(ch, ""))
		if out := f.check(call); !out.Satisfied {
			t.Fatalf("refused: %+v", out)
		}
	})
}

// TestKeyFileSecretOneSpelling: a key file's base64url secret with an
// escaped line break is refused like any other malformed secret.
func TestKeyFileSecretOneSpelling(t *testing.T) {
	good := `{"current":{"kid":"k1","secret":"MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY"}}`
	if _, err := challenge.ParseKeySet([]byte(good)); err != nil {
		t.Fatalf("control: %v", err)
	}
	for _, esc := range []string{`\n`, `\r\n`} {
		bad := `{"current":{"kid":"k1","secret":"MDEyMzQ1Njc4OWFi` + esc + `Y2RlZjAxMjM0NTY3ODlhYmNkZWY"}}`
		if _, err := challenge.ParseKeySet([]byte(bad)); err == nil {
			t.Errorf("a secret with %s accepted", esc)
		}
	}
}
