package interceptor_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"hash"
	"net"
	"runtime"
	"runtime/metrics"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"

	"github.com/stepupgrpc/stepup/dpop"
	"github.com/stepupgrpc/stepup/interceptor"
	policytestv1 "github.com/stepupgrpc/stepup/interceptor/internal/testproto/policytest/v1"
	"github.com/stepupgrpc/stepup/internal/cputime"
	"github.com/stepupgrpc/stepup/internal/p256"
)

// BenchmarkCalls measures what the server pays for one unary call over
// loopback TCP, against the physical limit of that call: the same request
// (the same headers) served without any interceptor, plus the cryptography
// the call's security cannot do without, each measured in the same run.
//
//	a  no interceptor                            limit: a again (the method's noise floor)
//	b  bearer JWT verified with jwx every call   limit: the bearer request without interceptor
//	                                                    + one ES256 verification of the token
//	c  the Guard, a DPoP-bound token (cached) and a fresh proof per call
//	                                             limit: the DPoP request without interceptor
//	                                                    + one ES256 verification of a proof
//	d  the Guard on a step-up method, presenting a grant
//	                                             limit: the DPoP + grant request without interceptor
//	                                                    + one proof verification + one grant HMAC-SHA256
//	e  an interceptor that does the limit's work of c and nothing else (one
//	   ES256 verification of a proof like c's)  limit: c's
//	f  stepup-gateway in front of the bare server, c's call
//	                                             limit: c's request through a proxy that checks nothing
//	                                                    + one proof verification
//	g  an interceptor that only runs a DPoP verifier configured as the Guard's,
//	   with a replay store that records nothing  limit: c's (x-verifier: against
//	                                                    the same verifier with the store)
//	h  c's call to a Guard writing the tamper-evident audit trail (auditlog)
//	                                             limit: c's (x-slog: against the Guard
//	                                                    writing slog's JSON lines to a file)
//
// e checks the method: its x-limit says how well the limit, measured as the
// sum of its parts, predicts a server that does exactly that work.
//
// The clients run in another process (callclient_test.go) with 16
// concurrent callers, so this process's CPU clock (CLOCK_PROCESS_CPUTIME_ID)
// holds the server's work only: gRPC transport, the interceptor, the
// handler, garbage collection. Each sub-benchmark alternates rounds of 128
// of its own calls with rounds of each series of its limit (the order
// reversed every other round), so that every series sees the same machine;
// CPU time, not wall time, so that other processes on a shared machine do
// not inflate it. The verifications run in this process on one goroutine.
// Garbage collection runs in the background whenever any series allocated
// enough: its CPU time is taken out of the rounds it happened to fall in
// and charged to each series in proportion to the bytes it allocated.
//
// Metrics per call of the sub-benchmark's own series: server-ns/call,
// limit-ns/call, x-limit (their ratio); x-limit-bare, the ratio to the
// limit with a request without credentials (what carrying the headers
// costs gRPC shows as its difference from x-limit). c also reports x-e,
// its ratio to e's calls measured alongside, and x-verifier, its ratio to
// calls that only run the Guard's DPoP verifier on their proof. d reports
// x-dpop, its ratio to c's calls measured alongside, and x-dpop-floor, the
// same ratio of the two limits: what x-dpop would be if neither call cost
// more than its limit. allocs/op and B/op are the server's allocations per
// call, replacing the loop-wide figures of -benchmem. ns/op is the wall
// time of a whole iteration, every series included: not a figure to read.
func BenchmarkCalls(b *testing.B) {
	h := newCallHarness(b)
	b.Run("a-no-interceptor", func(b *testing.B) {
		h.pair(b, h.remote("none"), h.remote("none"), nil)
	})
	b.Run("b-bearer-jwt-jwx", func(b *testing.B) {
		h.pair(b, h.remote("bearer"), h.remote("none-bearer"), []*series{h.tokenVerify})
	})
	b.Run("c-dpop-guard", func(b *testing.B) {
		// Measured alongside: e's calls (x-e, the Guard against an
		// interceptor that verifies a proof's signature and does nothing
		// else, on the same kind of goroutine) and calls to an interceptor
		// that runs the Guard's dpop.Verifier on the call's own proof and
		// nothing else (x-verifier, the Guard against its verifier).
		e, verifier := h.remote("verify-only"), h.remote("verifier")
		own := h.pair(b, h.remote("dpop"), h.remote("none-dpop"), []*series{h.proofVerify}, e, verifier)
		b.ReportMetric(own.perCall()/e.perCall(), "x-e")
		b.ReportMetric(own.perCall()/verifier.perCall(), "x-verifier")
	})
	b.Run("d-dpop-guard-grant", func(b *testing.B) {
		// c's calls and c's request without interceptor, measured
		// alongside: x-dpop compares d with c, x-dpop-floor d's limit
		// with c's (what the grant header and its MAC cost at the least).
		dp, dpHeaders, headers := h.remote("dpop"), h.remote("none-dpop"), h.remote("none-grant")
		own := h.pair(b, h.remote("grant"), headers, []*series{h.proofVerify, h.grantMAC}, dp, dpHeaders)
		b.ReportMetric(own.perCall()/dp.perCall(), "x-dpop")
		proof := h.proofVerify.perCall()
		b.ReportMetric((headers.perCall()+proof+h.grantMAC.perCall())/(dpHeaders.perCall()+proof), "x-dpop-floor")
	})
	b.Run("e-verification-only", func(b *testing.B) {
		h.pair(b, h.remote("verify-only"), h.remote("none-dpop"), []*series{h.proofVerify})
	})
	b.Run("f-gateway", func(b *testing.B) {
		h.pair(b, h.remote("gateway"), h.remote("proxy-dpop"), []*series{h.proofVerify})
	})
	b.Run("g-verifier-no-replay-store", func(b *testing.B) {
		// What the replay insert costs on the server: the verifier of
		// x-verifier with a store that records nothing, against the
		// verifier with the Guard's store, measured alongside (x-verifier).
		verifier := h.remote("verifier")
		own := h.pair(b, h.remote("verifier-no-store"), h.remote("none-dpop"), []*series{h.proofVerify}, verifier)
		b.ReportMetric(own.perCall()/verifier.perCall(), "x-verifier")
	})
	b.Run("h-dpop-guard-auditlog", func(b *testing.B) {
		// The audit trail's cost, writer goroutine included: x-slog
		// against the same Guard writing slog's JSON lines to a file,
		// x-discard against c's Guard (its sink discards), both measured
		// alongside; slog-x-discard is the slog sink's own.
		slogSink, discard := h.remote("dpop-slog"), h.remote("dpop")
		own := h.pair(b, h.remote("dpop-auditlog"), h.remote("none-dpop"), []*series{h.proofVerify}, slogSink, discard)
		b.ReportMetric(own.perCall()/slogSink.perCall(), "x-slog")
		b.ReportMetric(own.perCall()/discard.perCall(), "x-discard")
		b.ReportMetric(slogSink.perCall()/discard.perCall(), "slog-x-discard")
	})
	b.Run("i-gateway-grant", func(b *testing.B) {
		// A step-up method through the gateway, satisfied by a grant: the
		// gateway reads the request (decodes it, checks that it holds
		// nothing undeclared, encodes it canonically and forwards that)
		// besides d's checks. Limit: the same request and headers through
		// the plain proxy, with a proof verification and a grant's MAC.
		h.pair(b, h.remote("gateway-grant"), h.remote("proxy-grant"), []*series{h.proofVerify, h.grantMAC})
	})
}

