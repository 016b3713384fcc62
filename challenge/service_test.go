package challenge_test

import (
	"context"
	"crypto"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-webauthn/webauthn/protocol"

	"github.com/stepupgrpc/stepup/challenge"
	"github.com/stepupgrpc/stepup/challenge/webauthn"
	stepupv1 "github.com/stepupgrpc/stepup/proto/stepup/v1"
)

// Each factor, end to end: a call is challenged, the client answers with
// Answer on a retry of the same call, and the retry is satisfied.
func TestFactorsEndToEnd(t *testing.T) {
	tests := []struct {
		name     string
		factor   stepupv1.Factor
		evidence func(f *fixture, ch *stepupv1.StepUpChallenge) *challenge.Evidence
	}{
		{"totp", stepupv1.Factor_FACTOR_TOTP, func(f *fixture, _ *stepupv1.StepUpChallenge) *challenge.Evidence { return f.totp() }},
		{"device key", stepupv1.Factor_FACTOR_DEVICE_KEY, func(f *fixture, ch *stepupv1.StepUpChallenge) *challenge.Evidence {
			return f.deviceEvidence(f.device, ch)
		}},
		{"webauthn", stepupv1.Factor_FACTOR_WEBAUTHN, func(f *fixture, ch *stepupv1.StepUpChallenge) *challenge.Evidence {
			return f.webauthnEvidence(ch)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			msg := transfer(12000, "EUR", "DE89370400440532013000")
			call := f.call(bound, msg)
			ch := f.challengeFor(call)
			if !ch.GetBoundToRequest() || ch.GetMethod() != transferRPC || len(ch.GetFactors()) != 3 {
				t.Fatalf("challenge: %v", ch)
			}
			if got, want := ch.GetSummaryText(), `approve BankService.Transfer: amount 120.00 EUR, to DE89370400440532013000, memo "", tags "", kind KIND_UNSPECIFIED`; got != want {
				t.Errorf("summary text\n got %q\nwant %q", got, want)
			}
			f.clock.Advance(20 * time.Second) // the user takes a while
			call.Answer = f.answer(f.client, ch, tt.evidence(f, ch))
			out := f.check(call)
			if !out.Satisfied || out.Via != challenge.ViaAnswer || out.Factor != tt.factor {
				t.Fatalf("outcome %+v", out)
			}
			if out.Grant != "" {
				t.Error("a bound requirement must not issue a grant")
			}
			if !out.AuthTime.Equal(f.clock.Now()) || out.ChallengeID == "" || out.Reason != "" {
				t.Errorf("outcome %+v", out)
			}
		})
	}
}

// A bound challenge approves one request: the same answer on a request with
// another amount is refused.
func TestBoundRequestRejectsOtherRequest(t *testing.T) {
	f := newFixture(t)
	call := f.call(bound, transfer(12000, "EUR", "DE89370400440532013000"))
	ch := f.challengeFor(call)
	call.Answer = f.answer(f.client, ch, f.deviceEvidence(f.device, ch))

	changed := call
	changed.Request = transfer(9_999_900, "EUR", "DE89370400440532013000")
	out := f.check(changed)
	expectReason(t, out, challenge.ReasonChallengeWrongRequest)
	if out.Challenge == nil {
		t.Error("a refused answer must come with a fresh challenge")
	}
	// The unchanged request is still approved: a refusal before the factor
	// check does not consume the challenge.
	if out := f.check(call); !out.Satisfied {
		t.Fatalf("original request: %+v", out)
	}
}

