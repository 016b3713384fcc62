package interceptor_test

import (
	"bufio"
	"context"
	"crypto"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/stepupgrpc/stepup/dpop"
	"github.com/stepupgrpc/stepup/interceptor"
	policytestv1 "github.com/stepupgrpc/stepup/interceptor/internal/testproto/policytest/v1"
)

// The call benchmarks run their clients in a second process, this test
// binary started again with callClientEnv set, so that the server's
// process CPU time holds the server's work only: no client signing, no
// client-side gRPC. The parent drives it over stdin and stdout, one JSON
// line per message: a callClientConfig, then callCommands, each answered by
// a callReply once its calls are done.
const callClientEnv = "STEPUP_BENCH_CALL_CLIENT"

// TestMain runs the benchmark client when started as one, the tests
// otherwise.
func TestMain(m *testing.M) {
	if os.Getenv(callClientEnv) == "1" {
		if err := runCallClient(os.Stdin, os.Stdout); err != nil {
			fmt.Fprintln(os.Stderr, "call client:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	if os.Getenv(floorEnv) == "1" {
		if err := runFloorResponder(os.Stdin, os.Stdout); err != nil {
			fmt.Fprintln(os.Stderr, "floor responder:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// callClientConfig is what the client process needs: its targets, and the
// DPoP keys and the server's (fixed) clock to sign proofs with.
type callClientConfig struct {
	Authority string
	Clock     int64    // Unix seconds of the servers' clock
	Keys      [][]byte // PKCS #8 DPoP private keys, Targets[].Key indexes them
	Targets   map[string]callTarget
}

// callTarget is one kind of call.
type callTarget struct {
	Addr   string
	Method string
	Scheme string   // "none", "bearer" or "dpop"
	Tokens []string // bearer: Tokens[0]; dpop: Tokens[i] is bound to Keys[i]
	Grant  string   // dpop: a grant held for Authority (bound to Keys[0])
}

type callCommand struct {
	Target  string
	Calls   int
	Callers int
	Latency bool // report p50 and p99
}

type callReply struct {
	Err      string `json:",omitempty"`
	P50, P99 time.Duration
}

// callClient is the parent's handle on a running client process.
type callClient struct {
	in  io.WriteCloser
	out *bufio.Scanner
	enc *json.Encoder
}

// startCallClient starts the client process and sends it cfg.
func startCallClient(tb testing.TB, cfg callClientConfig) *callClient {
	tb.Helper()
	in, out := startHelper(tb, callClientEnv)
	c := &callClient{in: in, out: bufio.NewScanner(out), enc: json.NewEncoder(in)}
	c.out.Buffer(make([]byte, 0, 64<<10), 1<<20)
	if err := c.enc.Encode(cfg); err != nil {
		tb.Fatal(err)
	}
	return c
}

// startHelper starts this test binary again with env set to 1 (TestMain
// then runs the helper it names), and returns its stdin and stdout. It
// stops when its stdin closes, at the end of the test or benchmark.
func startHelper(tb testing.TB, env string) (io.WriteCloser, io.Reader) {
	tb.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), env+"=1")
	cmd.Stderr = os.Stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		tb.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		tb.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = in.Close(); _ = cmd.Wait() })
	return in, out
}

// run makes the client do cmd and waits until it is done.
func (c *callClient) run(cmd callCommand) (callReply, error) {
	var r callReply
	if err := c.enc.Encode(cmd); err != nil {
		return r, err
	}
	if !c.out.Scan() {
		return r, fmt.Errorf("call client gone: %v", c.out.Err())
	}
	if err := json.Unmarshal(c.out.Bytes(), &r); err != nil {
		return r, err
	}
	if r.Err != "" {
		return r, errors.New(r.Err)
	}
	return r, nil
}

// runCallClient is the client process: it dials every target, then makes
// the calls each command asks for.
func runCallClient(stdin io.Reader, stdout io.Writer) error {
	dec := json.NewDecoder(stdin)
	var cfg callClientConfig
	if err := dec.Decode(&cfg); err != nil {
		return err
	}
	now := time.Now
	if cfg.Clock != 0 {
		now = func() time.Time { return time.Unix(cfg.Clock, 0) }
	}
	var keys []crypto.Signer
	for _, der := range cfg.Keys {
		k, err := x509.ParsePKCS8PrivateKey(der)
		if err != nil {
			return err
		}
		keys = append(keys, k.(crypto.Signer))
	}
	targets := map[string][]callConn{}
	for name, t := range cfg.Targets {
		conns, err := dialTarget(cfg.Authority, t, keys, now)
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		targets[name] = conns
	}
	enc := json.NewEncoder(stdout)
	for {
		var cmd callCommand
		if err := dec.Decode(&cmd); err == io.EOF {
			return nil
		} else if err != nil {
			return err
		}
		r := callReply{}
		if conns, ok := targets[cmd.Target]; !ok {
			r.Err = "no target " + cmd.Target
		} else if lat, err := makeCalls(conns, cmd); err != nil {
			r.Err = err.Error()
		} else if len(lat) > 0 {
			slices.Sort(lat)
			r.P50, r.P99 = lat[len(lat)/2], lat[len(lat)*99/100]
		}
		if err := enc.Encode(r); err != nil {
			return err
		}
	}
}

// callConn is a target's connection, its method and the credentials of
// one DPoP key (none for the other schemes).
type callConn struct {
	cc     *grpc.ClientConn
	method string
	opts   []grpc.CallOption
}

// dialTarget returns one callConn per token of t (one per DPoP key), all
// on one connection.
func dialTarget(authority string, t callTarget, keys []crypto.Signer, now func() time.Time) ([]callConn, error) {
	opts := []grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithAuthority(authority)}
	if t.Scheme == "bearer" {
		opts = append(opts, grpc.WithPerRPCCredentials(bearerCreds(t.Tokens[0])))
	}
	cc, err := grpc.NewClient(t.Addr, opts...)
	if err != nil {
		return nil, err
	}
	switch t.Scheme {
	case "none", "bearer":
		return []callConn{{cc: cc, method: t.Method}}, nil
	case "dpop":
	default:
		return nil, fmt.Errorf("unknown scheme %q", t.Scheme)
	}
	conns := make([]callConn, 0, len(t.Tokens))
	for i, tok := range t.Tokens {
		signer, err := dpop.NewSigner(keys[i], dpop.WithClock(now))
		if err != nil {
			return nil, err
		}
		grants := &interceptor.MemoryGrants{}
		if t.Grant != "" && i == 0 {
			grants.KeepGrant(authority, t.Grant, now().Add(time.Hour))
		}
		c, err := interceptor.NewClient(signer, interceptor.StaticToken(tok), interceptor.WithInsecureLocalTransport(),
			interceptor.WithClock(now), interceptor.WithGrantStore(grants))
		if err != nil {
			return nil, err
		}
		conns = append(conns, callConn{cc: cc, method: t.Method, opts: []grpc.CallOption{grpc.PerRPCCredentials(c.PerRPCCredentials())}})
	}
	return conns, nil
}

// makeCalls makes cmd.Calls calls from cmd.Callers goroutines, spreading
// them over the connections (the keys) in turn, and returns the latencies
// when asked.
func makeCalls(conns []callConn, cmd callCommand) ([]time.Duration, error) {
	var next atomic.Int64
	var lat []time.Duration
	if cmd.Latency {
		lat = make([]time.Duration, cmd.Calls)
	}
	errs := make(chan error, cmd.Callers)
	var wg sync.WaitGroup
	for range max(cmd.Callers, 1) {
		wg.Go(func() {
			req, resp := &policytestv1.PlainRequest{Text: "hi"}, &policytestv1.PlainResponse{}
			for {
				i := int(next.Add(1) - 1)
				if i >= cmd.Calls {
					return
				}
				c := conns[i%len(conns)]
				t0 := time.Now()
				if err := c.cc.Invoke(context.Background(), c.method, req, resp, c.opts...); err != nil {
					errs <- err
					next.Store(int64(cmd.Calls))
					return
				}
				if lat != nil {
					lat[i] = time.Since(t0)
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	return lat, <-errs
}
