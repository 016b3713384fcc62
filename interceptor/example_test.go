package interceptor_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"net"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/lestrrat-go/jwx/v3/jws"
	"github.com/lestrrat-go/jwx/v3/jwt"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/test/bufconn"

	"github.com/stepupgrpc/stepup/challenge"
	"github.com/stepupgrpc/stepup/challenge/totp"
	"github.com/stepupgrpc/stepup/dpop"
	"github.com/stepupgrpc/stepup/examples/bank/bankserver"
	bankv1 "github.com/stepupgrpc/stepup/examples/bank/v1"
	"github.com/stepupgrpc/stepup/interceptor"
	stepupv1 "github.com/stepupgrpc/stepup/proto/stepup/v1"
)

// exampleIssuer stands for your OAuth authorization server: it signs RFC 9068
// access tokens bound to the client's DPoP key.
type exampleIssuer struct {
	key  jwk.Key
	jwks []byte // the JWK Set document it serves at its jwks_uri
}

func newExampleIssuer() *exampleIssuer {
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	priv, _ := jwk.Import(k)
	_ = priv.Set(jwk.KeyIDKey, "issuer-1")
	pub, _ := priv.PublicKey()
	set := jwk.NewSet()
	_ = set.AddKey(pub)
	jwks, _ := json.Marshal(set)
	return &exampleIssuer{key: priv, jwks: jwks}
}

func (is *exampleIssuer) token(sub, jkt, scope string) string {
	now := time.Now()
	t, _ := jwt.NewBuilder().Issuer("https://issuer.example").Audience([]string{"https://bank.example"}).
		Subject(sub).IssuedAt(now).Expiration(now.Add(time.Hour)).
		Claim("scope", scope).Claim("cnf", map[string]any{"jkt": jkt}).Build()
	hdr := jws.NewHeaders()
	_ = hdr.Set(jws.TypeKey, "at+jwt")
	signed, _ := jwt.Sign(t, jwt.WithKey(jwa.ES256(), is.key, jws.WithProtectedHeaders(hdr)))
	return string(signed)
}

// serveExampleBank serves the example bank behind guard on an in-memory
// listener; alice has 1,000.00 EUR in alice-checking.
func serveExampleBank(guard *interceptor.Guard) (*bufconn.Listener, func()) {
	srv := grpc.NewServer(grpc.UnaryInterceptor(guard.UnaryServerInterceptor()), grpc.StreamInterceptor(guard.StreamServerInterceptor()))
	bank := bankserver.New(time.Now)
	bank.Open("alice", "alice-checking", "EUR", 100_000)
	bank.Register(srv)
	lis := bufconn.Listen(1 << 20)
	go func() { _ = srv.Serve(lis) }()
	return lis, srv.Stop
}

// dialExample connects to lis with client's dial options (DPoP proofs,
// tokens, step-up answers). Over a network, use TLS transport credentials.
func dialExample(lis *bufconn.Listener, client *interceptor.Client) *grpc.ClientConn {
	conn, _ := grpc.NewClient("passthrough:///bank.example", append(client.DialOptions(),
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) }),
		grpc.WithTransportCredentials(insecure.NewCredentials()))...)
	return conn
}

