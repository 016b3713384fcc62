package approval_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/stepupgrpc/stepup/approval"
	"github.com/stepupgrpc/stepup/challenge"
	approvalfactor "github.com/stepupgrpc/stepup/challenge/approval"
	bankv1 "github.com/stepupgrpc/stepup/examples/bank/v1"
	"github.com/stepupgrpc/stepup/interceptor"
	stepupv1 "github.com/stepupgrpc/stepup/proto/stepup/v1"
	"github.com/stepupgrpc/stepup/testing/browserkit"
)

// The browser tests drive a real headless Chromium (Debian's chromium,
// which .ci/run installs) through the DevTools protocol, with a WebAuthn
// virtual authenticator holding alice's passkey. Without chromium they are
// skipped, except under CI, where they fail.

const noChromium = "the browser tests need chromium (apt-get install chromium; .ci/run installs it)"

// chromiumPath returns the browser to run (browserkit.Chromium), skipping
// the test without one, or failing it under CI.
func chromiumPath(t testing.TB) string {
	t.Helper()
	p, ok := browserkit.Chromium()
	if !ok {
		if os.Getenv("CI") != "" {
			t.Fatal(noChromium)
		}
		t.Skip(noChromium)
	}
	return p
}

// browser is one headless tab with a virtual authenticator that holds
// alice's passkey for RP ID "localhost".
type browser struct {
	*browserkit.Browser
	ctx context.Context
}

