package interceptor_test

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/test/bufconn"

	"github.com/stepupgrpc/stepup/challenge"
	approvalfactor "github.com/stepupgrpc/stepup/challenge/approval"
	"github.com/stepupgrpc/stepup/challenge/webauthn"
	"github.com/stepupgrpc/stepup/dpop"
	"github.com/stepupgrpc/stepup/interceptor"
	policytestv1 "github.com/stepupgrpc/stepup/interceptor/internal/testproto/policytest/v1"
	"github.com/stepupgrpc/stepup/testing/testkit"
)

const (
	testIssuer   = "https://issuer.example"
	testAudience = "https://api.example"
	testTOTP     = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"
)

// newClock returns the clock shared by every component of a test.
func newClock() *testkit.Clock { return testkit.NewClock(time.Unix(1_800_000_000, 0)) }

// issuer mints this package's access tokens: iss testIssuer, aud
// testAudience and client_id client-1 unless the options say otherwise.
type issuer struct{ *testkit.Issuer }

func newIssuer(t testing.TB) *issuer { return &issuer{testkit.NewIssuer(t)} }

// tokenOpts describe a token to mint; zero values give a valid token.
type tokenOpts = testkit.TokenOptions

func (is *issuer) mint(t testing.TB, now time.Time, o tokenOpts) string {
	t.Helper()
	if o.Issuer == "" {
		o.Issuer = testIssuer
	}
	if o.Audience == "" {
		o.Audience = testAudience
	}
	if o.ClientID == "" {
		o.ClientID = "client-1"
	}
	return is.Mint(t, now, o)
}

// auditLog records every audit event.
type auditLog struct{ interceptor.AuditRecorder }

func (a *auditLog) all() []interceptor.Event { return a.Events() }

func (a *auditLog) last(t testing.TB) interceptor.Event {
	t.Helper()
	ev, ok := a.Last()
	if !ok {
		t.Fatal("no audit event")
	}
	return ev
}

func (a *auditLog) reset() { a.Reset() }

// testServer implements the policytest services, echoing the identity.
type testServer struct {
	policytestv1.UnimplementedGuardedServiceServer
	mu    sync.Mutex
	calls map[string]int
	fail  func(ctx context.Context) error // when set, Plain and Sensitive return its error
	// meta, when set, runs first in Plain, Granted and Chat: a handler
	// that sets response metadata (ss is nil for a unary call).
	meta func(ctx context.Context, ss grpc.ServerStream)
}

// setMeta makes Plain, Granted and Chat run f first.
func (s *testServer) setMeta(f func(ctx context.Context, ss grpc.ServerStream)) {
	s.mu.Lock()
	s.meta = f
	s.mu.Unlock()
}

func (s *testServer) runMeta(ctx context.Context, ss grpc.ServerStream) {
	s.mu.Lock()
	f := s.meta
	s.mu.Unlock()
	if f != nil {
		f(ctx, ss)
	}
}

// failWith makes Plain and Sensitive return what f returns (a handler
// propagating a downstream status, or a hostile one).
func (s *testServer) failWith(f func(ctx context.Context) error) {
	s.mu.Lock()
	s.fail = f
	s.mu.Unlock()
}

func (s *testServer) failure(ctx context.Context) error {
	s.mu.Lock()
	f := s.fail
	s.mu.Unlock()
	if f == nil {
		return nil
	}
	return f(ctx)
}

func (s *testServer) count(m string) {
	s.mu.Lock()
	if s.calls == nil {
		s.calls = map[string]int{}
	}
	s.calls[m]++
	s.mu.Unlock()
}

// handled is how many times the handler of m ran: a method name ("Plain")
// or a full method of GuardedService.
func (s *testServer) handled(m string) int {
	m = strings.TrimPrefix(m, "/policytest.v1.GuardedService/")
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls[m]
}

func describe(ctx context.Context) string {
	id, ok := interceptor.IdentityFromContext(ctx)
	if !ok {
		return "anonymous"
	}
	out := id.Subject + " " + id.Thumbprint
	if id.StepUp != nil {
		out += " step-up:" + id.StepUp.Via + ":" + id.StepUp.Factor
	}
	return out
}

func (s *testServer) Plain(ctx context.Context, r *policytestv1.PlainRequest) (*policytestv1.PlainResponse, error) {
	s.count("Plain")
	s.runMeta(ctx, nil)
	if err := s.failure(ctx); err != nil {
		return nil, err
	}
	return &policytestv1.PlainResponse{Text: describe(ctx)}, nil
}

