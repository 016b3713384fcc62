package totp_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"fmt"
	"time"

	"github.com/stepupgrpc/stepup/challenge"
	"github.com/stepupgrpc/stepup/challenge/totp"
	"github.com/stepupgrpc/stepup/dpop"
	stepupv1 "github.com/stepupgrpc/stepup/proto/stepup/v1"
)

// The TOTP factor wired into a step-up Service; the client answers with
// the code of the user's authenticator app, once.
func ExampleNew() {
	ctx := context.Background()
	const secret = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP" // from the user database
	secrets := totp.SecretsFunc(func(_ context.Context, subject string) (string, error) {
		if subject != "alice" {
			return "", challenge.ErrUnknownSubject
		}
		return secret, nil
	})
	factor, err := totp.New(secrets, totp.Options{})
	if err != nil {
		panic(err)
	}
	key, _ := challenge.GenerateKey("k1")
	keys, _ := challenge.NewKeySet(key)
	now := func() time.Time { return time.Date(2026, 3, 2, 9, 30, 0, 0, time.UTC) }
	svc, _ := challenge.NewService(challenge.WithKeys(keys), challenge.WithClock(now), challenge.WithFactor(factor))

	pk, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	signer, _ := dpop.NewSigner(pk)
	call := challenge.Call{Subject: "alice", Thumbprint: signer.Thumbprint(), Method: "/bank.v1.BankService/Transfer",
		Requirement: &challenge.Requirement{}}
	app := challenge.TOTPResponder(func(context.Context, *stepupv1.StepUpChallenge) (string, error) {
		return totp.Code(secret, now())
	})
	for range 2 {
		out, _ := svc.Check(ctx, call)
		ev, _ := app.Respond(ctx, out.Challenge)
		call.Answer, _ = challenge.Answer(signer, out.Challenge, ev)
		out, _ = svc.Check(ctx, call)
		if out.State == challenge.StateSatisfied {
			fmt.Println("satisfied by", out.Factor)
		} else {
			fmt.Println("refused:", out.Reason)
		}
	}
	// Output:
	// satisfied by FACTOR_TOTP
	// refused: STEPUP_TOTP_REUSED
}

// The code an authenticator app shows, for tests and demos.
func ExampleOptions_Code() {
	t := time.Unix(59, 0) // RFC 6238 Appendix B, SHA-1
	code, _ := totp.Options{Digits: 8}.Code("GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ", t)
	fmt.Println(code)
	// Output:
	// 94287082
}
