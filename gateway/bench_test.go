package gateway_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"io"
	"log/slog"
	"net"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/stepupgrpc/stepup/dpop"
	"github.com/stepupgrpc/stepup/gateway"
	"github.com/stepupgrpc/stepup/interceptor"
	relayv1 "github.com/stepupgrpc/stepup/internal/testproto/relay/v1"
	stepupv1 "github.com/stepupgrpc/stepup/proto/stepup/v1"
	"github.com/stepupgrpc/stepup/testing/relayserver"
	"github.com/stepupgrpc/stepup/testing/testkit"
)

// benchCallers is how many goroutines call at once.
const benchCallers = 16

// benchCallsPerCaller is how many calls (or stream messages) each caller
// makes in one round of one variant.
const benchCallsPerCaller = 8

type discard struct{}

func (discard) Audit(context.Context, *interceptor.Event) {}

// serveLoopback serves srv on a loopback TCP port and returns a client
// connection to it.
func serveLoopback(b *testing.B, srv *grpc.Server, opts ...grpc.DialOption) *grpc.ClientConn {
	b.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	go func() { _ = srv.Serve(lis) }()
	b.Cleanup(srv.Stop)
	return dialPlain(b, lis.Addr().String(), opts...)
}

func dialPlain(b *testing.B, addr string, opts ...grpc.DialOption) *grpc.ClientConn {
	b.Helper()
	cc, err := grpc.NewClient("passthrough:///"+addr, append([]grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}, opts...)...)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = cc.Close() })
	return cc
}

