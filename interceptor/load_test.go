package interceptor_test

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/stepupgrpc/stepup/challenge"
	"github.com/stepupgrpc/stepup/dpop"
	"github.com/stepupgrpc/stepup/interceptor"
	policytestv1 "github.com/stepupgrpc/stepup/interceptor/internal/testproto/policytest/v1"
	stepupv1 "github.com/stepupgrpc/stepup/proto/stepup/v1"
)

// TestLoad runs a mix of legitimate calls and attacks against one Guard on
// loopback TCP, from concurrent clients, and checks that under load no
// attack is accepted, no valid call is refused, no goroutine leaks and the
// heap returns to its size. It runs only with STEPUP_LOAD=1:
//
//	STEPUP_LOAD=1 go test -run '^TestLoad$' -count=1 -v ./interceptor/
//
// STEPUP_LOAD_CLIENTS (default 16), STEPUP_LOAD_SECONDS (default 10) and
// STEPUP_LOAD_MAX_CALLS (default 200000) size the run.
func TestLoad(t *testing.T) {
	if os.Getenv("STEPUP_LOAD") != "1" {
		t.Skip("set STEPUP_LOAD=1 to run the load test")
	}
	clients := loadEnvInt(t, "STEPUP_LOAD_CLIENTS", 16)
	seconds := loadEnvInt(t, "STEPUP_LOAD_SECONDS", 10)
	maxCalls := loadEnvInt(t, "STEPUP_LOAD_MAX_CALLS", 200_000)

	goroutinesBefore := runtime.NumGoroutine()
	heapBefore := loadHeapInUse()

	var res *loadResults
	t.Run("run", func(t *testing.T) {
		res = runLoad(t, clients, time.Duration(seconds)*time.Second, int64(maxCalls))
	})
	if res == nil || t.Failed() {
		return
	}
	res.report(t)
	if res.attacksAccepted.Load() != 0 {
		t.Errorf("%d attacks accepted", res.attacksAccepted.Load())
	}
	if res.validRefused.Load() != 0 {
		t.Errorf("%d valid calls refused; first: %s", res.validRefused.Load(), res.firstError())
	}
	// Every attack left its precise reason in the audit log (the sink
	// counts all calls, so at least as many as attacks of that kind).
	for kind, reason := range loadAttackReasons {
		if got, want := res.reasons[reason], res.kinds[kind]; got < want {
			t.Errorf("%d %s attacks, %d audit events %s", want, kind, got, reason)
		}
	}
	if res.attacksMisrefused.Load() != 0 {
		t.Errorf("%d attacks refused with another reason than expected; first: %s", res.attacksMisrefused.Load(), res.firstError())
	}

	// The env is torn down (server stopped, connections closed): every
	// goroutine it started must end. Poll briefly: they end asynchronously.
	goroutinesAfter := runtime.NumGoroutine()
	for i := 0; i < 200 && goroutinesAfter > goroutinesBefore; i++ {
		runtime.Gosched()
		time.Sleep(10 * time.Millisecond)
		goroutinesAfter = runtime.NumGoroutine()
	}
	if goroutinesAfter > goroutinesBefore {
		buf := make([]byte, 1<<20)
		t.Errorf("goroutines: %d before, %d after the run\n%s", goroutinesBefore, goroutinesAfter, buf[:runtime.Stack(buf, true)])
	}
	heapAfter := loadHeapInUse()
	t.Logf("heap in use: %d MiB before, %d MiB at the end of the run, %d MiB after teardown; goroutines %d before, %d after",
		heapBefore>>20, res.heapAtEnd>>20, heapAfter>>20, goroutinesBefore, goroutinesAfter)
	// Generous: what the run retained must be gone once the env is.
	if limit := heapBefore + 64<<20; heapAfter > limit {
		t.Errorf("heap in use after teardown %d MiB, over %d MiB", heapAfter>>20, limit>>20)
	}
}

func loadEnvInt(t *testing.T, name string, def int) int {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n <= 0 {
		t.Fatalf("%s=%q: want a positive integer", name, v)
	}
	return n
}