func TestGrantIssuedAndAccepted(t *testing.T) {
	f := newFixture(t)
	call := f.call(reusable, transfer(100, "EUR", "DE89"))
	ch := f.challengeFor(call)
	if ch.GetMaxAge().AsDuration() != 5*time.Minute || ch.GetBoundToRequest() {
		t.Fatalf("challenge max_age %v", ch.GetMaxAge())
	}
	call.Answer = f.answer(f.client, ch, f.totp())
	out := f.check(call)
	if !out.Satisfied || out.Grant == "" || out.IssuedGrantID == "" {
		t.Fatalf("outcome %+v", out)
	}
	if want := f.clock.Now().Add(5 * time.Minute); !out.GrantExpires.Equal(want) {
		t.Errorf("grant expires %v, want %v", out.GrantExpires, want)
	}
	grant := out.Grant

	// A later call, another method with the same requirement.
	f.clock.Advance(4 * time.Minute)
	later := f.call(reusable, nil)
	later.Method = addPayeeRPC
	later.Grant = grant
	out = f.check(later)
	if !out.Satisfied || out.Via != challenge.ViaGrant || out.Factor != stepupv1.Factor_FACTOR_TOTP || out.GrantID == "" {
		t.Fatalf("grant refused: %+v", out)
	}

	// A stricter requirement elsewhere: the grant is too old for it.
	strict := later
	strict.Requirement = &challenge.Requirement{MaxAge: time.Minute}
	expectReason(t, f.check(strict), challenge.ReasonGrantTooOld)

	// A requirement that allows other factors only.
	other := later
	other.Requirement = &challenge.Requirement{MaxAge: time.Hour, Factors: []stepupv1.Factor{stepupv1.Factor_FACTOR_WEBAUTHN}}
	expectReason(t, f.check(other), challenge.ReasonGrantFactorNotAllowed)

	// Another subject cannot use it.
	bob := later
	bob.Subject = "bob"
	expectReason(t, f.check(bob), challenge.ReasonGrantWrongSubject)

	// A bound or every-call requirement ignores grants.
	ignored := later
	ignored.Requirement = bound
	ignored.Request = transfer(1, "EUR", "x")
	out = f.check(ignored)
	expectReason(t, out, challenge.ReasonRequired)

	// Expiry.
	f.clock.Advance(time.Minute)
	expectReason(t, f.check(later), challenge.ReasonGrantExpired)
}

// A grant is bound to the DPoP key it was issued to: presented on another
// key's connection (a stolen grant), it is refused.
func TestGrantWithAnotherKeyRefused(t *testing.T) {
	f := newFixture(t)
	call := f.call(reusable, nil)
	ch := f.challengeFor(call)
	call.Answer = f.answer(f.client, ch, f.totp())
	grant := f.check(call).Grant

	stolen := f.call(reusable, nil)
	stolen.Thumbprint = f.attacker.Thumbprint()
	stolen.Grant = grant
	out := f.check(stolen)
	expectReason(t, out, challenge.ReasonGrantWrongKey)
	if out.Challenge == nil {
		t.Error("want a fresh challenge")
	}
}

func TestRevokeGrants(t *testing.T) {
	f := newFixture(t)
	call := f.call(reusable, nil)
	ch := f.challengeFor(call)
	call.Answer = f.answer(f.client, ch, f.totp())
	grant := f.check(call).Grant

	later := f.call(reusable, nil)
	later.Grant = grant
	f.clock.Advance(time.Second)
	if !f.check(later).Satisfied {
		t.Fatal("grant refused before revocation")
	}
	// Revoked by a program that has no Service, only the store: Check
	// honours it.
	rev, err := challenge.NewRevocations(f.store, f.clock.Now)
	if err != nil {
		t.Fatal(err)
	}
	if err := rev.RevokeGrants(context.Background(), subject); err != nil {
		t.Fatal(err)
	}
	expectReason(t, f.check(later), challenge.ReasonGrantRevoked)
	if revoked, err := f.svc.Revocations().GrantsRevoked(context.Background(), subject, f.clock.Now()); err != nil || !revoked {
		t.Fatalf("GrantsRevoked = %v, %v; want true", revoked, err)
	}

	// A step-up after the revocation earns a grant that works.
	f.clock.Advance(time.Minute)
	call = f.call(reusable, nil)
	ch = f.challengeFor(call)
	call.Answer = f.answer(f.client, ch, f.deviceEvidence(f.device, ch))
	fresh := f.check(call).Grant
	later.Grant = fresh
	if out := f.check(later); !out.Satisfied {
		t.Fatalf("new grant refused: %+v", out)
	}
	later.Grant = grant
	expectReason(t, f.check(later), challenge.ReasonGrantRevoked)
}

