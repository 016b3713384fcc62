// Package metrics exports Stepup's decisions as Prometheus metrics: an
// interceptor.AuditSink that counts every decision by method, decision and
// reason, times the verification stages, and counts challenges and grants;
// gauges of an in-process replay store; and a go-redis hook that times the
// shared store's commands and counts its errors.
//
// Nothing is registered globally: New registers on the registerer it is
// given. Label sets are bounded: methods are those of the registry (the
// policy table's), any other name is counted under "unknown".
// docs/METRICS.md lists every metric, with alerts.
//
//	m, err := metrics.New(prometheus.DefaultRegisterer)
//	guard, err := interceptor.New(..., interceptor.WithAuditSink(interceptor.Sinks(logSink, m)))
package metrics

import (
	"context"
	"errors"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"

	"github.com/stepupgrpc/stepup/challenge"
	"github.com/stepupgrpc/stepup/interceptor"
	"github.com/stepupgrpc/stepup/internal/option"
)

// UnknownMethod is the method label of calls to a method the registry does
// not know (any name a client sends would otherwise be a new series).
const UnknownMethod = "unknown"

// Metrics is an interceptor.AuditSink that records Prometheus metrics. It
// is safe for concurrent use; Audit allocates nothing once a series exists.
type Metrics struct {
	known      map[string]bool
	decisions  *prometheus.CounterVec
	stages     [3]prometheus.Observer // token, proof, step_up
	challenges map[string]prometheus.Counter
	grants     map[string]prometheus.Counter

	mu       sync.RWMutex
	counters map[decisionKey]prometheus.Counter
}

type decisionKey struct {
	method   string
	decision interceptor.Decision
	reason   interceptor.Reason
}

// DefaultBuckets are the latency buckets, in seconds.
var DefaultBuckets = []float64{0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1}

// New builds the metrics and registers them on reg.
func New(reg prometheus.Registerer, opts ...Option) (*Metrics, error) {
	o := options{files: protoregistry.GlobalFiles, namespace: "stepup", buckets: DefaultBuckets}
	err := option.Apply("metrics", "New", opts, func(opt Option) error { return opt.applyMetrics(&o) })
	if reg == nil {
		err = errors.Join(errors.New("metrics: New: nil registerer"), err)
	}
	if err != nil {
		return nil, err
	}
	m := &Metrics{known: map[string]bool{}, counters: map[decisionKey]prometheus.Counter{}}
	o.files.RangeFiles(func(fd protoreflect.FileDescriptor) bool {
		for i := 0; i < fd.Services().Len(); i++ {
			sd := fd.Services().Get(i)
			for j := 0; j < sd.Methods().Len(); j++ {
				m.known["/"+string(sd.FullName())+"/"+string(sd.Methods().Get(j).Name())] = true
			}
		}
		return true
	})
	m.decisions = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: o.namespace, Name: "decisions_total",
		Help: "Guard decisions, by method, decision (allow, deny, challenge, step_up_passed, step_up_failed, shadow_deny) and reason code.",
	}, []string{"method", "decision", "reason"})
	stages := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: o.namespace, Name: "verification_duration_seconds", Buckets: o.buckets,
		Help: "Time spent verifying, by stage: token (the verified-token cache included), proof (the replay insert included), step_up (grant, answer or challenge, with their store calls).",
	}, []string{"stage"})
	challenges := prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: o.namespace, Name: "challenges_total",
		Help: "Step-up challenges, by event: issued, answered (an answer passed), failed (an answer or grant refused), expired (an answer to an expired challenge), locked (the subject is locked out).",
	}, []string{"event"})
	grants := prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: o.namespace, Name: "grants_total",
		Help: "Step-up grants, by event: issued (with a passed answer) and used (a call allowed by one).",
	}, []string{"event"})
	for _, c := range []prometheus.Collector{m.decisions, stages, challenges, grants} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	for i, s := range []string{"token", "proof", "step_up"} {
		m.stages[i] = stages.WithLabelValues(s)
	}
	m.challenges = map[string]prometheus.Counter{}
	for _, e := range []string{"issued", "answered", "failed", "expired", "locked"} {
		m.challenges[e] = challenges.WithLabelValues(e)
	}
	m.grants = map[string]prometheus.Counter{"issued": grants.WithLabelValues("issued"), "used": grants.WithLabelValues("used")}
	return m, nil
}

// Audit records one decision.
func (m *Metrics) Audit(_ context.Context, e *interceptor.Event) {
	method := e.Method
	if !m.known[method] {
		method = UnknownMethod
	}
	m.counter(decisionKey{method, e.Decision, e.Reason}).Inc()
	for i, d := range [3]int64{int64(e.TokenTime), int64(e.ProofTime), int64(e.StepUpTime)} {
		if d > 0 {
			m.stages[i].Observe(float64(d) / 1e9)
		}
	}
	if e.IssuedChallengeID != "" {
		m.challenges["issued"].Inc()
	}
	switch {
	case e.Decision == interceptor.DecisionStepUpPassed:
		m.challenges["answered"].Inc()
	case e.Reason == interceptor.Reason(challenge.ReasonAttemptsExceeded):
		m.challenges["locked"].Inc()
	case e.Reason == interceptor.Reason(challenge.ReasonChallengeExpired):
		m.challenges["expired"].Inc()
	case e.Decision == interceptor.DecisionStepUpFailed:
		m.challenges["failed"].Inc()
	}
	if e.IssuedGrantID != "" {
		m.grants["issued"].Inc()
	}
	if e.Via == string(challenge.ViaGrant) && (e.Decision == interceptor.DecisionAllow) {
		m.grants["used"].Inc()
	}
}

// counter returns the series of one (method, decision, reason), created on
// first use.
func (m *Metrics) counter(k decisionKey) prometheus.Counter {
	m.mu.RLock()
	c, ok := m.counters[k]
	m.mu.RUnlock()
	if ok {
		return c
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if c, ok = m.counters[k]; !ok {
		c = m.decisions.WithLabelValues(k.method, string(k.decision), string(k.reason))
		m.counters[k] = c
	}
	return c
}
