package interceptor_test

import (
	"context"
	"crypto/rand"
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"

	"github.com/stepupgrpc/stepup/challenge/redisstore"
	"github.com/stepupgrpc/stepup/dpop"
	policytestv1 "github.com/stepupgrpc/stepup/interceptor/internal/testproto/policytest/v1"
	"github.com/stepupgrpc/stepup/internal/cputime"
)

// The scale benchmarks show how a DPoP call's cost grows with the work:
// more concurrent callers, more distinct client keys. They are heavy
// (BenchmarkScaleKeys makes 100 000 keys and tokens) and run only when
// selected with -bench; make bench leaves them out.

// scaleCallers are the concurrent callers of BenchmarkScaleCallers.
var scaleCallers = []int{1, 4, 16, 64, 256}

// BenchmarkScaleCallers makes the DPoP call of BenchmarkCalls (c) from the
// client process with 1 to 256 concurrent callers, the replay store in
// process and, when STEPUP_REDIS_ADDR names a Redis, in Redis. Reports
// calls/s (wall time: both processes share the machine, so this is the
// machine's throughput, client signing included, and it moves with other
// load), the server's CPU per call, for Redis the Redis server's own CPU
// per call apart (redis-ns/call, from INFO cpu), and the client's p50 and
// p99 latency, and for Redis and the floor the inserts per round trip
// (inserts/batch). ns/op is wall time per call. The stores alternate at
// each concurrency: compare them as ratios within a count. The floor
// (floorStore), run when STEPUP_BENCH_STORES names it, is the least a
// store across the network costs the server with the Redis store's
// batching.
func BenchmarkScaleCallers(b *testing.B) {
	e := liveEnv(b)
	targets := map[string]callTarget{
		"memory": {Addr: serveBench(b, grpc.UnaryInterceptor(e.guard.UnaryServerInterceptor())), Method: mPlain, Scheme: "dpop", Tokens: []string{e.boundToken(tokenOpts{})}},
	}
	var redisClient *redis.Client
	if addr := os.Getenv("STEPUP_REDIS_ADDR"); addr != "" {
		rc := redis.NewClient(&redis.Options{Addr: addr, ContextTimeoutEnabled: true, DisableIdentity: true})
		b.Cleanup(func() { _ = rc.Close() })
		redisClient = rc
		prefix := make([]byte, 8)
		_, _ = rand.Read(prefix)
		rs, err := redisstore.New(rc, redisstore.WithPrefix("stepup-bench-"+hex.EncodeToString(prefix)+":"))
		if err != nil {
			b.Fatal(err)
		}
		er := liveEnv(b, dpop.WithReplayStore(rs))
		er.signer = e.signer // the key the client process holds
		targets["redis"] = callTarget{Addr: serveBench(b, grpc.UnaryInterceptor(er.guard.UnaryServerInterceptor())), Method: mPlain, Scheme: "dpop", Tokens: []string{er.boundToken(tokenOpts{})}}
	}
	var floor *floorStore
	if slices.Contains(benchStores, "floor") {
		floor = newFloorStore(b, startFloorResponder(b))
		ef := liveEnv(b, dpop.WithReplayStore(floor))
		ef.signer = e.signer
		targets["floor"] = callTarget{Addr: serveBench(b, grpc.UnaryInterceptor(ef.guard.UnaryServerInterceptor())), Method: mPlain, Scheme: "dpop", Tokens: []string{ef.boundToken(tokenOpts{})}}
	}
	key, err := x509.MarshalPKCS8PrivateKey(e.key)
	if err != nil {
		b.Fatal(err)
	}
	client := startCallClient(b, callClientConfig{Authority: "api.example", Keys: [][]byte{key}, Targets: targets})
	// The two stores alternate at each concurrency, so that each pair of
	// figures comes from the same few seconds of the machine's load.
	for _, n := range scaleCallers {
		for _, store := range benchStores {
			b.Run("callers="+strconv.Itoa(n)+"/"+store, func(b *testing.B) {
				if _, ok := targets[store]; !ok {
					b.Skip("no store " + store + " (redis needs STEPUP_REDIS_ADDR)")
				}
				if _, err := client.run(callCommand{Target: store, Calls: n, Callers: n}); err != nil { // warm up
					b.Fatal(err)
				}
				b.ResetTimer()
				r0, n0 := redisCPU(b, redisClient, store), batches(b, redisClient, floor, store)
				c0, t0 := cputime.Process(), time.Now()
				r, err := client.run(callCommand{Target: store, Calls: b.N, Callers: n, Latency: true})
				wall, cpu := time.Since(t0), cputime.Process()-c0
				if err != nil {
					b.Fatal(err)
				}
				b.ReportMetric(float64(b.N)/wall.Seconds(), "calls/s")
				b.ReportMetric(float64(cpu.Nanoseconds())/float64(b.N), "server-ns/call")
				if redisClient != nil && store != "memory" && store != "floor" {
					b.ReportMetric(float64((redisCPU(b, redisClient, store)-r0).Nanoseconds())/float64(b.N), "redis-ns/call")
				}
				if n := batches(b, redisClient, floor, store) - n0; n > 0 {
					b.ReportMetric(float64(b.N)/float64(n), "inserts/batch")
				}
				b.ReportMetric(float64(r.P50.Nanoseconds())/1e3, "p50-µs")
				b.ReportMetric(float64(r.P99.Nanoseconds())/1e3, "p99-µs")
			})
		}
	}
}