const (
	callRound   = 128 // calls per round of one series
	callCallers = 16  // concurrent callers in the client process
)

// callHarness holds the servers, the client process and the local
// baselines of BenchmarkCalls.
type callHarness struct {
	client *callClient
	// The limit's parts, measured in this process on one goroutine.
	tokenVerify, proofVerify, grantMAC *series
}

// benchServer answers Plain and Granted with a constant: the handler's
// cost is the same behind every interceptor.
type benchServer struct {
	policytestv1.UnimplementedGuardedServiceServer
}

var benchResponse = &policytestv1.PlainResponse{Text: "ok"}

func (benchServer) Plain(context.Context, *policytestv1.PlainRequest) (*policytestv1.PlainResponse, error) {
	return benchResponse, nil
}

func (benchServer) Granted(context.Context, *policytestv1.PlainRequest) (*policytestv1.PlainResponse, error) {
	return benchResponse, nil
}

// serveBench serves the benchmark handlers behind opts on loopback TCP.
func serveBench(tb testing.TB, opts ...grpc.ServerOption) string {
	tb.Helper()
	srv := grpc.NewServer(opts...)
	policytestv1.RegisterGuardedServiceServer(srv, benchServer{})
	return listenBench(tb, srv)
}

// dialBench dials a benchmark server on loopback without TLS.
func dialBench(tb testing.TB, addr string) *grpc.ClientConn {
	tb.Helper()
	cc, err := grpc.NewClient("passthrough:///"+addr, grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithAuthority("api.example"))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = cc.Close() })
	return cc
}

