package challenge_test

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"fmt"
	"sync"
	"time"

	"github.com/stepupgrpc/stepup/challenge"
	"github.com/stepupgrpc/stepup/challenge/approval"
	"github.com/stepupgrpc/stepup/challenge/totp"
	"github.com/stepupgrpc/stepup/challenge/webauthn"
	"github.com/stepupgrpc/stepup/dpop"
	bankv1 "github.com/stepupgrpc/stepup/examples/bank/v1"
	stepupv1 "github.com/stepupgrpc/stepup/proto/stepup/v1"
)

// The whole exchange with a TOTP factor: the server challenges a transfer,
// the client shows the summary, asks for a code and answers on a retry of
// the same call.
func Example() {
	ctx := context.Background()
	now := func() time.Time { return time.Date(2026, 3, 2, 9, 30, 0, 0, time.UTC) }

	// Server: one Service per process, keys shared by every replica.
	key, _ := challenge.GenerateKey("2026-03")
	keys, _ := challenge.NewKeySet(key)
	codes, err := totp.New(totp.SecretsFunc(func(ctx context.Context, subject string) (string, error) {
		return "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP", nil // from the user database
	}), totp.Options{})
	if err != nil {
		panic(err)
	}
	svc, err := challenge.NewService(
		challenge.WithKeys(keys),
		challenge.WithClock(now),
		challenge.WithFactor(codes), // challenge/totp; challenge/devicekey and challenge/webauthn are the others
	)
	if err != nil {
		panic(err)
	}

	// Client: its DPoP key (the one its access token is bound to).
	pk, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	signer, _ := dpop.NewSigner(pk)

	call := challenge.Call{
		Subject:     "alice",
		Thumbprint:  signer.Thumbprint(), // of the verified DPoP proof
		Method:      "/bank.v1.BankService/Transfer",
		Requirement: &challenge.Requirement{BindRequest: true},
		Request:     payment(12000, "EUR", "DE89370400440532013000"), // the request message
	}
	out, _ := svc.Check(ctx, call)
	fmt.Println(out.State, out.Reason)

	// The refusal carries out.Challenge; the client prompts the user.
	responder := challenge.TOTPResponder(func(ctx context.Context, ch *stepupv1.StepUpChallenge) (string, error) {
		fmt.Println("prompt:", ch.GetSummaryText())
		return challenge.TOTPCode("JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP", now()) // what the user types
	})
	ev, _ := responder.Respond(ctx, out.Challenge)
	call.Answer, _ = challenge.Answer(signer, out.Challenge, ev)

	out, _ = svc.Check(ctx, call)
	fmt.Println(out.State, "via", out.Via, "with", out.Factor)
	// Output:
	// challenged STEPUP_REQUIRED
	// prompt: approve BankService.Transfer: amount 120.00 EUR, to DE89370400440532013000
	// satisfied via answer with FACTOR_TOTP
}

// A reusable requirement (max_age, request not bound) earns a grant that
// later calls present instead of a new step-up.
func ExampleService_Check_grant() {
	ctx := context.Background()
	clock := time.Date(2026, 3, 2, 9, 30, 0, 0, time.UTC)
	now := func() time.Time { return clock }

	key, _ := challenge.GenerateKey("k1")
	keys, _ := challenge.NewKeySet(key)
	_, device, _ := ed25519.GenerateKey(rand.Reader)
	svc, _ := challenge.NewService(
		challenge.WithKeys(keys),
		challenge.WithClock(now),
		challenge.WithDeviceKeys(challenge.DeviceKeysFunc(func(ctx context.Context, subject string) ([]crypto.PublicKey, error) {
			return []crypto.PublicKey{device.Public()}, nil
		})),
	)
	pk, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	signer, _ := dpop.NewSigner(pk)
	req := &challenge.Requirement{MaxAge: 10 * time.Minute}
	call := challenge.Call{Subject: "alice", Thumbprint: signer.Thumbprint(), Method: "/bank.v1.BankService/AddPayee", Requirement: req}

	out, _ := svc.Check(ctx, call)
	responder, _ := challenge.DeviceKeyResponder(device)
	ev, _ := responder.Respond(ctx, out.Challenge)
	call.Answer, _ = challenge.Answer(signer, out.Challenge, ev)
	out, _ = svc.Check(ctx, call)
	fmt.Println("answer:", out.State, "grant valid for", out.GrantExpires.Sub(now()))

	// Later calls send the grant in the "stepup-grant" metadata.
	clock = clock.Add(5 * time.Minute)
	later := challenge.Call{Subject: "alice", Thumbprint: signer.Thumbprint(), Method: "/bank.v1.BankService/AddPayee", Requirement: req, Grant: out.Grant}
	out, _ = svc.Check(ctx, later)
	fmt.Println("later:", out.State, "via", out.Via)

	_ = svc.Revocations().RevokeGrants(ctx, "alice")
	out, _ = svc.Check(ctx, later)
	fmt.Println("after revocation:", out.State, out.Reason)
	// Output:
	// answer: satisfied grant valid for 10m0s
	// later: satisfied via grant
	// after revocation: refused STEPUP_GRANT_REVOKED
}

