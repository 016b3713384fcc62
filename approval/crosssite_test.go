package approval_test

import (
	"fmt"
	"html"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stepupgrpc/stepup/approval"
	"github.com/stepupgrpc/stepup/interceptor"
)

type crossSiteCase struct {
	name      string
	origin    string // the Origin header, "" for none
	csrf      string // the csrf form field
	fetchSite string // Sec-Fetch-Site, "" for none
	status    int
	reason    interceptor.Reason
}

// crossSiteCases are forged deny POSTs that carry alice's valid session
// cookie (as a browser would send it, were it not SameSite=Strict): each is
// refused, and the approval stays pending.
func crossSiteCases(origin, csrf string) []crossSiteCase {
	return []crossSiteCase{
		{"missing CSRF token", origin, "", "same-origin", http.StatusForbidden, approval.ReasonCSRFInvalid},
		{"wrong CSRF token", origin, strings.Repeat("A", len(csrf)), "same-origin", http.StatusForbidden, approval.ReasonCSRFInvalid},
		{"foreign Origin", "https://evil.example", csrf, "", http.StatusForbidden, approval.ReasonCrossOrigin},
		{"no Origin", "", csrf, "", http.StatusForbidden, approval.ReasonCrossOrigin},
		{"cross-site fetch", origin, csrf, "cross-site", http.StatusForbidden, approval.ReasonCrossOrigin},
		{"null Origin", "null", csrf, "", http.StatusForbidden, approval.ReasonCrossOrigin},
	}
}

// postDeny posts a deny form to r's page as described and returns the
// HTTP status.
func postDeny(t testing.TB, r *replica, session, id, origin, csrf, fetchSite string) int {
	t.Helper()
	form := url.Values{"id": {id}}
	if csrf != "" {
		form.Set("csrf", csrf)
	}
	req, err := http.NewRequest(http.MethodPost, r.pageURL+"deny", strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.AddCookie(&http.Cookie{Name: approval.SessionCookie, Value: session})
	if origin != "" {
		req.Header.Set("Origin", origin)
	}
	if fetchSite != "" {
		req.Header.Set("Sec-Fetch-Site", fetchSite)
	}
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }, Timeout: 10 * time.Second}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// evilSite serves, on another origin (127.0.0.1, not localhost), a page
// whose form posts a denial of id to action as soon as it loads.
func evilSite(t testing.TB, action, id string) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	page := fmt.Sprintf(`<!doctype html><html><body><form id="f" method="post" action="%s">`+
		`<input type="hidden" name="id" value="%s"></form><script>document.getElementById("f").submit()</script></body></html>`,
		html.EscapeString(action), html.EscapeString(id))
	srv := &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_, _ = w.Write([]byte(page))
	})}
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() { _ = srv.Close() })
	return "http://" + l.Addr().String() + "/"
}
