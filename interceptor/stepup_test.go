package interceptor_test

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"

	"github.com/stepupgrpc/stepup/challenge"
	"github.com/stepupgrpc/stepup/interceptor"
	policytestv1 "github.com/stepupgrpc/stepup/interceptor/internal/testproto/policytest/v1"
	stepupv1 "github.com/stepupgrpc/stepup/proto/stepup/v1"
)

// totpApp answers challenges with the code of the test secret at the env's
// time, and records what it was shown.
type totpApp struct {
	e     *env
	mu    sync.Mutex
	shown []*stepupv1.StepUpChallenge
}

func (a *totpApp) responder() challenge.Responder {
	return challenge.TOTPResponder(func(_ context.Context, ch *stepupv1.StepUpChallenge) (string, error) {
		a.mu.Lock()
		a.shown = append(a.shown, ch)
		a.mu.Unlock()
		return challenge.TOTPCode(testTOTP, a.e.clock.Now())
	})
}

func (a *totpApp) challenges() []*stepupv1.StepUpChallenge {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]*stepupv1.StepUpChallenge(nil), a.shown...)
}

func transferRequest(amount int64) *policytestv1.SensitiveRequest {
	return &policytestv1.SensitiveRequest{AmountMinor: amount, Currency: "EUR", ToIban: "DE89370400440532013000", Note: "rent"}
}

func decisions(evs []interceptor.Event) string {
	var parts []string
	for _, ev := range evs {
		parts = append(parts, string(ev.Decision)+":"+string(ev.Reason))
	}
	return strings.Join(parts, " ")
}

func TestStepUpTOTPBoundToRequest(t *testing.T) {
	e := newEnv(t, envOpts{})
	app := &totpApp{e: e}
	c := e.client(e.boundToken(tokenOpts{}), interceptor.WithResponder(app.responder()))
	r, err := c.Sensitive(context.Background(), transferRequest(12_000))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasSuffix(r.GetText(), "step-up:answer:totp") {
		t.Fatalf("handler saw %q", r.GetText())
	}
	shown := app.challenges()
	if len(shown) != 1 {
		t.Fatalf("responder called %d times", len(shown))
	}
	ch := shown[0]
	if !ch.GetBoundToRequest() || ch.GetMethod() != mSensitive || !strings.Contains(ch.GetSummaryText(), "120.00 EUR") ||
		!strings.Contains(ch.GetSummaryText(), "DE89370400440532013000") || strings.Contains(ch.GetSummaryText(), "rent") {
		t.Fatalf("challenge shown = %v", ch)
	}
	evs := e.audit.all()
	if got := decisions(evs); got != "challenge:STEPUP_REQUIRED step_up_passed:ALLOWED" {
		t.Fatalf("audit = %s", got)
	}
	if evs[0].IssuedChallengeID == "" || evs[1].ChallengeID != evs[0].IssuedChallengeID || evs[1].Factor != "totp" || evs[1].Via != "answer" {
		t.Fatalf("audit events = %+v", evs)
	}
	if n := e.server.handled("Sensitive"); n != 1 {
		t.Fatalf("handler ran %d times", n)
	}
	// Bound: the next transfer is challenged again (a new time step, since
	// a TOTP code is accepted once).
	e.clock.Advance(30 * time.Second)
	e.audit.reset()
	if _, err := c.Sensitive(context.Background(), transferRequest(12_000)); err != nil {
		t.Fatal(err)
	}
	if got := decisions(e.audit.all()); got != "challenge:STEPUP_REQUIRED step_up_passed:ALLOWED" {
		t.Fatalf("second transfer audit = %s", got)
	}
}

// challengeFor makes a raw call and returns the challenge it is refused with.
func challengeFor(t *testing.T, e *env, call func(ctx context.Context) error, method, token string) *stepupv1.StepUpChallenge {
	t.Helper()
	err := call(withCreds(context.Background(), "authorization", "DPoP "+token, "dpop", e.proof(method, token)))
	ch := interceptor.ChallengeFromError(err)
	if ch == nil {
		t.Fatalf("call = %v, want a step-up challenge", err)
	}
	return ch
}

func totpAnswer(t testing.TB, e *env, ch *stepupv1.StepUpChallenge) string {
	t.Helper()
	code, err := challenge.TOTPCode(testTOTP, e.clock.Now())
	if err != nil {
		t.Fatal(err)
	}
	ans, err := challenge.Answer(e.signer, ch, &challenge.Evidence{Factor: stepupv1.Factor_FACTOR_TOTP, TOTP: code})
	if err != nil {
		t.Fatal(err)
	}
	return ans
}

