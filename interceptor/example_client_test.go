package interceptor_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"fmt"
	"time"

	"github.com/stepupgrpc/stepup/dpop"
	bankv1 "github.com/stepupgrpc/stepup/examples/bank/v1"
	"github.com/stepupgrpc/stepup/interceptor"
)

// The client side: a DPoP key that never leaves the client, a token source
// that asks the authorization server for a token bound to that key (and
// fetches a new one when the server refuses it), and the dial options that
// sign every call. The token alone, in another client's hands, is refused.
func ExampleNewClient() {
	issuer := newExampleIssuer()
	tokens, _ := interceptor.NewJWTVerifier(interceptor.JWTConfig{
		Issuer: "https://issuer.example", Audience: "https://bank.example", JWKS: issuer.jwks,
	})
	guard, _ := interceptor.New(interceptor.WithTokenVerifier(tokens), interceptor.WithRequirePolicy(),
		interceptor.WithAuditSink(interceptor.AuditFunc(func(_ context.Context, e *interceptor.Event) {
			fmt.Println("audit:", e.Decision, e.Reason)
		})))
	lis, stop := serveExampleBank(guard)
	defer stop()

	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	signer, _ := dpop.NewSigner(key)
	var stolen string
	source := interceptor.NewCachingTokenSource(func(ctx context.Context) (string, time.Time, error) {
		// Your token request (RFC 9449 §5), with a proof of signer's key.
		stolen = issuer.token("alice", signer.Thumbprint(), "bank")
		return stolen, time.Now().Add(time.Hour), nil
	})
	client, err := interceptor.NewClient(signer, source,
		interceptor.WithInsecureLocalTransport()) // bufconn; use TLS in production
	if err != nil {
		panic(err)
	}
	conn := dialExample(lis, client)
	defer conn.Close()
	resp, err := bankv1.NewBankServiceClient(conn).GetBalance(context.Background(), &bankv1.GetBalanceRequest{AccountId: "alice-checking"})
	fmt.Println("balance:", resp.GetBalance().GetAmountMinor(), err)

	// An attacker with the token but another key.
	otherKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	attacker, _ := dpop.NewSigner(otherKey)
	thief, _ := interceptor.NewClient(attacker, interceptor.StaticToken(stolen), interceptor.WithInsecureLocalTransport())
	thiefConn := dialExample(lis, thief)
	defer thiefConn.Close()
	_, err = bankv1.NewBankServiceClient(thiefConn).GetBalance(context.Background(), &bankv1.GetBalanceRequest{AccountId: "alice-checking"})
	fmt.Println("stolen token:", interceptor.ReasonFromError(err))
	// Output:
	// audit: allow ALLOWED
	// balance: 100000 <nil>
	// audit: deny DPOP_KEY_MISMATCH
	// stolen token: INVALID_DPOP_PROOF
}
