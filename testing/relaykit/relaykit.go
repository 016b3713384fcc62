// Package relaykit runs, for tests and benchmarks, the relay test API behind
// a real Guard on bufconn, with an honest DPoP client that answers TOTP
// step-up: real keys, real tokens, real gRPC.
package relaykit

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"net"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/test/bufconn"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/stepupgrpc/stepup/challenge"
	"github.com/stepupgrpc/stepup/challenge/totp"
	"github.com/stepupgrpc/stepup/dpop"
	"github.com/stepupgrpc/stepup/interceptor"
	relayv1 "github.com/stepupgrpc/stepup/internal/testproto/relay/v1"
	stepupv1 "github.com/stepupgrpc/stepup/proto/stepup/v1"
	"github.com/stepupgrpc/stepup/testing/relayserver"
	"github.com/stepupgrpc/stepup/testing/testkit"
)

// Issuer, Audience and Secret are the world's token issuer, audience and
// the subject's TOTP secret.
const (
	Issuer   = "https://issuer.example"
	Audience = "https://api.example"
	Secret   = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"
)

// World is a relay server behind a Guard and a client of it. The policies:
// relay.v1.RelayService needs scope "relay"; Whoami also needs TOTP
// step-up, reusable for 5 minutes; everything else has none
// (WithRequirePolicy).
type World struct {
	Conn    *grpc.ClientConn
	Relay   relayv1.RelayServiceClient
	Guard   *interceptor.Guard
	StepUp  *challenge.Service
	Signer  *dpop.Signer // the client's DPoP key
	Answers int          // TOTP answers the client gave

	issuer *testkit.Issuer
	lis    *bufconn.Listener
}

// Start builds the world; guardOpts are appended to the Guard's and
// serverOpts to the server's.
func Start(t testing.TB, guardOpts []interceptor.Option, serverOpts ...grpc.ServerOption) *World {
	t.Helper()
	w := &World{}
	is := testkit.NewIssuer(t)
	tokens, err := interceptor.NewJWTVerifier(interceptor.JWTConfig{Issuer: Issuer, Audience: Audience, JWKS: is.PublicJWKS()})
	if err != nil {
		t.Fatal(err)
	}
	key, err := challenge.GenerateKey("k")
	if err != nil {
		t.Fatal(err)
	}
	keys, err := challenge.NewKeySet(key)
	if err != nil {
		t.Fatal(err)
	}
	codes, err := totp.New(totp.SecretsFunc(func(context.Context, string) (string, error) { return Secret, nil }), totp.Options{})
	if err != nil {
		t.Fatal(err)
	}
	stepUp, err := challenge.NewService(challenge.WithKeys(keys), challenge.WithFactor(codes))
	if err != nil {
		t.Fatal(err)
	}
	opts := append([]interceptor.Option{interceptor.WithTokenVerifier(tokens), interceptor.WithStepUp(stepUp), interceptor.WithRequirePolicy(),
		interceptor.WithPolicy("relay.v1.RelayService", &stepupv1.Policy{Scopes: []string{"relay"}}),
		interceptor.WithPolicy("/relay.v1.RelayService/Whoami", &stepupv1.Policy{StepUp: &stepupv1.StepUp{
			Factors: []stepupv1.Factor{stepupv1.Factor_FACTOR_TOTP}, MaxAge: durationpb.New(5 * time.Minute)}}),
	}, guardOpts...)
	w.StepUp = stepUp
	if w.Guard, err = interceptor.New(opts...); err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer(append(serverOpts, grpc.UnaryInterceptor(w.Guard.UnaryServerInterceptor()), grpc.StreamInterceptor(w.Guard.StreamServerInterceptor()))...)
	(&relayserver.Relay{Counter: &relayserver.Counter{}}).Register(srv)
	lis := bufconn.Listen(1 << 20)
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)

	w.issuer, w.lis = is, lis
	w.Signer, w.Conn = w.dial(t)
	w.Relay = relayv1.NewRelayServiceClient(w.Conn)
	return w
}

// WithNewKey returns a client of the same subject with a DPoP key of its
// own and a token bound to it.
func (w *World) WithNewKey(t testing.TB) relayv1.RelayServiceClient {
	t.Helper()
	_, conn := w.dial(t)
	return relayv1.NewRelayServiceClient(conn)
}

// RawConn returns a connection to the server that adds no credentials:
// for calls that carry the metadata a test sets, as an attacker's would.
func (w *World) RawConn(t testing.TB, opts ...grpc.DialOption) *grpc.ClientConn {
	t.Helper()
	return w.connect(t, opts...)
}

// connect returns a connection to the server through the listener.
func (w *World) connect(t testing.TB, opts ...grpc.DialOption) *grpc.ClientConn {
	t.Helper()
	conn, err := grpc.NewClient("passthrough:///api.example", append(opts,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return w.lis.DialContext(ctx) }))...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return conn
}

// dial makes a DPoP key, a token bound to it and a connection whose client
// uses them.
func (w *World) dial(t testing.TB) (*dpop.Signer, *grpc.ClientConn) {
	t.Helper()
	pk, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := dpop.NewSigner(pk)
	if err != nil {
		t.Fatal(err)
	}
	tok := w.issuer.Mint(t, time.Now(), testkit.TokenOptions{JKT: signer.Thumbprint(), Scope: "relay", Issuer: Issuer, Audience: Audience})
	client, err := interceptor.NewClient(signer, interceptor.StaticToken(tok), interceptor.WithInsecureLocalTransport(),
		interceptor.WithResponder(challenge.TOTPResponder(func(context.Context, *stepupv1.StepUpChallenge) (string, error) {
			w.Answers++
			return totp.Code(Secret, time.Now())
		})))
	if err != nil {
		t.Fatal(err)
	}
	return signer, w.connect(t, client.DialOptions()...)
}