func loadHeapInUse() uint64 {
	var m runtime.MemStats
	runtime.GC()
	runtime.GC()
	runtime.ReadMemStats(&m)
	return m.HeapInuse
}

// The kinds of calls. Valid calls must succeed; attacks must be refused
// with their reason.
const (
	loadDPoP       = "dpop"           // a DPoP call to Plain
	loadTOTP       = "totp-step-up"   // Sensitive: challenge, then a TOTP answer (two RPCs)
	loadGrant      = "grant"          // Granted presenting a grant
	loadReplay     = "attack-replay"  // a proof used before
	loadStolen     = "attack-stolen"  // alice's token, the thief's proof
	loadWrongApprv = "attack-approve" // an approval of one transfer presented for another
)

var loadMix = []string{loadDPoP, loadDPoP, loadDPoP, loadGrant, loadGrant, loadTOTP, loadReplay, loadStolen, loadWrongApprv}

var loadAttackReasons = map[string]interceptor.Reason{
	loadReplay:     interceptor.Reason(dpop.ReasonReplayed),
	loadStolen:     interceptor.Reason(dpop.ReasonKeyMismatch),
	loadWrongApprv: interceptor.Reason(challenge.ReasonChallengeWrongRequest),
}

type loadResults struct {
	elapsed           time.Duration
	calls             atomic.Int64
	attacksAccepted   atomic.Int64
	attacksMisrefused atomic.Int64
	validRefused      atomic.Int64
	heapAtEnd         uint64

	mu        sync.Mutex
	latencies map[string][]time.Duration
	errs      []string
	reasons   map[interceptor.Reason]int
	kinds     map[string]int
	clients   int
}

func (r *loadResults) count(kind string) {
	r.mu.Lock()
	r.kinds[kind]++
	r.mu.Unlock()
}

func (r *loadResults) fail(msg string) {
	r.mu.Lock()
	if len(r.errs) < 10 {
		r.errs = append(r.errs, msg)
	}
	r.mu.Unlock()
}

func (r *loadResults) firstError() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return strings.Join(r.errs, "; ")
}

func (r *loadResults) Audit(_ context.Context, e *interceptor.Event) {
	r.mu.Lock()
	r.reasons[e.Reason]++
	r.mu.Unlock()
}

func (r *loadResults) report(t *testing.T) {
	n := r.calls.Load()
	t.Logf("%d clients, %s: %d calls, %.0f calls/s (a step-up counts once, for its two RPCs)",
		r.clients, r.elapsed.Round(time.Millisecond), n, float64(n)/r.elapsed.Seconds())
	kinds := make([]string, 0, len(r.latencies))
	for k := range r.latencies {
		kinds = append(kinds, k)
	}
	slices.Sort(kinds)
	for _, k := range kinds {
		d := r.latencies[k]
		slices.Sort(d)
		t.Logf("  %-15s %7d calls  p50 %8s  p99 %8s", k, len(d), d[len(d)/2].Round(time.Microsecond), d[len(d)*99/100].Round(time.Microsecond))
	}
	var reasons []string
	for reason, c := range r.reasons {
		reasons = append(reasons, fmt.Sprintf("%s=%d", reason, c))
	}
	slices.Sort(reasons)
	t.Logf("  audit: %s", strings.Join(reasons, " "))
}

