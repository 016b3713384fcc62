// Package relayserver is a Go backend of relay.v1, the API of the gateway's
// tests, benchmarks and demo. It knows nothing of Stepup except, when
// given a verifier, the identity assertion.
package relayserver

import (
	"context"
	"crypto/sha256"
	"errors"
	"io"
	"slices"
	"sync"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/stepupgrpc/stepup/gateway/assertion"
	relayv1 "github.com/stepupgrpc/stepup/internal/testproto/relay/v1"
)

// Counter counts the calls that reached a handler, per full method name.
type Counter struct {
	mu    sync.Mutex
	calls map[string]int64
}

// Add counts one call.
func (c *Counter) Add(full string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.calls == nil {
		c.calls = map[string]int64{}
	}
	c.calls[full]++
}

// Calls returns a copy of the counts.
func (c *Counter) Calls() map[string]int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[string]int64, len(c.calls))
	for k, v := range c.calls {
		out[k] = v
	}
	return out
}

// Unary and Stream are server interceptors that count calls (innermost, so
// that a call refused by an earlier interceptor is not counted).
func (c *Counter) Unary() grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		c.Add(info.FullMethod)
		return h(ctx, req)
	}
}

// Stream counts stream calls.
func (c *Counter) Stream() grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) error {
		c.Add(info.FullMethod)
		return h(srv, ss)
	}
}

// Relay implements relay.v1.RelayService and StatsService.
type Relay struct {
	relayv1.UnimplementedRelayServiceServer
	relayv1.UnimplementedStatsServiceServer
	Counter *Counter
}

// Register adds both services to s.
func (r *Relay) Register(s grpc.ServiceRegistrar) {
	relayv1.RegisterRelayServiceServer(s, r)
	relayv1.RegisterStatsServiceServer(s, r)
}

// Echo returns the payload; x-echo comes back as a header and a trailer.
func (r *Relay) Echo(ctx context.Context, req *relayv1.EchoRequest) (*relayv1.EchoResponse, error) {
	md, _ := metadata.FromIncomingContext(ctx)
	if v := md.Get("x-echo"); len(v) > 0 {
		_ = grpc.SetHeader(ctx, metadata.Pairs("x-echo", v[0]))
		_ = grpc.SetTrailer(ctx, metadata.Pairs("x-echo-trailer", v[0]))
	}
	return &relayv1.EchoResponse{Payload: req.GetPayload()}, nil
}

// Download streams count chunks.
func (r *Relay) Download(req *relayv1.DownloadRequest, s grpc.ServerStreamingServer[relayv1.DownloadResponse]) error {
	for i := range req.GetCount() {
		if err := s.Send(&relayv1.DownloadResponse{Index: i, Data: Chunk(i, int(req.GetSize()))}); err != nil {
			return err
		}
	}
	return nil
}

// Chunk is chunk i of Download: size bytes, each i modulo 256.
func Chunk(i int32, size int) []byte {
	b := make([]byte, size)
	for j := range b {
		b[j] = byte(i)
	}
	return b
}

// Upload hashes what it receives.
func (r *Relay) Upload(s grpc.ClientStreamingServer[relayv1.UploadRequest, relayv1.UploadResponse]) error {
	h := sha256.New()
	var n int32
	for {
		m, err := s.Recv()
		if errors.Is(err, io.EOF) {
			return s.SendAndClose(&relayv1.UploadResponse{Count: n, Sha256: h.Sum(nil)})
		}
		if err != nil {
			return err
		}
		h.Write(m.GetData())
		n++
	}
}

// Chat answers each message in order.
func (r *Relay) Chat(s grpc.BidiStreamingServer[relayv1.ChatRequest, relayv1.ChatResponse]) error {
	for i := int32(0); ; i++ {
		m, err := s.Recv()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		if err := s.Send(&relayv1.ChatResponse{Payload: m.GetPayload(), Index: i}); err != nil {
			return err
		}
	}
}

// Whoami reports the assertion and the metadata names it received.
func (r *Relay) Whoami(ctx context.Context, _ *relayv1.WhoamiRequest) (*relayv1.WhoamiResponse, error) {
	md, _ := metadata.FromIncomingContext(ctx)
	resp := &relayv1.WhoamiResponse{}
	if v := md.Get(assertion.Metadata); len(v) == 1 {
		resp.Assertion = v[0]
	}
	if id, ok := assertion.FromContext(ctx); ok {
		resp.Subject = id.Subject
	}
	for k := range md {
		resp.MetadataNames = append(resp.MetadataNames, k)
	}
	slices.Sort(resp.MetadataNames)
	return resp, nil
}

// Slow waits for its context.
func (r *Relay) Slow(ctx context.Context, _ *relayv1.SlowRequest) (*relayv1.SlowResponse, error) {
	<-ctx.Done()
	return nil, status.FromContextError(ctx.Err()).Err()
}

// Fail returns the status asked for, with an ErrorInfo and a trailer.
func (r *Relay) Fail(ctx context.Context, req *relayv1.FailRequest) (*relayv1.FailResponse, error) {
	_ = grpc.SetTrailer(ctx, metadata.Pairs("x-fail", "yes"))
	st, err := status.New(codes.Code(req.GetCode()), req.GetMessage()).WithDetails(&errdetails.ErrorInfo{
		Reason: "RELAY_FAILED", Domain: "relay.example", Metadata: map[string]string{"asked": req.GetMessage()},
	})
	if err != nil {
		return nil, err
	}
	return nil, st.Err()
}

// Pay returns what it decoded.
func (r *Relay) Pay(_ context.Context, req *relayv1.PayRequest) (*relayv1.PayResponse, error) {
	var total int64
	for _, a := range req.GetAmounts() {
		total += a
	}
	return &relayv1.PayResponse{Amounts: req.GetAmounts(), Total: total, Payee: req.GetPayee(), Labels: req.GetLabels()}, nil
}

// Stats returns the counts.
func (r *Relay) Stats(context.Context, *relayv1.StatsRequest) (*relayv1.StatsResponse, error) {
	return &relayv1.StatsResponse{Calls: r.Counter.Calls()}, nil
}
