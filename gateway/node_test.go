package gateway_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	bankv1 "github.com/stepupgrpc/stepup/examples/bank/v1"
	"github.com/stepupgrpc/stepup/gateway"
	"github.com/stepupgrpc/stepup/gateway/assertion"
	"github.com/stepupgrpc/stepup/interceptor"
	relayv1 "github.com/stepupgrpc/stepup/internal/testproto/relay/v1"
	"github.com/stepupgrpc/stepup/testing/nodebackend"
	"github.com/stepupgrpc/stepup/testing/relayserver"
)

// nodeBackendDir holds the Node backend; `npm ci` there installs it
// (.ci/run does).
const nodeBackendDir = "testdata/node-backend"

// requireNode skips the test when node or the backend's modules are
// missing, except under CI, where it fails: CI installs them.
func requireNode(t *testing.T) string {
	t.Helper()
	node := requireNodeBinary(t)
	if _, err := os.Stat(filepath.Join(nodeBackendDir, "node_modules", "@grpc", "grpc-js")); err != nil {
		skipUnlessCI(t, "the Node backend needs `npm ci` in gateway/"+nodeBackendDir+": "+err.Error())
	}
	return node
}

// requireNodeBinary is requireNode for the scripts that need node alone
// (canonical.js uses Node's built-ins only).
func requireNodeBinary(t *testing.T) string {
	t.Helper()
	node, err := exec.LookPath("node")
	if err != nil {
		skipUnlessCI(t, "needs node: "+err.Error())
	}
	return node
}

// skipUnlessCI skips the test, or fails it under CI, which installs node
// and the backend's modules.
func skipUnlessCI(t *testing.T, msg string) {
	t.Helper()
	if os.Getenv("CI") != "" {
		t.Fatal(msg)
	}
	t.Skip(msg)
}

// startNode runs the Node backend and returns its address and its stats
// client.
func startNode(t *testing.T, node, descriptors, jwksURL string) (string, relayv1.StatsServiceClient) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var stderr bytes.Buffer
	addr, wait, err := nodebackend.Start(ctx, nodebackend.Config{
		Node: node, Dir: nodeBackendDir, Descriptors: descriptors, JWKSURL: jwksURL,
		Issuer: assertIssuer, Audience: assertAud, Stderr: &stderr,
	})
	t.Cleanup(func() {
		cancel()
		if wait != nil {
			wait()
		}
		if t.Failed() {
			t.Logf("node backend stderr:\n%s", stderr.String())
		}
	})
	if err != nil {
		t.Fatalf("%v: %s", err, stderr.String())
	}
	cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cc.Close() })
	return addr, relayv1.NewStatsServiceClient(cc)
}

// startNodeWorld starts the Node backend and a gateway in front of it (the
// backend fetches the gateway's JWKS), and returns the address of the
// backend and a function counting the calls that reached its handlers.
func startNodeWorld(t *testing.T) (*files, *running, string, func() int64) {
	t.Helper()
	node := requireNode(t)
	f := newFiles(t)
	var jwks atomic.Pointer[http.Handler]
	jwksSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if h := jwks.Load(); h != nil {
			(*h).ServeHTTP(w, r)
			return
		}
		http.Error(w, "not yet", http.StatusServiceUnavailable)
	}))
	t.Cleanup(jwksSrv.Close)
	descriptors, err := filepath.Abs(f.descriptors)
	if err != nil {
		t.Fatal(err)
	}
	addr, stats := startNode(t, node, descriptors, jwksSrv.URL+"/.well-known/jwks.json")
	gw := startGateway(t, f.config(addr))
	h := gw.gw.JWKSHandler()
	jwks.Store(&h)
	total := func() int64 {
		resp, err := stats.Stats(context.Background(), &relayv1.StatsRequest{})
		if err != nil {
			t.Fatal(err)
		}
		var n int64
		for _, v := range resp.GetCalls() {
			n += v
		}
		return n
	}
	return f, gw, addr, total
}

