package interceptor_test

import (
	"context"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/stepupgrpc/stepup/interceptor"
	policytestv1 "github.com/stepupgrpc/stepup/interceptor/internal/testproto/policytest/v1"
	"github.com/stepupgrpc/stepup/internal/cputime"
	"github.com/stepupgrpc/stepup/testing/testkit"
)

// floodServer's Chat answers the first message with 32 KiB messages until
// a send fails, then reports how many it sent, the error, and when (by the
// test's clock) the failed send began.
type floodServer struct {
	*testServer
	now   func() time.Time
	sent  atomic.Int64
	ended chan floodEnd
}

type floodEnd struct {
	sent    int
	err     error
	started time.Time
}

func (s *floodServer) Chat(ss grpc.BidiStreamingServer[policytestv1.PlainRequest, policytestv1.PlainResponse]) error {
	s.count("Chat")
	if _, err := ss.Recv(); err != nil {
		return err
	}
	msg := &policytestv1.PlainResponse{Text: strings.Repeat("x", 32<<10)}
	for i := 0; ; i++ {
		started := s.now()
		if err := ss.Send(msg); err != nil {
			s.ended <- floodEnd{sent: i, err: err, started: started}
			return err
		}
		s.sent.Add(1)
	}
}

// sendersBlocked counts the goroutines blocked on an HTTP/2 stream's flow
// control in grpc-go's transport (a server send waiting for a client that
// does not read).
func sendersBlocked() int {
	buf := make([]byte, 4<<20)
	return strings.Count(string(buf[:runtime.Stack(buf, true)]), "transport.(*writeQuota).get(")
}

// sendersRunning counts the goroutines of bounded streams' senders
// (interceptor's sender.run).
func sendersRunning() int {
	buf := make([]byte, 4<<20)
	return strings.Count(string(buf[:runtime.Stack(buf, true)]), "interceptor.(*sender).run(")
}

