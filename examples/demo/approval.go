package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/stepupgrpc/stepup/approval"
	"github.com/stepupgrpc/stepup/challenge"
	approvalfactor "github.com/stepupgrpc/stepup/challenge/approval"
	"github.com/stepupgrpc/stepup/challenge/webauthn"
	"github.com/stepupgrpc/stepup/dpop"
	bankv1 "github.com/stepupgrpc/stepup/examples/bank/v1"
	"github.com/stepupgrpc/stepup/interceptor"
	stepupv1 "github.com/stepupgrpc/stepup/proto/stepup/v1"
	"github.com/stepupgrpc/stepup/testing/browserkit"
)

const aliceHandle = "alice-handle"

// phone is alice's second device: the approver page she opens there, and
// her passkey, held by a headless Chromium's virtual authenticator when
// chromium is installed, else by a software authenticator that answers
// through the same Service calls the page makes.
type phone struct {
	lis     net.Listener
	origin  string
	rp      webauthn.Config
	creds   *webauthn.MemoryCredentials
	key     *ecdsa.PrivateKey // the browser's passkey
	keyID   []byte
	soft    *webauthn.SoftAuthenticator
	browser string // chromium's path, "" when absent
	// approvals is the approval factor, built by options.
	approvals *approvalfactor.Factor
}

func newPhone() (*phone, error) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &phone{lis: lis, creds: webauthn.NewMemoryCredentials()}
	// WebAuthn needs a secure context: http://localhost is one (the demo's
	// page is plain HTTP on loopback; a real one is served over HTTPS).
	p.origin = "http://localhost:" + strconv.Itoa(lis.Addr().(*net.TCPAddr).Port)
	p.rp = webauthn.Config{RPID: "localhost", RPDisplayName: "Demo bank", RPOrigins: []string{p.origin}}
	if p.key, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader); err != nil {
		return nil, err
	}
	p.keyID = make([]byte, 16)
	if _, err := rand.Read(p.keyID); err != nil {
		return nil, err
	}
	cred, err := webauthn.CredentialFromKey(p.keyID, &p.key.PublicKey)
	if err != nil {
		return nil, err
	}
	p.creds.AddCredential("alice", []byte(aliceHandle), cred)
	if p.soft, err = webauthn.NewSoftAuthenticator("localhost", p.origin); err != nil {
		return nil, err
	}
	soft, err := p.soft.RegisterCredential([]byte(aliceHandle))
	if err != nil {
		return nil, err
	}
	p.creds.AddCredential("alice", []byte(aliceHandle), soft)
	p.browser, _ = browserkit.Chromium()
	return p, nil
}

// options are the step-up options of the approval factor, which the
// approver page serves (p.approvals).
func (p *phone) options() []challenge.Option {
	wa, err := webauthn.New(p.rp, p.creds)
	if err != nil {
		return []challenge.Option{challenge.OptionError(err)}
	}
	if p.approvals, err = wa.NewApproval(p.origin, nil, approvalfactor.Options{Poll: 200 * time.Millisecond}); err != nil {
		return []challenge.Option{challenge.OptionError(err)}
	}
	return []challenge.Option{challenge.WithFactor(wa), challenge.WithFactor(p.approvals)}
}

// serve starts the approver page; the returned func stops it.
func (p *phone) serve(audit interceptor.AuditSink) (func(), error) {
	page, err := approval.New(approval.Config{Approvals: p.approvals, Origin: p.origin, Audit: audit})
	if err != nil {
		return nil, err
	}
	srv := &http.Server{Handler: page, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(p.lis) }()
	return func() { _ = srv.Close() }, nil
}

// approve has alice approve, on her phone, the approval with the matching
// code; it returns what the phone showed.
func (p *phone) approve(ctx context.Context, code string) (string, error) {
	if p.browser != "" {
		b, err := browserkit.Start(p.browser)
		if err != nil {
			return "", err
		}
		defer b.Close()
		if err := b.AddPasskey("localhost", []byte(aliceHandle), p.keyID, p.key); err != nil {
			return "", err
		}
		if err := b.SignIn(p.origin+"/", "alice"); err != nil {
			return "", err
		}
		sel, err := b.FindApproval(p.origin+"/", code)
		if err != nil {
			return "", err
		}
		amount, _ := b.Text(sel + " dd[data-field=amount_minor]")
		to, _ := b.Text(sel + " dd[data-field=to_iban]")
		shown, _ := b.Text(sel + " span.code")
		if err := b.Approve(sel); err != nil {
			return "", err
		}
		return fmt.Sprintf("amount %s, to %s, matching code %s (headless Chromium, passkey in its virtual authenticator)", amount, to, shown), nil
	}
	summary, err := p.approveOverHTTP(ctx, code)
	if err != nil {
		return "", err
	}
	return summary + ", matching code " + code + " (chromium is not installed: a software passkey signs, through the page's own endpoints; apt-get install chromium to see the page)", nil
}