// payment(...) is a request whose amount_minor and to_iban fields carry
// (stepup.v1.display) options.
func ExampleSummarize() {
	items := challenge.Summarize(payment(1999, "JPY", "JP12 3456"))
	for _, it := range items {
		fmt.Printf("%s (%s): %s\n", it.GetLabel(), it.GetField(), it.GetValue())
	}
	fmt.Println(challenge.SummaryText("/bank.v1.BankService/Transfer", items))
	// Output:
	// amount (amount_minor): 1999 JPY
	// to (to_iban): JP12 3456
	// approve BankService.Transfer: amount 1999 JPY, to JP12 3456
}

// RFC 6238 Appendix B: the secret "12345678901234567890" at T = 59 s.
func ExampleTOTPCode() {
	code, _ := challenge.TOTPCode("GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ", time.Unix(59, 0))
	fmt.Println(code)
	eight, _ := challenge.TOTPOptions{Digits: 8}.Code("GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ", time.Unix(59, 0))
	fmt.Println(eight)
	// Output:
	// 287082
	// 94287082
}

// A key file: the current key signs, previous keys still verify.
func ExampleParseKeySet() {
	keys, err := challenge.ParseKeySet([]byte(`{
		"current": {"kid": "2026-03", "secret": "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LXNlY3I"},
		"previous": [{"kid": "2026-02", "secret": "b2xkLXNlY3JldC1vbGQtc2VjcmV0LW9sZC1zZWNyZXQ"}]
	}`))
	if err != nil {
		panic(err)
	}
	fmt.Println(keys)
	b, _ := keys.MarshalJSON()
	fmt.Println(string(b))
	// Output:
	// challenge.KeySet{current: 2026-03, previous: [2026-02]}
	// {"current":{"kid":"2026-03","secret":"c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LXNlY3I"},"previous":[{"kid":"2026-02","secret":"b2xkLXNlY3JldC1vbGQtc2VjcmV0LW9sZC1zZWNyZXQ"}]}
}

// FirstAllowed picks the first responder whose factor the challenge allows.
func ExampleFirstAllowed() {
	ch := &stepupv1.StepUpChallenge{Challenge: "…", Factors: []stepupv1.Factor{stepupv1.Factor_FACTOR_TOTP}}
	_, device, _ := ed25519.GenerateKey(rand.Reader)
	deviceResponder, _ := challenge.DeviceKeyResponder(device)
	totp := challenge.TOTPResponder(func(ctx context.Context, ch *stepupv1.StepUpChallenge) (string, error) {
		return "123456", nil // a CLI would prompt here
	})
	ev, _ := challenge.FirstAllowed(deviceResponder, totp).Respond(context.Background(), ch)
	fmt.Println(ev.Factor)
	// Output:
	// FACTOR_TOTP
}

// A factor of its own: single-use recovery codes, answered as a TOTP code
// is (the client's TOTPResponder asks the user for one). The Service calls
// it through challenge.Factor; a code is spent when it verifies.
func ExampleWithFactor() {
	ctx := context.Background()
	key, _ := challenge.GenerateKey("k1")
	keys, _ := challenge.NewKeySet(key)
	codes := &recoveryCodes{unused: map[string]bool{"alice/7Q2M-XK4P": true}}
	svc, _ := challenge.NewService(challenge.WithKeys(keys), challenge.WithFactor(codes))

	pk, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	signer, _ := dpop.NewSigner(pk)
	call := challenge.Call{Subject: "alice", Thumbprint: signer.Thumbprint(), Method: "/bank.v1.BankService/Transfer",
		Requirement: &challenge.Requirement{}}
	for _, code := range []string{"7Q2M-XK4P", "7Q2M-XK4P"} {
		out, _ := svc.Check(ctx, call)
		ev, _ := challenge.TOTPResponder(func(context.Context, *stepupv1.StepUpChallenge) (string, error) { return code, nil }).
			Respond(ctx, out.Challenge)
		call.Answer, _ = challenge.Answer(signer, out.Challenge, ev)
		out, _ = svc.Check(ctx, call)
		if out.Satisfied {
			fmt.Println("satisfied by", out.Factor)
		} else {
			fmt.Println("refused:", out.Reason)
		}
	}
	// Output:
	// satisfied by FACTOR_TOTP
	// refused: STEPUP_TOTP_INVALID
}

