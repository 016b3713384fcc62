package challenge_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/stepupgrpc/stepup/challenge"
	stepupv1 "github.com/stepupgrpc/stepup/proto/stepup/v1"
)

func jwsHeader(t *testing.T, token string) map[string]any {
	t.Helper()
	seg, _, _ := strings.Cut(token, ".")
	b, err := base64.RawURLEncoding.DecodeString(seg)
	if err != nil {
		t.Fatal(err)
	}
	var h map[string]any
	if err := json.Unmarshal(b, &h); err != nil {
		t.Fatal(err)
	}
	return h
}

// flip changes one character in the middle of segment i (0 header, 1
// payload, 2 signature) of a compact JWS to another base64url character.
func flip(token string, i int) string {
	segs := strings.Split(token, ".")
	s := []byte(segs[i])
	j := len(s) / 2
	if s[j] == 'A' {
		s[j] = 'B'
	} else {
		s[j] = 'A'
	}
	segs[i] = string(s)
	return strings.Join(segs, ".")
}

// withChallenge returns ch with another challenge string.
func withChallenge(ch *stepupv1.StepUpChallenge, token string) *stepupv1.StepUpChallenge {
	return &stepupv1.StepUpChallenge{Challenge: token, Factors: ch.GetFactors()}
}

func challengeHashB64(token string) string {
	h := sha256.Sum256([]byte(token))
	return base64.RawURLEncoding.EncodeToString(h[:])
}