func newBrowser(t testing.TB, pk *passkey) *browser {
	t.Helper()
	b, err := browserkit.Start(chromiumPath(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	if err := b.AddPasskey("localhost", []byte(aliceHandle), pk.id, pk.key); err != nil {
		t.Fatal(err)
	}
	return &browser{Browser: b, ctx: b.Context()}
}

func (b *browser) text(t testing.TB, sel string) string {
	t.Helper()
	s, err := b.Text(sel)
	if err != nil {
		t.Fatalf("browser: text of %s: %v", sel, err)
	}
	return strings.TrimSpace(s)
}

func (b *browser) signIn(t testing.TB, r *replica) {
	t.Helper()
	if err := b.SignIn(r.pageURL, alice); err != nil {
		t.Fatal(err)
	}
}

// openApproval reloads the page until it lists the approval with the
// given matching code, and returns the approval's selector.
func (b *browser) openApproval(t testing.TB, r *replica, code string) string {
	t.Helper()
	sel, err := b.FindApproval(r.pageURL, code)
	if err != nil {
		t.Fatal(err)
	}
	return sel
}

func (b *browser) approve(t testing.TB, sel string) {
	t.Helper()
	if err := b.Approve(sel); err != nil {
		t.Fatal(err)
	}
}

// approvalID returns the id of the approval at sel.
func (b *browser) approvalID(t testing.TB, sel string) string {
	t.Helper()
	id, err := chromedp.Run(b.ctx, chromedp.AttributeValue(chromedp.CSS(sel+" button.approve"), "data-id"))
	if err != nil || !id.Exists {
		t.Fatalf("approval id at %s: %v", sel, err)
	}
	return id.Value
}

// sessionCookie returns the approver session cookie the browser holds for
// r's page (HttpOnly: read through the DevTools protocol).
func (b *browser) sessionCookie(t testing.TB, r *replica) string {
	t.Helper()
	res, err := chromedp.Call(b.ctx, network.GetCookies, network.GetCookiesParams{URLs: []string{r.pageURL}})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range res.Cookies {
		if c.Name == approval.SessionCookie {
			if !c.HTTPOnly || !c.Secure || c.SameSite != network.CookieSameSiteStrict || c.Path != "/" || c.Domain != "localhost" {
				t.Errorf("session cookie: HttpOnly %v, Secure %v, SameSite %q, Path %q, Domain %q; want true, true, Strict, /, host-only",
					c.HTTPOnly, c.Secure, c.SameSite, c.Path, c.Domain)
			}
			return c.Value
		}
	}
	t.Fatalf("no session cookie %s among %d", approval.SessionCookie, len(res.Cookies))
	return ""
}

// pendingOnPage makes req wait for an approval (the call is refused with
// its challenge), finds it on r's page, and returns the challenge, the
// approval id, the session cookie the browser holds and the page's CSRF
// token.
func (b *browser) pendingOnPage(t testing.TB, d *deployment, r *replica, req *bankv1.TransferRequest) (*stepupv1.StepUpChallenge, string, string, string) {
	t.Helper()
	_, err := d.bank(r).Transfer(context.Background(), req)
	ch := interceptor.ChallengeFromError(err)
	id := b.approvalID(t, b.openApproval(t, r, ch.GetMatchingCode()))
	csrf, err := chromedp.Run(b.ctx, chromedp.Evaluate[string](`document.querySelector('meta[name="stepup-csrf"]').content`))
	if err != nil {
		t.Fatal(err)
	}
	return ch, id, b.sessionCookie(t, r), csrf
}

// showsTransfer waits for the matching code the waiting call shows, finds
// its approval on r's page, checks that the page shows the amount and the
// payee of the call, and returns the approval's selector.
func (b *browser) showsTransfer(t testing.TB, r *replica, w *waitingCall, amount string) string {
	t.Helper()
	sel := b.openApproval(t, r, w.code(t))
	if got := b.text(t, sel+" dd[data-field=amount_minor]"); got != amount {
		t.Errorf("the page shows amount %q, want %q", got, amount)
	}
	if got := b.text(t, sel+" dd[data-field=to_iban]"); got != "DE89370400440532013000" {
		t.Errorf("the page shows payee %q", got)
	}
	return sel
}

// digestOf is the summary digest of a Transfer request.
func digestOf(req *bankv1.TransferRequest) string {
	return challenge.SummaryDigest(challenge.SummaryText(transferRPC, challenge.Summarize(req)))
}

// transfer is the request of the tests: the page must show its amount and
// payee exactly.
func transfer(amountMinor int64) *bankv1.TransferRequest {
	return &bankv1.TransferRequest{
		FromAccountId: checkingAcct, AmountMinor: amountMinor, Currency: "EUR",
		ToIban: "DE89370400440532013000", Reference: "rent",
	}
}

// waitingCall calls Transfer through a client that answers with an
// out-of-band approval; codes receives the matching code the client shows.
type waitingCall struct {
	codes chan string
	done  chan error
	resp  *bankv1.TransferResponse
}

func (d *deployment) startTransfer(r *replica, req *bankv1.TransferRequest) *waitingCall {
	w := &waitingCall{codes: make(chan string, 1), done: make(chan error, 1)}
	bank := d.bank(r, interceptor.WithResponder(challenge.ApprovalResponder(func(_ context.Context, ch *stepupv1.StepUpChallenge, code string) error {
		w.codes <- code
		return nil
	})))
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		resp, err := bank.Transfer(ctx, req)
		w.resp = resp
		w.done <- err
	}()
	return w
}

func (w *waitingCall) code(t testing.TB) string {
	t.Helper()
	select {
	case c := <-w.codes:
		return c
	case err := <-w.done:
		t.Fatalf("the call ended before showing a matching code: %v", err)
	case <-time.After(20 * time.Second):
		t.Fatal("no matching code shown")
	}
	return ""
}

func (w *waitingCall) result(t testing.TB) error {
	t.Helper()
	select {
	case err := <-w.done:
		return err
	case <-time.After(30 * time.Second):
		t.Fatal("the call did not end")
	}
	return nil
}

// hasEvent reports whether rec holds an event of decision and reason.
func hasEvent(rec *interceptor.AuditRecorder, d interceptor.Decision, reason interceptor.Reason) *interceptor.Event {
	for _, e := range slices.Backward(rec.Events()) {
		if e.Decision == d && e.Reason == reason {
			return &e
		}
	}
	return nil
}

func wantEvent(t testing.TB, rec *interceptor.AuditRecorder, d interceptor.Decision, reason interceptor.Reason, digest string) {
	t.Helper()
	e := hasEvent(rec, d, reason)
	if e == nil {
		t.Fatalf("no audit event %s/%s among %d", d, reason, len(rec.Events()))
	}
	if digest != "" && e.SummaryDigest != digest {
		t.Errorf("audit %s/%s: summary digest %q, want %q", d, reason, e.SummaryDigest, digest)
	}
}

func TestBrowserApproval(t *testing.T) {
	chromiumPath(t)
	d := newDeployment(t, 1, memoryApprovalStore(t))
	r := d.replicas[0]
	b := newBrowser(t, d.passkey)
	b.signIn(t, r)

	t.Run("approve", func(t *testing.T) {
		req := transfer(125_000)
		w := d.startTransfer(r, req)
		sel := b.showsTransfer(t, r, w, "1250.00 EUR")
		if os.Getenv("STEPUP_SCREENSHOT") != "" {
			shot, err := chromedp.Run(b.ctx, chromedp.FullScreenshot(100))
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join("..", "docs", "approval-page.png"), shot, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		b.approve(t, sel)
		if err := w.result(t); err != nil {
			t.Fatalf("the approved call failed: %v", err)
		}
		if w.resp.GetTransferId() == "" {
			t.Error("no transfer id")
		}
		digest := digestOf(req)
		wantEvent(t, r.page, interceptor.DecisionApprovalShown, interceptor.ReasonAllowed, digest)
		wantEvent(t, r.page, interceptor.DecisionApprovalApproved, interceptor.ReasonAllowed, digest)
		wantEvent(t, r.guard, interceptor.DecisionApprovalPending, interceptor.Reason(challenge.ReasonApprovalPending), digest)
		wantEvent(t, r.guard, interceptor.DecisionStepUpPassed, interceptor.ReasonAllowed, digest)
		if e, _ := r.guard.Last(); e.Factor != "approval" {
			t.Errorf("the passed call's factor is %q, want approval", e.Factor)
		}
	})

	t.Run("deny", func(t *testing.T) {
		w := d.startTransfer(r, transfer(99_00))
		code := w.code(t)
		sel := b.openApproval(t, r, code)
		if err := b.Deny(sel); err != nil {
			t.Fatal(err)
		}
		err := w.result(t)
		if status.Code(err) != codes.PermissionDenied || interceptor.ReasonFromError(err) != interceptor.WireApprovalDenied {
			t.Fatalf("the denied call: %v (wire %q), want PERMISSION_DENIED / %s", err, interceptor.ReasonFromError(err), interceptor.WireApprovalDenied)
		}
		wantEvent(t, r.page, interceptor.DecisionApprovalDenied, interceptor.ReasonAllowed, "")
		wantEvent(t, r.guard, interceptor.DecisionStepUpFailed, interceptor.Reason(challenge.ReasonApprovalDenied), "")
	})

	t.Run("other amount and replay", func(t *testing.T) {
		// The attacker's client holds alice's key (malware on her laptop):
		// it gets an approval for one amount and tries it on another.
		bank := d.bank(r)
		asked := transfer(10_00)
		_, err := bank.Transfer(context.Background(), asked)
		ch := interceptor.ChallengeFromError(err)
		if ch.GetApprovalId() == "" {
			t.Fatalf("no approval in the challenge: %v", err)
		}
		sel := b.openApproval(t, r, ch.GetMatchingCode())
		if got := b.text(t, sel+" dd[data-field=amount_minor]"); got != "10.00 EUR" {
			t.Fatalf("the page shows %q", got)
		}
		b.approve(t, sel)
		answer, err := challenge.Answer(d.signer, ch, &challenge.Evidence{Factor: stepupv1.Factor_FACTOR_APPROVAL, Approval: ch.GetApprovalId()})
		if err != nil {
			t.Fatal(err)
		}
		withAnswer := metadata.AppendToOutgoingContext(context.Background(), interceptor.MetadataStepUpAnswer, answer)
		if _, err := bank.Transfer(withAnswer, transfer(9_999_00)); status.Code(err) != codes.Unauthenticated {
			t.Fatalf("the approval of 10.00 EUR moved 9999.00 EUR: %v", err)
		}
		wantEvent(t, r.guard, interceptor.DecisionStepUpFailed, interceptor.Reason(challenge.ReasonChallengeWrongRequest), "")
		if _, err := bank.Transfer(withAnswer, asked); err != nil {
			t.Fatalf("the approved amount: %v", err)
		}
		_, err = bank.Transfer(withAnswer, asked)
		if status.Code(err) != codes.Unauthenticated {
			t.Fatalf("a replayed approval: %v", err)
		}
		wantEvent(t, r.guard, interceptor.DecisionStepUpFailed, interceptor.Reason(challenge.ReasonChallengeReused), "")
	})

	t.Run("cross-site POST", func(t *testing.T) {
		_, id, session, csrf := b.pendingOnPage(t, d, r, transfer(77_00))
		for _, c := range crossSiteCases(r.origin, csrf) {
			t.Run(c.name, func(t *testing.T) {
				r.page.Reset()
				code := postDeny(t, r, session, id, c.origin, c.csrf, c.fetchSite)
				if code != c.status {
					t.Errorf("HTTP %d, want %d", code, c.status)
				}
				wantEvent(t, r.page, interceptor.DecisionDeny, c.reason, "")
			})
		}
		// A real cross-site page: a form on another origin posting to the
		// page. The browser does not send the SameSite=Strict cookie, and
		// the page refuses the foreign Origin.
		r.page.Reset()
		evil := evilSite(t, r.pageURL+"deny", id)
		if err := b.Do(20*time.Second, chromedp.Navigate(evil), chromedp.WaitVisible(chromedp.CSS("body"))); err != nil {
			t.Fatal(err)
		}
		waitEvent(t, r.page, interceptor.DecisionDeny, approval.ReasonCrossOrigin)
		// Still pending: the legitimate owner can decide.
		pending, err := r.approvals.PendingApprovals(context.Background(), alice)
		if err != nil || !slices.ContainsFunc(pending, func(a *approvalfactor.Approval) bool { return a.ID == id }) {
			t.Fatalf("after the cross-site POSTs the approval is not pending: %v %v", pending, err)
		}
		// The control: the same POST from the page itself, with its token,
		// is accepted; so the refusals above are the checks', not the
		// harness's.
		if code := postDeny(t, r, session, id, r.origin, csrf, "same-origin"); code != http.StatusSeeOther {
			t.Fatalf("the page's own deny POST: HTTP %d, want 303", code)
		}
		wantEvent(t, r.page, interceptor.DecisionApprovalDenied, interceptor.ReasonAllowed, "")
	})

	t.Run("sign-out ends the session", func(t *testing.T) {
		// Someone copied alice's session cookie (malware reading the
		// browser's profile, a shared machine); then alice signs out.
		ch, id, stolen, csrf := b.pendingOnPage(t, d, r, transfer(55_00))
		if err := b.Do(20*time.Second, chromedp.Click(chromedp.CSS("form[action$='signout'] button")),
			chromedp.WaitVisible(chromedp.CSS("#signin"))); err != nil {
			t.Fatal(err)
		}
		wantEvent(t, r.page, interceptor.DecisionApproverSignOut, interceptor.ReasonAllowed, "")
		r.page.Reset()
		// The copy lists nothing and decides nothing, on the page's own
		// terms (Origin, CSRF token, cookie).
		if page := getPage(t, r, stolen); strings.Contains(page, ch.GetMatchingCode()) || !strings.Contains(page, `id="signin"`) {
			t.Errorf("the signed-out session still lists approvals:\n%s", page)
		}
		wantEvent(t, r.page, interceptor.DecisionDeny, interceptor.Reason(challenge.ReasonApproverSessionEnded), "")
		if code := postDeny(t, r, stolen, id, r.origin, csrf, "same-origin"); code != http.StatusUnauthorized {
			t.Errorf("deny with the signed-out session: HTTP %d, want 401", code)
		}
		wantEvent(t, r.page, interceptor.DecisionDeny, interceptor.Reason(challenge.ReasonApproverSessionEnded), "")
		pending, err := r.approvals.PendingApprovals(context.Background(), alice)
		if err != nil || !slices.ContainsFunc(pending, func(a *approvalfactor.Approval) bool { return a.ID == id }) {
			t.Fatalf("the approval is no longer pending: %v %v", pending, err)
		}
		// Alice signs in again and decides it herself.
		b.signIn(t, r)
		if err := b.Deny(b.openApproval(t, r, ch.GetMatchingCode())); err != nil {
			t.Fatal(err)
		}
	})
}

// getPage fetches r's page with the session cookie and returns its HTML.
func getPage(t testing.TB, r *replica, session string) string {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, r.pageURL, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.AddCookie(&http.Cookie{Name: approval.SessionCookie, Value: session})
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: HTTP %d %v", r.pageURL, resp.StatusCode, err)
	}
	return string(body)
}

// TestBrowserApprovalReplicas runs the flow on two replicas sharing Redis:
// the browser on the page of one, the call on the other.
func TestBrowserApprovalReplicas(t *testing.T) {
	chromiumPath(t)
	d := newDeployment(t, 2, redisApprovalStore(t))
	page, call := d.replicas[0], d.replicas[1]
	b := newBrowser(t, d.passkey)
	b.signIn(t, page)
	req := transfer(42_00)
	w := d.startTransfer(call, req)
	b.approve(t, b.showsTransfer(t, page, w, "42.00 EUR"))
	if err := w.result(t); err != nil {
		t.Fatalf("the call on the other replica: %v", err)
	}
	digest := digestOf(req)
	wantEvent(t, page.page, interceptor.DecisionApprovalApproved, interceptor.ReasonAllowed, digest)
	wantEvent(t, call.guard, interceptor.DecisionStepUpPassed, interceptor.ReasonAllowed, digest)
	if len(page.guard.Events()) != 0 {
		t.Errorf("the page's replica took %d calls; the call went to the other", len(page.guard.Events()))
	}
}

func waitEvent(t testing.TB, rec *interceptor.AuditRecorder, d interceptor.Decision, reason interceptor.Reason) {
	t.Helper()
	for range 100 {
		if hasEvent(rec, d, reason) != nil {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("no audit event %s/%s: %v", d, reason, errors.New("timed out"))
}