// listenBench serves srv on a loopback port until the benchmark ends and
// returns its address.
func listenBench(tb testing.TB, srv *grpc.Server) string {
	tb.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	go func() { _ = srv.Serve(lis) }()
	tb.Cleanup(srv.Stop)
	return lis.Addr().String()
}

// liveEnv is an env whose Guard and DPoP verifier read the real clock, so
// that a long benchmark's proofs age and leave the replay store as they
// would in service (with the env's fixed clock, a full store would refuse
// them all). The tokens, challenges and grants are issued at the moment
// the env is made.
func liveEnv(tb testing.TB, dpopOpts ...dpop.VerifierOption) *env {
	tb.Helper()
	e := newEnv(tb, envOpts{
		guardOpts: []interceptor.Option{discardAudit(), interceptor.WithClock(time.Now)},
		dpopOpts:  append([]dpop.VerifierOption{dpop.WithClock(time.Now)}, dpopOpts...),
	})
	e.clock.Set(time.Now())
	return e
}

func newCallHarness(b *testing.B) *callHarness {
	e := liveEnv(b)
	guard := serveBench(b, grpc.UnaryInterceptor(e.guard.UnaryServerInterceptor()))
	tok := e.boundToken(tokenOpts{})
	grant := obtainGrant(b, e, tok)
	bearer := e.issuer.mint(b, e.clock.Now(), tokenOpts{Scope: "guarded"})
	key, err := x509.MarshalPKCS8PrivateKey(e.key)
	if err != nil {
		b.Fatal(err)
	}
	h := &callHarness{}
	none := serveBench(b)
	gw := startGatewayBench(b, e, none)
	gwGrant := obtainGrantVia(b, e, policytestv1.NewGuardedServiceClient(dialBench(b, gw)), tok)
	proxy := startPlainProxy(b, none)
	h.client = startCallClient(b, callClientConfig{
		Authority: "api.example",
		Keys:      [][]byte{key},
		Targets: map[string]callTarget{
			"none":        {Addr: none, Method: mPlain, Scheme: "none"},
			"none-bearer": {Addr: none, Method: mPlain, Scheme: "bearer", Tokens: []string{bearer}},
			"none-dpop":   {Addr: none, Method: mPlain, Scheme: "dpop", Tokens: []string{tok}},
			"none-grant":  {Addr: none, Method: mGranted, Scheme: "dpop", Tokens: []string{tok}, Grant: grant},
			"bearer":      {Addr: serveBench(b, grpc.UnaryInterceptor(bearerJWT(e))), Method: mPlain, Scheme: "bearer", Tokens: []string{bearer}},
			"dpop":        {Addr: guard, Method: mPlain, Scheme: "dpop", Tokens: []string{tok}},
			"verify-only": {Addr: serveBench(b, grpc.UnaryInterceptor(verificationOnly(proofVerifier(b, tok)))), Method: mPlain, Scheme: "dpop", Tokens: []string{tok}},
			"verifier":    {Addr: serveBench(b, grpc.UnaryInterceptor(verifierOnly(b, e.signer.Thumbprint()))), Method: mPlain, Scheme: "dpop", Tokens: []string{tok}},
			"verifier-no-store": {Addr: serveBench(b, grpc.UnaryInterceptor(verifierOnly(b, e.signer.Thumbprint(),
				dpop.WithReplayStore(dpop.ReplayStoreFunc(func(context.Context, string, time.Time, time.Time) error { return nil }))))),
				Method: mPlain, Scheme: "dpop", Tokens: []string{tok}},
			"grant":         {Addr: guard, Method: mGranted, Scheme: "dpop", Tokens: []string{tok}, Grant: grant},
			"gateway":       {Addr: gw, Method: mPlain, Scheme: "dpop", Tokens: []string{tok}},
			"proxy-dpop":    {Addr: proxy, Method: mPlain, Scheme: "dpop", Tokens: []string{tok}},
			"gateway-grant": {Addr: gw, Method: mGranted, Scheme: "dpop", Tokens: []string{tok}, Grant: gwGrant},
			"proxy-grant":   {Addr: proxy, Method: mGranted, Scheme: "dpop", Tokens: []string{tok}, Grant: gwGrant},
			// c's call to Guards writing their events to disk (h).
			"dpop-slog":     auditTarget(b, e, tok, "slog"),
			"dpop-auditlog": auditTarget(b, e, tok, "auditlog"),
		},
	})
	h.tokenVerify = localSeries(esVerifier(b, bearer, &e.issuer.PrivateKey().PublicKey))
	h.proofVerify = localSeries(proofVerifier(b, tok))
	h.grantMAC = localSeries(macVerifier(grant))
	return h
}

