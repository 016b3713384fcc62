package webauthn_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"fmt"

	"github.com/stepupgrpc/stepup/challenge"
	"github.com/stepupgrpc/stepup/challenge/webauthn"
	"github.com/stepupgrpc/stepup/dpop"
)

// A WebAuthn step-up with the software authenticator (tests and demos
// only): the factor wired with With, the client answering with
// challenge.WebAuthnResponder.
func ExampleWith() {
	ctx := context.Background()
	authn, _ := webauthn.NewSoftAuthenticator("bank.example", "https://bank.example")
	cred, _ := authn.RegisterCredential([]byte("alice-user-handle"))
	// The server's credential database (any Store).
	users := webauthn.NewMemoryCredentials()
	users.AddCredential("alice", []byte("alice-user-handle"), cred)

	rp := webauthn.Config{RPID: "bank.example", RPDisplayName: "Bank", RPOrigins: []string{"https://bank.example"}}
	key, _ := challenge.GenerateKey("k1")
	keys, _ := challenge.NewKeySet(key)
	svc, err := challenge.NewService(challenge.WithKeys(keys), webauthn.With(rp, users))
	if err != nil {
		panic(err)
	}

	pk, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	signer, _ := dpop.NewSigner(pk)
	call := challenge.Call{Subject: "alice", Thumbprint: signer.Thumbprint(), Method: "/bank.v1.BankService/Transfer",
		Requirement: &challenge.Requirement{}}
	out, _ := svc.Check(ctx, call)
	ev, _ := challenge.WebAuthnResponder(authn).Respond(ctx, out.Challenge)
	call.Answer, _ = challenge.Answer(signer, out.Challenge, ev)
	out, _ = svc.Check(ctx, call)
	fmt.Println(out.State, out.Factor, "counter", users.SignCount("alice"))
	// Output:
	// satisfied FACTOR_WEBAUTHN counter 1
}

// A configuration mistake is New's error, naming the field.
func ExampleNew() {
	_, err := webauthn.New(webauthn.Config{RPID: "bank.example", RPOrigins: []string{"http://bank.example"}}, webauthn.NewMemoryCredentials())
	fmt.Println(err)
	// Output:
	// webauthn: New: RPOrigins: "http://bank.example" must be https (http only on localhost)
}
