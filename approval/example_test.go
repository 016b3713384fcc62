package approval_test

import (
	"fmt"
	"net/http"

	"github.com/stepupgrpc/stepup/approval"
	"github.com/stepupgrpc/stepup/challenge"
	approvalfactor "github.com/stepupgrpc/stepup/challenge/approval"
	"github.com/stepupgrpc/stepup/challenge/webauthn"
	"github.com/stepupgrpc/stepup/interceptor"
)

// Mount the approver page next to the rest of a web server. The Service
// approval factor is wired into the Service the Guards use (same keys,
// same store), and the page decides for it.
func ExampleNew() {
	rp := webauthn.Config{RPID: "bank.example", RPDisplayName: "Bank", RPOrigins: []string{"https://approve.bank.example"}}
	key, _ := challenge.GenerateKey("k1")
	keys, _ := challenge.NewKeySet(key)
	wa, _ := webauthn.New(rp, webauthn.NewMemoryCredentials())
	approvals, _ := wa.NewApproval("https://approve.bank.example", nil, approvalfactor.Options{})
	_, _ = challenge.NewService(challenge.WithKeys(keys), challenge.WithFactor(wa), challenge.WithFactor(approvals))

	page, err := approval.New(approval.Config{
		Approvals: approvals,
		Origin:    "https://approve.bank.example",
		BasePath:  "/approve/",
		Audit:     &interceptor.AuditRecorder{}, // your audit sink
	})
	if err != nil {
		panic(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/approve/", page)
	// http.ListenAndServeTLS(":443", cert, key, mux)
	fmt.Println(approval.ContentSecurityPolicy)
	// Output:
	// default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'
}