// RFC 9470: a token whose acr and auth_time satisfy the requirement passes
// without a challenge, for a reusable requirement only.
func TestTokenSatisfiesRequirement(t *testing.T) {
	f := newFixture(t)
	req := &challenge.Requirement{ACRValues: []string{"urn:bank:mfa"}, MaxAge: 10 * time.Minute}
	call := f.call(req, nil)
	call.TokenACR = "urn:bank:mfa"
	call.TokenAuthTime = f.clock.Now().Add(-9 * time.Minute)
	out := f.check(call)
	if !out.Satisfied || out.Via != challenge.ViaToken || !out.AuthTime.Equal(call.TokenAuthTime) {
		t.Fatalf("outcome %+v", out)
	}

	tooOld := call
	tooOld.TokenAuthTime = f.clock.Now().Add(-11 * time.Minute)
	expectReason(t, f.check(tooOld), challenge.ReasonRequired)

	otherACR := call
	otherACR.TokenACR = "urn:bank:password"
	expectReason(t, f.check(otherACR), challenge.ReasonRequired)

	noAuthTime := call
	noAuthTime.TokenAuthTime = time.Time{}
	expectReason(t, f.check(noAuthTime), challenge.ReasonRequired)

	boundReq := call
	boundReq.Requirement = &challenge.Requirement{ACRValues: req.ACRValues, MaxAge: req.MaxAge, BindRequest: true}
	boundReq.Request = transfer(1, "EUR", "x")
	expectReason(t, f.check(boundReq), challenge.ReasonRequired)
}

// The same valid answer sent by 32 goroutines at once is accepted exactly
// once: the challenge (and for TOTP the time step) is single use, with an
// atomic store operation deciding the race.
func TestConcurrentAnswerSatisfiesOnce(t *testing.T) {
	for _, factor := range []string{"totp", "device_key", "webauthn"} {
		t.Run(factor, func(t *testing.T) {
			f := newFixture(t)
			call := f.call(bound, transfer(12000, "EUR", "DE89"))
			ch := f.challengeFor(call)
			var ev *challenge.Evidence
			switch factor {
			case "totp":
				ev = f.totp()
			case "device_key":
				ev = f.deviceEvidence(f.device, ch)
			case "webauthn":
				ev = f.webauthnEvidence(ch)
			}
			call.Answer = f.answer(f.client, ch, ev)
			var satisfied atomic.Int32
			var wg sync.WaitGroup
			for range 32 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					out, err := f.svc.Check(context.Background(), call)
					if err != nil {
						t.Error(err)
						return
					}
					if out.Satisfied {
						satisfied.Add(1)
					}
				}()
			}
			wg.Wait()
			if n := satisfied.Load(); n != 1 {
				t.Fatalf("satisfied %d times, want exactly 1", n)
			}
		})
	}
}

func TestWebAuthnCounterPersisted(t *testing.T) {
	f := newFixture(t)
	for i := 1; i <= 3; i++ {
		call := f.call(bound, transfer(int64(i), "EUR", "DE89"))
		ch := f.challengeFor(call)
		call.Answer = f.answer(f.client, ch, f.webauthnEvidence(ch))
		if out := f.check(call); !out.Satisfied {
			t.Fatalf("step-up %d: %+v", i, out)
		}
		if got := f.creds.SignCount(subject); got != uint32(i) {
			t.Fatalf("stored counter %d, want %d", got, i)
		}
	}
}

func TestWebAuthnRequestOptions(t *testing.T) {
	f := newFixture(t)
	ch := f.challengeFor(f.call(bound, transfer(1, "EUR", "x")))
	var opts protocol.PublicKeyCredentialRequestOptions
	if err := json.Unmarshal(ch.GetWebauthnRequestOptions(), &opts); err != nil {
		t.Fatal(err)
	}
	if opts.RelyingPartyID != rpID || opts.UserVerification != protocol.VerificationRequired || len(opts.AllowedCredentials) != 1 || len(opts.Challenge) != 32 {
		t.Fatalf("options %+v", opts)
	}

	// A subject without credentials gets no options.
	bob := f.call(bound, transfer(1, "EUR", "x"))
	bob.Subject = "bob"
	if ch := f.challengeFor(bob); len(ch.GetWebauthnRequestOptions()) != 0 {
		t.Fatal("options for a subject without credentials")
	}
}