func TestApprovalForAnotherRequestRefused(t *testing.T) {
	e := newEnv(t, envOpts{})
	tok := e.boundToken(tokenOpts{})
	raw := e.raw()
	ch := challengeFor(t, e, func(ctx context.Context) error {
		_, err := raw.Sensitive(ctx, transferRequest(12_000))
		return err
	}, mSensitive, tok)
	answer := totpAnswer(t, e, ch)
	ctx := withCreds(context.Background(), "authorization", "DPoP "+tok, "dpop", e.proof(mSensitive, tok), "stepup-answer", answer)
	_, err := raw.Sensitive(ctx, transferRequest(999_900))
	assertRefused(t, e, err, refusal{codes.Unauthenticated, interceptor.WireInsufficientUserAuthentication, interceptor.Reason(challenge.ReasonChallengeWrongRequest)})
	if ev := e.audit.last(t); ev.Decision != interceptor.DecisionStepUpFailed {
		t.Fatalf("audit = %+v", ev)
	}
	if interceptor.ChallengeFromError(err) == nil {
		t.Fatal("a failed answer must come with a new challenge")
	}
	if n := e.server.handled("Sensitive"); n != 0 {
		t.Fatalf("handler ran %d times", n)
	}
	// The same answer for the approved request still works once...
	ctx = withCreds(context.Background(), "authorization", "DPoP "+tok, "dpop", e.proof(mSensitive, tok), "stepup-answer", answer)
	if _, err := raw.Sensitive(ctx, transferRequest(12_000)); err != nil {
		t.Fatalf("the approved request: %v", err)
	}
	// ...and never twice.
	ctx = withCreds(context.Background(), "authorization", "DPoP "+tok, "dpop", e.proof(mSensitive, tok), "stepup-answer", answer)
	_, err = raw.Sensitive(ctx, transferRequest(12_000))
	// The TOTP time step was consumed with the first use (RFC 6238 §5.2),
	// before the challenge's own single-use check is reached.
	assertRefused(t, e, err, refusal{codes.Unauthenticated, interceptor.WireInsufficientUserAuthentication, interceptor.Reason(challenge.ReasonTOTPReused)})
	if n := e.server.handled("Sensitive"); n != 1 {
		t.Fatalf("handler ran %d times, want 1", n)
	}
}

func TestAnswerSignedByAnotherKeyRefused(t *testing.T) {
	e := newEnv(t, envOpts{})
	tok := e.boundToken(tokenOpts{})
	raw := e.raw()
	ch := challengeFor(t, e, func(ctx context.Context) error {
		_, err := raw.Sensitive(ctx, transferRequest(100))
		return err
	}, mSensitive, tok)
	code, _ := challenge.TOTPCode(testTOTP, e.clock.Now())
	answer, err := challenge.Answer(otherKeySigner(t, e.clock.Now), ch, &challenge.Evidence{Factor: stepupv1.Factor_FACTOR_TOTP, TOTP: code})
	if err != nil {
		t.Fatal(err)
	}
	ctx := withCreds(context.Background(), "authorization", "DPoP "+tok, "dpop", e.proof(mSensitive, tok), "stepup-answer", answer)
	_, err = raw.Sensitive(ctx, transferRequest(100))
	assertRefused(t, e, err, refusal{codes.Unauthenticated, interceptor.WireInsufficientUserAuthentication, interceptor.Reason(challenge.ReasonAnswerWrongKey)})
}

func TestStreamStepUpAndGrantReuse(t *testing.T) {
	e := newEnv(t, envOpts{})
	app := &totpApp{e: e}
	c := e.client(e.boundToken(tokenOpts{}), interceptor.WithResponder(app.responder()))
	watch := func() []string {
		t.Helper()
		s, err := c.Watch(context.Background(), &policytestv1.PlainRequest{Text: "x"})
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for {
			m, err := s.Recv()
			if err != nil {
				break
			}
			got = append(got, m.GetText())
		}
		return got
	}
	got := watch()
	if len(got) != 2 || !strings.HasSuffix(got[0], "step-up:answer:totp") {
		t.Fatalf("stream received %q", got)
	}
	evs := e.audit.all()
	if d := decisions(evs); d != "challenge:STEPUP_REQUIRED step_up_passed:ALLOWED" || !evs[0].Stream {
		t.Fatalf("audit = %s", d)
	}
	// Within max_age (60 s) the grant satisfies the policy: no challenge.
	e.clock.Advance(50 * time.Second)
	e.audit.reset()
	got = watch()
	if len(got) != 2 || !strings.HasSuffix(got[0], "step-up:grant:totp") {
		t.Fatalf("stream received %q", got)
	}
	if evs := e.audit.all(); len(evs) != 1 || evs[0].Via != "grant" || evs[0].GrantID == "" {
		t.Fatalf("audit = %+v", evs)
	}
	// Past max_age, challenged again.
	e.clock.Advance(20 * time.Second)
	e.audit.reset()
	if got = watch(); len(got) != 2 || !strings.HasSuffix(got[0], "step-up:answer:totp") {
		t.Fatalf("stream received %q", got)
	}
	if n := len(app.challenges()); n != 2 {
		t.Fatalf("answered %d challenges, want 2", n)
	}
	if n := e.server.handled("Watch"); n != 3 {
		t.Fatalf("handler ran %d times, want 3", n)
	}
}

