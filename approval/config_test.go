package approval_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/stepupgrpc/stepup/approval"
	"github.com/stepupgrpc/stepup/challenge"
	"github.com/stepupgrpc/stepup/challenge/webauthn"
)

// The page needs the approval factor: Config.Approvals, or the deprecated
// Config.Service of a Service that has one, which still serves the page
// through the Service's deprecated methods.
func TestNewConfigApprovals(t *testing.T) {
	const origin = "https://approve.test"
	wa, err := webauthn.New(webauthn.Config{RPID: "approve.test", RPDisplayName: "Test", RPOrigins: []string{origin}}, webauthn.NewMemoryCredentials())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := approval.New(approval.Config{Origin: origin}); err == nil || !strings.Contains(err.Error(), "Config.Approvals is required") {
		t.Fatalf("no Approvals: %v", err)
	}
	bare, err := challenge.NewService(challenge.WithKeys(newKeys(t)), challenge.WithFactor(wa))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := approval.New(approval.Config{Service: bare, Origin: origin}); err == nil || !strings.Contains(err.Error(), "no approval factor") {
		t.Fatalf("a Service without the approval factor: %v", err)
	}
	svc, err := challenge.NewService(challenge.WithKeys(newKeys(t)), challenge.WithFactor(wa),
		wa.WithApproval(origin, nil, challenge.ApprovalOptions{}))
	if err != nil {
		t.Fatal(err)
	}
	page, err := approval.New(approval.Config{Service: svc, Origin: origin})
	if err != nil {
		t.Fatal(err)
	}
	req := httptest.NewRequest(http.MethodPost, "/signin/begin", strings.NewReader(`{"subject":"alice"}`))
	req.Header.Set("Origin", origin)
	req.Header.Set("Sec-Fetch-Site", "same-origin")
	req.Header.Set("Content-Type", "application/json")
	rec := httptest.NewRecorder()
	page.ServeHTTP(rec, req)
	if rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), `"challenge"`) {
		t.Fatalf("sign-in through the deprecated Config.Service: HTTP %d %s", rec.Code, rec.Body)
	}
}
