package approval_test

import (
	"fmt"
	"net/http"

	"github.com/stepupgrpc/stepup/approval"
	"github.com/stepupgrpc/stepup/challenge"
	"github.com/stepupgrpc/stepup/challenge/webauthn"
	"github.com/stepupgrpc/stepup/interceptor"
)

// Mount the approver page next to the rest of a web server. The Service
// is the one the Guards use (same keys, same store), built WithApproval.
func ExampleNew() {
	rp := webauthn.Config{RPID: "bank.example", RPDisplayName: "Bank", RPOrigins: []string{"https://approve.bank.example"}}
	key, _ := challenge.GenerateKey("k1")
	keys, _ := challenge.NewKeySet(key)
	wa, _ := webauthn.New(rp, webauthn.NewMemoryCredentials())
	svc, _ := challenge.NewService(challenge.WithKeys(keys), challenge.WithFactor(wa),
		wa.WithApproval("https://approve.bank.example", nil, challenge.ApprovalOptions{}))

	page, err := approval.New(approval.Config{
		Service:  svc,
		Origin:   "https://approve.bank.example",
		BasePath: "/approve/",
		Audit:    &interceptor.AuditRecorder{}, // your audit sink
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