// approveOverHTTP does what the page's script does, without a browser:
// sign in with the software passkey, read the page, approve.
func (p *phone) approveOverHTTP(ctx context.Context, code string) (string, error) {
	amount, to, err := browserkit.ApproveOverHTTP(ctx, p.origin, p.soft, "alice", code)
	if err != nil {
		return "", err
	}
	if amount == "" || to == "" {
		return "", fmt.Errorf("the page shows no amount or payee")
	}
	return fmt.Sprintf("amount %s, to %s", amount, to), nil
}

// approvalStep is step 5 of the demo: a transfer approved on alice's phone.
func (d *demo) approvalStep(ctx context.Context, p *phone, signer *dpop.Signer, token string) {
	d.section("5. alice transfers 250.00 EUR and approves it on her phone (out-of-band approval, passkey)")
	codes := make(chan string, 1)
	laptop, err := interceptor.NewClient(signer, interceptor.StaticToken(token), interceptor.WithResponder(challenge.ApprovalResponder(
		func(_ context.Context, ch *stepupv1.StepUpChallenge, code string) error {
			fmt.Fprintf(d.out, "     alice's laptop shows: %s; approve it on your phone, matching code %s\n", ch.GetSummaryText(), code)
			codes <- code
			return nil
		})))
	if err != nil {
		d.fail("%v", err)
		return
	}
	bank, err := d.dial(laptop.DialOptions()...)
	if err != nil {
		d.fail("%v", err)
		return
	}
	mark := d.audit.mark()
	done := make(chan error, 1)
	var tr *bankv1.TransferResponse
	go func() {
		cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		var err error
		tr, err = bank.Transfer(cctx, &bankv1.TransferRequest{FromAccountId: "alice-checking", AmountMinor: 25_000, Currency: "EUR", ToIban: "DE02120300000000202051", Reference: "deposit"})
		done <- err
	}()
	var code string
	select {
	case code = <-codes:
	case err := <-done:
		d.fail("the transfer ended before asking for an approval: %v", err)
		return
	}
	// alice picks up her phone while the laptop waits.
	for i := 0; i < 100 && !d.audit.has(mark, interceptor.DecisionApprovalPending); i++ {
		time.Sleep(50 * time.Millisecond)
	}
	shown, err := p.approve(ctx, code)
	if err != nil {
		d.fail("the phone could not approve: %v", err)
		<-done
		return
	}
	fmt.Fprintf(d.out, "     alice's phone shows: %s\n     alice checks the code and approves with her passkey\n", shown)
	err = <-done
	d.expectOK(err, "transfer %s done after the approval, balance after: %s", tr.GetTransferId(), money(tr.GetBalanceAfter()))
	var pending, approved, passed int
	last := -1
	for i := mark; i < d.audit.mark(); i++ {
		switch e := d.audit.at(i); e.Decision {
		case interceptor.DecisionApprovalPending:
			pending++
		case interceptor.DecisionApprovalApproved:
			approved++
		case interceptor.DecisionStepUpPassed:
			if e.Factor == "approval" {
				passed, last = passed+1, i
			}
		}
	}
	d.check(pending > 0 && approved == 1 && passed == 1,
		fmt.Sprintf("audit: %d pending retries, %d approvals, %d passed calls; want some, 1, 1", pending, approved, passed))
	if last >= 0 {
		fmt.Fprintf(d.out, "   audit: %d x approval_pending while alice decided: her laptop's client sent the same call again\n"+
			"          with the same answer after each refusal's RetryInfo delay; each was refused UNAVAILABLE,\n"+
			"          wire reason APPROVAL_PENDING (docs/PROTOCOL.md 7.2): waiting for her, not a failure. Then\n"+
			"   audit: %s\n", pending, d.audit.line(last))
	}
}

// has reports whether an event of decision was recorded from index from on.
func (a *auditTape) has(from int, decision interceptor.Decision) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, e := range a.events[min(from, len(a.events)):] {
		if e.Decision == decision {
			return true
		}
	}
	return false
}
