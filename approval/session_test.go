package approval_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"

	"github.com/stepupgrpc/stepup/approval"
	"github.com/stepupgrpc/stepup/challenge"
	approvalfactor "github.com/stepupgrpc/stepup/challenge/approval"
	"github.com/stepupgrpc/stepup/challenge/webauthn"
	"github.com/stepupgrpc/stepup/interceptor"
	stepupv1 "github.com/stepupgrpc/stepup/proto/stepup/v1"
)

// pages is an approver page on two replicas (each its own Service and
// Handler) sharing keys and a store, with alice's passkey, and one pending
// approval of hers.
type pages struct {
	origin string
	authn  *webauthn.SoftAuthenticator
	svcs   [2]*challenge.Service
	// approvals are the Services' approval factors, the pages' Approvals.
	approvals [2]*approvalfactor.Factor
	handler   [2]http.Handler
	audit     [2]*interceptor.AuditRecorder
	id        string // the pending approval
}

func newPages(t *testing.T, store challenge.ApprovalStore) *pages {
	t.Helper()
	p := &pages{origin: "https://approve.test"}
	var err error
	if p.authn, err = webauthn.NewSoftAuthenticator("approve.test", p.origin); err != nil {
		t.Fatal(err)
	}
	cred, err := p.authn.RegisterCredential([]byte(aliceHandle))
	if err != nil {
		t.Fatal(err)
	}
	creds := webauthn.NewMemoryCredentials()
	creds.AddCredential(alice, []byte(aliceHandle), cred)
	wa, err := webauthn.New(webauthn.Config{RPID: "approve.test", RPDisplayName: "Test", RPOrigins: []string{p.origin}}, creds)
	if err != nil {
		t.Fatal(err)
	}
	keys := newKeys(t)
	for i := range p.svcs {
		if p.approvals[i], err = wa.NewApproval(p.origin, nil, approvalfactor.Options{}); err != nil {
			t.Fatal(err)
		}
		if p.svcs[i], err = challenge.NewService(challenge.WithKeys(keys), challenge.WithStore(store),
			challenge.WithFactor(wa), challenge.WithFactor(p.approvals[i])); err != nil {
			t.Fatal(err)
		}
		p.audit[i] = &interceptor.AuditRecorder{}
		if p.handler[i], err = approval.New(approval.Config{Approvals: p.approvals[i], Origin: p.origin, Audit: p.audit[i]}); err != nil {
			t.Fatal(err)
		}
	}
	out, err := p.svcs[0].Check(context.Background(), challenge.Call{Subject: alice, Thumbprint: "jkt", Method: transferRPC,
		Requirement: &challenge.Requirement{Factors: []stepupv1.Factor{stepupv1.Factor_FACTOR_APPROVAL}}, Request: transfer(100)})
	if err != nil || out.Challenge.GetApprovalId() == "" {
		t.Fatalf("no approval: %v %+v", err, out)
	}
	p.id = out.Challenge.GetApprovalId()
	return p
}

// do sends one request to replica i: a POST from the page itself (its
// Origin, same-origin fetch) with a JSON body, or a GET when body is nil.
func (p *pages) do(t *testing.T, i int, path string, body any, cookies []*http.Cookie, csrf string) *http.Response {
	t.Helper()
	method, rd := http.MethodGet, io.Reader(nil)
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		method, rd = http.MethodPost, bytes.NewReader(b)
	}
	req := httptest.NewRequest(method, "/"+path, rd)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Origin", p.origin)
		req.Header.Set("Sec-Fetch-Site", "same-origin")
	}
	if csrf != "" {
		req.Header.Set("X-CSRF-Token", csrf)
	}
	for _, c := range cookies {
		req.AddCookie(c)
	}
	rec := httptest.NewRecorder()
	p.handler[i].ServeHTTP(rec, req)
	return rec.Result()
}

// cookie returns the cookie name that resp sets, checking the attributes
// every cookie of the page has.
func cookie(t *testing.T, resp *http.Response, name string) *http.Cookie {
	t.Helper()
	for _, c := range resp.Cookies() {
		if c.Name != name {
			continue
		}
		if !strings.HasPrefix(c.Name, "__Host-") || c.Path != "/" || c.Domain != "" || !c.Secure || !c.HttpOnly || c.SameSite != http.SameSiteStrictMode {
			t.Errorf("cookie %s: Path %q, Domain %q, Secure %v, HttpOnly %v, SameSite %v; want a __Host- cookie (Path /, no Domain, Secure) HttpOnly and Strict",
				c.Name, c.Path, c.Domain, c.Secure, c.HttpOnly, c.SameSite)
		}
		return c
	}
	t.Fatalf("the response sets no cookie %s: %v", name, resp.Header["Set-Cookie"])
	return nil
}

// signIn runs the page's passkey sign-in on replica i and returns the
// session cookie and the page's CSRF token.
func (p *pages) signIn(t *testing.T, i int) (*http.Cookie, string) {
	t.Helper()
	resp := p.do(t, i, "signin/begin", map[string]string{"subject": alice}, nil, "")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("signin/begin: HTTP %d", resp.StatusCode)
	}
	state := cookie(t, resp, approval.SignInCookie)
	opts, _ := io.ReadAll(resp.Body)
	assertion, err := p.authn.GetAssertion(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	var body json.RawMessage = assertion
	resp = p.do(t, i, "signin/finish", body, []*http.Cookie{state}, "")
	if resp.StatusCode != http.StatusNoContent {
		t.Fatalf("signin/finish: HTTP %d", resp.StatusCode)
	}
	session := cookie(t, resp, approval.SessionCookie)
	page, _ := io.ReadAll(p.do(t, i, "", nil, []*http.Cookie{session}, "").Body)
	m := regexp.MustCompile(`name="stepup-csrf" content="([^"]+)"`).FindSubmatch(page)
	if m == nil || !strings.Contains(string(page), p.id) {
		t.Fatalf("the signed-in page: %s", page)
	}
	return session, string(m[1])
}

