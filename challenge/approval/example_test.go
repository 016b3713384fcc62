package approval_test

import (
	"context"
	"fmt"

	"github.com/stepupgrpc/stepup/challenge"
	"github.com/stepupgrpc/stepup/challenge/approval"
	"github.com/stepupgrpc/stepup/challenge/webauthn"
	stepupv1 "github.com/stepupgrpc/stepup/proto/stepup/v1"
)

// Wire the approval factor into a Service: its approver passkeys come from
// the WebAuthn factor (the page's origin only). The same *Factor is what
// the approver page (the package approval at the module root) takes as
// Config.Approvals. A challenge that allows the factor lists an approval.
func ExampleNew() {
	ctx := context.Background()
	rp := webauthn.Config{RPID: "bank.example", RPDisplayName: "Bank", RPOrigins: []string{"https://approve.bank.example"}}
	wa, err := webauthn.New(rp, webauthn.NewMemoryCredentials())
	if err != nil {
		panic(err)
	}
	passkeys, err := wa.Approver("https://approve.bank.example", nil)
	if err != nil {
		panic(err)
	}
	approvals, err := approval.New(approval.Options{Passkeys: passkeys})
	if err != nil {
		panic(err)
	}
	key, _ := challenge.GenerateKey("k1")
	keys, _ := challenge.NewKeySet(key)
	svc, err := challenge.NewService(challenge.WithKeys(keys), challenge.WithFactor(approvals))
	if err != nil {
		panic(err)
	}

	out, err := svc.Check(ctx, challenge.Call{Subject: "alice", Thumbprint: "jkt", Method: "/bank.v1.BankService/Close",
		Requirement: &challenge.Requirement{Factors: []stepupv1.Factor{stepupv1.Factor_FACTOR_APPROVAL}}})
	if err != nil {
		panic(err)
	}
	pending, _ := approvals.PendingApprovals(ctx, "alice")
	fmt.Println(len(pending), pending[0].ID == out.Challenge.GetApprovalId(), pending[0].MatchingCode == out.Challenge.GetMatchingCode())
	fmt.Println(pending[0].SummaryText)
	// Output:
	// 1 true true
	// approve BankService.Close
}
