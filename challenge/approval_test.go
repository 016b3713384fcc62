package challenge_test

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stepupgrpc/stepup/challenge"
	"github.com/stepupgrpc/stepup/challenge/approval"
	"github.com/stepupgrpc/stepup/challenge/webauthn"
	stepupv1 "github.com/stepupgrpc/stepup/proto/stepup/v1"
)

// approvalOnly is a requirement that only an out-of-band approval answers.
var approvalOnly = &challenge.Requirement{Factors: []stepupv1.Factor{stepupv1.Factor_FACTOR_APPROVAL}}

// approverOrigin is the approver page's origin; rpOrigin, the WebAuthn
// factor's other origin, is the bank's web app on the first device.
const approverOrigin = "https://approve.bank.example"

func newApprovalFixture(t testing.TB) *fixture {
	t.Helper()
	f := newFixture(t, withApproval(nil, approval.Options{Poll: 250 * time.Millisecond}))
	// Alice's passkey, used on the approver page.
	f.authn.SetOrigin(approverOrigin)
	return f
}

// approvalEvidence is what ApprovalResponder answers for ch.
func (f *fixture) approvalEvidence(ch *stepupv1.StepUpChallenge) *challenge.Evidence {
	f.t.Helper()
	var shown string
	ev, err := challenge.ApprovalResponder(func(_ context.Context, _ *stepupv1.StepUpChallenge, code string) error {
		shown = code
		return nil
	}).Respond(context.Background(), ch)
	if err != nil {
		f.t.Fatal(err)
	}
	if shown != ch.GetMatchingCode() || len(shown) != 6 {
		f.t.Fatalf("the responder showed %q, the challenge says %q", shown, ch.GetMatchingCode())
	}
	return ev
}

// approveWith signs in nobody (the Service API is what the page calls) and
// approves id as sub with the soft authenticator.
func (f *fixture) approve(sub, id string) challenge.Reason {
	f.t.Helper()
	ctx := context.Background()
	opts, _, reason, err := f.approvals.ApprovalRequestOptions(ctx, sub, id)
	if err != nil {
		f.t.Fatal(err)
	}
	if reason != "" {
		return reason
	}
	assertion, err := f.authn.GetAssertion(ctx, opts)
	if err != nil {
		f.t.Fatal(err)
	}
	_, reason, err = f.approvals.Approve(ctx, sub, id, assertion)
	if err != nil {
		f.t.Fatal(err)
	}
	return reason
}

func TestApprovalFlow(t *testing.T) {
	f := newApprovalFixture(t)
	req := transfer(125_000, "EUR", "DE89370400440532013000")
	call := f.call(approvalOnly, req)
	out := f.check(call)
	ch := out.Challenge
	if ch.GetApprovalId() == "" || ch.GetApprovalId() != out.IssuedChallengeID || !ch.GetBoundToRequest() {
		t.Fatalf("challenge: approval id %q (issued %q), bound %v", ch.GetApprovalId(), out.IssuedChallengeID, ch.GetBoundToRequest())
	}
	if ch.GetMatchingCode() != challenge.MatchingCode(ch.GetChallenge()) {
		t.Fatal("the matching code does not derive from the challenge")
	}
	if out.SummaryDigest != challenge.SummaryDigest(ch.GetSummaryText()) {
		t.Fatalf("summary digest %q", out.SummaryDigest)
	}
	pending, err := f.approvals.PendingApprovals(context.Background(), subject)
	if err != nil || len(pending) != 1 {
		t.Fatalf("pending: %v %v", pending, err)
	}
	a := pending[0]
	if a.ID != ch.GetApprovalId() || a.SummaryText != ch.GetSummaryText() || a.MatchingCode != ch.GetMatchingCode() || a.Method != transferRPC {
		t.Fatalf("the page would show %+v", a)
	}

	call.Answer = f.answer(f.client, ch, f.approvalEvidence(ch))
	out = f.check(call)
	expectReason(t, out, challenge.ReasonApprovalPending)
	if !out.Pending || out.RetryAfter != 250*time.Millisecond || out.Challenge != nil {
		t.Fatalf("pending: %+v", out)
	}
	// Polling is not guessing: many retries lock nothing.
	for range 20 {
		expectReason(t, f.check(call), challenge.ReasonApprovalPending)
	}

	if r := f.approve(subject, a.ID); r != "" {
		t.Fatalf("approve: %s", r)
	}
	if r := f.approve(subject, a.ID); r != challenge.ReasonApprovalDecided {
		t.Fatalf("a second approval: %s", r)
	}
	out = f.check(call)
	if !out.Satisfied || out.Factor != stepupv1.Factor_FACTOR_APPROVAL || out.Via != challenge.ViaAnswer {
		t.Fatalf("approved: %+v", out)
	}
	// Single use: the same answer again.
	out = f.check(call)
	expectReason(t, out, challenge.ReasonChallengeReused)
	if !out.Final || out.Challenge != nil {
		t.Fatalf("replay: %+v", out)
	}
	if pending, _ := f.approvals.PendingApprovals(context.Background(), subject); len(pending) != 0 {
		t.Fatalf("a used approval is still listed: %v", pending)
	}
}