func TestWebAuthnRefusals(t *testing.T) {
	tests := []struct {
		name    string
		setup   func(f *fixture)
		reason  challenge.Reason
		warmUps int // successful assertions before the tested one
	}{
		{"wrong origin", func(f *fixture) { f.authn.SetOrigin(evilOrigin) }, challenge.ReasonWebAuthnInvalid, 0},
		{"wrong RP ID", func(f *fixture) { f.authn.SetRPID("evil.example") }, challenge.ReasonWebAuthnInvalid, 0},
		{"counter going back", func(f *fixture) { f.authn.SetCounter(0) }, challenge.ReasonWebAuthnCounter, 2},
		{"no user verification", func(f *fixture) { f.authn.SetUserVerified(false) }, challenge.ReasonWebAuthnNoUV, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			for i := range tt.warmUps {
				call := f.call(bound, transfer(int64(i), "EUR", "x"))
				ch := f.challengeFor(call)
				call.Answer = f.answer(f.client, ch, f.webauthnEvidence(ch))
				if !f.check(call).Satisfied {
					t.Fatal("warm-up refused")
				}
			}
			tt.setup(f)
			call := f.call(bound, transfer(99, "EUR", "x"))
			ch := f.challengeFor(call)
			call.Answer = f.answer(f.client, ch, f.webauthnEvidence(ch))
			out := f.check(call)
			expectReason(t, out, tt.reason)
			if out.Factor != stepupv1.Factor_FACTOR_WEBAUTHN {
				t.Errorf("factor %v", out.Factor)
			}
		})
	}
}

// Wrong answers are limited per challenge and per subject; at the subject
// limit the subject is locked (no challenge) until the window ends, even
// for a correct answer.
func TestAttemptLimits(t *testing.T) {
	f := newFixture(t)
	wrong := &challenge.Evidence{Factor: stepupv1.Factor_FACTOR_TOTP, TOTP: "000000"}
	if c, _ := challenge.TOTPCode(totpSecret, f.clock.Now()); c == "000000" {
		t.Skip("the current code happens to be 000000")
	}
	call := f.call(bound, transfer(1, "EUR", "x"))
	ch := f.challengeFor(call)
	call.Answer = f.answer(f.client, ch, wrong)
	for i := 1; i <= challenge.DefaultPerChallenge; i++ {
		expectReason(t, f.check(call), challenge.ReasonTOTPInvalid)
	}
	// The challenge is used up, even for the right code.
	call.Answer = f.answer(f.client, ch, f.totp())
	out := f.check(call)
	expectReason(t, out, challenge.ReasonAttemptsExceeded)
	if out.Locked || out.Challenge == nil {
		t.Fatalf("per-challenge limit must not lock: %+v", out)
	}

	// More wrong answers on fresh challenges, up to the subject's limit.
	for i := challenge.DefaultPerChallenge; i < challenge.DefaultPerSubject; i++ {
		ch := f.challengeFor(call)
		call.Answer = f.answer(f.client, ch, wrong)
		out := f.check(call)
		expectReason(t, out, challenge.ReasonTOTPInvalid)
		if i+1 == challenge.DefaultPerSubject {
			if !out.Locked || out.Challenge != nil {
				t.Fatalf("want locked without a challenge after %d wrong answers: %+v", i+1, out)
			}
		}
	}
	// Locked: no challenge, and a correct answer to an earlier challenge is
	// refused without being checked.
	call.Answer = ""
	out = f.check(call)
	if !out.Locked || out.Challenge != nil || out.Reason != challenge.ReasonAttemptsExceeded {
		t.Fatalf("want locked: %+v", out)
	}
	f.clock.Advance(10 * time.Second)
	call.Answer = f.answer(f.client, ch, f.totp())
	out = f.check(call)
	if !out.Locked || out.Satisfied {
		t.Fatalf("want locked: %+v", out)
	}

	// The window ends.
	f.clock.Advance(challenge.DefaultAttemptWindow)
	ch = f.challengeFor(call)
	call.Answer = f.answer(f.client, ch, f.totp())
	if out := f.check(call); !out.Satisfied {
		t.Fatalf("after the window: %+v", out)
	}
}

// Correct answers do not count against the subject's limit.
func TestSuccessesDoNotLock(t *testing.T) {
	f := newFixture(t)
	for i := range 2 * challenge.DefaultPerSubject {
		call := f.call(bound, transfer(int64(i), "EUR", "x"))
		ch := f.challengeFor(call)
		call.Answer = f.answer(f.client, ch, f.deviceEvidence(f.device, ch))
		if out := f.check(call); !out.Satisfied {
			t.Fatalf("step-up %d: %+v", i, out)
		}
	}
}