func (s *testServer) Sensitive(ctx context.Context, r *policytestv1.SensitiveRequest) (*policytestv1.PlainResponse, error) {
	s.count("Sensitive")
	if err := s.failure(ctx); err != nil {
		return nil, err
	}
	return &policytestv1.PlainResponse{Text: describe(ctx)}, nil
}

// approvalServer serves ApprovalService, counting its calls in a testServer.
type approvalServer struct {
	policytestv1.UnimplementedApprovalServiceServer
	s *testServer
}

func (a approvalServer) OutOfBand(_ context.Context, r *policytestv1.SensitiveRequest) (*policytestv1.PlainResponse, error) {
	a.s.count("OutOfBand")
	return &policytestv1.PlainResponse{Text: "moved " + itoa(int(r.GetAmountMinor()))}, nil
}

func (s *testServer) Reusable(ctx context.Context, r *policytestv1.PlainRequest) (*policytestv1.PlainResponse, error) {
	s.count("Reusable")
	return &policytestv1.PlainResponse{Text: describe(ctx)}, nil
}

func (s *testServer) Granted(ctx context.Context, r *policytestv1.PlainRequest) (*policytestv1.PlainResponse, error) {
	s.count("Granted")
	s.runMeta(ctx, nil)
	return &policytestv1.PlainResponse{Text: describe(ctx)}, nil
}

func (s *testServer) Watch(r *policytestv1.PlainRequest, ss grpc.ServerStreamingServer[policytestv1.PlainResponse]) error {
	s.count("Watch")
	for i := 0; i < 2; i++ {
		if err := ss.Send(&policytestv1.PlainResponse{Text: describe(ss.Context())}); err != nil {
			return err
		}
	}
	return nil
}

func (s *testServer) Upload(ss grpc.ClientStreamingServer[policytestv1.PlainRequest, policytestv1.PlainResponse]) error {
	s.count("Upload")
	n := 0
	for {
		_, err := ss.Recv()
		if err == io.EOF {
			return ss.SendAndClose(&policytestv1.PlainResponse{Text: describe(ss.Context()) + " n=" + itoa(n)})
		}
		if err != nil {
			return err
		}
		n++
	}
}

func (s *testServer) Chat(ss grpc.BidiStreamingServer[policytestv1.PlainRequest, policytestv1.PlainResponse]) error {
	s.count("Chat")
	s.runMeta(ss.Context(), ss)
	for {
		m, err := ss.Recv()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		if err := ss.Send(&policytestv1.PlainResponse{Text: describe(ss.Context()) + " " + m.GetText()}); err != nil {
			return err
		}
	}
}

// stepUpServer implements StepUpService (Approve needs a WebAuthn step-up).
type stepUpServer struct {
	policytestv1.UnimplementedStepUpServiceServer
}

func (stepUpServer) Approve(ctx context.Context, _ *policytestv1.PlainRequest) (*policytestv1.PlainResponse, error) {
	return &policytestv1.PlainResponse{Text: describe(ctx)}, nil
}

func itoa(n int) string { return strconv.Itoa(n) }

// env is one Guard-protected server on bufconn with everything a test needs.
type env struct {
	t testing.TB
	// approvals is the approval factor, when newWebAuthnEnv has one.
	approvals *approvalfactor.Factor
	clock     *testkit.Clock
	issuer    *issuer
	audit     *auditLog
	guard     *interceptor.Guard
	server    *testServer
	lis       *bufconn.Listener
	addr      string // loopback address when tcp
	stepUp    *challenge.Service
	signer    *dpop.Signer
	key       crypto.Signer
	nonces    *dpop.Nonces
	verifer   *dpop.Verifier
	jwt       interceptor.TokenVerifier // the env's own token verifier
}

type envOpts struct {
	tcp        bool // loopback TCP instead of bufconn
	guardOpts  []interceptor.Option
	dpopOpts   []dpop.VerifierOption
	nonces     bool
	stepUpOpts []challenge.Option
	// noAuthorities leaves the DPoP verifier without WithAuthorities.
	noAuthorities bool
	// clock, when set, is the env's clock (shared with a store the test
	// built before the env); newClock() otherwise.
	clock *testkit.Clock
	// noStepUp builds the Guard without WithStepUp.
	noStepUp bool
	// revocations adds WithTokenRevocationFrom over the step-up service's
	// revocations.
	revocations bool
}