// recoveryCodes is a challenge.Factor: each code verifies once.
type recoveryCodes struct {
	mu     sync.Mutex
	unused map[string]bool // subject + "/" + code
}

func (*recoveryCodes) Factor() stepupv1.Factor { return stepupv1.Factor_FACTOR_TOTP }

func (r *recoveryCodes) Verify(_ context.Context, e *challenge.FactorEvidence) (challenge.Reason, string, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	k := e.Subject + "/" + e.Evidence
	if !r.unused[k] {
		return challenge.ReasonTOTPInvalid, "not an unused recovery code", nil
	}
	delete(r.unused, k)
	return "", "", nil
}

// A client checks a challenge against the call it is making before showing
// it: here a server relays a genuine challenge for another request, and the
// client refuses it without ever prompting the user.
func ExampleCheckChallenge() {
	now := func() time.Time { return time.Date(2026, 3, 2, 9, 30, 0, 0, time.UTC) }
	key, _ := challenge.GenerateKey("2026-03")
	keys, _ := challenge.NewKeySet(key)
	codes, _ := totp.New(totp.SecretsFunc(func(context.Context, string) (string, error) { return "JBSWY3DPEHPK3PXP", nil }), totp.Options{})
	svc, _ := challenge.NewService(challenge.WithKeys(keys), challenge.WithClock(now), challenge.WithFactor(codes))
	pk, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	signer, _ := dpop.NewSigner(pk)

	const method = "/bank.v1.BankService/Transfer"
	small := payment(100, "EUR", "DE89370400440532013000")
	out, _ := svc.Check(context.Background(), challenge.Call{Subject: "alice", Thumbprint: signer.Thumbprint(), Method: method,
		Requirement: &challenge.Requirement{BindRequest: true}, Request: small})

	// The call the client is making: the same method, another amount.
	large := payment(990000, "EUR", "DE89370400440532013000")
	err := challenge.CheckChallenge(out.Challenge, challenge.Expected{Method: method, Request: large, Thumbprint: signer.Thumbprint(), Now: now()})
	fmt.Println(err)
	err = challenge.CheckChallenge(out.Challenge, challenge.Expected{Method: method, Request: small, Thumbprint: signer.Thumbprint(), Now: now()})
	fmt.Println("its own request:", err)
	// Output:
	// challenge: refused challenge (request): the challenge is bound to another request
	// its own request: <nil>
}

// Out-of-band approval: the client shows the matching code and waits; the
// user approves on the second device (here the Service calls the approver
// page makes, with a software passkey); the retried call passes. The
// approval factor is the package challenge/approval, wired with
// WithFactor; the approver page takes the same *approval.Factor.
func Example_approval() {
	ctx := context.Background()
	authn, _ := webauthn.NewSoftAuthenticator("bank.example", "https://approve.bank.example")
	cred, _ := authn.RegisterCredential([]byte("alice-user-handle"))
	users := webauthn.NewMemoryCredentials()
	users.AddCredential("alice", []byte("alice-user-handle"), cred)
	rp := webauthn.Config{RPID: "bank.example", RPDisplayName: "Bank", RPOrigins: []string{"https://approve.bank.example"}}
	key, _ := challenge.GenerateKey("k1")
	keys, _ := challenge.NewKeySet(key)
	wa, err := webauthn.New(rp, users)
	if err != nil {
		panic(err)
	}
	approvals, err := wa.NewApproval("https://approve.bank.example", nil, approval.Options{})
	if err != nil {
		panic(err)
	}
	svc, err := challenge.NewService(challenge.WithKeys(keys), challenge.WithFactor(wa), challenge.WithFactor(approvals))
	if err != nil {
		panic(err)
	}

	pk, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	signer, _ := dpop.NewSigner(pk)
	call := challenge.Call{Subject: "alice", Thumbprint: signer.Thumbprint(), Method: "/bank.v1.BankService/Transfer",
		Requirement: &challenge.Requirement{Factors: []stepupv1.Factor{stepupv1.Factor_FACTOR_APPROVAL}},
		Request:     payment(125000, "EUR", "DE89370400440532013000")}
	out, _ := svc.Check(ctx, call)

	// The client: shows the code, answers with the approval id.
	responder := challenge.ApprovalResponder(func(_ context.Context, ch *stepupv1.StepUpChallenge, code string) error {
		fmt.Println("laptop:", ch.GetSummaryText(), "- code", len(code), "digits")
		return nil
	})
	ev, _ := responder.Respond(ctx, out.Challenge)
	call.Answer, _ = challenge.Answer(signer, out.Challenge, ev)
	out2, _ := svc.Check(ctx, call)
	fmt.Println("before the user decides:", out2.Reason)

	// The phone: the page lists the approval; the passkey signs over it.
	pending, _ := approvals.PendingApprovals(ctx, "alice")
	a := pending[0]
	fmt.Println("phone:", a.SummaryText, "- same code:", a.MatchingCode == out.Challenge.GetMatchingCode())
	opts, _, _, _ := approvals.ApprovalRequestOptions(ctx, "alice", a.ID)
	assertion, _ := authn.GetAssertion(ctx, opts)
	_, reason, _ := approvals.Approve(ctx, "alice", a.ID, assertion)
	fmt.Printf("approved: %q\n", reason)

	out3, _ := svc.Check(ctx, call)
	fmt.Println("the retry:", out3.Satisfied, out3.Factor)
	// Output:
	// laptop: approve BankService.Transfer: amount 1250.00 EUR, to DE89370400440532013000 - code 6 digits
	// before the user decides: STEPUP_APPROVAL_PENDING
	// phone: approve BankService.Transfer: amount 1250.00 EUR, to DE89370400440532013000 - same code: true
	// approved: ""
	// the retry: true FACTOR_APPROVAL
}

