package approval_test

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"regexp"
	"testing"
	"time"

	"github.com/stepupgrpc/stepup/approval"
	"github.com/stepupgrpc/stepup/challenge"
	approvalfactor "github.com/stepupgrpc/stepup/challenge/approval"
	"github.com/stepupgrpc/stepup/challenge/webauthn"
	stepupv1 "github.com/stepupgrpc/stepup/proto/stepup/v1"
)

// FuzzHandler posts arbitrary bodies to every endpoint of the page, with a
// valid session, its CSRF token and the page's Origin (the attacker is the
// signed-in user's own browser, or someone with their session): the page
// never fails with a 5xx, never panics, and no body approves or denies
// anything without a passkey assertion over the approval (none can be
// made here).
func FuzzHandler(f *testing.F) {
	for _, seed := range []struct {
		path string
		body string
	}{
		{"signin/begin", `{"subject":"alice"}`},
		{"signin/finish", `{"id":"x","rawId":"eA","type":"public-key","response":{}}`},
		{"approve/options", `{"id":"AAAAAAAAAAAAAAAAAAAAAA"}`},
		{"approve", `{"id":"AAAAAAAAAAAAAAAAAAAAAA","assertion":{"id":"x"}}`},
		{"deny", `id=AAAAAAAAAAAAAAAAAAAAAA`},
		{"signout", ``},
	} {
		f.Add(seed.path, []byte(seed.body), true)
	}
	p := newPageFixture(f)
	f.Fuzz(func(t *testing.T, path string, body []byte, withCSRF bool) {
		req := httptest.NewRequest(http.MethodPost, "/", bytes.NewReader(body))
		req.URL.Path = "/" + path // any path, spaces and all
		req.Header.Set("Origin", p.origin)
		req.Header.Set("Sec-Fetch-Site", "same-origin")
		if path == "deny" || path == "signout" {
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		} else {
			req.Header.Set("Content-Type", "application/json")
		}
		session, csrf := p.session, p.csrf
		if path == "signout" {
			// Signing out ends the session on the server: the other inputs
			// keep theirs.
			session, csrf = p.signIn(t)
		}
		req.AddCookie(&http.Cookie{Name: approval.SessionCookie, Value: session})
		if withCSRF {
			req.Header.Set("X-CSRF-Token", csrf)
		}
		rec := httptest.NewRecorder()
		p.page.ServeHTTP(rec, req)
		if rec.Code >= 500 {
			t.Fatalf("POST /%s %q: HTTP %d", path, body, rec.Code)
		}
		pending, err := p.approvals.PendingApprovals(context.Background(), alice)
		if err != nil || len(pending) != 1 {
			t.Fatalf("POST /%s %q decided the approval: %v %v", path, body, pending, err)
		}
	})
}

// pageFixture is the approver page on one Service with one pending
// approval of alice's and a signed-in session of hers.
type pageFixture struct {
	svc                   *challenge.Service
	approvals             *approvalfactor.Factor
	page                  http.Handler
	authn                 *webauthn.SoftAuthenticator
	origin, session, csrf string
}

func newPageFixture(t testing.TB) *pageFixture {
	t.Helper()
	ctx := context.Background()
	p := &pageFixture{origin: "https://approve.test"}
	authn, err := webauthn.NewSoftAuthenticator("approve.test", p.origin)
	if err != nil {
		t.Fatal(err)
	}
	cred, err := authn.RegisterCredential([]byte(aliceHandle))
	if err != nil {
		t.Fatal(err)
	}
	creds := webauthn.NewMemoryCredentials()
	creds.AddCredential(alice, []byte(aliceHandle), cred)
	wa, err := webauthn.New(webauthn.Config{RPID: "approve.test", RPDisplayName: "Test", RPOrigins: []string{p.origin}}, creds)
	if err != nil {
		t.Fatal(err)
	}
	// The Service's clock stands still: a fuzzing run outlasts the
	// approval's two minutes and the session's life, and an approval that
	// expired would pass for one a request decided.
	start := time.Now()
	if p.approvals, err = wa.NewApproval(p.origin, nil, approvalfactor.Options{}); err != nil {
		t.Fatal(err)
	}
	if p.svc, err = challenge.NewService(challenge.WithKeys(newKeys(t)), challenge.WithFactor(wa),
		challenge.WithFactor(p.approvals),
		challenge.WithClock(func() time.Time { return start })); err != nil {
		t.Fatal(err)
	}
	if p.page, err = approval.New(approval.Config{Approvals: p.approvals, Origin: p.origin}); err != nil {
		t.Fatal(err)
	}
	if _, err := p.svc.Check(ctx, challenge.Call{Subject: alice, Thumbprint: "jkt", Method: transferRPC,
		Requirement: &challenge.Requirement{Factors: []stepupv1.Factor{stepupv1.Factor_FACTOR_APPROVAL}}, Request: transfer(100)}); err != nil {
		t.Fatal(err)
	}
	p.authn = authn
	p.session, p.csrf = p.signIn(t)
	return p
}

// signIn signs alice in and returns the session token and the CSRF token
// the page embeds for it.
func (p *pageFixture) signIn(t testing.TB) (session, csrf string) {
	t.Helper()
	ctx := context.Background()
	state, opts, _, err := p.approvals.BeginApproverSignIn(ctx, alice)
	if err != nil {
		t.Fatal(err)
	}
	assertion, err := p.authn.GetAssertion(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	if session, _, _, err = p.approvals.FinishApproverSignIn(ctx, state, assertion); err != nil || session == "" {
		t.Fatalf("sign in: %v", err)
	}
	req := httptest.NewRequest(http.MethodGet, "/", nil)
	req.AddCookie(&http.Cookie{Name: approval.SessionCookie, Value: session})
	rec := httptest.NewRecorder()
	p.page.ServeHTTP(rec, req)
	m := regexp.MustCompile(`name="stepup-csrf" content="([^"]+)"`).FindStringSubmatch(rec.Body.String())
	if m == nil {
		t.Fatalf("no CSRF token on the page: %s", rec.Body.String())
	}
	return session, m[1]
}