func TestGrantWithAnotherKeyRefused(t *testing.T) {
	e := newEnv(t, envOpts{})
	tok := e.boundToken(tokenOpts{})
	// Obtain a grant with a raw stream call, as an attacker would see it.
	ch := challengeFor(t, e, func(ctx context.Context) error {
		s, err := e.raw().Watch(ctx, &policytestv1.PlainRequest{})
		if err != nil {
			return err
		}
		_, err = s.Recv()
		return err
	}, mWatch, tok)
	ctx := withCreds(context.Background(), "authorization", "DPoP "+tok, "dpop", e.proof(mWatch, tok), "stepup-answer", totpAnswer(t, e, ch))
	s, err := e.raw().Watch(ctx, &policytestv1.PlainRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Recv(); err != nil {
		t.Fatal(err)
	}
	header, err := s.Header()
	if err != nil {
		t.Fatal(err)
	}
	grant := header.Get("stepup-grant")
	if len(grant) != 1 {
		t.Fatalf("no grant in the response header: %v", header)
	}
	// Mallory has her own key and a token bound to it, and the stolen grant.
	mallory := otherKeySigner(t, e.clock.Now)
	mtok := e.issuer.mint(t, e.clock.Now(), tokenOpts{Subject: "alice", JKT: mallory.Thumbprint(), Scope: "guarded"})
	proof, _ := mallory.Proof("POST", "https://api.example"+mWatch, mtok)
	ctx = withCreds(context.Background(), "authorization", "DPoP "+mtok, "dpop", proof, "stepup-grant", grant[0])
	s, err = e.raw().Watch(ctx, &policytestv1.PlainRequest{})
	if err == nil {
		_, err = s.Recv()
	}
	assertRefused(t, e, err, refusal{codes.Unauthenticated, interceptor.WireInsufficientUserAuthentication, interceptor.Reason(challenge.ReasonGrantWrongKey)})
}

func TestStepUpDeviceKey(t *testing.T) {
	device, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, envOpts{stepUpOpts: []challenge.Option{challenge.WithDeviceKeys(challenge.DeviceKeysFunc(
		func(_ context.Context, sub string) ([]crypto.PublicKey, error) {
			if sub == "alice" {
				return []crypto.PublicKey{device.Public()}, nil
			}
			return nil, challenge.ErrUnknownSubject
		}))}})
	resp, err := challenge.DeviceKeyResponder(device)
	if err != nil {
		t.Fatal(err)
	}
	c := e.client(e.boundToken(tokenOpts{}), interceptor.WithResponder(resp))
	r, err := c.Sensitive(context.Background(), transferRequest(500))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasSuffix(r.GetText(), "step-up:answer:device_key") {
		t.Fatalf("handler saw %q", r.GetText())
	}
	// A device key that is not registered for alice is refused.
	stranger, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	bad, _ := challenge.DeviceKeyResponder(stranger)
	e.audit.reset()
	c = e.client(e.boundToken(tokenOpts{}), interceptor.WithResponder(bad))
	_, err = c.Sensitive(context.Background(), transferRequest(500))
	assertRefused(t, e, err, refusal{codes.Unauthenticated, interceptor.WireInsufficientUserAuthentication, interceptor.Reason(challenge.ReasonDeviceKeyUnknown)})
}