func TestApprovalAttacks(t *testing.T) {
	ctx := context.Background()
	req := transfer(10_00, "EUR", "DE89370400440532013000")
	start := func(t *testing.T) (*fixture, challenge.Call, *stepupv1.StepUpChallenge) {
		f := newApprovalFixture(t)
		f.t = t
		call := f.call(approvalOnly, req)
		ch := f.challengeFor(call)
		call.Answer = f.answer(f.client, ch, f.approvalEvidence(ch))
		return f, call, ch
	}

	t.Run("denied", func(t *testing.T) {
		f, call, ch := start(t)
		if _, r, err := f.approvals.Deny(ctx, subject, ch.GetApprovalId()); err != nil || r != "" {
			t.Fatalf("deny: %s %v", r, err)
		}
		out := f.check(call)
		expectReason(t, out, challenge.ReasonApprovalDenied)
		if !out.Final || out.Challenge != nil {
			t.Fatalf("denied: %+v", out)
		}
		if r := f.approve(subject, ch.GetApprovalId()); r != challenge.ReasonApprovalDecided {
			t.Fatalf("approve after deny: %s", r)
		}
	})
	t.Run("expired", func(t *testing.T) {
		f, call, ch := start(t)
		f.clock.Advance(challenge.DefaultChallengeTTL)
		if r := f.approve(subject, ch.GetApprovalId()); r != challenge.ReasonApprovalUnknown && r != challenge.ReasonApprovalExpired {
			t.Fatalf("approve after expiry: %s", r)
		}
		out := f.check(call)
		expectReason(t, out, challenge.ReasonApprovalExpired)
		if !out.Final || out.Challenge != nil {
			t.Fatalf("expired: %+v", out)
		}
	})
	t.Run("another amount", func(t *testing.T) {
		f, call, ch := start(t)
		if r := f.approve(subject, ch.GetApprovalId()); r != "" {
			t.Fatal(r)
		}
		call.Request = transfer(9_999_00, "EUR", "DE89370400440532013000")
		expectReason(t, f.check(call), challenge.ReasonChallengeWrongRequest)
		call.Request = setField(transfer(10_00, "EUR", "DE89370400440532013000"), "to_iban", "GB29NWBK60161331926819")
		expectReason(t, f.check(call), challenge.ReasonChallengeWrongRequest)
	})
	t.Run("another subject approves", func(t *testing.T) {
		f, call, ch := start(t)
		if r := f.approve("mallory", ch.GetApprovalId()); r != challenge.ReasonApprovalUnknown {
			t.Fatalf("mallory approving alice's: %s", r)
		}
		if _, r, _ := f.approvals.Deny(ctx, "mallory", ch.GetApprovalId()); r != challenge.ReasonApprovalUnknown {
			t.Fatalf("mallory denying alice's: %s", r)
		}
		expectReason(t, f.check(call), challenge.ReasonApprovalPending)
	})
	t.Run("assertion for another approval", func(t *testing.T) {
		f, call, ch := start(t)
		other := f.challengeFor(f.call(approvalOnly, transfer(5_00, "EUR", "DE89370400440532013000")))
		opts, _, _, err := f.approvals.ApprovalRequestOptions(ctx, subject, other.GetApprovalId())
		if err != nil {
			t.Fatal(err)
		}
		assertion, err := f.authn.GetAssertion(ctx, opts)
		if err != nil {
			t.Fatal(err)
		}
		if _, r, _ := f.approvals.Approve(ctx, subject, ch.GetApprovalId(), assertion); r != challenge.ReasonWebAuthnInvalid {
			t.Fatalf("an assertion over another approval: %s", r)
		}
		expectReason(t, f.check(call), challenge.ReasonApprovalPending)
	})
	t.Run("answer names another approval", func(t *testing.T) {
		f, call, ch := start(t)
		other := f.challengeFor(f.call(approvalOnly, req))
		if r := f.approve(subject, other.GetApprovalId()); r != "" {
			t.Fatal(r)
		}
		if _, err := challenge.Answer(f.client, ch, &challenge.Evidence{Factor: stepupv1.Factor_FACTOR_APPROVAL, Approval: other.GetApprovalId()}); err == nil {
			t.Fatal("Answer built an answer naming another challenge's approval")
		}
		// Hand-built by the attacker's client: ch's challenge, other's
		// (approved) approval id, signed by alice's DPoP key.
		forged, err := f.client.SignJWS(challenge.AnswerType, mustJSON(t, map[string]any{
			"chl": ch.GetChallenge(), "fac": "approval", "apr": other.GetApprovalId(), "iat": f.clock.Now().Unix(),
		}))
		if err != nil {
			t.Fatal(err)
		}
		call.Answer = forged
		expectReason(t, f.check(call), challenge.ReasonAnswerMalformed)
	})
	t.Run("tampered record", func(t *testing.T) {
		f, _, ch := start(t)
		// Someone with write access to the store rewrites the summary.
		recs, err := f.store.Approvals(ctx, subject)
		if err != nil {
			t.Fatal(err)
		}
		rec := strings.Replace(string(recs[ch.GetApprovalId()]), "10.00 EUR", "0.01 EUR", 1)
		if err := f.store.PutApproval(ctx, subject, ch.GetApprovalId(), []byte(rec), f.clock.Now().Add(time.Minute)); err != nil {
			t.Fatal(err)
		}
		if pending, err := f.approvals.PendingApprovals(ctx, subject); err != nil || len(pending) != 0 {
			t.Fatalf("a tampered record is listed: %v %v", pending, err)
		}
		if r := f.approve(subject, ch.GetApprovalId()); r != challenge.ReasonApprovalUnknown {
			t.Fatalf("approving a tampered record: %s", r)
		}
	})
	t.Run("tampered record with text the digest does not cover", func(t *testing.T) {
		// The IBAN carries a right-to-left override, shown as U+FFFD; the
		// digest covers the sanitised text, so putting the override back
		// (or text past the cut) into the record must not be shown.
		f := newApprovalFixture(t)
		out := f.check(f.call(approvalOnly, transfer(1_000, "EUR", "DE89\u202e0003")))
		id := out.Challenge.GetApprovalId()
		recs, err := f.store.Approvals(ctx, subject)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(recs[id]), "\ufffd") {
			t.Fatalf("the record does not hold the sanitised IBAN: %s", recs[id])
		}
		rec := strings.Replace(string(recs[id]), "\ufffd", `\u202e`, 1)
		if err := f.store.PutApproval(ctx, subject, id, []byte(rec), f.clock.Now().Add(time.Minute)); err != nil {
			t.Fatal(err)
		}
		if pending, err := f.approvals.PendingApprovals(ctx, subject); err != nil || len(pending) != 0 {
			t.Fatalf("a record with unsanitised text is listed: %v %v", pending, err)
		}
	})
	t.Run("tampered matching code", func(t *testing.T) {
		f, _, ch := start(t)
		ch.MatchingCode = "000000"
		if ch.GetMatchingCode() == challenge.MatchingCode(ch.GetChallenge()) {
			t.Skip("the code happens to be 000000")
		}
		if _, err := challenge.ApprovalResponder(nil).Respond(ctx, ch); err == nil {
			t.Fatal("the responder accepted a matching code that does not derive from the challenge")
		}
		err := challenge.CheckChallenge(ch, challenge.Expected{Method: transferRPC, Request: req, Thumbprint: f.client.Thumbprint(), Now: f.clock.Now()})
		var ce *challenge.CheckError
		if !errors.As(err, &ce) || ce.Mismatch != challenge.MismatchMalformed {
			t.Fatalf("CheckChallenge: %v", err)
		}
	})
	t.Run("another factor answers first", func(t *testing.T) {
		f := newApprovalFixture(t)
		call := f.call(&challenge.Requirement{Factors: []stepupv1.Factor{stepupv1.Factor_FACTOR_TOTP, stepupv1.Factor_FACTOR_APPROVAL}}, req)
		ch := f.challengeFor(call)
		call.Answer = f.answer(f.client, ch, f.totp())
		if out := f.check(call); !out.Satisfied {
			t.Fatalf("TOTP: %+v", out)
		}
		if pending, _ := f.approvals.PendingApprovals(ctx, subject); len(pending) != 0 {
			t.Fatalf("the approval of a challenge answered by TOTP is still listed: %v", pending)
		}
		if r := f.approve(subject, ch.GetApprovalId()); r != challenge.ReasonApprovalDecided {
			t.Fatalf("approving a used challenge: %s", r)
		}
	})
}