// Concurrent wrong guesses cannot exceed the limits: attempts are counted
// before the factor is checked.
func TestConcurrentGuessesBounded(t *testing.T) {
	f := newFixture(t)
	var answers []string
	for range 20 {
		ch := f.challengeFor(f.call(bound, transfer(1, "EUR", "x")))
		for _, code := range []string{"000001", "000002", "000003"} {
			answers = append(answers, f.answer(f.client, ch, &challenge.Evidence{Factor: stepupv1.Factor_FACTOR_TOTP, TOTP: code}))
		}
	}
	var checked atomic.Int32
	var wg sync.WaitGroup
	for _, a := range answers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			call := f.call(bound, transfer(1, "EUR", "x"))
			call.Answer = a
			out, err := f.svc.Check(context.Background(), call)
			if err != nil {
				t.Error(err)
				return
			}
			if out.Reason == challenge.ReasonTOTPInvalid || out.Satisfied {
				checked.Add(1)
			}
		}()
	}
	wg.Wait()
	if n := checked.Load(); n > challenge.DefaultPerSubject {
		t.Fatalf("%d guesses were checked, limit %d", n, challenge.DefaultPerSubject)
	}
}

func TestKeyRotation(t *testing.T) {
	k1, k2 := newKey(t, "k1"), newKey(t, "k2")
	old := newFixture(t, withKeySet(newKeySet(t, k1)))
	call := old.call(reusable, nil)
	ch := old.challengeFor(call)
	call.Answer = old.answer(old.client, ch, old.deviceEvidence(old.device, ch))
	oldGrant := old.check(call).Grant

	// The rotated service signs with k2 and still verifies k1.
	rotated := newKeySet(t, k2, k1)
	svc, err := challenge.NewService(challenge.WithKeys(rotated), challenge.WithClock(old.clock.Now),
		challenge.WithDeviceKeys(challenge.DeviceKeysFunc(func(context.Context, string) ([]crypto.PublicKey, error) {
			return []crypto.PublicKey{old.device.Public()}, nil
		})))
	if err != nil {
		t.Fatal(err)
	}
	later := old.call(reusable, nil)
	later.Grant = oldGrant
	if out, err := svc.Check(context.Background(), later); err != nil || !out.Satisfied {
		t.Fatalf("grant signed by the previous key: %+v %v", out, err)
	}
	later.Grant = ""
	ch = old.challengeFor(later) // signed with k1
	later.Answer = old.answer(old.client, ch, old.deviceEvidence(old.device, ch))
	if out, err := svc.Check(context.Background(), later); err != nil || !out.Satisfied {
		t.Fatalf("challenge signed by the previous key: %+v %v", out, err)
	}
	out, err := svc.Check(context.Background(), old.call(reusable, nil))
	if err != nil || out.Challenge == nil {
		t.Fatal(err)
	}
	if kid := jwsHeader(t, out.Challenge.GetChallenge())["kid"]; kid != "k2" {
		t.Fatalf("new challenge signed by %v, want k2", kid)
	}

	// Once k1 is removed, its tokens are refused.
	removed, err := challenge.NewService(challenge.WithKeys(newKeySet(t, k2)), challenge.WithClock(old.clock.Now),
		challenge.WithDeviceKeys(challenge.DeviceKeysFunc(func(context.Context, string) ([]crypto.PublicKey, error) {
			return []crypto.PublicKey{old.device.Public()}, nil
		})))
	if err != nil {
		t.Fatal(err)
	}
	later.Answer = ""
	later.Grant = oldGrant
	out, err = removed.Check(context.Background(), later)
	if err != nil {
		t.Fatal(err)
	}
	expectReason(t, out, challenge.ReasonGrantBadSignature)
	later.Grant = ""
	ch = old.challengeFor(later)
	later.Answer = old.answer(old.client, ch, old.deviceEvidence(old.device, ch))
	out, err = removed.Check(context.Background(), later)
	if err != nil {
		t.Fatal(err)
	}
	expectReason(t, out, challenge.ReasonChallengeBadSignature)
}