// waitFor polls cond (a condition of the transport the test cannot be
// told of) until it holds, failing after ten seconds.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestStalledStreamEndsWithItsToken: a client opens streams, makes their
// handlers send, and stops reading. Each handler blocks in Send on flow
// control. When the streams' access token expires, the Guard ends them:
// each handler's Send returns the Guard's refusal, the handler returns,
// the refusal is audited (STREAM_TOKEN_EXPIRED), and no goroutine stays
// blocked on the silent client. Before, the handlers stayed in Send until
// the client read or went away, past the token's expiry (400 such streams
// held 418 goroutines).
func TestStalledStreamEndsWithItsToken(t *testing.T) {
	const streams = 8
	e := newEnv(t, envOpts{guardOpts: []interceptor.Option{interceptor.WithStreamRecheck(2 * time.Millisecond)}})
	flood := &floodServer{testServer: &testServer{}, now: e.clock.Now, ended: make(chan floodEnd, streams)}
	srv := grpc.NewServer(grpc.UnaryInterceptor(e.guard.UnaryServerInterceptor()), grpc.StreamInterceptor(e.guard.StreamServerInterceptor()))
	policytestv1.RegisterGuardedServiceServer(srv, flood)
	h := &env{t: t, clock: e.clock, signer: e.signer, key: e.key}
	h.serve(srv, false)
	token := e.boundToken(tokenOpts{Expiry: e.clock.Now().Add(2 * time.Minute)})
	// Fixed 64 KiB windows (no BDP growth): the client's transport takes
	// 64 KiB of a stream it does not read, then the server's sends wait.
	c := policytestv1.NewGuardedServiceClient(h.conn(append(e.signing(token),
		grpc.WithInitialWindowSize(64<<10), grpc.WithInitialConnWindowSize(64<<10))...))

	before := sendersBlocked()
	for i := range streams {
		s, err := c.Chat(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Send(&policytestv1.PlainRequest{Text: "send me everything"}); err != nil {
			t.Fatalf("stream %d: %v", i, err)
		}
		// ... and never Recv.
	}
	// Every handler blocked for good: as many sends waiting on flow control
	// as streams, and no message sent for a while (a send can wait a moment
	// for the transport to write the one before, then go on).
	stable, last := 0, int64(-1)
	waitFor(t, "every handler is blocked in Send", func() bool {
		if n := flood.sent.Load(); sendersBlocked()-before >= streams && n == last {
			stable++
		} else {
			stable, last = 0, n
		}
		return stable >= 10
	})

	expiry := e.clock.Now()
	e.clock.Advance(3 * time.Minute) // past the token's exp and the 30 s leeway
	var total int
	for i := range streams {
		select {
		case end := <-flood.ended:
			total += end.sent
			if status.Code(end.err) != codes.Unauthenticated || interceptor.ReasonFromError(end.err) != interceptor.WireInvalidToken {
				t.Errorf("a handler's Send ended with %v, want the Guard's refusal (UNAUTHENTICATED, %s)", end.err, interceptor.WireInvalidToken)
			}
			if end.started.After(expiry) {
				t.Errorf("a handler's last Send began after the token expired (it was not blocked, the test did not wait long enough)")
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("%d of %d handlers still blocked in Send after the token expired", streams-i, streams)
		}
	}
	waitFor(t, "no send waits on the silent client", func() bool { return sendersBlocked() <= before })
	waitFor(t, "every stream's sender has ended", func() bool { return sendersRunning() == 0 })
	if total > streams*8 {
		t.Errorf("the handlers sent %d messages of 32 KiB in all: the client did read", total)
	}
	ended := 0
	for _, ev := range e.audit.all() {
		if ev.Stream && ev.Decision == interceptor.DecisionDeny && ev.Reason == interceptor.ReasonStreamTokenExpired {
			ended++
		}
	}
	if ended != streams {
		t.Errorf("%d streams audited as ended (%s), want %d", ended, interceptor.ReasonStreamTokenExpired, streams)
	}
	var ran atomic.Int64
	ran.Store(int64(flood.handled("Chat")))
	if ran.Load() != streams {
		t.Errorf("%d handlers ran, want %d", ran.Load(), streams)
	}
}

// TestTransportLimits: a server with interceptor.TransportLimits advertises
// its stream and metadata bounds, and its transport refuses a call with
// 1 MiB of garbage metadata before the Guard sees it (no audit event, no
// handler), from a client that ignores what the server advertises. The
// control, grpc-go's defaults: the same call is read whole (16 MiB are
// allowed) and reaches the Guard, which refuses it. A call of 1 KiB of
// garbage reaches the Guard under both.
func TestTransportLimits(t *testing.T) {
	const mib = 1 << 20
	for _, c := range []struct {
		name       string
		opts       []grpc.ServerOption
		limitsSent bool
	}{{"TransportLimits", interceptor.TransportLimits(), true}, {"grpc-go defaults", nil, false}} {
		t.Run(c.name, func(t *testing.T) {
			e := newEnv(t, envOpts{})
			srv := grpc.NewServer(append(c.opts, grpc.UnaryInterceptor(e.guard.UnaryServerInterceptor()),
				grpc.StreamInterceptor(e.guard.StreamServerInterceptor()))...)
			policytestv1.RegisterGuardedServiceServer(srv, e.server)
			h := &env{t: t}
			h.serve(srv, true)

			small, err := testkit.RawCall(h.addr, testkit.RawRequest(t, mPlain, 1<<10))
			if err != nil {
				t.Fatal(err)
			}
			if small.Outcome != "grpc-status 16" || len(e.audit.all()) != 1 || e.audit.last(t).Reason != interceptor.ReasonTokenMissing {
				t.Fatalf("1 KiB of metadata: %s, audit %+v; want the Guard's refusal (TOKEN_MISSING)", small.Outcome, e.audit.all())
			}
			if got := small.Settings[http2.SettingMaxConcurrentStreams]; c.limitsSent != (got == interceptor.DefaultMaxConcurrentStreams) {
				t.Errorf("SETTINGS_MAX_CONCURRENT_STREAMS %d", got)
			}
			if got := small.Settings[http2.SettingMaxHeaderListSize]; c.limitsSent != (got == interceptor.DefaultMaxHeaderListSize) {
				t.Errorf("SETTINGS_MAX_HEADER_LIST_SIZE %d", got)
			}

			big, err := testkit.RawCall(h.addr, testkit.RawRequest(t, mPlain, mib))
			if err != nil {
				t.Fatal(err)
			}
			audited := len(e.audit.all()) - 1
			t.Logf("1 MiB of metadata: %s, %d audit events", big.Outcome, audited)
			if c.limitsSent {
				if strings.HasPrefix(big.Outcome, "grpc-status") || audited != 0 {
					t.Fatalf("1 MiB of metadata: %s with %d audit events; want the transport to refuse it before the Guard", big.Outcome, audited)
				}
			} else if big.Outcome != "grpc-status 16" || audited != 1 {
				t.Fatalf("control: 1 MiB of metadata under grpc-go's defaults: %s with %d audit events; want the Guard's refusal", big.Outcome, audited)
			}
			if n := e.server.handled(mPlain); n != 0 {
				t.Errorf("the handler ran %d times", n)
			}
		})
	}
}

// BenchmarkOversizedMetadata measures the server CPU that one call with
// 1 MiB of garbage metadata costs before it is refused, each on a new
// connection to a Guard-protected server on loopback TCP: under grpc-go's
// defaults (the metadata is read, decoded and refused by the Guard,
// TOKEN_MISSING) and with interceptor.TransportLimits (refused by the
// transport past 64 KiB); the baseline is a call with 1 KiB, which the
// Guard refuses (the connection's own cost). The client (testkit.RawCall
// of a request encoded once, on a goroutine locked to its thread) is taken
// out: server-cpu-ms/call is the process's CPU time less the client
// thread's, per call, garbage collection included.
func BenchmarkOversizedMetadata(b *testing.B) {
	if !cputime.Available {
		b.Skip("needs the process CPU clock (Linux)")
	}
	for _, c := range []struct {
		name    string
		opts    []grpc.ServerOption
		garbage int
	}{
		{"grpc-go-defaults/1MiB", nil, 1 << 20},
		{"TransportLimits/1MiB", interceptor.TransportLimits(), 1 << 20},
		{"baseline/1KiB", interceptor.TransportLimits(), 1 << 10}, // a new connection and the Guard's refusal
	} {
		b.Run(c.name, func(b *testing.B) {
			e := newEnv(b, envOpts{guardOpts: []interceptor.Option{discardAudit()}})
			srv := grpc.NewServer(append(c.opts, grpc.UnaryInterceptor(e.guard.UnaryServerInterceptor()))...)
			policytestv1.RegisterGuardedServiceServer(srv, e.server)
			h := &env{t: b}
			h.serve(srv, true)
			req := testkit.RawRequest(b, mPlain, c.garbage)
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			var client time.Duration
			p0 := cputime.Process()
			for b.Loop() {
				t0 := cputime.Thread()
				if _, err := testkit.RawCall(h.addr, req); err != nil {
					b.Fatal(err)
				}
				client += cputime.Thread() - t0
			}
			server := cputime.Process() - p0 - client
			b.ReportMetric(float64(server.Nanoseconds())/1e6/float64(b.N), "server-cpu-ms/call")
			b.ReportMetric(float64(client.Nanoseconds())/1e6/float64(b.N), "client-cpu-ms/call")
		})
	}
}