func newEnv(t testing.TB, o envOpts) *env {
	t.Helper()
	e := &env{t: t, clock: o.clock, issuer: newIssuer(t), audit: &auditLog{}, server: &testServer{}}
	if e.clock == nil {
		e.clock = newClock()
	}
	jv, err := interceptor.NewJWTVerifier(interceptor.JWTConfig{
		Issuer: testIssuer, Audience: testAudience, JWKS: e.issuer.PublicJWKS(), Clock: e.clock.Now,
	})
	if err != nil {
		t.Fatal(err)
	}
	e.jwt = jv
	dopts := []dpop.VerifierOption{dpop.WithClock(e.clock.Now)}
	if !o.noAuthorities {
		dopts = append(dopts, dpop.WithAuthorities("api.example"))
	}
	dopts = append(dopts, o.dpopOpts...)
	if o.nonces {
		e.nonces, err = dpop.NewNonces([]byte(strings.Repeat("n", 32)), time.Minute, e.clock.Now)
		if err != nil {
			t.Fatal(err)
		}
		dopts = append(dopts, dpop.WithNonces(e.nonces))
	}
	e.verifer, err = dpop.NewVerifier(dopts...)
	if err != nil {
		t.Fatal(err)
	}
	keys, err := challenge.GenerateKey("k1")
	if err != nil {
		t.Fatal(err)
	}
	ks, err := challenge.NewKeySet(keys)
	if err != nil {
		t.Fatal(err)
	}
	sopts := append([]challenge.Option{
		challenge.WithKeys(ks), challenge.WithClock(e.clock.Now),
		challenge.WithTOTP(challenge.TOTPSecretsFunc(func(_ context.Context, sub string) (string, error) {
			if sub == "alice" || sub == "bob" {
				return testTOTP, nil
			}
			return "", challenge.ErrUnknownSubject
		}), challenge.TOTPOptions{}),
	}, o.stepUpOpts...)
	e.stepUp, err = challenge.NewService(sopts...)
	if err != nil {
		t.Fatal(err)
	}
	gopts := []interceptor.Option{
		interceptor.WithTokenVerifier(jv), interceptor.WithDPoP(e.verifer),
		interceptor.WithAuditSink(e.audit), interceptor.WithClock(e.clock.Now),
	}
	if !o.noStepUp {
		gopts = append(gopts, interceptor.WithStepUp(e.stepUp))
	}
	if o.revocations {
		gopts = append(gopts, interceptor.WithTokenRevocationFrom(e.stepUp.Revocations()))
	}
	gopts = append(gopts, o.guardOpts...)
	e.guard, err = interceptor.New(gopts...)
	if err != nil {
		t.Fatal(err)
	}
	e.key, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	e.signer, err = dpop.NewSigner(e.key, dpop.WithClock(e.clock.Now))
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer(grpc.UnaryInterceptor(e.guard.UnaryServerInterceptor()), grpc.StreamInterceptor(e.guard.StreamServerInterceptor()))
	policytestv1.RegisterGuardedServiceServer(srv, e.server)
	policytestv1.RegisterUnguardedServiceServer(srv, policytestv1.UnimplementedUnguardedServiceServer{})
	policytestv1.RegisterStepUpServiceServer(srv, stepUpServer{})
	policytestv1.RegisterApprovalServiceServer(srv, approvalServer{s: e.server})
	e.serve(srv, o.tcp)
	return e
}

// newWebAuthnEnv returns an env whose step-up service accepts WebAuthn for
// the relying party api.example, alice's software authenticator, and the
// credentials it is registered in.
// With approval options, the approval factor too, its approver page at the same origin.
func newWebAuthnEnv(t testing.TB, approval ...approvalfactor.Options) (*env, *webauthn.SoftAuthenticator, *webauthn.MemoryCredentials) {
	t.Helper()
	authn, err := webauthn.NewSoftAuthenticator("api.example", "https://api.example")
	if err != nil {
		t.Fatal(err)
	}
	cred, err := authn.RegisterCredential([]byte("alice-handle"))
	if err != nil {
		t.Fatal(err)
	}
	users := webauthn.NewMemoryCredentials()
	users.AddCredential("alice", []byte("alice-handle"), cred)
	wa, err := webauthn.New(webauthn.Config{RPID: "api.example", RPDisplayName: "API", RPOrigins: []string{"https://api.example"}}, users)
	if err != nil {
		t.Fatal(err)
	}
	opts := []challenge.Option{challenge.WithFactor(wa)}
	var approvals *approvalfactor.Factor
	for _, a := range approval {
		if approvals, err = wa.NewApproval("https://api.example", nil, a); err != nil {
			t.Fatal(err)
		}
		opts = append(opts, challenge.WithFactor(approvals))
	}
	e := newEnv(t, envOpts{stepUpOpts: opts})
	e.approvals = approvals
	return e, authn, users
}