// esVerifier returns the bare ES256 verification of a compact JWS, as the
// cryptography requires it: SHA-256 of the signing input, then the ECDSA
// verification with the key prepared up front and its table built, as
// dpop's verifier has them for a returning client (the benchmarks' keys
// sign every call). It uses internal/p256, the cheapest P-256
// verification this module has; with crypto/ecdsa the limit would be
// about 40 % higher (dpop's BenchmarkPairES256 reports both).
func esVerifier(tb testing.TB, compact string, pub *ecdsa.PublicKey) func() bool {
	tb.Helper()
	dot := strings.LastIndexByte(compact, '.')
	sig, err := base64.RawURLEncoding.DecodeString(compact[dot+1:])
	if err != nil || len(sig) != 64 {
		tb.Fatalf("not an ES256 JWS: %v", err)
	}
	k, err := p256.NewPublicKey(pub)
	if err != nil {
		tb.Fatal(err)
	}
	k.Precompute()
	input := []byte(compact[:dot])
	return func() bool {
		digest := sha256.Sum256(input)
		return k.Verify(&digest, sig)
	}
}

// proofVerifier returns the bare verification of a proof like the
// client's: same claims, same sizes, a key of the same curve.
func proofVerifier(tb testing.TB, token string) func() bool {
	tb.Helper()
	k, s, err := newP256Signer()
	if err != nil {
		tb.Fatal(err)
	}
	p, err := s.Proof("POST", "https://api.example"+mPlain, token)
	if err != nil {
		tb.Fatal(err)
	}
	return esVerifier(tb, p, &k.PublicKey)
}

// newP256Signer returns a new P-256 key and its signer.
func newP256Signer() (*ecdsa.PrivateKey, *dpop.Signer, error) {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	s, err := dpop.NewSigner(k)
	return k, s, err
}

// macVerifier returns one HMAC-SHA256 check of the grant's signing input
// with a keyed state made once, the least a grant check can cost.
func macVerifier(grant string) func() bool {
	dot := strings.LastIndexByte(grant, '.')
	input := []byte(grant[:dot])
	var m hash.Hash = hmac.New(sha256.New, make([]byte, 32))
	want := make([]byte, 0, sha256.Size)
	var buf [sha256.Size]byte
	return func() bool {
		m.Reset()
		m.Write(input)
		return !hmac.Equal(m.Sum(buf[:0]), want)
	}
}

// series is one kind of work, measured over the rounds of a sub-benchmark.
type series struct {
	run           func(n int) error
	calls         int
	cpu, gc       time.Duration // process CPU over its rounds; the GC CPU inside them
	allocs, bytes uint64
	charged       time.Duration // cpu - gc + its share of all GC
}

func (s *series) perCall() float64 { return float64(s.charged.Nanoseconds()) / float64(s.calls) }

func (s *series) reset() { *s = series{run: s.run} }

func localSeries(f func() bool) *series {
	return &series{run: func(n int) error {
		for range n {
			if !f() {
				return errors.New("baseline verification failed")
			}
		}
		return nil
	}}
}

func (h *callHarness) remote(target string) *series {
	return &series{run: func(n int) error {
		_, err := h.client.run(callCommand{Target: target, Calls: n, Callers: callCallers})
		return err
	}}
}

// gcCPU reads the runtime's estimate of the CPU time spent in GC so far.
func gcCPU() time.Duration {
	s := []metrics.Sample{{Name: "/cpu/classes/gc/total:cpu-seconds"}}
	metrics.Read(s)
	return time.Duration(s[0].Value.Float64() * float64(time.Second))
}

