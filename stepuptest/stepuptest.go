// Package stepuptest is the test kit for services protected by Stepup: a
// token issuer with a real key (TokenIssuer), a settable clock (Clock), an
// honest DPoP client (Caller), a way to put a verified Identity into a
// handler's context (WithIdentity), and a bufconn server behind the Guard
// (Serve), so that handlers and policies are tested without minting JWTs
// or proofs by hand. Everything is real: keys, signatures, the Guard's
// checks. Serve runs the Guard's CheckCoverage first: a step-up method the
// Guard cannot enforce fails the test.
//
//	is := stepuptest.NewIssuer(t)
//	guard, err := interceptor.New(interceptor.WithTokenVerifier(is.Verifier(t)), interceptor.WithStepUp(stepUp), interceptor.WithRequirePolicy())
//	alice := stepuptest.NewCaller(t, is, "alice", "bank bank:transfer", interceptor.WithResponder(stepuptest.TOTP(secret, time.Now)))
//	conn := stepuptest.Serve(t, guard, func(s grpc.ServiceRegistrar) { bankv1.RegisterBankServiceServer(s, bank) }, alice)
//	resp, err := bankv1.NewBankServiceClient(conn).GetBalance(ctx, req)
//
// examples/quickstart runs this as a test (README, "Testing your service").
package stepuptest

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"errors"
	"net"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/test/bufconn"

	"github.com/stepupgrpc/stepup/challenge"
	"github.com/stepupgrpc/stepup/challenge/totp"
	"github.com/stepupgrpc/stepup/dpop"
	"github.com/stepupgrpc/stepup/interceptor"
	stepupv1 "github.com/stepupgrpc/stepup/proto/stepup/v1"
	"github.com/stepupgrpc/stepup/testing/testkit"
)

// Defaults of the issuer's tokens.
const (
	Issuer   = "https://issuer.test"
	Audience = "https://api.test"
)

// Clock is a settable clock, safe for concurrent use: pass its Now to
// every WithClock option (the Guard, the DPoP verifier, the step-up
// service, the client) and to TokenIssuer.Now, then move time with Advance
// or Set instead of sleeping.
type Clock struct{ c *testkit.Clock }

// NewClock returns a clock stopped at start.
func NewClock(start time.Time) *Clock { return &Clock{c: testkit.NewClock(start)} }

// Now returns the clock's time.
func (c *Clock) Now() time.Time { return c.c.Now() }

// Advance moves the clock forward by d (back, for a negative d).
func (c *Clock) Advance(d time.Duration) { c.c.Advance(d) }

// Set moves the clock to t.
func (c *Clock) Set(t time.Time) { c.c.Set(t) }

// TokenOptions describe a token for TokenIssuer.Token. Subject, IssuedAt,
// Expiry, Issuer, Audience, JTI and Type have defaults when zero; the other
// claims are left out of the token when zero.
type TokenOptions struct {
	// Subject is the sub claim. Default "alice".
	Subject string
	// JKT is cnf.jkt, the RFC 7638 thumbprint of the DPoP key the token
	// is bound to (dpop.Signer.Thumbprint). Empty: a bearer token.
	JKT string
	// Scope is the space-separated scope claim.
	Scope string
	// IssuedAt is iat. Default: the issuer's Now.
	IssuedAt time.Time
	// Expiry is exp. Default: an hour after the issuer's Now.
	Expiry time.Time
	// Issuer is iss. Default: the constant Issuer.
	Issuer string
	// Audience is aud, a single value. Default: the constant Audience.
	Audience string
	// ClientID is client_id.
	ClientID string
	// JTI is jti. Default "tok-<sub>-<iat as hhmmss>".
	JTI string
	// ACR is acr (RFC 9470), for step-up satisfied by the token itself.
	ACR string
	// AuthTime is auth_time (RFC 9470).
	AuthTime time.Time
	// Type is the typ header. Default "at+jwt" (RFC 9068).
	Type string
	// Claims are further claims, set last: they replace those above.
	Claims map[string]any
}

// TokenIssuer mints RFC 9068 access tokens with a fresh ES256 key (kid
// "issuer-key-1"); Verifier is the Guard's verifier of its tokens, and
// PublicJWKS its keys as a JWKS URL would serve them.
type TokenIssuer struct {
	// Now is the time tokens are issued at. Default time.Now.
	Now func() time.Time
	iss *testkit.Issuer
}

// NewIssuer returns an issuer with a fresh key.
func NewIssuer(t testing.TB) *TokenIssuer {
	t.Helper()
	return &TokenIssuer{iss: testkit.NewIssuer(t), Now: time.Now}
}

// Token mints a token; its iss and aud default to Issuer and Audience.
func (is *TokenIssuer) Token(t testing.TB, o TokenOptions) string {
	t.Helper()
	if o.Issuer == "" {
		o.Issuer = Issuer
	}
	if o.Audience == "" {
		o.Audience = Audience
	}
	return is.iss.Mint(t, is.Now(), testkit.TokenOptions(o))
}