func TestTOTPAttemptLimit(t *testing.T) {
	e := newEnv(t, envOpts{stepUpOpts: []challenge.Option{challenge.WithAttemptLimits(3, 5, 15*time.Minute)}})
	tok := e.boundToken(tokenOpts{})
	raw := e.raw()
	call := func(ctx context.Context) error {
		_, err := raw.Sensitive(ctx, transferRequest(100))
		return err
	}
	var last error
	for i := 0; i < 5; i++ {
		ch := challengeFor(t, e, call, mSensitive, tok)
		ans, _ := challenge.Answer(e.signer, ch, &challenge.Evidence{Factor: stepupv1.Factor_FACTOR_TOTP, TOTP: "000000"})
		last = call(withCreds(context.Background(), "authorization", "DPoP "+tok, "dpop", e.proof(mSensitive, tok), "stepup-answer", ans))
		if ev := e.audit.last(t); ev.Reason != interceptor.Reason(challenge.ReasonTOTPInvalid) && ev.Reason != interceptor.ReasonStepUpLocked {
			t.Fatalf("attempt %d: audit %+v", i, ev)
		}
	}
	_ = last
	// The subject is now locked out: refused without a challenge, even with
	// the right code.
	err := call(withCreds(context.Background(), "authorization", "DPoP "+tok, "dpop", e.proof(mSensitive, tok)))
	assertRefused(t, e, err, refusal{codes.PermissionDenied, interceptor.WireStepUpLocked, interceptor.ReasonStepUpLocked})
	if interceptor.ChallengeFromError(err) != nil {
		t.Fatal("a locked-out subject must not get a challenge")
	}
	// The audit event says which limit, after how many.
	if d := e.audit.last(t).Detail; !strings.Contains(d, "per-subject limit") || !strings.Contains(d, "the limit is") {
		t.Errorf("lock-out detail %q", d)
	}
}

func TestStepUpWebAuthn(t *testing.T) {
	e, authn, users := newWebAuthnEnv(t)
	c := policytestv1.NewStepUpServiceClient(e.conn(e.signing(e.boundToken(tokenOpts{}),
		interceptor.WithResponder(challenge.WebAuthnResponder(authn)))...))
	r, err := c.Approve(context.Background(), &policytestv1.PlainRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasSuffix(r.GetText(), "step-up:answer:webauthn") || users.SignCount("alice") != 1 {
		t.Fatalf("handler saw %q, counter %d", r.GetText(), users.SignCount("alice"))
	}
	// An authenticator without user verification is refused.
	authn.SetUserVerified(false)
	e.clock.Advance(3 * time.Minute) // past the grant's max_age
	e.audit.reset()
	_, err = c.Approve(context.Background(), &policytestv1.PlainRequest{})
	assertRefused(t, e, err, refusal{codes.Unauthenticated, interceptor.WireInsufficientUserAuthentication, interceptor.Reason(challenge.ReasonWebAuthnNoUV)})
	// A cloned authenticator (counter going back) is refused.
	authn.SetUserVerified(true)
	authn.SetCounter(0)
	_, err = c.Approve(context.Background(), &policytestv1.PlainRequest{})
	assertRefused(t, e, err, refusal{codes.Unauthenticated, interceptor.WireInsufficientUserAuthentication, interceptor.Reason(challenge.ReasonWebAuthnCounter)})
}

func TestRefusedGrantThenAnswerIsAudited(t *testing.T) {
	e := newEnv(t, envOpts{})
	tok := e.boundToken(tokenOpts{Expiry: e.clock.Now().Add(24 * time.Hour)})
	grant := obtainGrant(t, e, tok)
	e.clock.Advance(6 * time.Minute) // past Granted's max_age of 5 minutes
	tok = e.boundToken(tokenOpts{})
	raw := e.raw()
	ch := challengeFor(t, e, func(ctx context.Context) error {
		_, err := raw.Granted(withCreds(ctx, "stepup-grant", grant), &policytestv1.PlainRequest{})
		return err
	}, mGranted, tok)
	if ev := e.audit.last(t); ev.Decision != interceptor.DecisionStepUpFailed || !strings.HasPrefix(string(ev.Reason), "STEPUP_GRANT_") {
		t.Fatalf("stale grant audit = %+v", ev)
	}
	ctx := withCreds(context.Background(), "authorization", "DPoP "+tok, "dpop", e.proof(mGranted, tok),
		"stepup-grant", grant, "stepup-answer", totpAnswer(t, e, ch))
	if _, err := raw.Granted(ctx, &policytestv1.PlainRequest{}); err != nil {
		t.Fatal(err)
	}
	ev := e.audit.last(t)
	if ev.Decision != interceptor.DecisionStepUpPassed || !strings.HasPrefix(ev.Detail, "presented grant refused: STEPUP_GRANT_") {
		t.Fatalf("audit = %+v", ev)
	}
}
