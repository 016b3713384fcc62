package gateway_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/stepupgrpc/stepup/challenge"
	"github.com/stepupgrpc/stepup/dpop"
	"github.com/stepupgrpc/stepup/examples/bank/bankserver"
	bankv1 "github.com/stepupgrpc/stepup/examples/bank/v1"
	"github.com/stepupgrpc/stepup/gateway"
	"github.com/stepupgrpc/stepup/gateway/assertion"
	"github.com/stepupgrpc/stepup/interceptor"
	relayv1 "github.com/stepupgrpc/stepup/internal/testproto/relay/v1"
	stepupv1 "github.com/stepupgrpc/stepup/proto/stepup/v1"
	"github.com/stepupgrpc/stepup/testing/relayserver"
	"github.com/stepupgrpc/stepup/testing/testkit"
)

const (
	gwAuthority   = "gateway.example"
	tokenIssuer   = "https://issuer.example"
	tokenAudience = "https://gateway.example"
	assertIssuer  = "https://gateway.example"
	assertAud     = "relay-backend"
	aliceTOTP     = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"
	bobTOTP       = "KRSXG5CTMVRXEZLUKN2XAZLSKNSWG4TF"
)

// files holds the keys and files every gateway of a test shares.
type files struct {
	dir          string
	issuer       *testkit.Issuer
	cert         *testkit.Cert
	certFile     string
	keyFile      string
	jwksFile     string
	stepUpKeys   string
	totpFile     string
	assertionKey string
	assertionPub []byte // the JWK Set document of the assertion key
	descriptors  string
	// carol is a subject unique to this test run (with aliceTOTP), for
	// tests whose single-use state lives in a shared Redis across runs.
	carol string
}

func newFiles(t testing.TB) *files {
	t.Helper()
	dir := t.TempDir()
	f := &files{dir: dir, issuer: testkit.NewIssuer(t), cert: testkit.NewCert(t, gwAuthority, "127.0.0.1")}
	f.certFile, f.keyFile = f.cert.WriteFiles(t, dir, "gateway")
	f.jwksFile = writeFile(t, dir, "issuer-jwks.json", f.issuer.PublicJWKS())
	k, err := challenge.GenerateKey("k1")
	if err != nil {
		t.Fatal(err)
	}
	ks, err := challenge.NewKeySet(k)
	if err != nil {
		t.Fatal(err)
	}
	f.stepUpKeys = writeJSON(t, dir, "stepup-keys.json", ks)
	f.carol = "carol-" + rand.Text()
	f.totpFile = writeJSON(t, dir, "totp.json", map[string]string{"alice": aliceTOTP, "bob": bobTOTP, f.carol: aliceTOTP})
	ak, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	akJSON, err := assertion.MarshalPrivateJWK(ak, "gw-1")
	if err != nil {
		t.Fatal(err)
	}
	f.assertionKey = writeFile(t, dir, "assertion-key.json", akJSON)
	signer, err := assertion.NewSigner(assertion.SignerConfig{Key: ak, KeyID: "gw-1", Issuer: assertIssuer, Audience: assertAud})
	if err != nil {
		t.Fatal(err)
	}
	f.assertionPub = signer.JWKS()
	f.descriptors = writeDescriptorSet(t, dir, "api.binpb", relayv1.File_relay_v1_relay_proto, bankv1.File_bank_v1_bank_proto)
	return f
}

func writeJSON(t testing.TB, dir, name string, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return writeFile(t, dir, name, b)
}