// serve starts srv on bufconn, or on loopback TCP.
func (e *env) serve(srv *grpc.Server, tcp bool) {
	var lis net.Listener
	if tcp {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			e.t.Fatal(err)
		}
		lis, e.addr = l, l.Addr().String()
	} else {
		e.lis = bufconn.Listen(1 << 20)
		lis = e.lis
	}
	go func() { _ = srv.Serve(lis) }()
	e.t.Cleanup(srv.Stop)
}

// conn dials the server with the given extra options; the authority is
// "api.example", as a real client would name the server.
func (e *env) conn(opts ...grpc.DialOption) *grpc.ClientConn {
	e.t.Helper()
	target := "passthrough:///api.example"
	base := []grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithAuthority("api.example")}
	if e.addr != "" {
		target = e.addr
	} else {
		base = append(base, grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return e.lis.DialContext(ctx) }))
	}
	cc, err := grpc.NewClient(target, append(base, opts...)...)
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { _ = cc.Close() })
	return cc
}

// signing returns the dial options of a Stepup client signing with the
// env's key.
func (e *env) signing(token string, opts ...interceptor.ClientOption) []grpc.DialOption {
	e.t.Helper()
	opts = append([]interceptor.ClientOption{interceptor.WithInsecureLocalTransport(), interceptor.WithClock(e.clock.Now)}, opts...)
	c, err := interceptor.NewClient(e.signer, interceptor.StaticToken(token), opts...)
	if err != nil {
		e.t.Fatal(err)
	}
	return c.DialOptions()
}

// client returns a GuardedService client signing with the env's key.
func (e *env) client(token string, opts ...interceptor.ClientOption) policytestv1.GuardedServiceClient {
	e.t.Helper()
	return policytestv1.NewGuardedServiceClient(e.conn(e.signing(token, opts...)...))
}

// raw returns a client without the Stepup client side: the test sets every
// credential header itself, as an attacker would.
func (e *env) raw() policytestv1.GuardedServiceClient {
	return policytestv1.NewGuardedServiceClient(e.conn())
}

// boundToken mints a token bound to the env's DPoP key.
func (e *env) boundToken(o tokenOpts) string {
	e.t.Helper()
	o.JKT = e.signer.Thumbprint()
	if o.Scope == "" {
		o.Scope = "guarded guarded:write"
	}
	return e.issuer.mint(e.t, e.clock.Now(), o)
}

// proof makes a proof for method on the expected authority.
func (e *env) proof(method, token string) string {
	e.t.Helper()
	p, err := e.signer.Proof("POST", "https://api.example"+method, token)
	if err != nil {
		e.t.Fatal(err)
	}
	return p
}

// withCreds returns ctx carrying the given header pairs.
func withCreds(ctx context.Context, kv ...string) context.Context {
	return metadata.AppendToOutgoingContext(ctx, kv...)
}

// total returns how many calls reached a handler of the test server.
func (s *testServer) total() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, c := range s.calls {
		n += c
	}
	return n
}

// serveTLS serves the env's Guard a second time, over TLS with a fresh
// self-signed certificate for api.example, on its own bufconn listener, and
// returns a client of it without the Stepup client side: the test sets every
// credential header itself.
func (e *env) serveTLS() policytestv1.GuardedServiceClient {
	e.t.Helper()
	cert := testkit.NewCert(e.t, "api.example")
	roots := cert.Pool
	srv := grpc.NewServer(
		grpc.Creds(credentials.NewTLS(&tls.Config{Certificates: []tls.Certificate{cert.TLS}, MinVersion: tls.VersionTLS13})),
		grpc.UnaryInterceptor(e.guard.UnaryServerInterceptor()), grpc.StreamInterceptor(e.guard.StreamServerInterceptor()))
	policytestv1.RegisterGuardedServiceServer(srv, e.server)
	lis := bufconn.Listen(1 << 20)
	go func() { _ = srv.Serve(lis) }()
	e.t.Cleanup(srv.Stop)
	cc, err := grpc.NewClient("passthrough:///api.example",
		grpc.WithTransportCredentials(credentials.NewTLS(&tls.Config{RootCAs: roots, ServerName: "api.example", MinVersion: tls.VersionTLS13})),
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) }))
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { _ = cc.Close() })
	return policytestv1.NewGuardedServiceClient(cc)
}