func mustJSON(t testing.TB, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestApproverSignIn(t *testing.T) {
	ctx := context.Background()
	f := newApprovalFixture(t)
	state, opts, reason, err := f.approvals.BeginApproverSignIn(ctx, subject)
	if err != nil || reason != "" {
		t.Fatalf("begin: %s %v", reason, err)
	}
	assertion, err := f.authn.GetAssertion(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	session, sub, reason, err := f.approvals.FinishApproverSignIn(ctx, state, assertion)
	if err != nil || reason != "" || sub != subject {
		t.Fatalf("finish: %q %s %v", sub, reason, err)
	}
	if got, reason, err := f.approvals.CheckApproverSession(ctx, session); err != nil || reason != "" || got != subject {
		t.Fatalf("session: %q %s %v", got, reason, err)
	}
	if got, ok := f.svc.ApproverSession(session); !ok || got != subject {
		t.Fatalf("session (deprecated ApproverSession): %q %v", got, ok)
	}
	// The state is single use, whatever the assertion.
	if _, _, reason, _ := f.approvals.FinishApproverSignIn(ctx, state, assertion); reason == "" {
		t.Fatal("a sign-in state was used twice")
	}
	// A state is not a session, and a session is not a state.
	if _, reason, _ := f.approvals.CheckApproverSession(ctx, state); reason != challenge.ReasonApproverSessionInvalid {
		t.Fatalf("a sign-in state as a session: %s", reason)
	}
	if _, _, reason, _ := f.approvals.FinishApproverSignIn(ctx, session, assertion); reason != challenge.ReasonSignInInvalid {
		t.Fatalf("a session as a sign-in state: %s", reason)
	}
	// Forged and expired sessions. The MAC's last two characters replaced:
	// by "AA", or by "QA" when they were "AA" (1 session in 256), so that
	// the forgery always differs.
	forged := session[:len(session)-2] + "AA"
	if forged == session {
		forged = session[:len(session)-2] + "QA"
	}
	if _, reason, _ := f.approvals.CheckApproverSession(ctx, forged); reason != challenge.ReasonApproverSessionInvalid {
		t.Fatalf("a forged session: %s", reason)
	}
	f.clock.Advance(approval.DefaultSessionTTL)
	if _, reason, _ := f.approvals.CheckApproverSession(ctx, session); reason != challenge.ReasonApproverSessionInvalid {
		t.Fatalf("an expired session: %s", reason)
	}
	if _, ok := f.svc.ApproverSession(session); ok {
		t.Fatal("an expired session was accepted (deprecated ApproverSession)")
	}
	// A subject that cannot be one: refused before anything.
	if _, _, reason, err := f.approvals.BeginApproverSignIn(ctx, ""); err != nil || reason != challenge.ReasonWebAuthnInvalid {
		t.Fatalf("empty subject: %s %v", reason, err)
	}
}

// signIn signs sub in on the approver page with authn and returns the
// session token.
func (f *fixture) signIn(svc *challenge.Service, sub string, authn *webauthn.SoftAuthenticator) string {
	f.t.Helper()
	ctx := context.Background()
	state, opts, reason, err := svc.BeginApproverSignIn(ctx, sub)
	if err != nil || reason != "" {
		f.t.Fatalf("begin: %s %v", reason, err)
	}
	assertion, err := authn.GetAssertion(ctx, opts)
	if err != nil {
		f.t.Fatal(err)
	}
	session, got, reason, err := svc.FinishApproverSignIn(ctx, state, assertion)
	if err != nil || reason != "" || got != sub {
		f.t.Fatalf("finish: %q %s %v", got, reason, err)
	}
	return session
}

// TestApproverSessionEndsOnTheServer: signing out ends the session itself,
// not only the browser's cookie: a copy of the token (taken from the
// browser, a proxy log, a shared machine) is refused afterwards, on every
// replica sharing the store (STEPUP_APPROVER_SESSION_ENDED), while the
// subject's other sessions live on. RevokeApproverSessions ends all of a
// subject's sessions (STEPUP_APPROVER_SESSION_REVOKED), not another
// subject's, and not those begun after it. Before, a session token stayed
// valid until its expiry (15 minutes by default) whatever the user did.
func TestApproverSessionEndsOnTheServer(t *testing.T) {
	ctx := context.Background()
	f := newApprovalFixture(t)
	// A second replica: same keys, same store.
	wa := newWebAuthn(t, f.creds)
	replica, err := challenge.NewService(challenge.WithKeys(f.keys), challenge.WithStore(f.store), challenge.WithClock(f.clock.Now),
		challenge.WithFactor(wa), challenge.WithFactor(newApproval(t, wa, approval.Options{})))
	if err != nil {
		t.Fatal(err)
	}
	check := func(svc *challenge.Service, session string, want challenge.Reason) {
		t.Helper()
		sub, reason, err := svc.CheckApproverSession(ctx, session)
		if err != nil || reason != want || (want == "") != (sub != "") {
			t.Fatalf("session: %q %q %v, want reason %q", sub, reason, err, want)
		}
	}
	stolen := f.signIn(f.svc, subject, f.authn)  // the copy an attacker keeps
	other := f.signIn(replica, subject, f.authn) // the user's phone
	check(replica, stolen, "")

	if err := f.approvals.EndApproverSession(ctx, stolen); err != nil {
		t.Fatal(err)
	}
	check(f.svc, stolen, challenge.ReasonApproverSessionEnded)
	check(replica, stolen, challenge.ReasonApproverSessionEnded)
	check(f.svc, other, "")
	// Still ended a minute before it would have expired.
	f.clock.Advance(approval.DefaultSessionTTL - time.Minute)
	check(replica, stolen, challenge.ReasonApproverSessionEnded)

	// Another subject, with a passkey of their own.
	bobAuthn, err := webauthn.NewSoftAuthenticator(rpID, approverOrigin)
	if err != nil {
		t.Fatal(err)
	}
	cred, err := bobAuthn.RegisterCredential([]byte("user-handle-bob"))
	if err != nil {
		t.Fatal(err)
	}
	f.creds.AddCredential("bob", []byte("user-handle-bob"), cred)
	bob := f.signIn(f.svc, "bob", bobAuthn)

	if err := replica.RevokeApproverSessions(ctx, subject); err != nil {
		t.Fatal(err)
	}
	check(f.svc, other, challenge.ReasonApproverSessionRevoked)
	check(replica, other, challenge.ReasonApproverSessionRevoked)
	check(f.svc, bob, "")
	f.clock.Advance(time.Second)
	check(f.svc, f.signIn(f.svc, subject, f.authn), "") // a new sign-in works

	if err := f.approvals.EndApproverSession(ctx, "not.a.session"); err != nil {
		t.Fatalf("ending a token that is not a session: %v", err)
	}
	if err := f.approvals.RevokeApproverSessions(ctx, ""); err == nil {
		t.Fatal("RevokeApproverSessions of no subject")
	}
}

// TestApproverSignInRevealsNothing: the sign-in's first step answers the
// same for a subject with approver passkeys and for one without (request
// options with a fresh challenge and no credential ids, for a discoverable
// credential), and its second step refuses an assertion the same way
// whether the subject has no passkey or the assertion is someone else's.
// Before, a subject without a passkey was refused at the first step
// (WEBAUTHN_INVALID) and one with passkeys got their credential ids.
func TestApproverSignInRevealsNothing(t *testing.T) {
	ctx := context.Background()
	f := newApprovalFixture(t)
	shape := func(sub string) (string, []byte) {
		t.Helper()
		state, opts, reason, err := f.approvals.BeginApproverSignIn(ctx, sub)
		if err != nil || reason != "" {
			t.Fatalf("begin %q: %s %v", sub, reason, err)
		}
		var m map[string]any
		if err := json.Unmarshal(opts, &m); err != nil {
			t.Fatal(err)
		}
		if _, ok := m["allowCredentials"]; ok {
			t.Errorf("begin %q: the options name credentials: %s", sub, opts)
		}
		delete(m, "challenge")
		return state, mustJSON(t, m)
	}
	aliceState, alice := shape(subject)
	nobodyState, nobody := shape("nobody")
	if string(alice) != string(nobody) {
		t.Fatalf("a subject with passkeys gets %s, one without %s", alice, nobody)
	}
	// Alice's authenticator signs for whatever state it is given: for
	// "nobody" (no passkey) and for alice (hers) the page learns only
	// whether the assertion is the subject's own.
	for _, c := range []struct {
		state string
		want  challenge.Reason
	}{{nobodyState, challenge.ReasonWebAuthnInvalid}, {aliceState, ""}} {
		opts := mustJSON(t, map[string]any{"challenge": challengeOf(t, c.state), "rpId": rpID, "userVerification": "required"})
		assertion, err := f.authn.GetAssertion(ctx, opts)
		if err != nil {
			t.Fatal(err)
		}
		if _, _, reason, err := f.approvals.FinishApproverSignIn(ctx, c.state, assertion); err != nil || reason != c.want {
			t.Errorf("finish: %q %v, want %q", reason, err, c.want)
		}
	}
}

// challengeOf is the WebAuthn challenge of a sign-in state: base64url
// SHA-256 of it.
func challengeOf(t *testing.T, state string) string {
	t.Helper()
	h := sha256.Sum256([]byte(state))
	return base64.RawURLEncoding.EncodeToString(h[:])
}

// newApproval is the approval factor with wa's approver passkeys at
// approverOrigin.
func newApproval(t testing.TB, wa *webauthn.Factor, o approval.Options) *approval.Factor {
	t.Helper()
	a, err := wa.NewApproval(approverOrigin, nil, o)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// The deprecated WithApproval and Service methods (deprecated.go) still
// configure and reach the approval factor; its mistakes are NewService's.
func TestWithApprovalConfiguration(t *testing.T) {
	keys := newKeySet(t, newKey(t, "k1"))
	if _, err := challenge.NewService(challenge.WithKeys(keys), challenge.WithApproval(approval.Options{})); err == nil ||
		!strings.Contains(err.Error(), "Passkeys") {
		t.Fatalf("WithApproval without passkeys: %v", err)
	}
	if _, err := challenge.NewService(challenge.WithKeys(keys), challenge.WithApproval(approval.Options{Poll: time.Millisecond})); err == nil {
		t.Fatal("a 1ms poll was accepted")
	}
	store, err := challenge.NewMemoryStore(10, nil)
	if err != nil {
		t.Fatal(err)
	}
	f := newFixture(t)
	wa := newWebAuthn(t, f.creds)
	onlyStore := struct{ challenge.Store }{store} // keeps no approval records
	if _, err := challenge.NewService(challenge.WithKeys(keys), challenge.WithStore(onlyStore), challenge.WithFactor(wa),
		wa.WithApproval(approverOrigin, nil, approval.Options{})); err == nil || !strings.Contains(err.Error(), "ApprovalStore") {
		t.Fatalf("WithApproval with a store that keeps no records: %v", err)
	}
	if f.svc.ApprovalEnabled() {
		t.Fatal("approval enabled without WithApproval")
	}
	if _, err := f.svc.PendingApprovals(context.Background(), subject); err == nil {
		t.Fatal("PendingApprovals without WithApproval")
	}
	// A factor wired into no Service refuses to work; one wired twice
	// fails the second NewService.
	loose, err := wa.NewApproval(approverOrigin, nil, approval.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := loose.PendingApprovals(context.Background(), subject); err == nil || !strings.Contains(err.Error(), "not wired") {
		t.Fatalf("PendingApprovals of an unwired factor: %v", err)
	}
	if _, _, _, err := loose.BeginApproverSignIn(context.Background(), subject); err == nil {
		t.Fatal("BeginApproverSignIn of an unwired factor")
	}
	if _, err := challenge.NewService(challenge.WithKeys(keys), challenge.WithFactor(loose)); err != nil {
		t.Fatal(err)
	}
	if _, err := challenge.NewService(challenge.WithKeys(keys), challenge.WithFactor(loose)); err == nil || !strings.Contains(err.Error(), "already wired") {
		t.Fatalf("one approval factor in two Services: %v", err)
	}
	// The deprecated Option builds a factor per Service, as before.
	old := wa.WithApproval(approverOrigin, nil, approval.Options{})
	for range 2 {
		if _, err := challenge.NewService(challenge.WithKeys(keys), challenge.WithFactor(wa), old); err != nil {
			t.Fatalf("the deprecated WithApproval Option, given twice: %v", err)
		}
	}
}

func webAuthnConfig(testing.TB) webauthn.Config {
	return webauthn.Config{RPID: rpID, RPDisplayName: "Bank", RPOrigins: []string{rpOrigin, approverOrigin}}
}

// newWebAuthn is the WebAuthn factor of webAuthnConfig over creds.
func newWebAuthn(t testing.TB, creds webauthn.Store) *webauthn.Factor {
	t.Helper()
	wa, err := webauthn.New(webAuthnConfig(t), creds)
	if err != nil {
		t.Fatal(err)
	}
	return wa
}

// TestApprovalOnlyFromTheApproverPage: malware on the first device holds the
// DPoP key and the token and can make passkey assertions there. An
// assertion made for the WebAuthn factor's other origin (the bank's web app
// on that device) neither signs in to the approver page nor approves; and
// with approver credentials of its own (ApprovalOptions.Credentials), the
// first device's passkey cannot approve even when it claims the page's
// origin.
func TestApprovalOnlyFromTheApproverPage(t *testing.T) {
	ctx := context.Background()
	f := newApprovalFixture(t)
	out := f.check(f.call(approvalOnly, transfer(990_000, "EUR", "DE00MALLORY")))
	id := out.Challenge.GetApprovalId()

	f.authn.SetOrigin(rpOrigin) // the first device's web app
	opts, _, reason, err := f.approvals.ApprovalRequestOptions(ctx, subject, id)
	if err != nil || reason != "" {
		t.Fatalf("options: %v %s", err, reason)
	}
	assertion, err := f.authn.GetAssertion(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	if _, reason, err := f.approvals.Approve(ctx, subject, id, assertion); err != nil || reason != challenge.ReasonWebAuthnInvalid {
		t.Fatalf("an approval signed for the web app's origin: %v %q, want %s", err, reason, challenge.ReasonWebAuthnInvalid)
	}
	state, signIn, reason, err := f.approvals.BeginApproverSignIn(ctx, subject)
	if err != nil || reason != "" {
		t.Fatalf("sign-in: %v %s", err, reason)
	}
	a, err := f.authn.GetAssertion(ctx, signIn)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, reason, err := f.approvals.FinishApproverSignIn(ctx, state, a); err != nil || reason != challenge.ReasonWebAuthnInvalid {
		t.Fatalf("a sign-in signed for the web app's origin: %v %q, want %s", err, reason, challenge.ReasonWebAuthnInvalid)
	}
	f.authn.SetOrigin(approverOrigin)
	if r := f.approve(subject, id); r != "" {
		t.Fatalf("the page's own origin: %s", r)
	}

	// Approver credentials of their own: the phone's passkey approves, the
	// laptop's (the WebAuthn factor's) does not, whatever origin it claims.
	phone, err := webauthn.NewSoftAuthenticator(rpID, approverOrigin)
	if err != nil {
		t.Fatal(err)
	}
	cred, err := phone.RegisterCredential([]byte(webauthnUser))
	if err != nil {
		t.Fatal(err)
	}
	approvers := webauthn.NewMemoryCredentials()
	approvers.AddCredential(subject, []byte(webauthnUser), cred)
	g := newFixture(t, withApproval(approvers, approval.Options{}))
	g.authn.SetOrigin(approverOrigin)
	id = g.check(g.call(approvalOnly, transfer(990_000, "EUR", "DE00MALLORY"))).Challenge.GetApprovalId()
	if opts, _, reason, err = g.approvals.ApprovalRequestOptions(ctx, subject, id); err != nil || reason != "" {
		t.Fatalf("options: %v %s", err, reason)
	}
	// Malware on the laptop signs the same challenge with the laptop's
	// passkey (the options without their allow list).
	var forged map[string]any
	if err := json.Unmarshal(opts, &forged); err != nil {
		t.Fatal(err)
	}
	delete(forged, "allowCredentials")
	forgedJSON, err := json.Marshal(forged)
	if err != nil {
		t.Fatal(err)
	}
	laptop, err := g.authn.GetAssertion(ctx, forgedJSON)
	if err != nil {
		t.Fatal(err)
	}
	if _, reason, err := g.approvals.Approve(ctx, subject, id, laptop); err != nil || reason != challenge.ReasonWebAuthnInvalid {
		t.Fatalf("the first device's passkey approved: %v %q", err, reason)
	}
	byPhone, err := phone.GetAssertion(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	if _, reason, err := g.approvals.Approve(ctx, subject, id, byPhone); err != nil || reason != "" {
		t.Fatalf("the phone's passkey: %v %q", err, reason)
	}
	wa := newWebAuthn(t, f.creds)
	if _, err := wa.NewApproval("https://elsewhere.example", nil, approval.Options{}); err == nil || !strings.Contains(err.Error(), "not among the RPOrigins") {
		t.Errorf("an Origin outside RPOrigins: %v", err)
	}
}

// TestApprovalPendingLimit: a stolen token (the DPoP key and the token, no
// second device) cannot flood the approver page: past MaxPending pending
// approvals, an approval-only method is refused STEPUP_APPROVALS_LIMIT
// without a new record, and a method that also accepts TOTP gets a
// challenge without approval. Deciding one makes room again.
func TestApprovalPendingLimit(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, withApproval(nil, approval.Options{MaxPending: 2}))
	f.authn.SetOrigin(approverOrigin)
	var ids []string
	for i := range 2 {
		out := f.check(f.call(approvalOnly, transfer(int64(100+i), "EUR", "DE00MALLORY")))
		ids = append(ids, out.Challenge.GetApprovalId())
	}
	out := f.check(f.call(approvalOnly, transfer(102, "EUR", "DE00MALLORY")))
	if !out.Locked || out.Reason != challenge.ReasonApprovalsLimit || out.Challenge != nil || !strings.Contains(out.Detail, "2 approvals pending, the limit is 2") {
		t.Fatalf("third approval: %+v", out)
	}
	either := &challenge.Requirement{Factors: []stepupv1.Factor{stepupv1.Factor_FACTOR_APPROVAL, stepupv1.Factor_FACTOR_TOTP}}
	out = f.check(f.call(either, transfer(103, "EUR", "DE00MALLORY")))
	if out.Challenge == nil || slices.Contains(out.Challenge.GetFactors(), stepupv1.Factor_FACTOR_APPROVAL) || out.Challenge.GetApprovalId() != "" {
		t.Fatalf("approval or TOTP past the limit: %+v", out.Challenge)
	}
	if p, err := f.approvals.PendingApprovals(ctx, subject); err != nil || len(p) != 2 {
		t.Fatalf("pending = %d, %v; want the 2 first", len(p), err)
	}
	if _, reason, err := f.approvals.Deny(ctx, subject, ids[0]); err != nil || reason != "" {
		t.Fatalf("deny: %v %s", err, reason)
	}
	if out := f.check(f.call(approvalOnly, transfer(104, "EUR", "DE89370400440532013000"))); out.Challenge.GetApprovalId() == "" {
		t.Fatalf("after a decision, no room: %+v", out)
	}
}

// approveAll claims FACTOR_APPROVAL but holds no state: it would accept
// any answer naming an approval without anyone deciding it.
type approveAll struct{}

func (approveAll) Factor() stepupv1.Factor { return stepupv1.Factor_FACTOR_APPROVAL }

func (approveAll) Verify(context.Context, *challenge.FactorEvidence) (challenge.Reason, string, error) {
	return "", "", nil
}

// Only a Stateful factor can be the approval factor: an approval is
// decided elsewhere, and the Service must tell the factor when it issues
// and answers a challenge.
func TestApprovalFactorMustBeStateful(t *testing.T) {
	keys := newKeySet(t, newKey(t, "k1"))
	if _, err := challenge.NewService(challenge.WithKeys(keys), challenge.WithFactor(approveAll{})); err == nil || !strings.Contains(err.Error(), "Stateful") {
		t.Fatalf("a Factor for FACTOR_APPROVAL that is not Stateful: %v", err)
	}
}

// statefulTOTP is a Stateful factor that claims FACTOR_TOTP: the
// approval factor's hooks under another kind.
type statefulTOTP struct{ *approvalHooks }

// approvalHooks names the embedded approval factor, so that its method
// Factor can be overridden.
type approvalHooks = approval.Factor

func (statefulTOTP) Factor() stepupv1.Factor { return stepupv1.Factor_FACTOR_TOTP }

// A Stateful factor's answers are not counted against the attempt limits,
// so a Stateful factor for a guessable kind (TOTP, device key, WebAuthn)
// would get unlimited guesses: NewService refuses it.
func TestGuessableFactorMustNotBeStateful(t *testing.T) {
	keys := newKeySet(t, newKey(t, "k1"))
	wa := newWebAuthn(t, webauthn.NewMemoryCredentials())
	f := statefulTOTP{newApproval(t, wa, approval.Options{})}
	if _, err := challenge.NewService(challenge.WithKeys(keys), challenge.WithFactor(f)); err == nil || !strings.Contains(err.Error(), "attempt limits") {
		t.Fatalf("a Stateful factor for FACTOR_TOTP: %v", err)
	}
}

// TestApprovalOfferReadsStatesOnce: before a challenge that allows an
// approval is issued, the factor counts the subject's pending approvals
// (Offer); it reads their states in one store operation, so issuing costs
// the same however many approvals are listed. Before, one read each.
func TestApprovalOfferReadsStatesOnce(t *testing.T) {
	f := newFixture(t)
	store := &countingStore{MemoryStore: f.store}
	wa := newWebAuthn(t, f.creds)
	approvals := newApproval(t, wa, approval.Options{MaxPending: 5})
	svc, err := challenge.NewService(challenge.WithKeys(f.keys), challenge.WithClock(f.clock.Now), challenge.WithStore(store),
		challenge.WithFactor(wa), challenge.WithFactor(approvals))
	if err != nil {
		t.Fatal(err)
	}
	var ops []int64
	for i := range 4 {
		store.ops.Store(0)
		out, err := svc.Check(context.Background(), f.call(approvalOnly, transfer(int64(100+i), "EUR", "DE00MALLORY")))
		if err != nil || out.Challenge.GetApprovalId() == "" {
			t.Fatalf("approval %d: %+v, %v", i, out, err)
		}
		ops = append(ops, store.ops.Load())
	}
	if p, err := approvals.PendingApprovals(context.Background(), subject); err != nil || len(p) != 4 {
		t.Fatalf("pending = %d, %v; want 4", len(p), err)
	}
	// The attempt counters, then (from one pending on) the states.
	if want := []int64{1, 2, 2, 2}; !slices.Equal(ops, want) {
		t.Fatalf("store operations issuing approval challenges with 0, 1, 2, 3 pending: %v; want %v", ops, want)
	}
}
