package gateway_test

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	reflectionv1 "google.golang.org/grpc/reflection/grpc_reflection_v1"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/stepupgrpc/stepup/challenge"
	"github.com/stepupgrpc/stepup/dpop"
	"github.com/stepupgrpc/stepup/interceptor"
	relayv1 "github.com/stepupgrpc/stepup/internal/testproto/relay/v1"
	stepupv1 "github.com/stepupgrpc/stepup/proto/stepup/v1"
	"github.com/stepupgrpc/stepup/testing/testkit"
)

// redisURL returns a redis:// URL of STEPUP_REDIS_ADDR; without it the
// test is skipped, except under CI, where it fails (.ci/redis.sh starts it).
func redisURL(t *testing.T) string {
	t.Helper()
	addr := os.Getenv("STEPUP_REDIS_ADDR")
	if addr == "" {
		msg := "set STEPUP_REDIS_ADDR to a redis-server (source .ci/redis.sh)"
		if os.Getenv("CI") != "" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	return "redis://" + addr + "/0"
}

// manual signs each call's credentials itself, to send the same proof or
// answer to two replicas.
type manual struct {
	signer *dpop.Signer
	token  string
}

func (m *manual) ctx(t *testing.T, full string, extra ...string) (context.Context, string) {
	t.Helper()
	proof, err := m.signer.Proof("POST", "https://"+gwAuthority+full, m.token)
	if err != nil {
		t.Fatal(err)
	}
	kv := append([]string{"authorization", "DPoP " + m.token, "dpop", proof}, extra...)
	return metadata.AppendToOutgoingContext(context.Background(), kv...), proof
}

// TestReplicasShareState runs two gateways on one Redis: a proof accepted
// by one is a replay at the other, and a challenge issued by one is
// answered at the other, once.
func TestReplicasShareState(t *testing.T) {
	url := redisURL(t)
	f := newFiles(t)
	be := startBackend(t, f)
	cfg := f.config(be.addr)
	cfg.RedisUrl = url
	a, b := startGateway(t, cfg), startGateway(t, cfg)
	alice := newCaller(t, f, a.addr, f.carol, aliceTOTP, "relay")
	signer, err := dpop.NewSigner(alice.key)
	if err != nil {
		t.Fatal(err)
	}
	m := &manual{signer: signer, token: alice.token}
	relayA := relayv1.NewRelayServiceClient(dialGateway(t, f, a.addr))
	relayB := relayv1.NewRelayServiceClient(dialGateway(t, f, b.addr))

	ctx, _ := m.ctx(t, mEcho)
	if _, err := relayA.Echo(ctx, &relayv1.EchoRequest{}); err != nil {
		t.Fatal(err)
	}
	if _, err := relayB.Echo(ctx, &relayv1.EchoRequest{}); status.Code(err) != codes.Unauthenticated {
		t.Fatalf("the same proof at the other replica: %v", err)
	}
	if ev, _ := lastFor(b.audit, mEcho); ev.Reason != interceptor.Reason(dpop.ReasonReplayed) {
		t.Errorf("replica b audited %+v", ev)
	}

	// Step-up: challenged by a, answered at b, replayed at a.
	ctx, _ = m.ctx(t, mUpload)
	s, err := relayA.Upload(ctx)
	if err != nil {
		t.Fatal(err)
	}
	_, err = s.CloseAndRecv()
	ch := interceptor.ChallengeFromError(err)
	if ch == nil {
		t.Fatalf("no challenge from a: %v", err)
	}
	code, err := challenge.TOTPCode(aliceTOTP, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	answer, err := challenge.Answer(signer, ch, &challenge.Evidence{Factor: stepupv1.Factor_FACTOR_TOTP, TOTP: code})
	if err != nil {
		t.Fatal(err)
	}
	upload := func(c relayv1.RelayServiceClient) error {
		ctx, _ := m.ctx(t, mUpload, interceptor.MetadataStepUpAnswer, answer)
		s, err := c.Upload(ctx)
		if err != nil {
			return err
		}
		_, err = s.CloseAndRecv()
		return err
	}
	if err := upload(relayB); err != nil {
		ev, _ := lastFor(b.audit, mUpload)
		t.Fatalf("answer at b: %v (%+v)", err, ev)
	}
	if err := upload(relayA); status.Code(err) != codes.Unauthenticated {
		t.Fatalf("the same answer again at a: %v", err)
	}
	if ev, _ := lastFor(a.audit, mUpload); ev.Decision != interceptor.DecisionStepUpFailed {
		t.Errorf("replica a audited %+v", ev)
	}
	if got := be.calls(t, mUpload); got != 1 {
		t.Errorf("the backend served %d uploads, want 1", got)
	}
}

// TestBackendMutualTLS forwards over mTLS: the backend requires the
// gateway's client certificate, and refuses a connection without it.
func TestBackendMutualTLS(t *testing.T) {
	f := newFiles(t)
	backendCert := testkit.NewCert(t, "backend.internal")
	gatewayClient := testkit.NewCert(t, "gateway-client")
	be := startBackend(t, f, grpc.Creds(credentials.NewTLS(&tls.Config{
		Certificates: []tls.Certificate{backendCert.TLS}, ClientCAs: gatewayClient.Pool,
		ClientAuth: tls.RequireAndVerifyClientCert, MinVersion: tls.VersionTLS13,
	})))
	caFile, _ := backendCert.WriteFiles(t, f.dir, "backend")
	clientCert, clientKey := gatewayClient.WriteFiles(t, f.dir, "gateway-client")

	cfg := f.config(be.addr)
	cfg.Backend = &stepupv1.Backend{Address: be.addr, Tls: &stepupv1.BackendTLS{
		CaFile: caFile, CertFile: clientCert, KeyFile: clientKey, ServerName: "backend.internal",
	}}
	gw := startGateway(t, cfg)
	alice := newCaller(t, f, gw.addr, "alice", aliceTOTP, "relay")
	resp, err := alice.relay.Whoami(context.Background(), &relayv1.WhoamiRequest{})
	if err != nil || resp.GetSubject() != "alice" {
		t.Fatalf("over mTLS: %v %v", resp, err)
	}

	// Without the client certificate the backend refuses the handshake.
	cfg = f.config(be.addr)
	cfg.Backend = &stepupv1.Backend{Address: be.addr, Tls: &stepupv1.BackendTLS{CaFile: caFile, ServerName: "backend.internal"}}
	noCert := startGateway(t, cfg)
	alice2 := newCaller(t, f, noCert.addr, "alice", aliceTOTP, "relay")
	if _, err := alice2.relay.Whoami(context.Background(), &relayv1.WhoamiRequest{}); status.Code(err) != codes.Unavailable {
		t.Fatalf("without the client certificate: %v", err)
	}
	if ev, _ := lastFor(noCert.audit, mWhoami); ev.Reason != "BACKEND_UNAVAILABLE" {
		t.Errorf("audit %+v", ev)
	}
}

// TestReflectionFromDescriptorSets lists the backend's services through the
// gateway, from its descriptor sets, without a token.
func TestReflectionFromDescriptorSets(t *testing.T) {
	w := newWorld(t, func(c *stepupv1.GatewayConfig) { c.Reflection = true })
	rc := reflectionv1.NewServerReflectionClient(dialGateway(t, w.f, w.gw.addr))
	s, err := rc.ServerReflectionInfo(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Send(&reflectionv1.ServerReflectionRequest{MessageRequest: &reflectionv1.ServerReflectionRequest_ListServices{}}); err != nil {
		t.Fatal(err)
	}
	resp, err := s.Recv()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, svc := range resp.GetListServicesResponse().GetService() {
		names = append(names, svc.GetName())
	}
	for _, want := range []string{"relay.v1.RelayService", "bank.v1.BankService"} {
		if !slices.Contains(names, want) {
			t.Errorf("reflection lists %v, without %s", names, want)
		}
	}
	if err := s.Send(&reflectionv1.ServerReflectionRequest{MessageRequest: &reflectionv1.ServerReflectionRequest_FileContainingSymbol{
		FileContainingSymbol: "bank.v1.BankService"}}); err != nil {
		t.Fatal(err)
	}
	resp, err = s.Recv()
	if err != nil || len(resp.GetFileDescriptorResponse().GetFileDescriptorProto()) == 0 {
		t.Fatalf("file of bank.v1.BankService: %v %v", resp, err)
	}
	// Reflection is off by default.
	plain := newWorld(t, nil)
	s2, err := reflectionv1.NewServerReflectionClient(dialGateway(t, plain.f, plain.gw.addr)).ServerReflectionInfo(context.Background())
	if err == nil {
		// Send fails with io.EOF when the refusal has already ended the
		// stream; the status is then Recv's.
		err = s2.Send(&reflectionv1.ServerReflectionRequest{MessageRequest: &reflectionv1.ServerReflectionRequest_ListServices{}})
		if err == nil || errors.Is(err, io.EOF) {
			_, err = s2.Recv()
		}
	}
	if status.Code(err) != codes.PermissionDenied {
		t.Errorf("reflection without reflection: true: %v", err)
	}
}

// TestClientMutualTLS requires client certificates when client_ca_file is
// set: a client without one never reaches the Guard.
func TestClientMutualTLS(t *testing.T) {
	f := newFiles(t)
	be := startBackend(t, f)
	clientCert := testkit.NewCert(t, "client-1")
	caFile, _ := clientCert.WriteFiles(t, f.dir, "client-ca")
	cfg := f.config(be.addr)
	cfg.Tls.ClientCaFile = caFile
	gw := startGateway(t, cfg)

	alice := newCaller(t, f, gw.addr, "alice", aliceTOTP, "relay")
	if _, err := alice.relay.Echo(context.Background(), &relayv1.EchoRequest{}); status.Code(err) != codes.Unavailable {
		t.Fatalf("without a client certificate: %v", err)
	}
	creds := credentials.NewTLS(&tls.Config{RootCAs: f.cert.Pool, ServerName: gwAuthority, MinVersion: tls.VersionTLS13,
		Certificates: []tls.Certificate{clientCert.TLS}})
	cc, err := grpc.NewClient("passthrough:///"+gw.addr, append(alice.client.DialOptions(),
		grpc.WithTransportCredentials(creds), grpc.WithAuthority(gwAuthority))...)
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	if _, err := relayv1.NewRelayServiceClient(cc).Echo(context.Background(), &relayv1.EchoRequest{}); err != nil {
		t.Fatalf("with a client certificate: %v", err)
	}
}

// TestShadowPolicyThroughGateway forwards a call its shadow policy would
// refuse, audited as shadow_deny, with no assertion for an unverified caller.
func TestShadowPolicyThroughGateway(t *testing.T) {
	f := newFiles(t)
	be := startBackend(t, f)
	cfg := f.config(be.addr)
	cfg.Policies["/relay.v1.RelayService/Whoami"] = &stepupv1.Policy{Shadow: proto.Bool(true)}
	gw := startGateway(t, cfg)
	bare := relayv1.NewRelayServiceClient(dialGateway(t, f, gw.addr))
	_, err := bare.Whoami(context.Background(), &relayv1.WhoamiRequest{})
	// The backend refuses it itself: no assertion for a caller nobody verified.
	if status.Code(err) != codes.Unauthenticated || !strings.Contains(status.Convert(err).Message(), "identity assertion") || be.calls(t, mWhoami) != 0 {
		t.Fatalf("shadow call: %v, backend calls %d", err, be.calls(t, mWhoami))
	}
	ev, _ := lastFor(gw.audit, mWhoami)
	if ev.Decision != interceptor.DecisionShadowDeny || ev.Reason != interceptor.ReasonTokenMissing {
		t.Errorf("audit %+v", ev)
	}
}