// BenchmarkGateway compares, with 16 concurrent callers on loopback TCP,
// the gateway in front of a Go backend against the same backend called
// directly: with the Guard (a DPoP call with a scope: direct, the Guard
// linked into the backend; gateway, the Guard in the gateway and the
// backend bare) and with no policy (direct, no interceptor; gateway, the
// service open). Unary calls and messages on bidi streams. Each iteration
// runs one round of every variant, in alternating order; the metrics are
// calls/s of each and the ratios gateway/direct (goals: ≥ 0.80 with the
// Guard, ≥ 0.70 with no policy). Client, gateway and backend share the
// machine's cores, as they would on one host.
func BenchmarkGateway(b *testing.B) {
	f := newFiles(b)
	quietLog := slog.New(slog.NewTextHandler(io.Discard, nil))

	// The backend, bare.
	bare := grpc.NewServer()
	(&relayserver.Relay{Counter: &relayserver.Counter{}}).Register(bare)
	bareLis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	go func() { _ = bare.Serve(bareLis) }()
	b.Cleanup(bare.Stop)
	backendAddr := bareLis.Addr().String()

	// The same backend with the Guard linked in.
	tokens, err := interceptor.NewJWTVerifier(interceptor.JWTConfig{Issuer: tokenIssuer, Audience: tokenAudience, JWKS: f.issuer.PublicJWKS()})
	if err != nil {
		b.Fatal(err)
	}
	guard, err := interceptor.New(interceptor.WithTokenVerifier(tokens), interceptor.WithAuditSink(discard{}),
		interceptor.WithPolicy("relay.v1.RelayService", &stepupv1.Policy{Scopes: []string{"relay"}}))
	if err != nil {
		b.Fatal(err)
	}
	guarded := grpc.NewServer(grpc.UnaryInterceptor(guard.UnaryServerInterceptor()), grpc.StreamInterceptor(guard.StreamServerInterceptor()))
	(&relayserver.Relay{Counter: &relayserver.Counter{}}).Register(guarded)

	// Gateways: one with the relay service's policy, one with it open.
	gwCfg := func(open bool) *stepupv1.GatewayConfig {
		c := f.config(backendAddr)
		c.Tls, c.InsecurePlaintext, c.Dpop = nil, true, nil
		c.StepUp = nil
		c.DescriptorSets = []string{writeDescriptorSet(b, f.dir, "relay.binpb", relayv1.File_relay_v1_relay_proto)}
		c.Policies = map[string]*stepupv1.Policy{"relay.v1.RelayService": {Scopes: []string{"relay"}}}
		if open {
			c.Policies, c.Token = nil, nil
			c.InsecureOpenServices = []string{"relay.v1.RelayService"}
		}
		return c
	}
	startGW := func(cfg *stepupv1.GatewayConfig) string {
		gw, err := gateway.New(cfg, gateway.WithAuditSink(discard{}), gateway.WithLogger(quietLog))
		if err != nil {
			b.Fatal(err)
		}
		lis, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			b.Fatal(err)
		}
		go func() { _ = gw.Serve(lis) }()
		b.Cleanup(gw.Close)
		return lis.Addr().String()
	}
	gwGuard, gwOpen := startGW(gwCfg(false)), startGW(gwCfg(true))

	// A DPoP client (one key, one token) for the guarded variants.
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		b.Fatal(err)
	}
	jkt, err := dpop.ThumbprintOf(&key.PublicKey)
	if err != nil {
		b.Fatal(err)
	}
	signer, err := dpop.NewSigner(key)
	if err != nil {
		b.Fatal(err)
	}
	tok := f.issuer.Mint(b, time.Now(), testkit.TokenOptions{Subject: "alice", JKT: jkt, Scope: "relay", Issuer: tokenIssuer, Audience: tokenAudience})
	client, err := interceptor.NewClient(signer, interceptor.StaticToken(tok), interceptor.WithInsecureLocalTransport())
	if err != nil {
		b.Fatal(err)
	}

	type variant struct {
		name   string
		relay  relayv1.RelayServiceClient
		elapse time.Duration
		chats  []grpc.BidiStreamingClient[relayv1.ChatRequest, relayv1.ChatResponse]
	}
	variants := []*variant{
		{name: "direct-bare", relay: relayv1.NewRelayServiceClient(dialPlain(b, backendAddr))},
		{name: "gateway-open", relay: relayv1.NewRelayServiceClient(dialPlain(b, gwOpen))},
		{name: "direct-guard", relay: relayv1.NewRelayServiceClient(serveLoopback(b, guarded, client.DialOptions()...))},
		{name: "gateway-guard", relay: relayv1.NewRelayServiceClient(dialPlain(b, gwGuard, client.DialOptions()...))},
	}
	req := &relayv1.EchoRequest{Payload: []byte("ping")}
	for _, v := range variants {
		if _, err := v.relay.Echo(context.Background(), req); err != nil {
			b.Fatalf("%s: %v", v.name, err)
		}
	}
	var streamVariants []*variant
	for _, v := range variants {
		sv := &variant{name: v.name + "-stream"}
		for range benchCallers {
			s, err := v.relay.Chat(context.Background())
			if err != nil {
				b.Fatalf("%s: %v", sv.name, err)
			}
			b.Cleanup(func() { _ = s.CloseSend() })
			sv.chats = append(sv.chats, s)
		}
		streamVariants = append(streamVariants, sv)
	}
	msg := &relayv1.ChatRequest{Payload: []byte("ping")}
	round := func(v *variant) {
		var wg sync.WaitGroup
		start := time.Now()
		for c := range benchCallers {
			wg.Go(func() {
				for range benchCallsPerCaller {
					if v.chats != nil {
						if err := v.chats[c].Send(msg); err != nil {
							b.Error(err)
							return
						}
						if _, err := v.chats[c].Recv(); err != nil {
							b.Error(err)
							return
						}
						continue
					}
					if _, err := v.relay.Echo(context.Background(), req); err != nil {
						b.Error(err)
						return
					}
				}
			})
		}
		wg.Wait()
		v.elapse += time.Since(start)
	}
	all := append(append([]*variant{}, variants...), streamVariants...)
	for _, v := range all { // warm up every path, then start clean
		round(v)
		v.elapse = 0
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for j := range all {
			k := j
			if i%2 == 1 {
				k = len(all) - 1 - j
			}
			round(all[k])
		}
	}
	b.StopTimer()
	rate := func(v *variant) float64 {
		return float64(b.N*benchCallers*benchCallsPerCaller) / v.elapse.Seconds()
	}
	byName := map[string]*variant{}
	for _, v := range all {
		byName[v.name] = v
		b.ReportMetric(rate(v), v.name+"-calls/s")
	}
	for _, kind := range []string{"", "-stream"} {
		b.ReportMetric(rate(byName["gateway-guard"+kind])/rate(byName["direct-guard"+kind]), "gateway/direct-guard"+kind)
		b.ReportMetric(rate(byName["gateway-open"+kind])/rate(byName["direct-bare"+kind]), "gateway/direct-bare"+kind)
	}
}
