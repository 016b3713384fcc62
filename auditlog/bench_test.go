package auditlog_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stepupgrpc/stepup/auditlog"
	"github.com/stepupgrpc/stepup/internal/cputime"
)

// BenchmarkAudit measures what a record costs: Audit on the caller's
// goroutine, and the writer's work (encoding, hashing, writing to a
// file), per record; checkpoints (a signature and an fsync per 1000
// records by default) are left out. Run with -cpu 1 and 2.
func BenchmarkAudit(b *testing.B) {
	for _, d := range []time.Duration{0, auditlog.DefaultBatchDelay} {
		b.Run("delay="+d.String(), func(b *testing.B) { benchmarkAudit(b, auditlog.WithBatchDelay(d)) })
	}
}

func benchmarkAudit(b *testing.B, opts ...auditlog.Option) {
	key, _ := newKey(b, auditlog.AlgEd25519, "bench-1")
	s, _ := openSink(b, b.TempDir(), key, append(opts, auditlog.WithCheckpointEvery(1<<30), auditlog.WithCheckpointInterval(0),
		auditlog.WithQueueSize(1024))...) // a queue that stays small, as under a steady load
	defer s.Close()
	ev := event(1)
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	c0 := cputime.Process()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			s.Audit(ctx, ev)
		}
	})
	if err := s.Flush(); err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(cputime.Process()-c0)/float64(b.N), "cpu-ns/record")
}

// BenchmarkAuditCall measures Audit alone: the writer is kept from
// draining the queue until the loop ends (its cost is BenchmarkAudit's
// minus this).
func BenchmarkAuditCall(b *testing.B) {
	key, _ := newKey(b, auditlog.AlgEd25519, "bench-1")
	s, _ := openSink(b, b.TempDir(), key, auditlog.WithQueueSize(b.N+1))
	defer s.Close()
	ev := event(1)
	ctx := context.Background()
	var once sync.Once
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		s.Audit(ctx, ev)
	}
	b.StopTimer()
	once.Do(func() { _ = s.Flush() })
}