// runLoad builds the env and drives it; the env's cleanups run when t ends.
func runLoad(t *testing.T, clients int, duration time.Duration, maxCalls int64) *loadResults {
	res := &loadResults{latencies: map[string][]time.Duration{}, reasons: map[interceptor.Reason]int{}, kinds: map[string]int{}, clients: clients}
	// Stores sized for the whole run: the fake clock hardly moves, so
	// nothing expires, and a full store would refuse valid calls.
	replay, err := dpop.NewMemoryReplayStore(int(2*maxCalls)+1024, nil)
	if err != nil {
		t.Fatal(err)
	}
	state, err := challenge.NewMemoryStore(int(8*maxCalls)+1024, nil)
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, envOpts{
		tcp:       true,
		guardOpts: []interceptor.Option{interceptor.WithAuditSink(res)},
		dpopOpts:  []dpop.VerifierOption{dpop.WithReplayStore(replay)},
		stepUpOpts: []challenge.Option{challenge.WithStore(state),
			// Every subject has the test secret: each TOTP step-up uses a
			// subject of its own, as a code is accepted once per time step.
			challenge.WithTOTP(challenge.TOTPSecretsFunc(func(context.Context, string) (string, error) { return testTOTP, nil }), challenge.TOTPOptions{})},
	})
	// The fake clock follows real time, so that proofs, codes and grants
	// age as they would.
	stopClock := make(chan struct{})
	var clockDone sync.WaitGroup
	clockDone.Add(1)
	go func() {
		defer clockDone.Done()
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		last := time.Now()
		for {
			select {
			case <-stopClock:
				return
			case now := <-tick.C:
				e.clock.Advance(now.Sub(last))
				last = now
			}
		}
	}()
	defer func() { close(stopClock); clockDone.Wait() }()

	thief := otherKeySigner(t, e.clock.Now)
	var subjects atomic.Int64
	deadline := time.Now().Add(duration)
	start := time.Now()
	var wg sync.WaitGroup
	for w := 0; w < clients; w++ {
		lw := &loadWorker{e: e, res: res, thief: thief, subjects: &subjects, id: w,
			raw: policytestv1.NewGuardedServiceClient(e.conn()), lat: map[string][]time.Duration{}}
		lw.alice = atkAlice(e)
		wg.Add(1)
		go func() {
			defer wg.Done()
			lw.run(deadline, maxCalls)
			res.mu.Lock()
			for k, d := range lw.lat {
				res.latencies[k] = append(res.latencies[k], d...)
			}
			res.mu.Unlock()
		}()
	}
	wg.Wait()
	res.elapsed = time.Since(start)
	res.heapAtEnd = loadHeapInUse()
	return res
}

type loadWorker struct {
	e        *env
	res      *loadResults
	raw      policytestv1.GuardedServiceClient
	alice    *atkPrincipal
	thief    *dpop.Signer
	subjects *atomic.Int64
	id       int

	lat       map[string][]time.Duration
	lastCreds []string // of the last valid DPoP call: replayed by the replay attack
	grant     string
	grantAt   time.Time // fake time the grant was obtained
}

func (w *loadWorker) run(deadline time.Time, maxCalls int64) {
	for i := w.id; time.Now().Before(deadline); i++ {
		if w.res.calls.Add(1) > maxCalls {
			w.res.calls.Add(-1)
			return
		}
		kind := loadMix[i%len(loadMix)]
		if kind == loadReplay && w.lastCreds == nil {
			kind = loadDPoP
		}
		t0 := time.Now()
		err := w.call(kind)
		w.lat[kind] = append(w.lat[kind], time.Since(t0))
		w.res.count(kind)
		if want, attack := loadAttackReasons[kind]; attack {
			switch {
			case err == nil:
				w.res.attacksAccepted.Add(1)
				w.res.fail(kind + " accepted")
			case status.Code(err) != codes.Unauthenticated || !loadWireReasonFits(err, want):
				w.res.attacksMisrefused.Add(1)
				w.res.fail(fmt.Sprintf("%s: %v", kind, err))
			}
			continue
		}
		if err != nil {
			w.res.validRefused.Add(1)
			w.res.fail(fmt.Sprintf("%s: %v", kind, err))
		}
	}
}

// loadWireReasonFits checks the wire reason of a refused attack; its audit
// reason is checked on the totals (the audit sink counts them).
func loadWireReasonFits(err error, want interceptor.Reason) bool {
	wire := interceptor.WireInvalidDPoPProof
	if strings.HasPrefix(string(want), "STEPUP_") {
		wire = interceptor.WireInsufficientUserAuthentication
	}
	return interceptor.ReasonFromError(err) == wire
}

func (w *loadWorker) ctx(p *atkPrincipal, method string, extra ...string) (context.Context, []string) {
	proof, err := p.signer.Proof("POST", "https://api.example"+method, p.token)
	if err != nil {
		panic(err)
	}
	creds := append([]string{"authorization", "DPoP " + p.token, "dpop", proof}, extra...)
	return metadata.AppendToOutgoingContext(context.Background(), creds...), creds
}

