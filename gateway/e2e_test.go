package gateway_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"io"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/stepupgrpc/stepup/challenge"
	"github.com/stepupgrpc/stepup/dpop"
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
	mEcho     = "/relay.v1.RelayService/Echo"
	mWhoami   = "/relay.v1.RelayService/Whoami"
	mUpload   = "/relay.v1.RelayService/Upload"
	mDownload = "/relay.v1.RelayService/Download"
	mChat     = "/relay.v1.RelayService/Chat"
	mTransfer = "/bank.v1.BankService/Transfer"
)

// gatewayWorld is a Go backend behind a gateway, with alice (relay and
// bank scopes) and bob (relay) as honest callers.
type gatewayWorld struct {
	f          *files
	be         *backend
	gw         *running
	alice, bob *caller
}

func newWorld(t *testing.T, edit func(*stepupv1.GatewayConfig)) *gatewayWorld {
	t.Helper()
	f := newFiles(t)
	be := startBackend(t, f, grpc.MaxRecvMsgSize(16<<20), grpc.MaxSendMsgSize(16<<20))
	cfg := f.config(be.addr)
	if edit != nil {
		edit(cfg)
	}
	gw := startGateway(t, cfg)
	w := &gatewayWorld{f: f, be: be, gw: gw}
	w.alice = newCaller(t, f, gw.addr, "alice", aliceTOTP, "relay bank bank:transfer")
	w.bob = newCaller(t, f, gw.addr, "bob", bobTOTP, "relay")
	return w
}

func TestGatewayForwardsUnaryWithMetadataBothWays(t *testing.T) {
	w := newWorld(t, nil)
	ctx := metadata.AppendToOutgoingContext(context.Background(), "x-echo", "ping")
	var hdr, trl metadata.MD
	resp, err := w.alice.relay.Echo(ctx, &relayv1.EchoRequest{Payload: []byte("hello")}, grpc.Header(&hdr), grpc.Trailer(&trl))
	if err != nil {
		t.Fatal(err)
	}
	if string(resp.GetPayload()) != "hello" {
		t.Fatalf("payload %q", resp.GetPayload())
	}
	if got := hdr.Get("x-echo"); !slices.Equal(got, []string{"ping"}) {
		t.Errorf("header x-echo = %v", got)
	}
	if got := trl.Get("x-echo-trailer"); !slices.Equal(got, []string{"ping"}) {
		t.Errorf("trailer x-echo-trailer = %v", got)
	}
	if ev, _ := lastFor(w.gw.audit, mEcho); ev.Decision != interceptor.DecisionAllow || ev.Subject != "alice" {
		t.Errorf("audit %+v", ev)
	}
}