// The server side: a Guard built from a token verifier and a step-up
// service, registered as both interceptors. Policies come from the
// annotations in bank.proto.
func ExampleNew() {
	issuer := newExampleIssuer()
	tokens, err := interceptor.NewJWTVerifier(interceptor.JWTConfig{
		Issuer: "https://issuer.example", Audience: "https://bank.example", JWKS: issuer.jwks,
	})
	if err != nil {
		panic(err)
	}
	key, _ := challenge.GenerateKey("2026-11")
	keys, _ := challenge.NewKeySet(key)
	codes, _ := totp.New(totp.SecretsFunc(func(context.Context, string) (string, error) {
		return "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP", nil // from the user database
	}), totp.Options{})
	stepUp, err := challenge.NewService(challenge.WithKeys(keys), challenge.WithFactor(codes))
	if err != nil {
		panic(err)
	}
	guard, err := interceptor.New(
		interceptor.WithTokenVerifier(tokens),
		interceptor.WithStepUp(stepUp),
		interceptor.WithRequirePolicy(),
		interceptor.WithAuditSink(interceptor.AuditFunc(func(_ context.Context, e *interceptor.Event) {
			fmt.Println("audit:", e.Decision, e.Reason, e.Method)
		})),
	)
	if err != nil {
		panic(err)
	}
	lis, stop := serveExampleBank(guard)
	defer stop()

	// The client side: a DPoP key, a token bound to it, a TOTP prompt.
	pk, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	signer, _ := dpop.NewSigner(pk)
	client, _ := interceptor.NewClient(signer,
		interceptor.StaticToken(issuer.token("alice", signer.Thumbprint(), "bank bank:transfer")),
		interceptor.WithResponder(challenge.TOTPResponder(func(_ context.Context, ch *stepupv1.StepUpChallenge) (string, error) {
			fmt.Println("approve?", ch.GetSummaryText())
			return challenge.TOTPCode("JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP", time.Now())
		})),
		interceptor.WithInsecureLocalTransport(), // bufconn; use TLS in production
	)
	conn := dialExample(lis, client)
	defer conn.Close()
	api := bankv1.NewBankServiceClient(conn)

	tr, err := api.Transfer(context.Background(), &bankv1.TransferRequest{
		FromAccountId: "alice-checking", AmountMinor: 12_000, Currency: "EUR", ToIban: "DE89370400440532013000",
	})
	if err != nil {
		panic(err)
	}
	fmt.Println("balance after:", tr.GetBalanceAfter().GetAmountMinor())
	// Output:
	// audit: challenge STEPUP_REQUIRED /bank.v1.BankService/Transfer
	// approve? approve BankService.Transfer: amount 120.00 EUR, to DE89370400440532013000, reference ""
	// audit: step_up_passed ALLOWED /bank.v1.BankService/Transfer
	// balance after: 88000
}

// A test that fails when a method of the server has no policy at all.
func ExampleGuard_CheckCoverage() {
	refuse := interceptor.TokenVerifierFunc(func(context.Context, string) (*interceptor.Token, error) {
		return nil, &interceptor.TokenError{Reason: interceptor.ReasonTokenBadSignature}
	})
	key, _ := challenge.GenerateKey("k")
	keys, _ := challenge.NewKeySet(key)
	codes, _ := totp.New(totp.SecretsFunc(func(context.Context, string) (string, error) { return "", challenge.ErrUnknownSubject }), totp.Options{})
	stepUp, _ := challenge.NewService(challenge.WithKeys(keys), challenge.WithFactor(codes))
	// The names clients reach this server by: the :authority of their calls.
	proofs, _ := dpop.NewVerifier(dpop.WithAuthorities("bank.example"))
	guard, _ := interceptor.New(interceptor.WithTokenVerifier(refuse), interceptor.WithStepUp(stepUp), interceptor.WithDPoP(proofs))

	srv := grpc.NewServer()
	bankserver.New(nil).Register(srv)
	report, _ := guard.Coverage(srv)
	for _, m := range report {
		fmt.Println(m.FullMethod, m.Policy.Source)
	}
	fmt.Println("unprotected:", guard.CheckCoverage(srv))
	// Output:
	// /bank.v1.BankService/AddPayee method+service
	// /bank.v1.BankService/ExportStatements method+service
	// /bank.v1.BankService/GetBalance service
	// /bank.v1.BankService/Transfer method+service
	// /bank.v1.BankService/WatchTransactions service
	// unprotected: <nil>
}

// CheckScopes is the rule the Guard applies to every token's scopes (RFC
// 6749 §3.3): a scope holding white space would be several scopes to a
// reader that splits on it, such as a backend reading the gateway
// assertion's "scope".
func ExampleCheckScopes() {
	fmt.Println(interceptor.CheckScopes([]string{"bank", "bank:transfer", "read/accounts"}))
	fmt.Println(interceptor.CheckScopes([]string{"bank", "x\nadmin"}))
	// Output:
	// <nil>
	// scope "x\nadmin" holds the byte 0x0a, outside RFC 6749 §3.3
}