func writeFile(t testing.TB, dir, name string, b []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// writeDescriptorSet writes what `buf build -o` writes for these files.
func writeDescriptorSet(t testing.TB, dir, name string, fds ...protoreflect.FileDescriptor) string {
	t.Helper()
	b, err := gateway.DescriptorSet(fds...)
	if err != nil {
		t.Fatal(err)
	}
	return writeFile(t, dir, name, b)
}

// config is the gateway configuration of the tests: TLS to the client,
// plaintext to a loopback backend, relay.v1 given policies by the config
// (its .proto is not annotated), bank.v1 by its annotations.
func (f *files) config(backend string) *stepupv1.GatewayConfig {
	return &stepupv1.GatewayConfig{
		Listen:         "127.0.0.1:0",
		Tls:            &stepupv1.ServerTLS{CertFile: f.certFile, KeyFile: f.keyFile},
		Backend:        &stepupv1.Backend{Address: backend, InsecurePlaintext: true},
		DescriptorSets: []string{f.descriptors},
		Policies: map[string]*stepupv1.Policy{
			"relay.v1.RelayService": {Scopes: []string{"relay"}},
			"/relay.v1.RelayService/Upload": {StepUp: &stepupv1.StepUp{
				Factors: []stepupv1.Factor{stepupv1.Factor_FACTOR_TOTP}, MaxAge: durationpb.New(5 * time.Minute),
			}},
			"/relay.v1.RelayService/Pay": {StepUp: &stepupv1.StepUp{
				Factors: []stepupv1.Factor{stepupv1.Factor_FACTOR_TOTP}, BindRequest: true,
			}},
		},
		// relay.v1's .proto has no display options: the config says what
		// Pay's challenges show.
		Display:   payDisplay(),
		Token:     &stepupv1.TokenConfig{Issuer: tokenIssuer, Audience: tokenAudience, JwksFile: f.jwksFile},
		Dpop:      &stepupv1.DPoPConfig{Authorities: []string{gwAuthority}},
		StepUp:    &stepupv1.StepUpConfig{KeysFile: f.stepUpKeys, TotpSecretsFile: f.totpFile},
		Assertion: &stepupv1.AssertionConfig{KeyFile: f.assertionKey, Issuer: assertIssuer, Audience: assertAud},
	}
}

// payDisplay is the display configuration of relay.v1.PayRequest, as a
// gateway config and as a client's declarations.
func payDisplay() map[string]*stepupv1.Display {
	return map[string]*stepupv1.Display{
		"relay.v1.PayRequest.amounts": {Label: "amounts"},
		"relay.v1.PayRequest.payee":   {Label: "to"},
		"relay.v1.PayRequest.labels":  {},
	}
}

// backend is a Go backend of relay.v1 and bank.v1 that verifies the
// gateway's assertions and counts the calls that reached a handler.
type backend struct {
	addr    string
	counter *relayserver.Counter
	bank    *bankserver.Bank
	stats   relayv1.StatsServiceClient
	srv     *grpc.Server
}

func startBackend(t *testing.T, f *files, opts ...grpc.ServerOption) *backend {
	t.Helper()
	v, err := assertion.NewVerifier(assertion.VerifierConfig{Issuer: assertIssuer, Audience: assertAud, JWKS: f.assertionPub})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(v.Close)
	isStats := func(full string) bool { return strings.HasPrefix(full, "/relay.v1.StatsService/") }
	b := &backend{counter: &relayserver.Counter{}, bank: bankserver.New(nil)}
	srv := grpc.NewServer(append(opts,
		grpc.ChainUnaryInterceptor(v.UnaryServerInterceptor(isStats), b.counter.Unary()),
		grpc.ChainStreamInterceptor(v.StreamServerInterceptor(isStats), b.counter.Stream()))...)
	(&relayserver.Relay{Counter: b.counter}).Register(srv)
	b.bank.SetSubject(func(ctx context.Context) string {
		id, _ := assertion.FromContext(ctx)
		return id.Subject
	})
	b.bank.Open("alice", "alice-checking", "EUR", 100_000)
	b.bank.Register(srv)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)
	b.addr, b.srv = lis.Addr().String(), srv
	cc, err := grpc.NewClient(b.addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cc.Close() })
	b.stats = relayv1.NewStatsServiceClient(cc)
	return b
}

