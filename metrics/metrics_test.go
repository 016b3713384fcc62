package metrics_test

import (
	"context"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/redis/go-redis/v9"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/stepupgrpc/stepup/challenge/redisstore"
	"github.com/stepupgrpc/stepup/dpop"
	"github.com/stepupgrpc/stepup/interceptor"
	relayv1 "github.com/stepupgrpc/stepup/internal/testproto/relay/v1"
	"github.com/stepupgrpc/stepup/metrics"
	"github.com/stepupgrpc/stepup/testing/relaykit"
	"github.com/stepupgrpc/stepup/testing/testkit"
)

// world is the relay world of relaykit with the metrics as (or instead of)
// the Guard's sink.
type world struct {
	*relaykit.World
	reg   *prometheus.Registry
	m     *metrics.Metrics
	relay relayv1.RelayServiceClient
	conn  *grpc.ClientConn
}

func newWorld(t testing.TB) *world { return newWorldSink(t, true) }

// newWorldSink builds the world; without metrics the Guard's sink discards.
// extra are more Guard options.
func newWorldSink(t testing.TB, withMetrics bool, extra ...interceptor.Option) *world {
	t.Helper()
	w := &world{reg: prometheus.NewRegistry()}
	var err error
	if w.m, err = metrics.New(w.reg); err != nil {
		t.Fatal(err)
	}
	w.World = relaykit.Start(t, append([]interceptor.Option{interceptor.WithAuditSink(sinkOf(w.m, withMetrics))}, extra...))
	w.relay, w.conn = w.Relay, w.Conn
	return w
}

// value reads one series of the registry.
func (w *world) value(t *testing.T, name string, labels map[string]string) float64 {
	t.Helper()
	mfs, err := w.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if want, ok := labels[lp.GetName()]; ok && want != lp.GetValue() {
					continue next
				}
			}
			if c := m.GetCounter(); c != nil {
				return c.GetValue()
			}
			if h := m.GetHistogram(); h != nil {
				return float64(h.GetSampleCount())
			}
		}
	}
	return 0
}

func TestDecisionsCounted(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()
	if _, err := w.relay.Echo(ctx, &relayv1.EchoRequest{}); err != nil {
		t.Fatal(err)
	}
	// A method no policy covers.
	if err := w.conn.Invoke(ctx, "/relay.v1.StatsService/Stats", &relayv1.StatsRequest{}, &relayv1.StatsResponse{}); status.Code(err) != codes.PermissionDenied {
		t.Fatalf("a method without policy: %v", err)
	}
	for i := range 3 { // names a client made up (a proxy sees them), one series
		w.m.Audit(ctx, &interceptor.Event{Method: "/x.v1.Made/Up" + strings.Repeat("x", i), Decision: interceptor.DecisionDeny, Reason: interceptor.ReasonPolicyMissing})
	}
	// Step-up: challenged, answered (a grant issued), then the grant used.
	for range 2 {
		if _, err := w.relay.Whoami(ctx, &relayv1.WhoamiRequest{}); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"stepup_decisions_total", map[string]string{"method": "/relay.v1.RelayService/Echo", "decision": "allow", "reason": "ALLOWED"}, 1},
		{"stepup_decisions_total", map[string]string{"method": "/relay.v1.StatsService/Stats", "decision": "deny", "reason": "POLICY_MISSING"}, 1},
		{"stepup_decisions_total", map[string]string{"method": metrics.UnknownMethod, "decision": "deny", "reason": "POLICY_MISSING"}, 3},
		{"stepup_decisions_total", map[string]string{"method": "/relay.v1.RelayService/Whoami", "decision": "challenge", "reason": "STEPUP_REQUIRED"}, 1},
		{"stepup_decisions_total", map[string]string{"method": "/relay.v1.RelayService/Whoami", "decision": "step_up_passed"}, 1},
		{"stepup_decisions_total", map[string]string{"method": "/relay.v1.RelayService/Whoami", "decision": "allow"}, 1},
		{"stepup_challenges_total", map[string]string{"event": "issued"}, 1},
		{"stepup_challenges_total", map[string]string{"event": "answered"}, 1},
		{"stepup_grants_total", map[string]string{"event": "issued"}, 1},
		{"stepup_grants_total", map[string]string{"event": "used"}, 1},
		{"stepup_verification_duration_seconds", map[string]string{"stage": "token"}, 4},
		{"stepup_verification_duration_seconds", map[string]string{"stage": "proof"}, 4},
		{"stepup_verification_duration_seconds", map[string]string{"stage": "step_up"}, 3},
	} {
		if got := w.value(t, c.name, c.labels); got != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
		}
	}
	if n := testutil.CollectAndCount(w.reg, "stepup_decisions_total"); n != 6 {
		t.Errorf("%d decision series, want 6 (unknown names share one)", n)
	}
}

