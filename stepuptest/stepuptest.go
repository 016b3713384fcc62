// Package stepuptest is the test kit for services protected by Stepup: a
// token issuer with a real key, a settable clock, an honest DPoP client, a
// way to put a verified Identity into a handler's context, and a bufconn
// server behind the Guard, so that handlers and policies are tested
// without minting JWTs or proofs by hand. Everything is real: keys,
// signatures, the Guard's checks.
//
//	is := stepuptest.NewIssuer(t)
//	guard, _ := interceptor.New(interceptor.WithTokenVerifier(is.Verifier(t)), interceptor.WithRequirePolicy())
//	alice := stepuptest.NewCaller(t, is, "alice", "bank")
//	conn := stepuptest.Serve(t, guard, func(s grpc.ServiceRegistrar) { bankv1.RegisterBankServiceServer(s, bank) }, alice)
//	_, err := bankv1.NewBankServiceClient(conn).GetBalance(ctx, req)
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
	"github.com/stepupgrpc/stepup/dpop"
	"github.com/stepupgrpc/stepup/interceptor"
	"github.com/stepupgrpc/stepup/internal/testkit"
	stepupv1 "github.com/stepupgrpc/stepup/proto/stepup/v1"
)

// Defaults of the issuer's tokens.
const (
	Issuer   = "https://issuer.test"
	Audience = "https://api.test"
)

// Clock is a settable clock: pass Now to every WithClock option (Guard,
// verifiers, step-up service, the client) and move it with Advance or Set.
type Clock = testkit.Clock

// NewClock returns a clock stopped at start.
func NewClock(start time.Time) *Clock { return testkit.NewClock(start) }

// TokenOptions describe a token; zero fields take the issuer's defaults
// (subject "alice", an hour's lifetime, issuer and audience Issuer and
// Audience).
type TokenOptions = testkit.TokenOptions

// TokenIssuer mints RFC 9068 access tokens with a fresh ES256 key.
type TokenIssuer struct {
	*testkit.Issuer
	// Now is the time tokens are issued at. Default time.Now.
	Now func() time.Time
}

// NewIssuer returns an issuer with a fresh key.
func NewIssuer(t testing.TB) *TokenIssuer {
	t.Helper()
	return &TokenIssuer{Issuer: testkit.NewIssuer(t), Now: time.Now}
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
	return is.Mint(t, is.Now(), o)
}

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
	Key    *ecdsa.PrivateKey
	Signer *dpop.Signer
	Token  string
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
func TOTP(secret string, now func() time.Time) challenge.Responder {
	return challenge.TOTPResponder(func(context.Context, *stepupv1.StepUpChallenge) (string, error) {
		return challenge.TOTPCode(secret, now())
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