func TestGatewayAssertionReachesBackendAndClientIdentityNever(t *testing.T) {
	w := newWorld(t, func(c *stepupv1.GatewayConfig) { c.StripHeaders = []string{"x-user"} })
	ctx := metadata.AppendToOutgoingContext(context.Background(),
		assertion.Metadata, "forged.by.client", "x-user", "admin", "x-kept", "yes")
	resp, err := w.alice.relay.Whoami(ctx, &relayv1.WhoamiRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if resp.GetSubject() != "alice" {
		t.Errorf("backend verified subject %q, want alice", resp.GetSubject())
	}
	for _, name := range []string{"authorization", "dpop", "x-user", "stepup-answer", "stepup-grant"} {
		if slices.Contains(resp.GetMetadataNames(), name) {
			t.Errorf("the backend received %q", name)
		}
	}
	if !slices.Contains(resp.GetMetadataNames(), "x-kept") {
		t.Errorf("x-kept did not reach the backend: %v", resp.GetMetadataNames())
	}
	// The assertion the backend saw is the gateway's, for this call.
	v, err := assertion.NewVerifier(assertion.VerifierConfig{Issuer: assertIssuer, Audience: assertAud, JWKS: w.f.assertionPub})
	if err != nil {
		t.Fatal(err)
	}
	id, err := v.Verify(context.Background(), resp.GetAssertion())
	if err != nil {
		t.Fatalf("assertion %q: %v", resp.GetAssertion(), err)
	}
	if id.Subject != "alice" || id.Thumbprint != w.alice.jkt || id.Method != mWhoami || id.ClientID != "relay-app" ||
		!slices.Equal(id.Scopes, []string{"relay", "bank", "bank:transfer"}) || id.StepUp != nil {
		t.Errorf("assertion says %+v", id)
	}
	if ttl := id.Expiry.Sub(id.IssuedAt); ttl != assertion.DefaultTTL {
		t.Errorf("assertion lifetime %s", ttl)
	}
	// A client that only fakes the assertion, with no credentials, reaches
	// nothing.
	before := w.be.total(t)
	bare := relayv1.NewRelayServiceClient(dialGateway(t, w.f, w.gw.addr))
	_, err = bare.Whoami(metadata.AppendToOutgoingContext(context.Background(), assertion.Metadata, resp.GetAssertion()), &relayv1.WhoamiRequest{})
	if status.Code(err) != codes.Unauthenticated {
		t.Fatalf("replayed assertion without credentials: %v", err)
	}
	if after := w.be.total(t); after != before {
		t.Errorf("backend served %d refused calls", after-before)
	}
}

func TestGatewayRefusalsNeverReachBackend(t *testing.T) {
	w := newWorld(t, nil)
	if _, err := w.alice.relay.Echo(context.Background(), &relayv1.EchoRequest{}); err != nil {
		t.Fatal(err)
	}
	before := w.be.total(t)

	// A stolen token: the thief's proofs are signed by its own key.
	thief := newCaller(t, w.f, w.gw.addr, "mallory", "", "relay")
	thiefSigner, err := dpop.NewSigner(thief.key)
	if err != nil {
		t.Fatal(err)
	}
	stolen, err := interceptor.NewClient(thiefSigner, interceptor.StaticToken(w.alice.token))
	if err != nil {
		t.Fatal(err)
	}
	stolenRelay := relayv1.NewRelayServiceClient(dialGateway(t, w.f, w.gw.addr, stolen.DialOptions()...))
	bare := relayv1.NewRelayServiceClient(dialGateway(t, w.f, w.gw.addr))
	for _, tc := range []struct {
		name   string
		call   func() error
		method string
		code   codes.Code
		reason string
	}{
		{"stolen token, thief's key", func() error {
			_, err := stolenRelay.Echo(context.Background(), &relayv1.EchoRequest{})
			return err
		}, mEcho, codes.Unauthenticated, string(dpop.ReasonKeyMismatch)},
		{"no credentials", func() error {
			_, err := bare.Echo(context.Background(), &relayv1.EchoRequest{})
			return err
		}, mEcho, codes.Unauthenticated, string(interceptor.ReasonTokenMissing)},
		{"stream without credentials", func() error {
			s, err := bare.Chat(context.Background())
			if err != nil {
				return err
			}
			_, err = s.Recv()
			return err
		}, mChat, codes.Unauthenticated, string(interceptor.ReasonTokenMissing)},
		{"a method no policy covers", func() error {
			_, err := relayv1.NewStatsServiceClient(w.alice.conn).Stats(context.Background(), &relayv1.StatsRequest{})
			return err
		}, "/relay.v1.StatsService/Stats", codes.PermissionDenied, string(interceptor.ReasonPolicyMissing)},
		{"a method the descriptor sets do not know", func() error {
			return w.alice.conn.Invoke(context.Background(), "/relay.v1.RelayService/Hidden", &relayv1.EchoRequest{}, &relayv1.EchoResponse{})
		}, "/relay.v1.RelayService/Hidden", codes.PermissionDenied, string(interceptor.ReasonPolicyMissing)},
		{"scope missing", func() error {
			_, err := bankv1.NewBankServiceClient(w.bob.conn).GetBalance(context.Background(), &bankv1.GetBalanceRequest{AccountId: "alice-checking"})
			return err
		}, "/bank.v1.BankService/GetBalance", codes.PermissionDenied, string(interceptor.ReasonInsufficientScope)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.call()
			if status.Code(err) != tc.code {
				t.Fatalf("got %v, want %v", err, tc.code)
			}
			ev, ok := lastFor(w.gw.audit, tc.method)
			if !ok || string(ev.Reason) != tc.reason {
				t.Errorf("audit reason %q, want %q (%+v)", ev.Reason, tc.reason, ev)
			}
		})
	}
	if after := w.be.total(t); after != before {
		t.Errorf("the backend served %d calls the gateway refused", after-before)
	}
}