func TestCheckRefusesToGuess(t *testing.T) {
	f := newFixture(t)
	tests := []struct {
		name   string
		mutate func(c *challenge.Call)
	}{
		{"nil requirement", func(c *challenge.Call) { c.Requirement = nil }},
		{"bound requirement on a stream", func(c *challenge.Call) { c.Request = nil }},
		{"no thumbprint", func(c *challenge.Call) { c.Thumbprint = "" }},
		{"no subject", func(c *challenge.Call) { c.Subject = "" }},
		{"bad method", func(c *challenge.Call) { c.Method = "Transfer" }},
		{"unconfigured factors only", func(c *challenge.Call) {
			c.Requirement = &challenge.Requirement{Factors: []stepupv1.Factor{stepupv1.Factor_FACTOR_UNSPECIFIED}}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			call := f.call(bound, transfer(1, "EUR", "x"))
			tt.mutate(&call)
			if out, err := f.svc.Check(context.Background(), call); err == nil {
				t.Fatalf("no error, outcome %+v", out)
			}
		})
	}
}

// failingStore fails every operation, like a store that is down.
type failingStore struct {
	challenge.Store
	err error
}

func (s failingStore) Insert(context.Context, string, time.Time, time.Time) error { return s.err }
func (s failingStore) Increment(context.Context, string, time.Time) (int64, error) {
	return 0, s.err
}
func (s failingStore) SetMax(context.Context, string, int64, time.Time) error { return s.err }
func (s failingStore) Get(context.Context, string) (int64, error)             { return 0, s.err }

// When the store cannot answer, Check fails (the caller refuses) rather than
// accept a grant or an answer it cannot vouch for.
func TestStoreFailureFailsClosed(t *testing.T) {
	f := newFixture(t)
	call := f.call(reusable, nil)
	ch := f.challengeFor(call)
	call.Answer = f.answer(f.client, ch, f.totp())
	grant := f.check(call).Grant

	down := errors.New("connection refused")
	svc, err := challenge.NewService(challenge.WithKeys(f.keys), challenge.WithClock(f.clock.Now),
		challenge.WithStore(failingStore{err: down}),
		challenge.WithTOTP(challenge.TOTPSecretsFunc(func(context.Context, string) (string, error) { return totpSecret, nil }), challenge.TOTPOptions{}))
	if err != nil {
		t.Fatal(err)
	}
	withGrant := f.call(reusable, nil)
	withGrant.Grant = grant
	f.clock.Advance(30 * time.Second)
	ch = f.challengeFor(f.call(reusable, nil))
	withAnswer := f.call(reusable, nil)
	withAnswer.Answer = f.answer(f.client, ch, f.totp())
	for name, call := range map[string]challenge.Call{"grant": withGrant, "answer": withAnswer, "nothing": f.call(reusable, nil)} {
		out, err := svc.Check(context.Background(), call)
		if err == nil || out != nil {
			t.Fatalf("%s: want an error, got %+v", name, out)
		}
		if !errors.Is(err, down) || challenge.ReasonOf(err) != challenge.ReasonStoreUnavailable {
			t.Fatalf("%s: error %v", name, err)
		}
	}
	if err := svc.Revocations().RevokeGrants(context.Background(), subject); challenge.ReasonOf(err) != challenge.ReasonStoreUnavailable {
		t.Fatalf("RevokeGrants: %v", err)
	}
}