// batches is the number of round trips a store has made so far: for
// Redis, the script calls it ran (INFO commandstats, EVALSHA and EVAL;
// one per batch on one Redis), for the floor its batches, 0 for the
// in-process store.
func batches(b *testing.B, rc *redis.Client, floor *floorStore, store string) int64 {
	switch {
	case store == "floor":
		return floor.batches.Load()
	case rc == nil || store == "memory":
		return 0
	}
	calls := func(v string) (float64, error) { // calls=N,usec=...
		n, _, _ := strings.Cut(strings.TrimPrefix(v, "calls="), ",")
		return strconv.ParseFloat(n, 64)
	}
	return int64(redisInfo(b, rc, "commandstats", calls, "cmdstat_evalsha", "cmdstat_eval"))
}

// redisCPU is the Redis server's own CPU time so far (INFO cpu: user plus
// system, of every thread), or 0 for the in-process store and the floor.
// It is not in the benchmark process's CPU time.
func redisCPU(b *testing.B, rc *redis.Client, store string) time.Duration {
	if rc == nil || store == "memory" || store == "floor" {
		return 0
	}
	seconds := func(v string) (float64, error) { return strconv.ParseFloat(v, 64) }
	return time.Duration(redisInfo(b, rc, "cpu", seconds, "used_cpu_sys", "used_cpu_user") * 1e9)
}

// redisInfo is the sum of the fields keys of an INFO section, each read
// by value.
func redisInfo(b *testing.B, rc *redis.Client, section string, value func(string) (float64, error), keys ...string) float64 {
	info, err := rc.Info(context.Background(), section).Result()
	if err != nil {
		b.Fatal(err)
	}
	var total float64
	for line := range strings.Lines(info) {
		k, v, ok := strings.Cut(strings.TrimSpace(line), ":")
		if ok && slices.Contains(keys, k) {
			f, err := value(v)
			if err != nil {
				b.Fatalf("INFO %s: %s: %v", section, line, err)
			}
			total += f
		}
	}
	return total
}

// benchStores are the stores of BenchmarkScaleCallers, in order at each
// concurrency (STEPUP_BENCH_STORES, comma-separated, overrides).
var benchStores = func() []string {
	if v := os.Getenv("STEPUP_BENCH_STORES"); v != "" {
		return strings.Split(v, ",")
	}
	return []string{"memory", "redis"}
}()

// scaleKeys are the distinct client keys of BenchmarkScaleKeys; "new" makes
// every call with a key no cache has seen.
var scaleKeys = []int{1, 1_000, 10_000, 100_000, 1_000_000}

