package metrics

import (
	"context"
	"errors"
	"net"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
)

// ReplayStore is what RegisterReplayStore reads of an in-process replay
// store (*dpop.MemoryReplayStore, and the replay half of *challenge.MemoryStore
// through its Len and ReplayFloor).
type ReplayStore interface {
	// Len is the number of entries held.
	Len() int
	// Floor is the fail-closed floor: proofs issued before it are refused,
	// because an entry that could still have been replayed was evicted.
	// The zero Time while nothing live was evicted.
	Floor() time.Time
}

// RegisterReplayStore registers gauges of an in-process replay store, read
// at scrape time: stepup_replay_store_entries,
// stepup_replay_store_evictions_total (when the store counts them, as
// *dpop.MemoryReplayStore does) and stepup_replay_store_floor_age_seconds (how far behind now the fail-closed
// floor is; 0 while nothing live was evicted: a small positive value means
// the store is too small for the traffic, or is being flooded).
func RegisterReplayStore(reg prometheus.Registerer, s ReplayStore, now func() time.Time) error {
	if now == nil {
		now = time.Now
	}
	entries := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Namespace: "stepup", Name: "replay_store_entries", Help: "Entries held by the in-process replay store.",
	}, func() float64 { return float64(s.Len()) })
	floor := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Namespace: "stepup", Name: "replay_store_floor_age_seconds",
		Help: "How far behind now the replay store's fail-closed floor is (0: nothing live evicted). Proofs issued before the floor are refused (DPOP_REPLAY_WINDOW).",
	}, func() float64 {
		f := s.Floor()
		if f.IsZero() {
			return 0
		}
		return now().Sub(f).Seconds()
	})
	collectors := []prometheus.Collector{entries, floor}
	if ev, ok := s.(interface{ Evictions() uint64 }); ok {
		collectors = append(collectors, prometheus.NewCounterFunc(prometheus.CounterOpts{
			Namespace: "stepup", Name: "replay_store_evictions_total",
			Help: "Entries the replay store evicted before they expired; each raised the fail-closed floor.",
		}, func() float64 { return float64(ev.Evictions()) }))
	}
	for _, c := range collectors {
		if err := reg.Register(c); err != nil {
			return err
		}
	}
	return nil
}

// LossReporter is what RegisterStoreLosses reads of a shared store
// (*redisstore.Store): how many times it found that Redis had lost its data.
type LossReporter interface {
	Losses() uint64
}

// RegisterStoreLosses registers stepup_store_data_losses_total, read at
// scrape time: how many times the shared store found that Redis had lost
// its data (an epoch record gone or replaced). Each raised a floor: proofs,
// answers and TOTP codes issued before it are refused (DPOP_REPLAY_WINDOW,
// STEPUP_REPLAY_WINDOW), and counters and revocations were lost with the
// data (docs/REPLICAS.md). It should stay 0.
func RegisterStoreLosses(reg prometheus.Registerer, s LossReporter) error {
	return reg.Register(prometheus.NewCounterFunc(prometheus.CounterOpts{
		Namespace: "stepup", Name: "store_data_losses_total",
		Help: "Times the shared store found that Redis had lost its data; each raised a floor (earlier proofs and answers refused) and lost counters and revocations.",
	}, func() float64 { return float64(s.Losses()) }))
}

// RedisHook times every command of the shared store's Redis client and
// counts its errors: stepup_redis_command_duration_seconds and
// stepup_redis_errors_total{kind="timeout|network|other"}. Add it with
// client.AddHook before handing the client to redisstore.New. A nil reply
// (redis.Nil) is not an error.
func RedisHook(reg prometheus.Registerer) (redis.Hook, error) {
	h := &redisHook{
		latency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: "stepup", Name: "redis_command_duration_seconds", Buckets: DefaultBuckets,
			Help: "Duration of the shared store's Redis commands and pipelines.",
		}),
		errs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "stepup", Name: "redis_errors_total",
			Help: "Failed Redis commands of the shared store, by kind: timeout, network, other. While Redis fails, calls that need the store are refused (fail closed).",
		}, []string{"kind"}),
	}
	for _, c := range []prometheus.Collector{h.latency, h.errs} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	h.timeout, h.network, h.other = h.errs.WithLabelValues("timeout"), h.errs.WithLabelValues("network"), h.errs.WithLabelValues("other")
	return h, nil
}

type redisHook struct {
	latency                 prometheus.Histogram
	errs                    *prometheus.CounterVec
	timeout, network, other prometheus.Counter
}

func (h *redisHook) DialHook(next redis.DialHook) redis.DialHook {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := next(ctx, network, addr)
		h.count(err)
		return c, err
	}
}

func (h *redisHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		start := time.Now()
		err := next(ctx, cmd)
		h.latency.Observe(time.Since(start).Seconds())
		h.count(err)
		return err
	}
}

func (h *redisHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		start := time.Now()
		err := next(ctx, cmds)
		h.latency.Observe(time.Since(start).Seconds())
		h.count(err)
		return err
	}
}

func (h *redisHook) count(err error) {
	var ne net.Error
	switch {
	case err == nil, errors.Is(err, redis.Nil):
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		h.timeout.Inc()
	case errors.As(err, &ne), errors.Is(err, net.ErrClosed):
		h.network.Inc()
	default:
		h.other.Inc()
	}
}