// Every forgery an attacker could try is refused with its exact reason.
// The attacker is assumed to see challenges, answers and grants (they are
// in metadata), and to hold a DPoP key of their own.
func TestForgeriesRefused(t *testing.T) {
	f := newFixture(t)
	msg := transfer(12000, "EUR", "DE89370400440532013000")
	victim := func() challenge.Call { return f.call(bound, msg) }
	fresh := func() *stepupv1.StepUpChallenge { return f.challengeFor(victim()) }
	answerDevice := func(ch *stepupv1.StepUpChallenge) string {
		return f.answer(f.client, ch, f.deviceEvidence(f.device, ch))
	}

	// Tokens from other parties.
	other := newFixture(t, withKeySet(newKeySet(t, newKey(t, "evil"))))
	sameKid := newFixture(t, withKeySet(newKeySet(t, newKey(t, "k1")))) // same kid, another secret
	other.clock.Set(f.clock.Now())
	sameKid.clock.Set(f.clock.Now())

	_, stranger, _ := ed25519.GenerateKey(rand.Reader)

	tests := []struct {
		name   string
		answer func() string
		mutate func(*challenge.Call)
		reason challenge.Reason
	}{
		{
			name: "challenge for another method",
			answer: func() string {
				c := victim()
				c.Method = addPayeeRPC
				return answerDevice(f.challengeFor(c))
			},
			reason: challenge.ReasonChallengeWrongMethod,
		},
		{
			name: "challenge for another DPoP key",
			answer: func() string {
				c := victim()
				c.Thumbprint = f.attacker.Thumbprint()
				return answerDevice(f.challengeFor(c))
			},
			reason: challenge.ReasonChallengeWrongKey,
		},
		{
			name: "challenge for another subject",
			answer: func() string {
				c := victim()
				c.Subject = "mallory"
				return answerDevice(f.challengeFor(c))
			},
			reason: challenge.ReasonChallengeWrongSubject,
		},
		{
			name: "challenge for another request",
			answer: func() string {
				c := victim()
				c.Request = transfer(1, "EUR", "DE89370400440532013000")
				return answerDevice(f.challengeFor(c))
			},
			reason: challenge.ReasonChallengeWrongRequest,
		},
		{
			name: "unbound challenge for a bound requirement",
			answer: func() string {
				c := victim()
				c.Requirement = &challenge.Requirement{}
				return answerDevice(f.challengeFor(c))
			},
			reason: challenge.ReasonChallengeWrongRequest,
		},
		{
			name: "expired challenge",
			answer: func() string {
				ch := fresh()
				f.clock.Advance(challenge.DefaultChallengeTTL)
				return answerDevice(ch)
			},
			reason: challenge.ReasonChallengeExpired,
		},
		{
			name:   "bit flip in the challenge claims",
			answer: func() string { ch := fresh(); return answerDevice(withChallenge(ch, flip(ch.Challenge, 1))) },
			reason: challenge.ReasonChallengeBadSignature,
		},
		{
			name:   "bit flip in the challenge MAC",
			answer: func() string { ch := fresh(); return answerDevice(withChallenge(ch, flip(ch.Challenge, 2))) },
			reason: challenge.ReasonChallengeBadSignature,
		},
		{
			name:   "challenge signed with an unknown kid",
			answer: func() string { return answerDevice(other.challengeFor(other.call(bound, msg))) },
			reason: challenge.ReasonChallengeBadSignature,
		},
		{
			name: "challenge signed with a known kid and another secret",
			answer: func() string {
				c := sameKid.call(bound, msg)
				c.Thumbprint = f.client.Thumbprint()
				return answerDevice(sameKid.challengeFor(c))
			},
			reason: challenge.ReasonChallengeBadSignature,
		},
		{
			name: "challenge with alg none",
			answer: func() string {
				ch := fresh()
				segs := strings.Split(ch.Challenge, ".")
				hdr := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none","kid":"k1","typ":"stepup-challenge+jwt"}`))
				return answerDevice(withChallenge(ch, hdr+"."+segs[1]+"."))
			},
			reason: challenge.ReasonChallengeMalformed,
		},
		{
			name: "grant passed off as a challenge",
			answer: func() string {
				c := f.call(reusable, nil)
				ch := f.challengeFor(c)
				c.Answer = f.answer(f.client, ch, f.deviceEvidence(f.device, ch))
				grant := f.check(c).Grant
				return answerDevice(withChallenge(fresh(), grant))
			},
			reason: challenge.ReasonChallengeMalformed,
		},
		{
			name:   "not a challenge at all",
			answer: func() string { return answerDevice(withChallenge(fresh(), "not.a.token")) },
			reason: challenge.ReasonChallengeMalformed,
		},
		{
			name: "challenge reused after success",
			answer: func() string {
				ch := fresh()
				a := answerDevice(ch)
				c := victim()
				c.Answer = a
				if !f.check(c).Satisfied {
					t.Fatal("first use refused")
				}
				return answerDevice(ch)
			},
			reason: challenge.ReasonChallengeReused,
		},
		{
			name:   "answer signed by another key",
			answer: func() string { ch := fresh(); return f.answer(f.attacker, ch, f.deviceEvidence(f.device, ch)) },
			reason: challenge.ReasonAnswerWrongKey,
		},
		{
			name: "attacker answers the victim's challenge on the attacker's connection",
			answer: func() string {
				ch := fresh()
				return f.answer(f.attacker, ch, f.deviceEvidence(f.device, ch))
			},
			mutate: func(c *challenge.Call) { c.Thumbprint = f.attacker.Thumbprint() },
			reason: challenge.ReasonChallengeWrongKey,
		},
		{
			name:   "bit flip in the answer signature",
			answer: func() string { return flip(answerDevice(fresh()), 2) },
			reason: challenge.ReasonAnswerBadSignature,
		},
		{
			name:   "answer that is not a JWS",
			answer: func() string { return "garbage" },
			reason: challenge.ReasonAnswerMalformed,
		},
		{
			name:   "answer over 16 KiB",
			answer: func() string { return strings.Repeat("a", 16<<10+1) },
			reason: challenge.ReasonAnswerMalformed,
		},
		{
			name: "answer with two kinds of evidence",
			answer: func() string {
				ch := fresh()
				p := `{"chl":"` + ch.Challenge + `","fac":"totp","otp":"123456","dev":"x","iat":1}`
				a, err := f.client.SignJWS(challenge.AnswerType, []byte(p))
				if err != nil {
					t.Fatal(err)
				}
				return a
			},
			reason: challenge.ReasonAnswerMalformed,
		},
		{
			name: "answer with another typ",
			answer: func() string {
				p := `{"chl":"` + fresh().Challenge + `","fac":"totp","otp":"123456","iat":1}`
				a, err := f.client.SignJWS("dpop+jwt", []byte(p))
				if err != nil {
					t.Fatal(err)
				}
				return a
			},
			reason: challenge.ReasonAnswerMalformed,
		},
		{
			name: "factor the requirement does not allow",
			answer: func() string {
				c := victim()
				c.Requirement = &challenge.Requirement{BindRequest: true, Factors: []stepupv1.Factor{stepupv1.Factor_FACTOR_WEBAUTHN, stepupv1.Factor_FACTOR_DEVICE_KEY}}
				return f.answer(f.client, f.challengeFor(c), f.deviceEvidence(f.device, fresh()))
			},
			mutate: func(c *challenge.Call) {
				c.Requirement = &challenge.Requirement{BindRequest: true, Factors: []stepupv1.Factor{stepupv1.Factor_FACTOR_WEBAUTHN}}
			},
			reason: challenge.ReasonFactorNotAllowed,
		},
		{
			name: "factor the challenge does not allow",
			answer: func() string {
				c := victim()
				c.Requirement = &challenge.Requirement{BindRequest: true, Factors: []stepupv1.Factor{stepupv1.Factor_FACTOR_WEBAUTHN}}
				ch := f.challengeFor(c)
				ch.Factors = append(ch.Factors, stepupv1.Factor_FACTOR_TOTP) // the client lies to itself
				return f.answer(f.client, ch, f.totp())
			},
			reason: challenge.ReasonFactorNotAllowed,
		},
		{
			name:   "device key not registered",
			answer: func() string { ch := fresh(); return f.answer(f.client, ch, f.deviceEvidence(stranger, ch)) },
			reason: challenge.ReasonDeviceKeyUnknown,
		},
		{
			name: "device evidence for another challenge",
			answer: func() string {
				ev := f.deviceEvidence(f.device, fresh())
				return f.answer(f.client, fresh(), ev)
			},
			reason: challenge.ReasonDeviceSignatureInvalid,
		},
		{
			name: "DPoP key used as the device key",
			answer: func() string {
				ch := fresh()
				h := challengeHashB64(ch.Challenge)
				dev, err := f.client.SignJWS(challenge.DeviceType, []byte(`{"chh":"`+h+`","iat":1}`))
				if err != nil {
					t.Fatal(err)
				}
				return f.answer(f.client, ch, &challenge.Evidence{Factor: stepupv1.Factor_FACTOR_DEVICE_KEY, Device: dev})
			},
			reason: challenge.ReasonDeviceKeyUnknown,
		},
		{
			name: "device evidence with a bit flip",
			answer: func() string {
				ch := fresh()
				ev := f.deviceEvidence(f.device, ch)
				ev.Device = flip(ev.Device, 1)
				return f.answer(f.client, ch, ev)
			},
			reason: challenge.ReasonDeviceSignatureInvalid,
		},
		{
			name: "wrong TOTP code",
			answer: func() string {
				ch := fresh()
				ev := f.totp()
				ev.TOTP = string(rune('0'+(ev.TOTP[0]-'0'+1)%10)) + ev.TOTP[1:]
				return f.answer(f.client, ch, ev)
			},
			reason: challenge.ReasonTOTPInvalid,
		},
		{
			name: "TOTP code that is not 6 digits",
			answer: func() string {
				ch := fresh()
				return f.answer(f.client, ch, &challenge.Evidence{Factor: stepupv1.Factor_FACTOR_TOTP, TOTP: "12345a"})
			},
			reason: challenge.ReasonTOTPInvalid,
		},
		{
			name: "TOTP code used twice, on a new challenge",
			answer: func() string {
				f.clock.Advance(time.Minute) // a fresh time step
				ev := f.totp()
				c := victim()
				ch := f.challengeFor(c)
				c.Answer = f.answer(f.client, ch, ev)
				if !f.check(c).Satisfied {
					t.Fatal("first use refused")
				}
				return f.answer(f.client, fresh(), ev)
			},
			reason: challenge.ReasonTOTPReused,
		},
		{
			name: "TOTP code of another subject's challenge",
			answer: func() string {
				c := victim()
				c.Subject = "bob"
				return f.answer(f.client, f.challengeFor(c), f.totp())
			},
			mutate: func(c *challenge.Call) { c.Subject = "bob" },
			reason: challenge.ReasonTOTPInvalid, // bob has no TOTP secret
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f.t = t
			call := victim()
			call.Answer = tt.answer()
			if tt.mutate != nil {
				tt.mutate(&call)
			}
			out := f.check(call)
			expectReason(t, out, tt.reason)
			if out.Locked || out.Challenge == nil {
				t.Fatalf("want a fresh challenge: %+v", out)
			}
		})
	}
}