// calls returns how many calls of full reached the backend's handler.
func (b *backend) calls(t *testing.T, full string) int64 {
	t.Helper()
	resp, err := b.stats.Stats(context.Background(), &relayv1.StatsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	return resp.GetCalls()[full]
}

// total is the number of calls that reached any handler but Stats.
func (b *backend) total(t *testing.T) int64 {
	t.Helper()
	resp, err := b.stats.Stats(context.Background(), &relayv1.StatsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	var n int64
	for k, v := range resp.GetCalls() {
		if !strings.HasPrefix(k, "/relay.v1.StatsService/") {
			n += v
		}
	}
	return n
}

// running is a gateway serving on loopback.
type running struct {
	gw    *gateway.Gateway
	addr  string
	audit *interceptor.AuditRecorder
}

func startGateway(t *testing.T, cfg *stepupv1.GatewayConfig, opts ...gateway.Option) *running {
	t.Helper()
	r := &running{audit: &interceptor.AuditRecorder{}}
	opts = append([]gateway.Option{gateway.WithAuditSink(r.audit), gateway.WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil)))}, opts...)
	gw, err := gateway.New(cfg, opts...)
	if err != nil {
		t.Fatal(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = gw.Serve(lis) }()
	t.Cleanup(gw.Close)
	r.gw, r.addr = gw, lis.Addr().String()
	return r
}

// caller is an honest client of the gateway: its own DPoP key, a token
// bound to it, and a TOTP responder.
type caller struct {
	key     *ecdsa.PrivateKey
	jkt     string
	token   string
	signer  *dpop.Signer // of key, for calls signed by hand (manual)
	client  *interceptor.Client
	conn    *grpc.ClientConn
	relay   relayv1.RelayServiceClient
	bank    bankv1.BankServiceClient
	answers int // TOTP answers given
	// shown are the summary texts of the challenges answered.
	shown []string
}

func newCaller(t *testing.T, f *files, addr, subject, secret, scope string, opts ...interceptor.ClientOption) *caller {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	jkt, err := dpop.ThumbprintOf(&key.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	c := &caller{key: key, jkt: jkt}
	c.token = f.issuer.Mint(t, time.Now(), testkit.TokenOptions{
		Subject: subject, JKT: jkt, Scope: scope, Issuer: tokenIssuer, Audience: tokenAudience, ClientID: "relay-app",
	})
	signer, err := dpop.NewSigner(key)
	if err != nil {
		t.Fatal(err)
	}
	c.signer = signer
	c.client, err = interceptor.NewClient(signer, interceptor.StaticToken(c.token), append([]interceptor.ClientOption{
		interceptor.WithResponder(challenge.TOTPResponder(func(_ context.Context, ch *stepupv1.StepUpChallenge) (string, error) {
			c.answers++
			c.shown = append(c.shown, ch.GetSummaryText())
			return challenge.TOTPCode(secret, time.Now())
		}))}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	c.conn = dialGateway(t, f, addr, c.client.DialOptions()...)
	c.relay, c.bank = relayv1.NewRelayServiceClient(c.conn), bankv1.NewBankServiceClient(c.conn)
	return c
}

// dialGateway dials the gateway over TLS as gateway.example.
func dialGateway(t *testing.T, f *files, addr string, opts ...grpc.DialOption) *grpc.ClientConn {
	t.Helper()
	creds := credentials.NewTLS(&tls.Config{RootCAs: f.cert.Pool, ServerName: gwAuthority, MinVersion: tls.VersionTLS13})
	cc, err := grpc.NewClient("passthrough:///"+addr, append([]grpc.DialOption{
		grpc.WithTransportCredentials(creds), grpc.WithAuthority(gwAuthority),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(16<<20), grpc.MaxCallSendMsgSize(16<<20)),
	}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cc.Close() })
	return cc
}

// lastFor returns the last audit event of a method.
func lastFor(r *interceptor.AuditRecorder, full string) (interceptor.Event, bool) {
	evs := r.Events()
	for i := len(evs) - 1; i >= 0; i-- {
		if evs[i].Method == full {
			return evs[i], true
		}
	}
	return interceptor.Event{}, false
}