// TestNodeBackend runs the gateway in front of a backend in Node that knows
// nothing of Stepup and verifies the gateway's assertions with jose
// against the JWKS the gateway serves.
func TestNodeBackend(t *testing.T) {
	f, gw, addr, total := startNodeWorld(t)
	alice := newCaller(t, f, gw.addr, "alice", aliceTOTP, "relay bank bank:transfer")
	t.Run("unary with metadata both ways", func(t *testing.T) {
		var hdr, trl metadata.MD
		ctx := metadata.AppendToOutgoingContext(context.Background(), "x-echo", "node")
		resp, err := alice.relay.Echo(ctx, &relayv1.EchoRequest{Payload: []byte("hi")}, grpc.Header(&hdr), grpc.Trailer(&trl))
		if err != nil || string(resp.GetPayload()) != "hi" {
			t.Fatalf("%v %v", resp, err)
		}
		if hdr.Get("x-echo")[0] != "node" || trl.Get("x-echo-trailer")[0] != "node" {
			t.Errorf("header %v trailer %v", hdr, trl)
		}
	})
	t.Run("the backend verified the assertion, and never saw a client's", func(t *testing.T) {
		ctx := metadata.AppendToOutgoingContext(context.Background(), assertion.Metadata, "forged")
		resp, err := alice.relay.Whoami(ctx, &relayv1.WhoamiRequest{})
		if err != nil {
			t.Fatal(err)
		}
		if resp.GetSubject() != "alice" || resp.GetAssertion() == "forged" {
			t.Errorf("node saw subject %q, assertion %q", resp.GetSubject(), resp.GetAssertion())
		}
		for _, n := range resp.GetMetadataNames() {
			if n == "authorization" || n == "dpop" {
				t.Errorf("node received %q", n)
			}
		}
	})
	t.Run("bidi stream both ways", func(t *testing.T) {
		s, err := alice.relay.Chat(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		for i := range 100 {
			if err := s.Send(&relayv1.ChatRequest{Payload: []byte{byte(i)}}); err != nil {
				t.Fatal(err)
			}
			m, err := s.Recv()
			if err != nil || m.GetIndex() != int32(i) || m.GetPayload()[0] != byte(i) {
				t.Fatalf("answer %d: %v %v", i, m, err)
			}
		}
		_ = s.CloseSend()
		if _, err := s.Recv(); !errors.Is(err, io.EOF) {
			t.Fatal(err)
		}
	})
	t.Run("step-up challenged, then allowed after a TOTP answer", func(t *testing.T) {
		resp, err := alice.bank.Transfer(context.Background(), &bankv1.TransferRequest{
			FromAccountId: "alice-checking", AmountMinor: 12_500, Currency: "EUR", ToIban: "DE89370400440532013000", Reference: "rent",
		})
		if err != nil {
			t.Fatal(err)
		}
		if resp.GetBalanceAfter().GetAmountMinor() != 100_000-12_500 {
			t.Errorf("balance after %v", resp.GetBalanceAfter())
		}
		ev, _ := lastFor(gw.audit, mTransfer)
		if ev.Decision != interceptor.DecisionStepUpPassed || ev.Factor != "totp" || alice.answers != 1 {
			t.Errorf("audit %+v after %d answers", ev, alice.answers)
		}
	})
	t.Run("10,000-message server stream and a 4 MiB message, byte for byte", func(t *testing.T) {
		s, err := alice.relay.Download(context.Background(), &relayv1.DownloadRequest{Count: 10_000, Size: 64})
		if err != nil {
			t.Fatal(err)
		}
		n := int32(0)
		for ; ; n++ {
			m, err := s.Recv()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			if m.GetIndex() != n || !bytes.Equal(m.GetData(), relayserver.Chunk(n, 64)) {
				t.Fatalf("chunk %d differs", n)
			}
		}
		if n != 10_000 {
			t.Fatalf("%d chunks", n)
		}
		payload := make([]byte, 4<<20)
		for i := range payload {
			payload[i] = byte(i * 13)
		}
		resp, err := alice.relay.Echo(context.Background(), &relayv1.EchoRequest{Payload: payload})
		if err != nil || !bytes.Equal(resp.GetPayload(), payload) {
			t.Fatalf("4 MiB echo: equal %v, %v", bytes.Equal(resp.GetPayload(), payload), err)
		}
	})
	t.Run("the client's deadline reaches node", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		defer cancel()
		if _, err := alice.relay.Slow(ctx, &relayv1.SlowRequest{}); status.Code(err) != codes.DeadlineExceeded {
			t.Fatalf("slow: %v", err)
		}
	})
	t.Run("refused calls never reach node", func(t *testing.T) {
		before := total()
		bare := relayv1.NewRelayServiceClient(dialGateway(t, f, gw.addr))
		ctx := metadata.AppendToOutgoingContext(context.Background(), assertion.Metadata, "forged")
		if _, err := bare.Whoami(ctx, &relayv1.WhoamiRequest{}); status.Code(err) != codes.Unauthenticated {
			t.Fatalf("no credentials: %v", err)
		}
		if _, err := relayv1.NewStatsServiceClient(alice.conn).Stats(context.Background(), &relayv1.StatsRequest{}); status.Code(err) != codes.PermissionDenied {
			t.Fatalf("a method without policy: %v", err)
		}
		if after := total(); after != before {
			t.Errorf("node served %d refused calls", after-before)
		}
	})
	t.Run("node refuses a call without the gateway", func(t *testing.T) {
		cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			t.Fatal(err)
		}
		defer cc.Close()
		_, err = relayv1.NewRelayServiceClient(cc).Whoami(
			metadata.AppendToOutgoingContext(context.Background(), assertion.Metadata, "forged"), &relayv1.WhoamiRequest{})
		if status.Code(err) != codes.Unauthenticated {
			t.Fatalf("direct call with a forged assertion: %v", err)
		}
	})
	_ = gateway.DecisionBackendError
}