func TestAuditAllocatesNothing(t *testing.T) {
	m, err := metrics.New(prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	ev := &interceptor.Event{Method: "/relay.v1.RelayService/Echo", Decision: interceptor.DecisionAllow, Reason: interceptor.ReasonAllowed,
		TokenTime: time.Microsecond, ProofTime: 50 * time.Microsecond}
	m.Audit(context.Background(), ev)
	if n := testing.AllocsPerRun(1000, func() { m.Audit(context.Background(), ev) }); n != 0 {
		t.Errorf("Audit allocates %v times per event", n)
	}
}

func TestNoGlobalRegistration(t *testing.T) {
	if _, err := metrics.New(prometheus.NewRegistry()); err != nil {
		t.Fatal(err)
	}
	// Twice on one registry is an error, not a panic; on two, fine.
	reg := prometheus.NewRegistry()
	if _, err := metrics.New(reg); err != nil {
		t.Fatal(err)
	}
	if _, err := metrics.New(reg); err == nil {
		t.Error("registered twice on one registry")
	}
	mfs, _ := prometheus.DefaultGatherer.Gather()
	for _, mf := range mfs {
		if strings.HasPrefix(mf.GetName(), "stepup_") {
			t.Errorf("%s is registered globally", mf.GetName())
		}
	}
}

func TestReplayStoreGauges(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	clock := func() time.Time { return now }
	s, err := dpop.NewMemoryReplayStore(16, clock)
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	if err := metrics.RegisterReplayStore(reg, s, clock); err != nil {
		t.Fatal(err)
	}
	for i := range 64 { // more live entries than it holds: the floor rises
		_ = s.Insert(context.Background(), strings.Repeat("k", i+1), now, now.Add(time.Minute))
	}
	now = now.Add(10 * time.Second)
	entries, floor := gauge(t, reg, "stepup_replay_store_entries"), gauge(t, reg, "stepup_replay_store_floor_age_seconds")
	if entries <= 0 || entries > 64 || floor < 10 || floor > 11 {
		t.Errorf("entries %v, floor age %v s", entries, floor)
	}
	// The first eviction raises the floor to the entries' issue time: every
	// later insert of the same time is refused, not stored, so one.
	if ev := counterValue(t, reg, "stepup_replay_store_evictions_total"); ev != 1 {
		t.Errorf("evictions %v, want 1", ev)
	}
}

// TestStoreLossesCounter: the counter follows the Redis store's Losses, on
// a private redis-server emptied under it.
func TestStoreLossesCounter(t *testing.T) {
	srv := testkit.StartRedis(t)
	c := redis.NewClient(&redis.Options{Addr: srv.Addr, ContextTimeoutEnabled: true, DisableIdentity: true})
	t.Cleanup(func() { _ = c.Close() })
	s, err := redisstore.New(c, redisstore.WithTimeout(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	if err := metrics.RegisterStoreLosses(reg, s); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	now := time.Now()
	if err := s.Insert(ctx, "dpop:k:1", now, now.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	if n := counterValue(t, reg, "stepup_store_data_losses_total"); n != 0 {
		t.Fatalf("losses %v before any, want 0", n)
	}
	if err := c.FlushAll(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	if err := s.Insert(ctx, "dpop:k:1", now, now.Add(time.Minute)); !errors.Is(err, dpop.ErrEvicted) {
		t.Fatalf("insert after the flush: %v, want dpop.ErrEvicted", err)
	}
	if n := counterValue(t, reg, "stepup_store_data_losses_total"); n != 1 {
		t.Fatalf("losses %v after a flush, want 1", n)
	}
}

func gauge(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			return mf.GetMetric()[0].GetGauge().GetValue()
		}
	}
	t.Fatalf("no %s", name)
	return 0
}

func counterValue(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			return mf.GetMetric()[0].GetCounter().GetValue()
		}
	}
	t.Fatalf("no %s", name)
	return 0
}

func TestRedisHookCountsErrors(t *testing.T) {
	reg := prometheus.NewRegistry()
	hook, err := metrics.RedisHook(reg)
	if err != nil {
		t.Fatal(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := lis.Addr().String()
	lis.Close() // nothing listens there now
	c := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1, DialTimeout: time.Second})
	defer c.Close()
	c.AddHook(hook)
	if err := c.Ping(context.Background()).Err(); err == nil {
		t.Fatal("a ping to nothing succeeded")
	}
	mfs, _ := reg.Gather()
	var network, latency float64
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			switch mf.GetName() {
			case "stepup_redis_errors_total":
				if m.GetLabel()[0].GetValue() == "network" {
					network = m.GetCounter().GetValue()
				}
			case "stepup_redis_command_duration_seconds":
				latency = float64(m.GetHistogram().GetSampleCount())
			}
		}
	}
	if network < 1 || latency != 1 {
		t.Errorf("network errors %v, commands timed %v", network, latency)
	}
}

func sinkOf(m *metrics.Metrics, on bool) interceptor.AuditSink {
	if on {
		return m
	}
	return interceptor.AuditFunc(func(context.Context, *interceptor.Event) {})
}