// BenchmarkScaleKeys calls the Guard's unary interceptor directly (no
// transport), round robin over K distinct DPoP keys, each with its own
// bound token, after one call per key. Reports the CPU time per call (of
// this goroutine's locked thread), the allocations, and the heap the
// Guard holds per 1000 keys (its verified-token cache, its DPoP key cache
// and the replay store, measured after the warm-up calls and a GC). The
// Guard's bounds: 10 000 verified tokens (WithTokenCacheSize), 1024 parsed
// proof keys (dpop.WithKeyCacheSize), 100 000 replay entries
// (dpop.DefaultReplayStoreSize). keys=1000000 is ten times the largest
// bound; keys=new gives every call a key never seen, the regime of any key
// count past the bounds.
func BenchmarkScaleKeys(b *testing.B) {
	e := liveEnv(b)
	pool := &keyPool{e: e}
	warmed := 0
	perKey := map[int]float64{} // heap per key, measured at the first run of each count
	next := map[int]int{}       // the next key of each count's round robin
	for _, k := range append(scaleKeys, 0) {
		name := "keys=" + strconv.Itoa(k)
		if k == 0 {
			name = "keys=new"
		}
		b.Run(name, func(b *testing.B) {
			b.StopTimer()
			// One call per key not yet called: the caches and the store
			// fill as in service. The heap they hold is what these calls
			// left in the Guard (the keys and tokens are made before).
			pool.grow(b, k)
			if n := k - warmed; n >= 100 {
				h0 := liveHeap()
				for i := warmed; i < k; i++ {
					pool.call(b, i)
				}
				perKey[k] = (float64(liveHeap()) - float64(h0)) / float64(n) // negative when bounded state churned
			} else {
				for i := warmed; i < k; i++ {
					pool.call(b, i)
				}
			}
			warmed = max(warmed, k)
			if v, ok := perKey[k]; ok {
				b.ReportMetric(v*1000/1024, "KiB/1k-keys")
			}
			ctxs := make([]context.Context, b.N)
			keys := make([]int, b.N)
			for i := range ctxs {
				// Round robin from where the last run stopped: a key comes
				// back only after the K-1 others.
				keys[i] = (next[k] + i) % max(k, 1)
				if k == 0 {
					keys[i] = warmed + i
				}
			}
			next[k] += b.N
			pool.grow(b, max(warmed, keys[b.N-1]+1))
			for i := range ctxs {
				ctxs[i] = pool.ctx(b, keys[i])
			}
			if k == 0 {
				warmed = keys[b.N-1] + 1
			}
			unary := e.guard.UnaryServerInterceptor()
			info := &grpc.UnaryServerInfo{FullMethod: mPlain}
			req := &policytestv1.PlainRequest{}
			ok := func(context.Context, any) (any, error) { return nil, nil }
			runtime.GC()
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			b.ReportAllocs()
			b.StartTimer()
			c0 := cputime.Thread()
			for i := range b.N {
				if _, err := unary(ctxs[i], req, info, ok); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64((cputime.Thread()-c0).Nanoseconds())/float64(b.N), "cpu-ns/call")
		})
	}
}

// liveHeap returns the bytes of live heap objects after a collection.
func liveHeap() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// keyPool holds client keys, their signers and their bound tokens.
type keyPool struct {
	e       *env
	signers []*dpop.Signer
	tokens  []string
}

// grow makes keys until there are n, on every core.
func (p *keyPool) grow(tb testing.TB, n int) {
	tb.Helper()
	from := len(p.signers)
	if n <= from {
		return
	}
	p.signers = append(p.signers, make([]*dpop.Signer, n-from)...)
	p.tokens = append(p.tokens, make([]string, n-from)...)
	var wg sync.WaitGroup
	workers := runtime.GOMAXPROCS(0)
	for w := range workers {
		wg.Go(func() {
			for i := from + w; i < n; i += workers {
				_, s, err := newP256Signer()
				if err != nil {
					panic(err)
				}
				p.signers[i] = s
				p.tokens[i] = p.e.issuer.mint(tb, p.e.clock.Now(), tokenOpts{JKT: s.Thumbprint(), Scope: "guarded", Subject: "user-" + strconv.Itoa(i)})
				// A first signature: crypto/ecdsa keeps a derived form of
				// each private key it signs with for the key's lifetime,
				// which is the client's memory, not the Guard's, and must
				// not be counted in the heap the warm-up calls leave.
				if _, err := s.Proof("POST", "https://api.example"+mPlain, p.tokens[i]); err != nil {
					panic(err)
				}
			}
		})
	}
	wg.Wait()
}

// ctx is the incoming context of a call by key i with a fresh proof.
func (p *keyPool) ctx(tb testing.TB, i int) context.Context {
	proof, err := p.signers[i].Proof("POST", "https://api.example"+mPlain, p.tokens[i])
	if err != nil {
		tb.Fatal(err)
	}
	md := metadata.Pairs("authorization", "DPoP "+p.tokens[i], "dpop", proof, ":authority", "api.example")
	return metadata.NewIncomingContext(context.Background(), md)
}

// call makes one allowed call by key i.
func (p *keyPool) call(tb testing.TB, i int) {
	_, err := p.e.guard.UnaryServerInterceptor()(p.ctx(tb, i), &policytestv1.PlainRequest{}, &grpc.UnaryServerInfo{FullMethod: mPlain},
		func(context.Context, any) (any, error) { return nil, nil })
	if err != nil {
		tb.Fatal(fmt.Errorf("key %d: %w", i, err))
	}
}
