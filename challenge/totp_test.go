package challenge_test

import (
	"context"
	"crypto"
	"encoding/base32"
	"encoding/json"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stepupgrpc/stepup/challenge"
	stepupv1 "github.com/stepupgrpc/stepup/proto/stepup/v1"
)

type rfc6238 struct {
	Secrets map[string]string `json:"secrets"`
	Vectors []map[string]any  `json:"vectors"`
}

func loadRFC6238(t *testing.T) rfc6238 {
	t.Helper()
	b, err := os.ReadFile("testdata/rfc6238.json")
	if err != nil {
		t.Fatal(err)
	}
	var v rfc6238
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatal(err)
	}
	if len(v.Vectors) != 6 {
		t.Fatalf("%d vectors", len(v.Vectors))
	}
	return v
}

var hashes = map[string]crypto.Hash{"SHA1": crypto.SHA1, "SHA256": crypto.SHA256, "SHA512": crypto.SHA512}

// RFC 6238 Appendix B, against the code generator and, end to end, against
// the verification Service.Check uses: a Service whose clock is at T
// accepts exactly the published code.
func TestRFC6238Vectors(t *testing.T) {
	v := loadRFC6238(t)
	for _, vec := range v.Vectors {
		T := int64(vec["time"].(float64))
		for name, h := range hashes {
			want := vec[name].(string)
			secret := base32.StdEncoding.EncodeToString([]byte(v.Secrets[name]))
			opts := challenge.TOTPOptions{Digits: 8, Algorithm: h, Skew: challenge.NoSkew}
			got, err := opts.Code(secret, time.Unix(T, 0))
			if err != nil {
				t.Fatal(err)
			}
			if got != want {
				t.Errorf("T=%d %s: code %s, want %s", T, name, got, want)
			}

			f := newFixture(t, withTOTPOptions(secret, opts))
			f.clock.Set(time.Unix(T, 0))
			call := f.call(bound, transfer(1, "EUR", "x"))
			ch := f.challengeFor(call)
			call.Answer = f.answer(f.client, ch, &challenge.Evidence{Factor: stepupv1.Factor_FACTOR_TOTP, TOTP: want})
			if out := f.check(call); !out.Satisfied {
				t.Errorf("T=%d %s: Check refused %s: %s", T, name, want, out.Reason)
			}
		}
	}
	// The SHA-1 vectors are also what TOTPCode's defaults would give, to 6
	// digits: the low 6 digits of the 8-digit code (RFC 4226 §5.3).
	secret := base32.StdEncoding.EncodeToString([]byte(v.Secrets["SHA1"]))
	if code, _ := challenge.TOTPCode(secret, time.Unix(59, 0)); code != "287082" {
		t.Errorf("TOTPCode at 59: %s", code)
	}
}

// With the default skew of one step, codes of the previous and the next
// step are accepted, and no others (RFC 6238 §5.2).
func TestTOTPSkew(t *testing.T) {
	for _, tt := range []struct {
		offset time.Duration
		ok     bool
	}{
		{-60 * time.Second, false},
		{-30 * time.Second, true},
		{0, true},
		{30 * time.Second, true},
		{60 * time.Second, false},
	} {
		f := newFixture(t)
		code, err := challenge.TOTPCode(totpSecret, f.clock.Now().Add(tt.offset))
		if err != nil {
			t.Fatal(err)
		}
		call := f.call(bound, transfer(1, "EUR", "x"))
		ch := f.challengeFor(call)
		call.Answer = f.answer(f.client, ch, &challenge.Evidence{Factor: stepupv1.Factor_FACTOR_TOTP, TOTP: code})
		if out := f.check(call); out.Satisfied != tt.ok {
			t.Errorf("offset %s: satisfied %v (%s), want %v", tt.offset, out.Satisfied, out.Reason, tt.ok)
		}
	}
}

func TestTOTPLookupFailureFailsCheck(t *testing.T) {
	f := newFixture(t)
	boom := context.DeadlineExceeded
	svc, err := challenge.NewService(challenge.WithKeys(f.keys), challenge.WithClock(f.clock.Now),
		challenge.WithTOTP(challenge.TOTPSecretsFunc(func(context.Context, string) (string, error) { return "", boom }), challenge.TOTPOptions{}))
	if err != nil {
		t.Fatal(err)
	}
	call := f.call(bound, transfer(1, "EUR", "x"))
	ch := f.challengeFor(call)
	call.Answer = f.answer(f.client, ch, f.totp())
	if _, err := svc.Check(context.Background(), call); err == nil {
		t.Fatal("a failed secret lookup must fail the check")
	}
}

// TestTOTPReuseNamesFirstChallenge: a code accepted on one challenge and
// presented on another is refused as reuse, and the audit detail names the
// challenge that used it first, so that an operator can find that call.
func TestTOTPReuseNamesFirstChallenge(t *testing.T) {
	f := newFixture(t)
	first := f.call(bound, transfer(1, "EUR", "x"))
	refused1 := f.check(first)
	code := f.totp()
	first.Answer = f.answer(f.client, refused1.Challenge, code)
	if out := f.check(first); !out.Satisfied {
		t.Fatalf("first use: %+v", out)
	}
	second := f.call(bound, transfer(2, "EUR", "y"))
	refused2 := f.check(second)
	second.Answer = f.answer(f.client, refused2.Challenge, code)
	out := f.check(second)
	expectReason(t, out, challenge.ReasonTOTPReused)
	if out.ChallengeID != refused2.IssuedChallengeID {
		t.Errorf("ChallengeID = %q, want the reused-on challenge %q", out.ChallengeID, refused2.IssuedChallengeID)
	}
	if want := "first on challenge " + refused1.IssuedChallengeID[:10]; !strings.Contains(out.Detail, want) {
		t.Errorf("Detail = %q, want it to contain %q", out.Detail, want)
	}
	if strings.Contains(out.Detail, code.TOTP) {
		t.Errorf("Detail %q contains the code", out.Detail)
	}
}