func TestNewServiceErrors(t *testing.T) {
	keys := newKeySet(t, newKey(t, "k1"))
	secrets := challenge.TOTPSecretsFunc(func(context.Context, string) (string, error) { return "", nil })
	tests := map[string][]challenge.Option{
		"no keys":          {challenge.WithTOTP(secrets, challenge.TOTPOptions{})},
		"no factor":        {challenge.WithKeys(keys)},
		"long ttl":         {challenge.WithKeys(keys), challenge.WithTOTP(secrets, challenge.TOTPOptions{}), challenge.WithChallengeTTL(6 * time.Minute)},
		"zero ttl":         {challenge.WithKeys(keys), challenge.WithTOTP(secrets, challenge.TOTPOptions{}), challenge.WithChallengeTTL(0)},
		"5 digits":         {challenge.WithKeys(keys), challenge.WithTOTP(secrets, challenge.TOTPOptions{Digits: 5})},
		"md5":              {challenge.WithKeys(keys), challenge.WithTOTP(secrets, challenge.TOTPOptions{Algorithm: 2})},
		"fractional step":  {challenge.WithKeys(keys), challenge.WithTOTP(secrets, challenge.TOTPOptions{Period: 1500 * time.Millisecond})},
		"zero limits":      {challenge.WithKeys(keys), challenge.WithTOTP(secrets, challenge.TOTPOptions{}), challenge.WithAttemptLimits(0, 10, time.Minute)},
		"nil keys":         {challenge.WithKeys(nil)},
		"nil store":        {challenge.WithStore(nil)},
		"nil clock":        {challenge.WithClock(nil)},
		"webauthn no rpid": {challenge.WithKeys(keys), webauthn.With(webauthn.Config{}, webauthn.NewMemoryCredentials())},
		"nil factor":       {challenge.WithKeys(keys), challenge.WithFactor(nil)},
		"nil option error": {challenge.WithKeys(keys), challenge.WithTOTP(secrets, challenge.TOTPOptions{}), challenge.OptionError(nil)},
	}
	for name, opts := range tests {
		t.Run(name, func(t *testing.T) {
			if _, err := challenge.NewService(opts...); err == nil {
				t.Fatal("no error")
			}
		})
	}
	svc, err := challenge.NewService(challenge.WithKeys(keys), challenge.WithTOTP(secrets, challenge.TOTPOptions{}), challenge.WithChallengeTTL(5*time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	if got := svc.Factors(); len(got) != 1 || got[0] != stepupv1.Factor_FACTOR_TOTP {
		t.Fatalf("factors %v", got)
	}
}

func TestFirstAllowed(t *testing.T) {
	f := newFixture(t)
	ch := f.challengeFor(f.call(&challenge.Requirement{Factors: []stepupv1.Factor{stepupv1.Factor_FACTOR_DEVICE_KEY, stepupv1.Factor_FACTOR_WEBAUTHN}}, nil))
	prompted := false
	totp := challenge.TOTPResponder(func(context.Context, *stepupv1.StepUpChallenge) (string, error) {
		prompted = true
		return "123456", nil
	})
	failing := challenge.WebAuthnResponder(authenticatorFunc(func(context.Context, []byte) ([]byte, error) {
		return nil, errors.New("user cancelled")
	}))
	dev, err := challenge.DeviceKeyResponder(f.device)
	if err != nil {
		t.Fatal(err)
	}
	ev, err := challenge.FirstAllowed(totp, failing, dev).Respond(context.Background(), ch)
	if err != nil {
		t.Fatal(err)
	}
	if prompted || ev.Factor != stepupv1.Factor_FACTOR_DEVICE_KEY {
		t.Fatalf("prompted %v, factor %v", prompted, ev.Factor)
	}
	if _, err := challenge.FirstAllowed(totp).Respond(context.Background(), ch); err == nil {
		t.Fatal("no error without an allowed responder")
	}
}

type authenticatorFunc func(context.Context, []byte) ([]byte, error)

func (f authenticatorFunc) GetAssertion(ctx context.Context, o []byte) ([]byte, error) {
	return f(ctx, o)
}

// A grant lasts the shortest of the requirement's MaxAge and the server's
// maximum grant age; a refused grant keeps its reason when an answer on the
// same call succeeds.
func TestGrantLifetimeAndReasonKept(t *testing.T) {
	f := newFixture(t, withOptions(challenge.WithMaxGrantAge(time.Hour)))
	long := &challenge.Requirement{MaxAge: 48 * time.Hour}
	call := f.call(long, nil)
	ch := f.challengeFor(call)
	if ch.GetMaxAge().AsDuration() != time.Hour {
		t.Fatalf("challenge max_age %v, want the 1h cap", ch.GetMaxAge().AsDuration())
	}
	call.Answer = f.answer(f.client, ch, f.deviceEvidence(f.device, ch))
	call.Grant = "not-a-grant"
	out := f.check(call)
	if !out.Satisfied || out.Via != challenge.ViaAnswer || out.Reason != challenge.ReasonGrantMalformed {
		t.Fatalf("outcome %+v", out)
	}
	if got := out.GrantExpires.Sub(f.clock.Now()); got != time.Hour {
		t.Fatalf("grant lasts %v, want 1h", got)
	}
}

// The deprecated revocation methods of Service read and write the same
// revocations as its Revocations.
func TestServiceRevocationWrappers(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	rev := f.svc.Revocations()
	before := f.clock.Now()
	if err := f.svc.RevokeGrants(ctx, subject); err != nil {
		t.Fatal(err)
	}
	if err := f.svc.RevokeTokens(ctx, subject); err != nil {
		t.Fatal(err)
	}
	if err := f.svc.RevokeKey(ctx, subject, "jkt-1"); err != nil {
		t.Fatal(err)
	}
	for name, got := range map[string]func() (bool, error){
		"GrantsRevoked": func() (bool, error) { return rev.GrantsRevoked(ctx, subject, before) },
		"Revoked":       func() (bool, error) { return f.svc.Revoked(ctx, subject, before) },
		"TokensRevoked": func() (bool, error) { return f.svc.TokensRevoked(ctx, subject, before) },
		"KeyRevoked":    func() (bool, error) { return rev.KeyRevoked(ctx, subject, "jkt-1") },
	} {
		if ok, err := got(); err != nil || !ok {
			t.Errorf("%s = %v, %v; want true", name, ok, err)
		}
	}
	if ok, err := rev.KeyRevoked(ctx, subject, "jkt-2"); err != nil || ok {
		t.Errorf("KeyRevoked(another key) = %v, %v; want false", ok, err)
	}
	if tokens, key, err := f.svc.CredentialsRevoked(ctx, subject, before, "jkt-1"); err != nil || !tokens || !key {
		t.Errorf("CredentialsRevoked = %v, %v, %v; want true, true", tokens, key, err)
	}
	later := before.Add(time.Minute)
	if ok, err := rev.GrantsRevoked(ctx, subject, later); err != nil || ok {
		t.Errorf("GrantsRevoked(after the revocation) = %v, %v; want false", ok, err)
	}
}

// A grant revocation is remembered as long as any grant can live, whoever
// writes it: revoked through a Service with a shorter WithMaxGrantAge (or
// NewRevocations) on the same store, a grant of a Service with the longest
// grant age stays refused until it expires; a grant age longer than a
// revocation is remembered is refused by NewService.
func TestGrantRevocationOutlivesEveryGrant(t *testing.T) {
	f := newFixture(t)
	day := &challenge.Requirement{MaxAge: challenge.DefaultMaxGrantAge}
	call := f.call(day, nil)
	ch := f.challengeFor(call)
	call.Answer = f.answer(f.client, ch, f.totp())
	out := f.check(call)
	if !out.Satisfied || out.GrantExpires.Sub(f.clock.Now()) != challenge.DefaultMaxGrantAge {
		t.Fatalf("outcome %+v, want a grant for %s", out, challenge.DefaultMaxGrantAge)
	}
	later := f.call(day, nil)
	later.Grant = out.Grant

	short, err := challenge.NewService(challenge.WithKeys(f.keys), challenge.WithStore(f.store), challenge.WithClock(f.clock.Now),
		challenge.WithTOTP(challenge.TOTPSecretsFunc(func(context.Context, string) (string, error) { return totpSecret, nil }), challenge.TOTPOptions{}),
		challenge.WithMaxGrantAge(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	f.clock.Advance(time.Second)
	if err := short.Revocations().RevokeGrants(context.Background(), subject); err != nil {
		t.Fatal(err)
	}
	for _, after := range []time.Duration{time.Minute, 2 * time.Hour, challenge.DefaultMaxGrantAge - 2*time.Second} {
		f.clock.Advance(after - f.clock.Now().Sub(out.GrantExpires.Add(-challenge.DefaultMaxGrantAge)))
		expectReason(t, f.check(later), challenge.ReasonGrantRevoked)
	}

	_, err = challenge.NewService(challenge.WithKeys(f.keys), challenge.WithStore(f.store),
		challenge.WithTOTP(challenge.TOTPSecretsFunc(func(context.Context, string) (string, error) { return totpSecret, nil }), challenge.TOTPOptions{}),
		challenge.WithMaxGrantAge(challenge.DefaultMaxGrantAge+time.Second))
	if err == nil || !strings.Contains(err.Error(), "WithMaxGrantAge") {
		t.Fatalf("NewService(WithMaxGrantAge(24h1s)) = %v, want refused", err)
	}
}
