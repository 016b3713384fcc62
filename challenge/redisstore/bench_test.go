package redisstore_test

import (
	"context"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stepupgrpc/stepup/challenge"
	"github.com/stepupgrpc/stepup/challenge/redisstore"
	"github.com/stepupgrpc/stepup/dpop"
	bankv1 "github.com/stepupgrpc/stepup/examples/bank/v1"
	"github.com/stepupgrpc/stepup/interceptor"
	"github.com/stepupgrpc/stepup/internal/cputime"
)

// The benchmarks run on loopback, with redis-server on the same machine.
//
// BenchmarkInsert measures one insert-if-absent (SET NX PXAT): serial, its
// latency (ns/op); parallel, the inserts/s of 16 goroutines; both, the
// benchmark process's CPU per insert (cpu-ns/insert: the store and its
// Redis client, not the Redis server). The in-process
// dpop.MemoryReplayStore is the reference.
//
// BenchmarkDPoPCall measures the calls/s of one unary RPC of the example
// bank (GetBalance: a DPoP-bound token and a fresh proof per call, verified
// in full with its replay insert) with the replay store in process and in
// Redis, with one caller and with 16 concurrent callers.

const benchCallers = 16

func BenchmarkInsert(b *testing.B) {
	var seq atomic.Int64
	key := func() string { return "bench:" + strconv.FormatInt(seq.Add(1), 10) }
	stores := []struct {
		name string
		new  func(b *testing.B) dpop.ReplayStore
	}{
		{"memory", func(b *testing.B) dpop.ReplayStore {
			s, err := dpop.NewMemoryReplayStore(dpop.DefaultReplayStoreSize, nil)
			if err != nil {
				b.Fatal(err)
			}
			return s
		}},
		{"redis", func(b *testing.B) dpop.ReplayStore {
			s, _, _ := sharedStore(b)
			return s
		}},
	}
	for _, st := range stores {
		b.Run(st.name+"/serial", func(b *testing.B) {
			s := st.new(b)
			ctx := context.Background()
			b.ReportAllocs()
			c0 := cputime.Process()
			for b.Loop() {
				now := time.Now()
				if err := s.Insert(ctx, key(), now, now.Add(10*time.Second)); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64((cputime.Process()-c0).Nanoseconds())/float64(b.N), "cpu-ns/insert")
		})
		b.Run(st.name+"/parallel", func(b *testing.B) {
			s := st.new(b)
			ctx := context.Background()
			b.ReportAllocs()
			b.SetParallelism((benchCallers + 1) / 2) // ×GOMAXPROCS(2) goroutines
			b.ResetTimer()
			c0 := cputime.Process()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					now := time.Now()
					if err := s.Insert(ctx, key(), now, now.Add(10*time.Second)); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "inserts/s")
			b.ReportMetric(float64((cputime.Process()-c0).Nanoseconds())/float64(b.N), "cpu-ns/insert")
		})
	}
}

func BenchmarkDPoPCall(b *testing.B) {
	stores := []struct {
		name string
		new  func(b *testing.B) challenge.Store
	}{
		{"memory", func(b *testing.B) challenge.Store {
			s, err := challenge.NewMemoryStore(challenge.DefaultStoreSize, nil)
			if err != nil {
				b.Fatal(err)
			}
			return s
		}},
		{"redis", func(b *testing.B) challenge.Store {
			s, _, _ := sharedStore(b)
			return s
		}},
	}
	req := &bankv1.GetBalanceRequest{AccountId: "alice-checking"}
	for _, callers := range []int{1, benchCallers} {
		for _, st := range stores {
			b.Run(st.name+"/callers="+strconv.Itoa(callers), func(b *testing.B) {
				s := st.new(b)
				f := newFleet(b, fleetOpts{
					replicas:    1,
					dpopStore:   func(int) dpop.ReplayStore { return s },
					stepUpStore: func(int) challenge.Store { return s },
					realClock:   true,
					noAudit:     true,
				})
				c, err := interceptor.NewClient(f.signer, interceptor.StaticToken(f.token), interceptor.WithInsecureLocalTransport())
				if err != nil {
					b.Fatal(err)
				}
				bank := bankv1.NewBankServiceClient(dial(b, f.replicas[0].addr, c.DialOptions()...))
				call := func() error {
					_, err := bank.GetBalance(context.Background(), req)
					return err
				}
				if err := call(); err != nil { // warm up: connection, caches
					b.Fatal(err)
				}
				b.ReportAllocs()
				if callers == 1 {
					for b.Loop() {
						if err := call(); err != nil {
							b.Fatal(err)
						}
					}
				} else {
					b.SetParallelism((callers + 1) / 2) // ×GOMAXPROCS(2) goroutines
					b.ResetTimer()
					b.RunParallel(func(pb *testing.PB) {
						for pb.Next() {
							if err := call(); err != nil {
								b.Error(err)
								return
							}
						}
					})
				}
				b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "calls/s")
			})
		}
	}
}

