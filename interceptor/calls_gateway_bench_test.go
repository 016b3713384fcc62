package interceptor_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/descriptorpb"

	"github.com/stepupgrpc/stepup/challenge"
	"github.com/stepupgrpc/stepup/gateway"
	"github.com/stepupgrpc/stepup/interceptor"
	policytestv1 "github.com/stepupgrpc/stepup/interceptor/internal/testproto/policytest/v1"
	stepupv1 "github.com/stepupgrpc/stepup/proto/stepup/v1"
)

// The gateway variant of BenchmarkCalls:
//
//	f  stepup-gateway in front of the bare backend, a DPoP call as c's
//	                                             limit: the same request through a proxy that
//	                                                    forwards frames and checks nothing
//	                                                    + one ES256 verification of a proof
//
// The gateway and the backend both run in the benchmark process: their
// CPU together is the server side of a gateway call, as the proxy's and
// the backend's together are the limit's. The identity assertion the
// gateway sends the backend is signed once per caller, token and method
// and reused for half its lifetime (gateway/proxy.go, assertionCache), so
// a signature is not part of a call's limit.

// startGatewayBench starts stepup-gateway in front of backend, with the
// Guard's configuration of env e (issuer, audience, authority) and the
// annotations of policytest.v1, and returns its address.
func startGatewayBench(b *testing.B, e *env, backend string) string {
	b.Helper()
	dir := b.TempDir()
	write := func(name string, data []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, 0o600); err != nil {
			b.Fatal(err)
		}
		return p
	}
	fds := guardedServiceOnly(b)
	stepKey, err := challenge.GenerateKey("k1")
	if err != nil {
		b.Fatal(err)
	}
	keys, err := challenge.NewKeySet(stepKey)
	if err != nil {
		b.Fatal(err)
	}
	keysJSON, err := json.Marshal(keys)
	if err != nil {
		b.Fatal(err)
	}
	cfg := &stepupv1.GatewayConfig{
		Listen:            "127.0.0.1:0",
		InsecurePlaintext: true,
		Backend:           &stepupv1.Backend{Address: backend, InsecurePlaintext: true},
		DescriptorSets:    []string{write("api.binpb", fds)},
		Token:             &stepupv1.TokenConfig{Issuer: testIssuer, Audience: testAudience, JwksFile: write("jwks.json", e.issuer.PublicJWKS())},
		Dpop:              &stepupv1.DPoPConfig{Authorities: []string{"api.example"}},
		StepUp: &stepupv1.StepUpConfig{KeysFile: write("stepup-keys.json", keysJSON),
			TotpSecretsFile: write("totp.json", []byte(`{"alice":"`+testTOTP+`"}`))},
		Assertion: &stepupv1.AssertionConfig{Issuer: "https://gateway.example", Audience: "bench-backend"},
	}
	gw, err := gateway.New(cfg, gateway.WithAuditSink(interceptor.AuditFunc(func(context.Context, *interceptor.Event) {})),
		gateway.WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))))
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

// guardedServiceOnly returns the descriptor set of policytest.v1 with
// GuardedService as its only service: the others annotate factors
// (WebAuthn, approval) the benchmark's gateway is not configured for, and
// it refuses to start with a policy it cannot enforce.
func guardedServiceOnly(b *testing.B) []byte {
	b.Helper()
	raw, err := gateway.DescriptorSet(policytestv1.File_policytest_v1_policytest_proto)
	if err != nil {
		b.Fatal(err)
	}
	set := &descriptorpb.FileDescriptorSet{}
	if err := proto.Unmarshal(raw, set); err != nil {
		b.Fatal(err)
	}
	for _, f := range set.File {
		if f.GetName() != policytestv1.File_policytest_v1_policytest_proto.Path() {
			continue
		}
		services := f.Service[:0]
		for _, s := range f.Service {
			if s.GetName() == "GuardedService" {
				services = append(services, s)
			}
		}
		f.Service = services
	}
	out, err := proto.Marshal(set)
	if err != nil {
		b.Fatal(err)
	}
	return out
}

// frame is a message passed through undecoded.
type frame struct{ data mem.BufferSlice }

// passCodec hands received buffers on without copying or decoding them,
// the least a proxy can do with a message.
type passCodec struct{}

func (passCodec) Marshal(v any) (mem.BufferSlice, error) {
	f := v.(*frame)
	out := f.data
	f.data = nil
	return out, nil
}

func (passCodec) Unmarshal(data mem.BufferSlice, v any) error {
	data.Ref()
	v.(*frame).data = data
	return nil
}

func (passCodec) Name() string { return "proto" }

// startPlainProxy starts the limit's proxy: every unary call forwarded to
// backend in one Invoke with its headers, the response, header and
// trailer back, nothing checked (the gateway's own unary path without its
// checks).
func startPlainProxy(b *testing.B, backend string) string {
	b.Helper()
	cc, err := grpc.NewClient("passthrough:///"+backend, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.ForceCodecV2(passCodec{})))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = cc.Close() })
	forward := func(_ any, in grpc.ServerStream) error {
		method, _ := grpc.MethodFromServerStream(in)
		md, _ := metadata.FromIncomingContext(in.Context())
		var req, resp frame
		if err := in.RecvMsg(&req); err != nil {
			return err
		}
		var hdr, trl metadata.MD
		err := cc.Invoke(metadata.NewOutgoingContext(in.Context(), md), method, &req, &resp, grpc.Header(&hdr), grpc.Trailer(&trl))
		if len(hdr) > 0 {
			if err := in.SendHeader(hdr); err != nil {
				return err
			}
		}
		in.SetTrailer(trl)
		if err != nil {
			return err
		}
		return in.SendMsg(&resp)
	}
	return listenBench(b, grpc.NewServer(grpc.UnknownServiceHandler(forward), grpc.ForceServerCodecV2(passCodec{})))
}