// The matching code derives from the challenge alone: the client computes
// it, the page computes it, and they agree.
func ExampleMatchingCode() {
	code := challenge.MatchingCode("eyJhbGciOiJIUzI1NiJ9.e30.c2ln")
	fmt.Println(len(code), code == challenge.MatchingCode("eyJhbGciOiJIUzI1NiJ9.e30.c2ln"))
	// Output:
	// 6 true
}

// Revoking as an administration tool does: over the store the servers
// share (a redisstore.Store in production), without keys or factors. A
// Guard built with interceptor.WithTokenRevocationFrom over the same store
// refuses the tokens and the key on their next call.
func ExampleNewRevocations() {
	ctx := context.Background()
	now := time.Date(2026, 3, 2, 9, 30, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	store, _ := challenge.NewMemoryStore(1000, clock)
	rev, _ := challenge.NewRevocations(store, clock)

	_ = rev.RevokeTokens(ctx, "alice")                  // a lost phone: every token of alice issued so far
	_ = rev.RevokeKey(ctx, "bob", "jkt-of-bobs-laptop") // a stolen laptop: its DPoP key

	issuedBefore, issuedAfter := now.Add(-time.Hour), now.Add(time.Minute)
	tokens, key, _ := rev.CredentialsRevoked(ctx, "alice", issuedBefore, "jkt-of-alices-phone")
	fmt.Println("alice, a token from before:", tokens, key)
	tokens, key, _ = rev.CredentialsRevoked(ctx, "alice", issuedAfter, "jkt-of-alices-phone")
	fmt.Println("alice, a token from after:", tokens, key)
	tokens, key, _ = rev.CredentialsRevoked(ctx, "bob", issuedAfter, "jkt-of-bobs-laptop")
	fmt.Println("bob, the laptop's key:", tokens, key)
	keyRevoked, _ := rev.KeyRevoked(ctx, "bob", "jkt-of-bobs-laptop")
	fmt.Println("bob, KeyRevoked:", keyRevoked)
	fmt.Println("remembered for:", challenge.MaxTokenLifetime, "(tokens living longer are refused)")
	// Output:
	// alice, a token from before: true false
	// alice, a token from after: false false
	// bob, the laptop's key: false true
	// bob, KeyRevoked: true
	// remembered for: 24h0m0s (tokens living longer are refused)
}

// ExampleDisplayFields_Displayed lists what an approval of a transfer
// shows: the fields annotated with (stepup.v1.display), and one more
// declared for a .proto that cannot be annotated.
func ExampleDisplayFields_Displayed() {
	req := (&bankv1.TransferRequest{}).ProtoReflect().Descriptor()
	fmt.Println(challenge.DisplayFields{}.Displayed(req))
	declared := challenge.DisplayFields{"bank.v1.TransferRequest.from_account_id": &stepupv1.Display{Label: "from"}}
	fmt.Println(declared.Displayed(req))
	// Output:
	// [amount_minor to_iban reference]
	// [from_account_id amount_minor to_iban reference]
}