// BenchmarkDurableInsert: the cost of WithDurableWrites, on the test
// cluster and the Sentinel deployment: Insert without and with WAIT,
// interleaved in alternating rounds (one key per insert).
func BenchmarkDurableInsert(b *testing.B) {
	for _, d := range deployments() {
		b.Run(d.name, func(b *testing.B) {
			async, _ := newDeploymentStore(b, d)
			durable, _ := newDeploymentStore(b, d, redisstore.WithDurableWrites(1, 250*time.Millisecond))
			stores := []*redisstore.Store{async, durable}
			var spent [2]time.Duration
			const round = 50
			ctx := context.Background()
			exp := time.Now().Add(time.Minute)
			b.ResetTimer()
			for i := 0; i < b.N; i += round {
				for j := range 2 {
					k := (i/round + j) % 2 // alternate which goes first
					start := time.Now()
					for r := range round {
						if err := stores[k].Insert(ctx, "b:"+strconv.Itoa(k)+":"+strconv.Itoa(i+r), exp, exp); err != nil {
							b.Fatal(err)
						}
					}
					spent[k] += time.Since(start)
				}
			}
			n := float64((b.N + round - 1) / round * round)
			b.ReportMetric(float64(spent[0].Nanoseconds())/n, "async-ns/insert")
			b.ReportMetric(float64(spent[1].Nanoseconds())/n, "durable-ns/insert")
			b.ReportMetric(float64(spent[1])/float64(spent[0]), "durable/async")
		})
	}
}

// BenchmarkRevocationCall: the example bank's DPoP call (GetBalance) on the
// Redis store with and without WithTokenRevocationFrom (one more store read
// per call: the subject's token and key revocations in one script), the
// two replicas' calls alternated in one loop, one caller.
func BenchmarkRevocationCall(b *testing.B) {
	s, _, _ := sharedStore(b)
	req := &bankv1.GetBalanceRequest{AccountId: "alice-checking"}
	calls := make([]func() error, 2)
	rev, err := challenge.NewRevocations(s, nil)
	if err != nil {
		b.Fatal(err)
	}
	for i, opts := range [][]interceptor.Option{nil, {interceptor.WithTokenRevocationFrom(rev)}} {
		f := newFleet(b, fleetOpts{
			replicas:    1,
			dpopStore:   func(int) dpop.ReplayStore { return s },
			stepUpStore: func(int) challenge.Store { return s },
			realClock:   true,
			noAudit:     true,
			guardOpts:   opts,
		})
		c, err := interceptor.NewClient(f.signer, interceptor.StaticToken(f.token), interceptor.WithInsecureLocalTransport())
		if err != nil {
			b.Fatal(err)
		}
		bank := bankv1.NewBankServiceClient(dial(b, f.replicas[0].addr, c.DialOptions()...))
		calls[i] = func() error { _, err := bank.GetBalance(context.Background(), req); return err }
		if err := calls[i](); err != nil {
			b.Fatal(err)
		}
	}
	var spent [2]time.Duration
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for j := range 2 {
			k := (i + j) % 2 // alternate which goes first
			t0 := time.Now()
			if err := calls[k](); err != nil {
				b.Fatal(err)
			}
			spent[k] += time.Since(t0)
		}
	}
	b.ReportMetric(float64(spent[1])/float64(spent[0]), "revocation/none")
}