// CheckJWKSURL is the rule for the URLs keys are fetched from
// (JWTConfig.JWKSURL, DiscoverJWKS, their redirects).
func ExampleCheckJWKSURL() {
	fmt.Println(interceptor.CheckJWKSURL("https://issuer.example/.well-known/jwks.json", false))
	fmt.Println(interceptor.CheckJWKSURL("http://127.0.0.1:8080/jwks.json", false))
	fmt.Println(interceptor.CheckJWKSURL("http://issuer.example/jwks.json", false) != nil)
	fmt.Println(interceptor.CheckJWKSURL("http://issuer.example/jwks.json", true))
	// Output:
	// <nil>
	// <nil>
	// true
	// <nil>
}

// A server with the transport's limits, then the Guard (and TLS, in
// production): streams per connection, request metadata, connection age
// and keepalive are bounded before any call reaches the Guard.
func ExampleTransportLimits() {
	refuse := interceptor.TokenVerifierFunc(func(context.Context, string) (*interceptor.Token, error) {
		return nil, &interceptor.TokenError{Reason: interceptor.ReasonTokenBadSignature}
	})
	guard, err := interceptor.New(interceptor.WithTokenVerifier(refuse), interceptor.WithRequirePolicy())
	if err != nil {
		panic(err)
	}
	srv := grpc.NewServer(append(interceptor.TransportLimits(),
		grpc.ChainUnaryInterceptor(guard.UnaryServerInterceptor()),
		grpc.ChainStreamInterceptor(guard.StreamServerInterceptor()),
	)...)
	defer srv.Stop()
	fmt.Printf("at most %d streams per connection and %d KiB of metadata per call\n",
		interceptor.DefaultMaxConcurrentStreams, interceptor.DefaultMaxHeaderListSize>>10)
	// Output:
	// at most 100 streams per connection and 64 KiB of metadata per call
}

// What a refused client is told: the wire reason, and a hint of what to
// change on which side. Here the token was issued for another resource
// server; the server's audit log has the precise reason and both
// audiences, the client only the class and the fix.
func ExampleHintFromError() {
	issuer := newExampleIssuer()
	tokens, err := interceptor.NewJWTVerifier(interceptor.JWTConfig{
		Issuer: "https://issuer.example", Audience: "https://payments.example", JWKS: issuer.jwks,
	})
	if err != nil {
		panic(err)
	}
	key, _ := challenge.GenerateKey("2026-11")
	keys, _ := challenge.NewKeySet(key)
	codes, _ := totp.New(totp.SecretsFunc(func(context.Context, string) (string, error) { return "", challenge.ErrUnknownSubject }), totp.Options{})
	stepUp, _ := challenge.NewService(challenge.WithKeys(keys), challenge.WithFactor(codes))
	guard, err := interceptor.New(interceptor.WithTokenVerifier(tokens), interceptor.WithStepUp(stepUp),
		interceptor.WithAuditSink(interceptor.AuditFunc(func(_ context.Context, e *interceptor.Event) {
			fmt.Println("server audit:", e.Reason)
		})))
	if err != nil {
		panic(err)
	}
	lis, stop := serveExampleBank(guard)
	defer stop()

	pk, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	signer, _ := dpop.NewSigner(pk)
	// A token whose aud is https://bank.example, not this server's.
	client, _ := interceptor.NewClient(signer, interceptor.StaticToken(issuer.token("alice", signer.Thumbprint(), "bank")),
		interceptor.WithInsecureLocalTransport())
	conn := dialExample(lis, client)
	defer conn.Close()
	_, err = bankv1.NewBankServiceClient(conn).GetBalance(context.Background(), &bankv1.GetBalanceRequest{AccountId: "alice-checking"})

	hint, _ := interceptor.HintFromError(err)
	fmt.Println("client sees:", interceptor.ReasonFromError(err), hint.Code, "fix on:", hint.FixSide)
	fmt.Println(hint.Fix)
	// Output:
	// server audit: TOKEN_WRONG_AUDIENCE
	// client sees: INVALID_TOKEN token_audience fix on: token_issuer
	// the token's aud does not name this server: ask for a token for this resource (RFC 8707 resource, or the provider's audience parameter; docs/PROVIDERS.md)
}