// measure runs n units of s and adds their cost.
func (s *series) measure(n int) error {
	var m0, m1 runtime.MemStats
	runtime.ReadMemStats(&m0)
	g0, c0 := gcCPU(), cputime.Process()
	err := s.run(n)
	c1, g1 := cputime.Process(), gcCPU()
	runtime.ReadMemStats(&m1)
	s.calls += n
	s.cpu += c1 - c0
	s.gc += g1 - g0
	s.allocs += m1.Mallocs - m0.Mallocs
	s.bytes += m1.TotalAlloc - m0.TotalAlloc
	return err
}

// pair measures own against its limit, the same request served without
// interceptor (headers) plus the crypto series, alternating rounds with
// them and with a request without credentials (for x-limit-bare) and the
// extra series (other calls measured alongside for the caller's own
// ratios, not counted in the limit). It reports the metrics and returns
// own.
func (h *callHarness) pair(b *testing.B, own, headers *series, crypto []*series, extra ...*series) *series {
	if !cputime.Available {
		b.Skip("needs the process CPU clock (Linux)")
	}
	all := append([]*series{own, headers}, crypto...)
	var bare *series
	if crypto != nil {
		bare = h.remote("none")
		all = append(all, bare)
	}
	all = append(all, extra...)
	for _, s := range all {
		s.reset()
		if err := s.measure(1); err != nil { // warm up: connections, caches
			b.Fatal(err)
		}
		s.reset()
	}
	b.ResetTimer()
	for round := 0; own.calls < b.N; round++ {
		n := min(callRound, b.N-own.calls)
		for i := range all {
			s := all[i]
			if round%2 == 1 {
				s = all[len(all)-1-i]
			}
			if err := s.measure(n); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.StopTimer()
	chargeGC(all)
	var work float64
	for _, s := range crypto {
		work += s.perCall()
	}
	limit := headers.perCall() + work
	b.ReportMetric(own.perCall(), "server-ns/call")
	b.ReportMetric(limit, "limit-ns/call")
	b.ReportMetric(own.perCall()/limit, "x-limit")
	if bare != nil {
		b.ReportMetric(own.perCall()/(bare.perCall()+work), "x-limit-bare")
	}
	b.ReportMetric(float64(own.allocs)/float64(own.calls), "allocs/op")
	b.ReportMetric(float64(own.bytes)/float64(own.calls), "B/op")
	return own
}

// chargeGC takes the GC time out of the rounds it fell in and charges
// every series its share, by bytes allocated.
func chargeGC(all []*series) {
	var gc time.Duration
	var bytes uint64
	for _, s := range all {
		gc += s.gc
		bytes += s.bytes
	}
	for _, s := range all {
		s.charged = s.cpu - s.gc
		if bytes > 0 {
			s.charged += time.Duration(float64(gc) * float64(s.bytes) / float64(bytes))
		}
	}
}

// verificationOnly is an interceptor that runs verify, the limit's work, on
// every call and nothing else.
func verificationOnly(verify func() bool) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		if !verify() {
			return nil, errors.New("verification failed")
		}
		return h(ctx, req)
	}
}

// verifierOnly is an interceptor that runs a DPoP verifier configured as
// the Guard's (plus opts) on the call's own proof (with the access token's
// hash and binding, replay insert included) and nothing else: no token,
// policy, audit or identity.
func verifierOnly(tb testing.TB, jkt string, opts ...dpop.VerifierOption) grpc.UnaryServerInterceptor {
	tb.Helper()
	v, err := dpop.NewVerifier(append([]dpop.VerifierOption{dpop.WithClock(time.Now), dpop.WithAuthorities("api.example")}, opts...)...)
	if err != nil {
		tb.Fatal(err)
	}
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		proof := metadata.ValueFromIncomingContext(ctx, "dpop")
		authz := metadata.ValueFromIncomingContext(ctx, "authorization")
		if len(proof) != 1 || len(authz) != 1 {
			return nil, errors.New("no proof or token")
		}
		if _, err := v.Verify(ctx, dpop.Request{
			Proof: proof[0], Method: "POST", Path: info.FullMethod, AllowHTTP: true,
			AccessToken: strings.TrimPrefix(authz[0], "DPoP "), ExpectedJKT: jkt,
		}); err != nil {
			return nil, err
		}
		return h(ctx, req)
	}
}