// PublicJWKS returns the JWK Set document of the issuer's public key, the
// JSON an issuer serves at its jwks_uri: serve it (httptest) for
// interceptor.JWTConfig.JWKSURL, or give it to JWTConfig.JWKS.
func (is *TokenIssuer) PublicJWKS() []byte { return is.iss.PublicJWKS() }

// PrivateKey returns the issuer's signing key, for tokens a test crafts
// itself (a claim Token cannot set, a header an attacker would send).
func (is *TokenIssuer) PrivateKey() *ecdsa.PrivateKey { return is.iss.PrivateKey() }

// Verifier returns the Guard's token verifier for this issuer's tokens
// (iss Issuer, aud Audience), on the issuer's clock.
func (is *TokenIssuer) Verifier(t testing.TB) *interceptor.JWTVerifier {
	t.Helper()
	v, err := interceptor.NewJWTVerifier(interceptor.JWTConfig{Issuer: Issuer, Audience: Audience, JWKS: is.PublicJWKS(), Clock: is.Now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(v.Close)
	return v
}

// Caller is an honest client: its own P-256 DPoP key and a token bound to
// it.
type Caller struct {
	// Key is the caller's DPoP key.
	Key *ecdsa.PrivateKey
	// Signer makes the caller's proofs with Key.
	Signer *dpop.Signer
	// Token is the caller's access token, bound to Key (cnf.jkt).
	Token string
	// Client signs the caller's calls (Client.DialOptions); Serve dials
	// with it.
	Client *interceptor.Client
}

// NewCaller returns a caller for subject with the space-separated scopes;
// opts (a responder for step-up, say) go to its interceptor.Client.
func NewCaller(t testing.TB, is *TokenIssuer, subject, scope string, opts ...interceptor.ClientOption) *Caller {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := dpop.NewSigner(key, dpop.WithClock(is.Now))
	if err != nil {
		t.Fatal(err)
	}
	c := &Caller{Key: key, Signer: signer}
	c.Token = is.Token(t, TokenOptions{Subject: subject, Scope: scope, JKT: signer.Thumbprint()})
	opts = append([]interceptor.ClientOption{interceptor.WithInsecureLocalTransport(), interceptor.WithClock(is.Now)}, opts...)
	if c.Client, err = interceptor.NewClient(signer, interceptor.StaticToken(c.Token), opts...); err != nil {
		t.Fatal(err)
	}
	return c
}

// TOTP returns a responder that answers TOTP challenges with secret's
// current code on now (for interceptor.WithResponder).
//
// The service accepts a code once per 30-second time step, as in
// production: a test that steps up twice with the same secret gives one
// Clock's Now to the responder, the step-up service (challenge.WithClock),
// the Guard and the issuer, and calls Advance(30 * time.Second) between
// the two.
func TOTP(secret string, now func() time.Time) challenge.Responder {
	return challenge.TOTPResponder(func(context.Context, *stepupv1.StepUpChallenge) (string, error) {
		return totp.Code(secret, now())
	})
}

// WithIdentity returns ctx as the Guard hands it to a handler after
// verifying id: for calling a handler directly in a unit test.
func WithIdentity(ctx context.Context, id *interceptor.Identity) context.Context {
	return interceptor.ContextWithIdentity(ctx, id)
}

// Serve serves what register adds on a bufconn server behind guard's
// interceptors (plus serverOpts), and returns a connection to it. With a
// caller, the connection carries its credentials; with nil, none. Both are
// closed at the test's end.
//
// Serve first runs guard.CheckCoverage on the server, as a production
// server should before serving, and fails the test on its error: a method
// without a policy (under interceptor.WithRequirePolicy), or a step-up
// method the Guard cannot enforce (no step-up service, none of its factors
// configured), fails the test instead of being refused on each call.
// interceptor.ErrNoAuthorities alone is not a failure here: the connection
// is plaintext and in-process, where htu is checked against the call's
// :authority ("api.test").
func Serve(t testing.TB, guard *interceptor.Guard, register func(grpc.ServiceRegistrar), caller *Caller, serverOpts ...grpc.ServerOption) *grpc.ClientConn {
	t.Helper()
	srv := grpc.NewServer(append(serverOpts, grpc.ChainUnaryInterceptor(guard.UnaryServerInterceptor()), grpc.ChainStreamInterceptor(guard.StreamServerInterceptor()))...)
	register(srv)
	if err := guard.CheckCoverage(srv); err != nil && !errors.Is(err, interceptor.ErrNoAuthorities) {
		t.Fatalf("stepuptest.Serve: %v", err)
	}
	lis := bufconn.Listen(1 << 20)
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)
	opts := []grpc.DialOption{
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) }),
	}
	if caller != nil {
		opts = append(opts, caller.Client.DialOptions()...)
	}
	conn, err := grpc.NewClient("passthrough:///api.test", opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return conn
}