func TestGrantForgeriesRefused(t *testing.T) {
	f := newFixture(t)
	call := f.call(reusable, nil)
	ch := f.challengeFor(call)
	call.Answer = f.answer(f.client, ch, f.deviceEvidence(f.device, ch))
	grant := f.check(call).Grant
	// Accepted once: the Service now holds its claims in the verified-grant
	// cache, and every forgery below is judged with it there.
	accepted := f.call(reusable, nil)
	accepted.Grant = grant
	if out := f.check(accepted); !out.Satisfied || out.Via != challenge.ViaGrant {
		t.Fatalf("genuine grant refused: %+v", out)
	}
	stolen := accepted
	stolen.Thumbprint = f.attacker.Thumbprint()
	expectReason(t, f.check(stolen), challenge.ReasonGrantWrongKey)

	other := newFixture(t, withKeySet(newKeySet(t, newKey(t, "evil"))))
	other.clock.Set(f.clock.Now())
	oc := other.call(reusable, nil)
	oc.Thumbprint = f.client.Thumbprint()
	och := other.challengeFor(oc)
	oc.Answer = other.answer(f.client, och, other.deviceEvidence(other.device, och))
	foreign := other.check(oc).Grant
	if foreign == "" {
		t.Fatal("no foreign grant")
	}

	// A MAC one character short is 42 characters: a strict decoder reads 31
	// bytes from it when the unused low bits of its last character are zero
	// (1 MAC in 16), and the grant then fails its MAC; otherwise it is
	// malformed. Either way it is refused; which one depends on the MAC.
	short := grant[:len(grant)-1]
	shortReason := challenge.ReasonGrantMalformed
	if _, err := base64.RawURLEncoding.Strict().DecodeString(short[strings.LastIndexByte(short, '.')+1:]); err == nil {
		shortReason = challenge.ReasonGrantBadSignature
	}
	tests := map[string]struct {
		grant  string
		reason challenge.Reason
	}{
		"bit flip in the claims":       {flip(grant, 1), challenge.ReasonGrantBadSignature},
		"bit flip in the MAC":          {flip(grant, 2), challenge.ReasonGrantBadSignature},
		"signed with an unknown kid":   {foreign, challenge.ReasonGrantBadSignature},
		"challenge passed off as one":  {ch.Challenge, challenge.ReasonGrantMalformed},
		"garbage":                      {"garbage", challenge.ReasonGrantMalformed},
		"four segments":                {grant + ".x", challenge.ReasonGrantMalformed},
		"one more character of MAC":    {grant + "A", challenge.ReasonGrantBadSignature},
		"one character of MAC fewer":   {short, shortReason},
		"CR in the MAC":                {grant[:len(grant)-5] + "\r" + grant[len(grant)-5:], challenge.ReasonGrantMalformed},
		"LF in the claims":             {withLF(grant, 1), challenge.ReasonGrantBadSignature},
		"over the size limit":          {strings.Repeat("a", 5000), challenge.ReasonGrantMalformed},
		"header with an extra member":  {withHeader(grant, `{"alg":"HS256","kid":"k1","typ":"stepup-grant+jwt","crit":["x"]}`), challenge.ReasonGrantMalformed},
		"HS256 header in another form": {withHeader(grant, `{"typ":"stepup-grant+jwt","kid":"k1","alg":"HS256"}`), challenge.ReasonGrantBadSignature},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			c := f.call(reusable, nil)
			c.Grant = tt.grant
			out, err := f.svc.Check(context.Background(), c)
			if err != nil {
				t.Fatal(err)
			}
			expectReason(t, out, tt.reason)
		})
	}
}

// withLF inserts a line feed into segment i of a compact JWS: the same
// bytes to a lenient decoder, another token to the MAC.
func withLF(token string, i int) string {
	segs := strings.Split(token, ".")
	segs[i] = segs[i][:4] + "\n" + segs[i][4:]
	return strings.Join(segs, ".")
}

// withHeader replaces the header of a compact JWS (keeping the MAC, which
// then no longer matches).
func withHeader(token, header string) string {
	_, rest, _ := strings.Cut(token, ".")
	return base64.RawURLEncoding.EncodeToString([]byte(header)) + "." + rest
}