func lastReason(rec *interceptor.AuditRecorder) interceptor.Reason {
	e, _ := rec.Last()
	return e.Reason
}

// TestSignOutEndsTheSession: alice signs out on one replica; a copy of her
// session cookie taken before (malware in the browser, a shared machine, a
// proxy log) no longer lists or decides anything on either replica, with
// the page's Origin and her CSRF token (401,
// STEPUP_APPROVER_SESSION_ENDED). RevokeApproverSessions ends the rest of
// her sessions (STEPUP_APPROVER_SESSION_REVOKED). Before, signing out only
// cleared her browser's cookie, and every copy worked until it expired.
func TestSignOutEndsTheSession(t *testing.T) {
	for _, c := range []struct {
		name  string
		store func(testing.TB) challenge.ApprovalStore
	}{{"memory", memoryApprovalStore}, {"redis", redisApprovalStore}} {
		t.Run(c.name, func(t *testing.T) {
			p := newPages(t, c.store(t))
			stolen, csrf := p.signIn(t, 0)
			phone, phoneCSRF := p.signIn(t, 1)

			resp := p.do(t, 0, "signout", struct{}{}, []*http.Cookie{stolen}, csrf)
			if resp.StatusCode != http.StatusSeeOther || cookie(t, resp, approval.SessionCookie).MaxAge >= 0 {
				t.Fatalf("signout: HTTP %d, cookie %v", resp.StatusCode, resp.Header["Set-Cookie"])
			}
			if e, _ := p.audit[0].Last(); e.Decision != interceptor.DecisionApproverSignOut || e.Subject != alice {
				t.Errorf("signout audited %+v", e)
			}
			for i := range 2 {
				page, _ := io.ReadAll(p.do(t, i, "", nil, []*http.Cookie{stolen}, "").Body)
				if strings.Contains(string(page), p.id) || !strings.Contains(string(page), `id="signin"`) {
					t.Errorf("replica %d: the signed-out session lists approvals", i)
				}
				if r := lastReason(p.audit[i]); r != interceptor.Reason(challenge.ReasonApproverSessionEnded) {
					t.Errorf("replica %d: GET audited %s", i, r)
				}
				for _, path := range []string{"approve/options", "deny"} {
					resp := p.do(t, i, path, map[string]string{"id": p.id}, []*http.Cookie{stolen}, csrf)
					if resp.StatusCode != http.StatusUnauthorized || lastReason(p.audit[i]) != interceptor.Reason(challenge.ReasonApproverSessionEnded) {
						t.Errorf("replica %d: %s with the signed-out session: HTTP %d, audit %s", i, path, resp.StatusCode, lastReason(p.audit[i]))
					}
				}
			}
			// Her other session lives on, until she revokes them all.
			if resp := p.do(t, 1, "approve/options", map[string]string{"id": p.id}, []*http.Cookie{phone}, phoneCSRF); resp.StatusCode != http.StatusOK {
				t.Fatalf("her other session: HTTP %d", resp.StatusCode)
			}
			if err := p.approvals[0].RevokeApproverSessions(context.Background(), alice); err != nil {
				t.Fatal(err)
			}
			resp = p.do(t, 1, "approve/options", map[string]string{"id": p.id}, []*http.Cookie{phone}, phoneCSRF)
			if resp.StatusCode != http.StatusUnauthorized || lastReason(p.audit[1]) != interceptor.Reason(challenge.ReasonApproverSessionRevoked) {
				t.Errorf("a revoked session: HTTP %d, audit %s", resp.StatusCode, lastReason(p.audit[1]))
			}
			pending, err := p.approvals[1].PendingApprovals(context.Background(), alice)
			if err != nil || len(pending) != 1 {
				t.Fatalf("the approval was decided: %v %v", pending, err)
			}
		})
	}
}

// TestSignInRevealsNoPasskeys: the page's sign-in answers a subject with
// approver passkeys and one without alike: 200, a sign-in cookie, and
// request options that differ only in their challenge and name no
// credential. Before, a subject without a passkey got 403
// (STEPUP_WEBAUTHN_INVALID), and one with passkeys got their credential
// ids: the page told anyone who had one.
func TestSignInRevealsNoPasskeys(t *testing.T) {
	p := newPages(t, memoryApprovalStore(t))
	shape := func(sub string) string {
		t.Helper()
		resp := p.do(t, 0, "signin/begin", map[string]string{"subject": sub}, nil, "")
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("signin/begin %q: HTTP %d", sub, resp.StatusCode)
		}
		cookie(t, resp, approval.SignInCookie)
		var m map[string]any
		if err := json.NewDecoder(resp.Body).Decode(&m); err != nil {
			t.Fatal(err)
		}
		if _, ok := m["allowCredentials"]; ok {
			t.Errorf("%q: the options name credentials: %v", sub, m)
		}
		delete(m, "challenge")
		b, _ := json.Marshal(m)
		return string(b)
	}
	if a, n := shape(alice), shape("nobody"); a != n {
		t.Fatalf("alice (passkeys) gets %s, nobody (none) %s", a, n)
	}
}