// stepUp answers a challenge on Sensitive for a fresh subject, for req or,
// when other is set, presents that approval for other.
func (w *loadWorker) stepUp(req, other *policytestv1.SensitiveRequest) error {
	p := atkAs(w.e, tokenOpts{Subject: "u" + strconv.FormatInt(w.subjects.Add(1), 10)})
	ctx, _ := w.ctx(p, mSensitive)
	_, err := w.raw.Sensitive(ctx, req)
	ch := interceptor.ChallengeFromError(err)
	if ch == nil {
		return fmt.Errorf("no challenge: %w", err)
	}
	code, err := challenge.TOTPCode(testTOTP, w.e.clock.Now())
	if err != nil {
		return err
	}
	ans, err := challenge.Answer(p.signer, ch, &challenge.Evidence{Factor: stepupv1.Factor_FACTOR_TOTP, TOTP: code})
	if err != nil {
		return err
	}
	if other != nil {
		req = other
	}
	ctx, _ = w.ctx(p, mSensitive, "stepup-answer", ans)
	_, err = w.raw.Sensitive(ctx, req)
	return err
}

func (w *loadWorker) obtainGrant() error {
	p := &atkPrincipal{signer: w.alice.signer, token: w.e.boundToken(tokenOpts{Subject: "g" + strconv.FormatInt(w.subjects.Add(1), 10)})}
	ctx, _ := w.ctx(p, mGranted)
	_, err := w.raw.Granted(ctx, &policytestv1.PlainRequest{})
	ch := interceptor.ChallengeFromError(err)
	if ch == nil {
		return fmt.Errorf("no challenge: %w", err)
	}
	code, err := challenge.TOTPCode(testTOTP, w.e.clock.Now())
	if err != nil {
		return err
	}
	ans, err := challenge.Answer(p.signer, ch, &challenge.Evidence{Factor: stepupv1.Factor_FACTOR_TOTP, TOTP: code})
	if err != nil {
		return err
	}
	var hdr metadata.MD
	ctx, _ = w.ctx(p, mGranted, "stepup-answer", ans)
	if _, err := w.raw.Granted(ctx, &policytestv1.PlainRequest{}, grpc.Header(&hdr)); err != nil {
		return err
	}
	g := hdr.Get("stepup-grant")
	if len(g) != 1 {
		return fmt.Errorf("no grant")
	}
	w.grant, w.grantAt, w.alice = g[0], w.e.clock.Now(), p
	return nil
}

func (w *loadWorker) call(kind string) error {
	req := &policytestv1.PlainRequest{Text: "load"}
	switch kind {
	case loadDPoP:
		ctx, creds := w.ctx(w.alice, mPlain)
		_, err := w.raw.Plain(ctx, req)
		if err == nil {
			w.lastCreds = creds
		}
		return err
	case loadGrant:
		// Granted's max_age is 300 s: renew well before.
		if w.grant == "" || w.e.clock.Now().Sub(w.grantAt) > 200*time.Second {
			if err := w.obtainGrant(); err != nil {
				return fmt.Errorf("obtaining a grant: %w", err)
			}
		}
		ctx, _ := w.ctx(w.alice, mGranted, "stepup-grant", w.grant)
		_, err := w.raw.Granted(ctx, req)
		return err
	case loadTOTP:
		return w.stepUp(transferRequest(12_000), nil)
	case loadReplay:
		_, err := w.raw.Plain(metadata.AppendToOutgoingContext(context.Background(), w.lastCreds...), req)
		return err
	case loadStolen:
		proof, err := w.thief.Proof("POST", "https://api.example"+mPlain, w.alice.token)
		if err != nil {
			return err
		}
		_, err = w.raw.Plain(metadata.AppendToOutgoingContext(context.Background(), "authorization", "DPoP "+w.alice.token, "dpop", proof), req)
		return err
	case loadWrongApprv:
		return w.stepUp(transferRequest(12_000), transferRequest(999_900))
	}
	return fmt.Errorf("unknown kind %s", kind)
}