func TestGatewayStepUpBoundRequest(t *testing.T) {
	w := newWorld(t, nil)
	req := &bankv1.TransferRequest{FromAccountId: "alice-checking", AmountMinor: 125_000 / 100, Currency: "EUR", ToIban: "DE89370400440532013000", Reference: "rent"}
	resp, err := w.alice.bank.Transfer(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.GetTransferId() == "" || w.alice.answers != 1 {
		t.Fatalf("transfer %v after %d answers", resp, w.alice.answers)
	}
	evs := w.gw.audit.Events()
	var decisions []interceptor.Decision
	for _, e := range evs {
		if e.Method == mTransfer {
			decisions = append(decisions, e.Decision)
		}
	}
	if !slices.Equal(decisions, []interceptor.Decision{interceptor.DecisionChallenge, interceptor.DecisionStepUpPassed}) {
		t.Errorf("transfer decisions %v", decisions)
	}
	if got := w.be.calls(t, mTransfer); got != 1 {
		t.Errorf("backend ran Transfer %d times", got)
	}
}

func TestGatewayStepUpAssertionAndGrantReuse(t *testing.T) {
	w := newWorld(t, nil)
	upload := func(n int) *relayv1.UploadResponse {
		t.Helper()
		s, err := w.bob.relay.Upload(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		for i := range n {
			err := s.Send(&relayv1.UploadRequest{Data: relayserver.Chunk(int32(i), 100)})
			if errors.Is(err, io.EOF) {
				break // refused (step-up): CloseAndRecv answers and replays
			}
			if err != nil {
				t.Fatal(err)
			}
		}
		resp, err := s.CloseAndRecv()
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	// The first stream is challenged: the client answers and replays it.
	if got := upload(1); got.GetCount() != 1 || w.bob.answers != 1 {
		t.Fatalf("first upload: %v after %d answers", got, w.bob.answers)
	}
	// The grant from that answer covers a long stream.
	const n = 10_000
	resp := upload(n)
	h := sha256.New()
	for i := range n {
		h.Write(relayserver.Chunk(int32(i), 100))
	}
	if resp.GetCount() != n || !bytes.Equal(resp.GetSha256(), h.Sum(nil)) {
		t.Fatalf("upload of %d chunks arrived as %d, digest equal: %v", n, resp.GetCount(), bytes.Equal(resp.GetSha256(), h.Sum(nil)))
	}
	if w.bob.answers != 1 {
		t.Errorf("%d TOTP answers for two uploads under one grant", w.bob.answers)
	}
	if got := w.be.calls(t, mUpload); got != 2 {
		t.Errorf("the backend served %d uploads, want 2 (the refused one never reached it)", got)
	}
	ev, _ := lastFor(w.gw.audit, mUpload)
	if ev.Via != "grant" || ev.Factor != "totp" {
		t.Errorf("second upload audited %+v", ev)
	}
}

func TestGatewayStreamsByteForByte(t *testing.T) {
	w := newWorld(t, nil)
	const n = 10_000
	t.Run("server stream", func(t *testing.T) {
		s, err := w.alice.relay.Download(context.Background(), &relayv1.DownloadRequest{Count: n, Size: 64})
		if err != nil {
			t.Fatal(err)
		}
		for i := int32(0); ; i++ {
			m, err := s.Recv()
			if errors.Is(err, io.EOF) {
				if i != n {
					t.Fatalf("%d chunks, want %d", i, n)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if m.GetIndex() != i || !bytes.Equal(m.GetData(), relayserver.Chunk(i, 64)) {
				t.Fatalf("chunk %d differs", i)
			}
		}
	})
	t.Run("bidi stream", func(t *testing.T) {
		s, err := w.alice.relay.Chat(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		go func() {
			for i := range n {
				if err := s.Send(&relayv1.ChatRequest{Payload: relayserver.Chunk(int32(i), 32)}); err != nil {
					return
				}
			}
			_ = s.CloseSend()
		}()
		for i := int32(0); ; i++ {
			m, err := s.Recv()
			if errors.Is(err, io.EOF) {
				if i != n {
					t.Fatalf("%d answers, want %d", i, n)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if m.GetIndex() != i || !bytes.Equal(m.GetPayload(), relayserver.Chunk(i, 32)) {
				t.Fatalf("answer %d differs", i)
			}
		}
	})
	t.Run("4 MiB unary message", func(t *testing.T) {
		payload := make([]byte, 4<<20)
		for i := range payload {
			payload[i] = byte(i * 7)
		}
		resp, err := w.alice.relay.Echo(context.Background(), &relayv1.EchoRequest{Payload: payload})
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(resp.GetPayload(), payload) {
			t.Fatal("the 4 MiB payload came back different")
		}
	})
}

func TestGatewayCarriesBackendStatus(t *testing.T) {
	w := newWorld(t, nil)
	var trl metadata.MD
	_, err := w.alice.relay.Fail(context.Background(), &relayv1.FailRequest{Code: int32(codes.FailedPrecondition), Message: "no funds"}, grpc.Trailer(&trl))
	st := status.Convert(err)
	if st.Code() != codes.FailedPrecondition || st.Message() != "no funds" {
		t.Fatalf("status %v", st)
	}
	var info *errdetails.ErrorInfo
	for _, d := range st.Details() {
		if ei, ok := d.(*errdetails.ErrorInfo); ok {
			info = ei
		}
	}
	if info == nil || info.GetReason() != "RELAY_FAILED" || info.GetMetadata()["asked"] != "no funds" {
		t.Errorf("details %v", st.Details())
	}
	if !slices.Equal(trl.Get("x-fail"), []string{"yes"}) {
		t.Errorf("trailer %v", trl)
	}
	if got := w.be.calls(t, "/relay.v1.RelayService/Fail"); got != 1 {
		t.Errorf("Fail ran %d times", got)
	}
}

func TestGatewayHonoursClientDeadline(t *testing.T) {
	w := newWorld(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := w.alice.relay.Slow(ctx, &relayv1.SlowRequest{})
	if status.Code(err) != codes.DeadlineExceeded {
		t.Fatalf("slow call: %v", err)
	}
	if waited := time.Since(start); waited > 10*time.Second {
		t.Errorf("the deadline was not honoured: %s", waited)
	}
}

func TestGatewayBackendDown(t *testing.T) {
	f := newFiles(t)
	// A port nothing listens on.
	gw := startGateway(t, f.config("127.0.0.1:1"))
	alice := newCaller(t, f, gw.addr, "alice", aliceTOTP, "relay")
	_, err := alice.relay.Echo(context.Background(), &relayv1.EchoRequest{})
	if status.Code(err) != codes.Unavailable {
		t.Fatalf("echo to a down backend: %v", err)
	}
	ev, _ := lastFor(gw.audit, mEcho)
	if ev.Decision != gateway.DecisionBackendError || ev.Reason != gateway.ReasonBackendUnavailable || ev.Subject != "alice" {
		t.Errorf("audit %+v", ev)
	}
	// Counted in the gateway's metrics, the Guard's allow first.
	mfs, err := gw.gw.Metrics().Gather()
	if err != nil {
		t.Fatal(err)
	}
	counted := map[string]float64{}
	for _, mf := range mfs {
		if mf.GetName() == "stepup_decisions_total" {
			for _, m := range mf.GetMetric() {
				for _, l := range m.GetLabel() {
					if l.GetName() == "decision" {
						counted[l.GetValue()] += m.GetCounter().GetValue()
					}
				}
			}
		}
	}
	if counted["allow"] != 1 || counted[string(gateway.DecisionBackendError)] != 1 {
		t.Errorf("metrics counted %v", counted)
	}
	// The gateway itself is alive.
	hc := healthpb.NewHealthClient(dialGateway(t, f, gw.addr))
	resp, err := hc.Check(context.Background(), &healthpb.HealthCheckRequest{})
	if err != nil || resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("health %v %v", resp, err)
	}
}

func TestGatewayShutdownDrainsStreams(t *testing.T) {
	w := newWorld(t, nil)
	s, err := w.alice.relay.Chat(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Send(&relayv1.ChatRequest{Payload: []byte("a")}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Recv(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		w.gw.gw.Shutdown(ctx)
		close(done)
	}()
	// Health turns NOT_SERVING; the open stream keeps working.
	hc := healthpb.NewHealthClient(w.alice.conn)
	for {
		resp, err := hc.Check(context.Background(), &healthpb.HealthCheckRequest{})
		if err != nil || resp.GetStatus() == healthpb.HealthCheckResponse_NOT_SERVING {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := s.Send(&relayv1.ChatRequest{Payload: []byte("b")}); err != nil {
		t.Fatal(err)
	}
	m, err := s.Recv()
	if err != nil || string(m.GetPayload()) != "b" {
		t.Fatalf("stream during shutdown: %v %v", m, err)
	}
	select {
	case <-done:
		t.Fatal("shutdown returned while a stream was open")
	default:
	}
	_ = s.CloseSend()
	if _, err := s.Recv(); !errors.Is(err, io.EOF) {
		t.Fatalf("end of stream: %v", err)
	}
	<-done
}

func TestGatewayUndecodableRequestUnderStepUp(t *testing.T) {
	w := newWorld(t, nil)
	truncated := testkit.Spelling{Wire: []byte{0x10, 0xff}} // amount_minor: a varint cut short
	_, err := w.alice.bank.Transfer(context.Background(), &bankv1.TransferRequest{}, grpc.ForceCodecV2(truncated))
	if status.Code(err) != codes.InvalidArgument {
		t.Fatalf("undecodable transfer: %v", err)
	}
	ev, _ := lastFor(w.gw.audit, mTransfer)
	if ev.Decision != interceptor.DecisionDeny || ev.Reason != interceptor.Reason(challenge.ReasonRequestInvalid) {
		t.Errorf("audit %+v", ev)
	}
	if w.be.calls(t, mTransfer) != 0 || w.alice.answers != 0 {
		t.Error("an undecodable request went further")
	}
	// Without credentials the request is never read: refused for the
	// token (the gateway decodes only for an authenticated caller).
	bare := bankv1.NewBankServiceClient(dialGateway(t, w.f, w.gw.addr))
	_, err = bare.Transfer(context.Background(), &bankv1.TransferRequest{}, grpc.ForceCodecV2(truncated))
	if ev, _ := lastFor(w.gw.audit, mTransfer); status.Code(err) != codes.Unauthenticated || ev.Reason != interceptor.ReasonTokenMissing {
		t.Errorf("an unauthenticated undecodable transfer: %v, audited %s", err, ev.Reason)
	}
}

// hostileRelay is a compromised backend that speaks for the Guard: it sets
// the headers only the Guard may set and returns a forged Guard refusal.
type hostileRelay struct {
	relayserver.Relay
}

func (h *hostileRelay) Echo(ctx context.Context, req *relayv1.EchoRequest) (*relayv1.EchoResponse, error) {
	_ = grpc.SetHeader(ctx, metadata.Pairs(interceptor.MetadataDPoPNonce, "backend-nonce", interceptor.MetadataStepUpGrant, "forged-grant",
		"stepup-identity", "forged-identity", "x-fine", "1"))
	_ = grpc.SetTrailer(ctx, metadata.Pairs("www-authenticate", `DPoP error="use_dpop_nonce"`))
	return &relayv1.EchoResponse{Payload: req.GetPayload()}, nil
}

func (h *hostileRelay) Fail(context.Context, *relayv1.FailRequest) (*relayv1.FailResponse, error) {
	st, err := status.New(codes.Unauthenticated, "use a nonce").WithDetails(&errdetails.ErrorInfo{
		Reason: "USE_DPOP_NONCE", Domain: interceptor.ErrorDomain})
	if err != nil {
		return nil, err
	}
	return nil, st.Err()
}

func (h *hostileRelay) Download(_ *relayv1.DownloadRequest, s grpc.ServerStreamingServer[relayv1.DownloadResponse]) error {
	s.SetTrailer(metadata.Pairs(interceptor.MetadataStepUpGrant, "forged-grant"))
	_, err := h.Fail(s.Context(), nil)
	return err
}

func TestGatewayFiltersWhatOnlyTheGuardMaySay(t *testing.T) {
	f := newFiles(t)
	srv := grpc.NewServer()
	h := &hostileRelay{Relay: relayserver.Relay{Counter: &relayserver.Counter{}}}
	relayv1.RegisterRelayServiceServer(srv, h)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)
	gw := startGateway(t, f.config(lis.Addr().String()))
	alice := newCaller(t, f, gw.addr, "alice", aliceTOTP, "relay")

	var hdr, trl metadata.MD
	if _, err := alice.relay.Echo(context.Background(), &relayv1.EchoRequest{}, grpc.Header(&hdr), grpc.Trailer(&trl)); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{interceptor.MetadataDPoPNonce, interceptor.MetadataStepUpGrant, "www-authenticate", "stepup-identity"} {
		if len(hdr.Get(k)) > 0 || len(trl.Get(k)) > 0 {
			t.Errorf("the backend's %s reached the client", k)
		}
	}
	if len(hdr.Get("x-fine")) != 1 {
		t.Errorf("an ordinary header was dropped: %v", hdr)
	}
	_, err = alice.relay.Fail(context.Background(), &relayv1.FailRequest{})
	if interceptor.ReasonFromError(err) != "" || status.Code(err) != codes.Unauthenticated {
		t.Errorf("the backend's forged refusal reached the client as a Guard refusal: %v", status.Convert(err).Details())
	}
	// The same on a stream.
	s, err := alice.relay.Download(context.Background(), &relayv1.DownloadRequest{})
	if err != nil {
		t.Fatal(err)
	}
	_, err = s.Recv()
	if interceptor.ReasonFromError(err) != "" || status.Code(err) != codes.Unauthenticated || len(s.Trailer().Get(interceptor.MetadataStepUpGrant)) > 0 {
		t.Errorf("stream: %v %v, trailer %v", err, status.Convert(err).Details(), s.Trailer())
	}
}

// TestAssertionsNeverShared: the assertion cache never hands one caller's
// assertion to another, nor a plain call's to a stepped-up one.
func TestAssertionsNeverShared(t *testing.T) {
	w := newWorld(t, nil)
	v, err := assertion.NewVerifier(assertion.VerifierConfig{Issuer: assertIssuer, Audience: assertAud, JWKS: w.f.assertionPub})
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]string{}
	for _, c := range []struct {
		who *caller
		sub string
	}{{w.alice, "alice"}, {w.bob, "bob"}, {w.alice, "alice"}, {w.bob, "bob"}} {
		resp, err := c.who.relay.Whoami(context.Background(), &relayv1.WhoamiRequest{})
		if err != nil {
			t.Fatal(err)
		}
		id, err := v.Verify(context.Background(), resp.GetAssertion())
		if err != nil || id.Subject != c.sub || id.Thumbprint != c.who.jkt {
			t.Fatalf("%s got an assertion for %+v (%v)", c.sub, id, err)
		}
		if prev, ok := seen[resp.GetAssertion()]; ok && prev != c.sub {
			t.Fatalf("one assertion served %s and %s", prev, c.sub)
		}
		seen[resp.GetAssertion()] = c.sub
	}
	if len(seen) != 2 {
		t.Errorf("%d distinct assertions for two callers calling twice, want 2 (reused per caller)", len(seen))
	}
}

// TestOpenServiceForwardsUnknownMethods: a method of an open service that
// the descriptor sets do not know is forwarded without credentials and
// audited; the same name under a service that is not open is refused.
func TestOpenServiceForwardsUnknownMethods(t *testing.T) {
	w := newWorld(t, func(c *stepupv1.GatewayConfig) { c.InsecureOpenServices = []string{"relay.v1.StatsService"} })
	bare := dialGateway(t, w.f, w.gw.addr)
	// Known to the backend, unknown to nobody: served.
	if err := bare.Invoke(context.Background(), "/relay.v1.StatsService/Stats", &relayv1.StatsRequest{}, &relayv1.StatsResponse{}); err != nil {
		t.Fatalf("an open method: %v", err)
	}
	// Unknown to the descriptor sets and to the backend: forwarded, and
	// the backend says it has no such method.
	err := bare.Invoke(context.Background(), "/relay.v1.StatsService/Newer", &relayv1.StatsRequest{}, &relayv1.StatsResponse{})
	if status.Code(err) != codes.Unimplemented {
		t.Fatalf("an open service's unknown method: %v", err)
	}
	if ev, _ := lastFor(w.gw.audit, "/relay.v1.StatsService/Newer"); ev.Reason != interceptor.ReasonNoAuthentication {
		t.Errorf("audit %+v", ev)
	}
	err = bare.Invoke(context.Background(), "/relay.v1.RelayService/Newer", &relayv1.StatsRequest{}, &relayv1.StatsResponse{})
	if status.Code(err) != codes.PermissionDenied {
		t.Errorf("an unknown method of a service that is not open: %v", err)
	}
}

// TestGatewayStreamEndsWithItsToken: a proxied stream does not outlive its
// access token: the Guard ends it (STREAM_TOKEN_EXPIRED) and the gateway's
// call to the backend is cancelled with it.
func TestGatewayStreamEndsWithItsToken(t *testing.T) {
	f := newFiles(t)
	be := startBackend(t, f)
	gw := startGateway(t, f.config(be.addr), gateway.WithGuardOptions(interceptor.WithLeeway(0)))
	c := newCaller(t, f, gw.addr, "alice", aliceTOTP, "relay")
	short := f.issuer.Mint(t, time.Now(), testkit.TokenOptions{Subject: "alice", JKT: c.jkt, Scope: "relay",
		Issuer: tokenIssuer, Audience: tokenAudience, Expiry: time.Now().Add(2 * time.Second)})
	signer, err := dpop.NewSigner(c.key)
	if err != nil {
		t.Fatal(err)
	}
	client, err := interceptor.NewClient(signer, interceptor.StaticToken(short))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	s, err := relayv1.NewRelayServiceClient(dialGateway(t, f, gw.addr, client.DialOptions()...)).Chat(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var ended error
	for ended == nil {
		if ended = s.Send(&relayv1.ChatRequest{Payload: []byte("x")}); ended == nil {
			_, ended = s.Recv()
		}
	}
	if errors.Is(ended, io.EOF) {
		_, ended = s.Recv()
	}
	if status.Code(ended) != codes.Unauthenticated {
		t.Fatalf("the stream ended with %v", ended)
	}
	if ev, _ := lastFor(gw.audit, mChat); ev.Reason != interceptor.ReasonStreamTokenExpired {
		t.Errorf("audit %+v", ev)
	}
}

// TestGatewayTransportLimits: the gateway's server has the transport
// limits of interceptor.TransportLimits. A client that ignores the bounds
// the gateway advertises and sends a call with 1 MiB of garbage metadata
// is refused by the transport: the Guard never decodes it (no audit
// event) and nothing reaches the backend. A call with 1 KiB of garbage and
// no credentials reaches the Guard (TOKEN_MISSING), the control. Before,
// the gateway took up to 16 MiB of metadata per call (grpc-go's default)
// and decoded all of it before the Guard refused the call.
func TestGatewayTransportLimits(t *testing.T) {
	f := newFiles(t)
	b := startBackend(t, f)
	cfg := f.config(b.addr)
	cfg.Tls, cfg.InsecurePlaintext = nil, true
	gw := startGateway(t, cfg)

	small, err := testkit.RawCall(gw.addr, testkit.RawRequest(t, mEcho, 1<<10))
	if err != nil {
		t.Fatal(err)
	}
	if ev, _ := lastFor(gw.audit, mEcho); small.Outcome != "grpc-status 16" || ev.Reason != interceptor.ReasonTokenMissing {
		t.Fatalf("1 KiB of metadata: %s, audit %+v; want the Guard's refusal", small.Outcome, ev)
	}
	if small.Settings[http2.SettingMaxHeaderListSize] != interceptor.DefaultMaxHeaderListSize ||
		small.Settings[http2.SettingMaxConcurrentStreams] != interceptor.DefaultMaxConcurrentStreams {
		t.Errorf("the gateway advertises %v", small.Settings)
	}
	before := len(gw.audit.Events())
	big, err := testkit.RawCall(gw.addr, testkit.RawRequest(t, mEcho, 1<<20))
	if err != nil {
		t.Fatal(err)
	}
	if strings.HasPrefix(big.Outcome, "grpc-status") || len(gw.audit.Events()) != before {
		t.Fatalf("1 MiB of metadata: %s, %d new audit events; want the transport to refuse it before the Guard",
			big.Outcome, len(gw.audit.Events())-before)
	}
	if n := b.total(t); n != 0 {
		t.Errorf("%d calls reached the backend", n)
	}
}
