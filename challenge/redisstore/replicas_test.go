package redisstore_test

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/stepupgrpc/stepup/challenge"
	"github.com/stepupgrpc/stepup/challenge/redisstore"
	"github.com/stepupgrpc/stepup/dpop"
	bankv1 "github.com/stepupgrpc/stepup/examples/bank/v1"
	"github.com/stepupgrpc/stepup/interceptor"
	stepupv1 "github.com/stepupgrpc/stepup/proto/stepup/v1"
)

// redisFleet returns two replicas, each with its own Store (and its own
// client) over the STEPUP_REDIS_ADDR server, with one prefix.
func redisFleet(t *testing.T, stepUpOpts ...challenge.Option) *fleet {
	t.Helper()
	addr := redisAddr(t)
	prefix := testPrefix(t, newClient(t, addr))
	stores := make([]*redisstore.Store, 2)
	for i := range stores {
		s, err := redisstore.New(newClient(t, addr), patient, redisstore.WithPrefix(prefix))
		if err != nil {
			t.Fatal(err)
		}
		stores[i] = s
	}
	return newFleet(t, fleetOpts{
		replicas:    2,
		dpopStore:   func(i int) dpop.ReplayStore { return stores[i] },
		stepUpStore: func(i int) challenge.Store { return stores[i] },
		stepUpOpts:  stepUpOpts,
	})
}

// assertRefused checks the status a client got and the reason r audited.
func assertRefused(t *testing.T, r *replica, err error, code codes.Code, wire string, reason interceptor.Reason) {
	t.Helper()
	if st, _ := status.FromError(err); err == nil || st.Code() != code {
		t.Fatalf("replica %s: error = %v, want code %s", r.name, err, code)
	}
	if got := interceptor.ReasonFromError(err); got != wire {
		t.Errorf("replica %s: wire reason = %q, want %q", r.name, got, wire)
	}
	if ev := r.audit.last(t); ev.Reason != reason || ev.Code != code {
		t.Errorf("replica %s: audit reason = %s (%s), want %s (%s); detail %q", r.name, ev.Reason, ev.Code, reason, code, ev.Detail)
	}
}

// TestWithoutSharedStoreReplaysPass shows the problem the store solves:
// with the in-process default, each replica remembers only its own proofs,
// and a proof replayed to another replica is accepted.
func TestWithoutSharedStoreReplaysPass(t *testing.T) {
	f := newFleet(t, fleetOpts{
		replicas: 2,
		dpopStore: func(int) dpop.ReplayStore {
			s, _ := dpop.NewMemoryReplayStore(1000, nil)
			return s
		},
		stepUpStore: func(int) challenge.Store {
			s, _ := challenge.NewMemoryStore(1000, nil)
			return s
		},
	})
	ctx := f.creds(mGetBalance)
	for _, r := range f.replicas {
		if _, err := r.client.GetBalance(ctx, &bankv1.GetBalanceRequest{AccountId: "alice-checking"}); err != nil {
			t.Fatalf("replica %s: %v", r.name, err)
		}
	}
}

func TestReplicasRefuseReplayedProof(t *testing.T) {
	f := redisFleet(t)
	a, b := f.replicas[0], f.replicas[1]
	req := &bankv1.GetBalanceRequest{AccountId: "alice-checking"}
	for _, order := range [][2]*replica{{a, b}, {b, a}} {
		first, second := order[0], order[1]
		ctx := f.creds(mGetBalance) // one proof, sent twice
		if _, err := first.client.GetBalance(ctx, req); err != nil {
			t.Fatalf("replica %s, first use: %v", first.name, err)
		}
		_, err := second.client.GetBalance(ctx, req)
		assertRefused(t, second, err, codes.Unauthenticated, interceptor.WireInvalidDPoPProof, interceptor.Reason(dpop.ReasonReplayed))
		_, err = first.client.GetBalance(ctx, req)
		assertRefused(t, first, err, codes.Unauthenticated, interceptor.WireInvalidDPoPProof, interceptor.Reason(dpop.ReasonReplayed))
	}
}

// TestReplicasRefuseReusedChallenge: an answer (a device-key signature over
// a challenge) accepted by A cannot be presented again to B, even with a
// fresh DPoP proof.
func TestReplicasRefuseReusedChallenge(t *testing.T) {
	f := redisFleet(t)
	a, b := f.replicas[0], f.replicas[1]
	ans := f.deviceAnswer(f.challengeFrom(b)) // a challenge from B, answered first on A
	if _, err := a.client.Transfer(f.creds(mTransfer, "stepup-answer", ans), transfer()); err != nil {
		t.Fatalf("replica A: %v", err)
	}
	if ev := a.audit.last(t); ev.Decision != interceptor.DecisionStepUpPassed || ev.Factor != "device_key" {
		t.Fatalf("replica A: audit %+v", ev)
	}
	_, err := b.client.Transfer(f.creds(mTransfer, "stepup-answer", ans), transfer())
	assertRefused(t, b, err, codes.Unauthenticated, interceptor.WireInsufficientUserAuthentication, interceptor.Reason(challenge.ReasonChallengeReused))
	if ev := b.audit.last(t); ev.Decision != interceptor.DecisionStepUpFailed {
		t.Fatalf("replica B: audit %+v", ev)
	}
	if got := f.balance(a); got != openingEUR-12_000 {
		t.Fatalf("replica A's bank: balance %d", got)
	}
	if got := f.balance(b); got != openingEUR {
		t.Fatalf("replica B's bank ran the transfer: balance %d", got)
	}
}

// TestReplicasRefuseReusedTOTPCode: a TOTP code accepted by A is refused by
// B on another challenge (RFC 6238 §5.2: each time step once per subject).
func TestReplicasRefuseReusedTOTPCode(t *testing.T) {
	f := redisFleet(t)
	a, b := f.replicas[0], f.replicas[1]
	ctx := f.creds(mTransfer, "stepup-answer", f.totpAnswer(f.challengeFrom(a)))
	if _, err := a.client.Transfer(ctx, transfer()); err != nil {
		t.Fatalf("replica A: %v", err)
	}
	// A new challenge from B, answered with the same code.
	_, err := b.client.Transfer(f.creds(mTransfer, "stepup-answer", f.totpAnswer(f.challengeFrom(b))), transfer())
	assertRefused(t, b, err, codes.Unauthenticated, interceptor.WireInsufficientUserAuthentication, interceptor.Reason(challenge.ReasonTOTPReused))
	// The next time step gives a new code, which B accepts.
	f.clock.Advance(30 * time.Second)
	if _, err := b.client.Transfer(f.creds(mTransfer, "stepup-answer", f.totpAnswer(f.challengeFrom(b))), transfer()); err != nil {
		t.Fatalf("replica B, next code: %v", err)
	}
}

// TestReplicasShareAttemptLimits: wrong answers are counted across the
// fleet. Each replica sees only two of the four wrong answers, and the
// subject is locked out on both.
func TestReplicasShareAttemptLimits(t *testing.T) {
	f := redisFleet(t, challenge.WithAttemptLimits(3, 4, 15*time.Minute))
	code, err := challenge.TOTPCode(totpSecret, f.clock.Now())
	if err != nil {
		t.Fatal(err)
	}
	wrong := fmt.Sprintf("%06d", (mustAtoi(t, code)+500_000)%1_000_000)
	for i := range 4 {
		from, to := f.replicas[i%2], f.replicas[(i+1)%2]
		ans := f.answer(f.challengeFrom(from), &challenge.Evidence{Factor: stepupv1.Factor_FACTOR_TOTP, TOTP: wrong})
		_, err := to.client.Transfer(f.creds(mTransfer, "stepup-answer", ans), transfer())
		if i < 3 {
			assertRefused(t, to, err, codes.Unauthenticated, interceptor.WireInsufficientUserAuthentication, interceptor.Reason(challenge.ReasonTOTPInvalid))
		} else {
			// The fourth wrong answer reaches the limit: locked at once.
			assertRefused(t, to, err, codes.PermissionDenied, interceptor.WireStepUpLocked, interceptor.ReasonStepUpLocked)
		}
	}
	for _, r := range f.replicas {
		_, err := r.client.Transfer(f.creds(mTransfer), transfer())
		assertRefused(t, r, err, codes.PermissionDenied, interceptor.WireStepUpLocked, interceptor.ReasonStepUpLocked)
		if interceptor.ChallengeFromError(err) != nil {
			t.Fatalf("replica %s: a locked-out subject got a challenge", r.name)
		}
	}
}

func mustAtoi(t *testing.T, s string) int {
	t.Helper()
	n, err := strconv.Atoi(s)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestReplicasShareRevocation: a grant earned on A works on B until A
// revokes the subject's grants.
func TestReplicasShareRevocation(t *testing.T) {
	f := redisFleet(t)
	a, b := f.replicas[0], f.replicas[1]
	payee := &bankv1.AddPayeeRequest{Name: "Landlord", Iban: "DE89370400440532013000"}
	_, err := a.client.AddPayee(f.creds(mAddPayee), payee)
	ch := interceptor.ChallengeFromError(err)
	if ch == nil {
		t.Fatalf("AddPayee without an answer = %v, want a challenge", err)
	}
	var header metadata.MD
	if _, err := a.client.AddPayee(f.creds(mAddPayee, "stepup-answer", f.totpAnswer(ch)), payee, grpc.Header(&header)); err != nil {
		t.Fatal(err)
	}
	grant := header.Get(interceptor.MetadataStepUpGrant)
	if len(grant) != 1 {
		t.Fatalf("no grant in the response header: %v", header)
	}
	if _, err := b.client.AddPayee(f.creds(mAddPayee, "stepup-grant", grant[0]), payee); err != nil {
		t.Fatalf("replica B with A's grant: %v", err)
	}
	if ev := b.audit.last(t); ev.Via != "grant" {
		t.Fatalf("replica B: audit %+v", ev)
	}
	if err := a.stepUp.Revocations().RevokeGrants(context.Background(), "alice"); err != nil {
		t.Fatal(err)
	}
	_, err = b.client.AddPayee(f.creds(mAddPayee, "stepup-grant", grant[0]), payee)
	assertRefused(t, b, err, codes.Unauthenticated, interceptor.WireInsufficientUserAuthentication, interceptor.Reason(challenge.ReasonGrantRevoked))
	if n := len(b.bank.Payees("alice")); n != 1 {
		t.Fatalf("replica B added %d payees, want 1", n)
	}
}

// TestConcurrentReplaysAcrossReplicas: 64 concurrent uses of one proof,
// spread over both replicas, succeed exactly once.
func TestConcurrentReplaysAcrossReplicas(t *testing.T) {
	f := redisFleet(t)
	const n = 64
	ctx := f.creds(mGetBalance)
	start := make(chan struct{})
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		r := f.replicas[i%2]
		wg.Go(func() {
			<-start
			_, errs[i] = r.client.GetBalance(ctx, &bankv1.GetBalanceRequest{AccountId: "alice-checking"})
		})
	}
	close(start)
	wg.Wait()
	ok := 0
	for i, err := range errs {
		switch {
		case err == nil:
			ok++
		case status.Code(err) != codes.Unauthenticated || interceptor.ReasonFromError(err) != interceptor.WireInvalidDPoPProof:
			t.Errorf("call %d: %v", i, err)
		}
	}
	if ok != 1 {
		t.Fatalf("%d of %d concurrent replays succeeded, want exactly 1", ok, n)
	}
	reasons := map[interceptor.Reason]int{}
	for _, r := range f.replicas {
		for _, ev := range r.audit.all() {
			reasons[ev.Reason]++
		}
	}
	if reasons[interceptor.ReasonAllowed] != 1 || reasons[interceptor.Reason(dpop.ReasonReplayed)] != n-1 || len(reasons) != 2 {
		t.Fatalf("audit reasons = %v, want 1 ALLOWED and %d %s", reasons, n-1, dpop.ReasonReplayed)
	}
}

// TestReplicasRefuseWhenRedisDown: with Redis killed or hung, every call
// that needs it is refused with UNAVAILABLE, on every replica, and nothing
// is accepted.
func TestReplicasRefuseWhenRedisDown(t *testing.T) {
	req := &bankv1.GetBalanceRequest{AccountId: "alice-checking"}
	// accepted counts the decisions that let a call through.
	accepted := func(r *replica, since int) int {
		n := 0
		for _, ev := range r.audit.all()[since:] {
			if ev.Decision == interceptor.DecisionAllow || ev.Decision == interceptor.DecisionStepUpPassed {
				n++
			}
		}
		return n
	}
	// privateStores returns a patient store per replica, each with its own
	// client, which gives up at once when Redis refuses connections.
	privateStores := func(t *testing.T, addr string, opts ...redisstore.Option) []*redisstore.Store {
		stores := make([]*redisstore.Store, 2)
		for i := range stores {
			s, err := redisstore.New(newClient(t, addr, failFast), append([]redisstore.Option{patient}, opts...)...)
			if err != nil {
				t.Fatal(err)
			}
			stores[i] = s
		}
		return stores
	}

	t.Run("killed", func(t *testing.T) {
		srv := startServer(t)
		stores := privateStores(t, srv.Addr)
		f := newFleet(t, fleetOpts{
			replicas:    2,
			dpopStore:   func(i int) dpop.ReplayStore { return stores[i] },
			stepUpStore: func(i int) challenge.Store { return stores[i] },
		})
		for _, r := range f.replicas {
			f.balance(r)
		}
		ans := f.deviceAnswer(f.challengeFrom(f.replicas[0]))
		marks := []int{len(f.replicas[0].audit.all()), len(f.replicas[1].audit.all())}
		srv.Kill()
		for i, r := range f.replicas {
			_, err := r.client.GetBalance(f.creds(mGetBalance), req)
			assertRefused(t, r, err, codes.Unavailable, interceptor.WireUnavailable, interceptor.Reason(dpop.ReasonStoreUnavailable))
			_, err = r.client.Transfer(f.creds(mTransfer, "stepup-answer", ans), transfer())
			assertRefused(t, r, err, codes.Unavailable, interceptor.WireUnavailable, interceptor.Reason(dpop.ReasonStoreUnavailable))
			if n := accepted(r, marks[i]); n != 0 {
				t.Fatalf("replica %s accepted %d calls with Redis down", r.name, n)
			}
		}
	})

	// DPoP replay on one Redis, step-up state on another that dies: only
	// what needs step-up is refused.
	t.Run("step-up store killed", func(t *testing.T) {
		addr := redisAddr(t)
		prefix := testPrefix(t, newClient(t, addr))
		replay := privateStores(t, addr, redisstore.WithPrefix(prefix))
		srv := startServer(t)
		stepUp := privateStores(t, srv.Addr)
		f := newFleet(t, fleetOpts{
			replicas:    2,
			dpopStore:   func(i int) dpop.ReplayStore { return replay[i] },
			stepUpStore: func(i int) challenge.Store { return stepUp[i] },
		})
		a, b := f.replicas[0], f.replicas[1]
		payee := &bankv1.AddPayeeRequest{Name: "Landlord", Iban: "DE89370400440532013000"}
		_, err := a.client.AddPayee(f.creds(mAddPayee), payee)
		var header metadata.MD
		if _, err := a.client.AddPayee(f.creds(mAddPayee, "stepup-answer", f.totpAnswer(interceptor.ChallengeFromError(err))), payee, grpc.Header(&header)); err != nil {
			t.Fatal(err)
		}
		grant := header.Get(interceptor.MetadataStepUpGrant)
		ans := f.deviceAnswer(f.challengeFrom(b))
		marks := []int{len(a.audit.all()), len(b.audit.all())}
		srv.Kill()

		for i, r := range f.replicas {
			// No step-up needed: served.
			if _, err := r.client.GetBalance(f.creds(mGetBalance), req); err != nil {
				t.Fatalf("replica %s: GetBalance with the replay store up: %v", r.name, err)
			}
			marks[i]++
			_, err := r.client.Transfer(f.creds(mTransfer, "stepup-answer", ans), transfer())
			assertRefused(t, r, err, codes.Unavailable, interceptor.WireUnavailable, interceptor.ReasonStepUpUnavailable)
			_, err = r.client.AddPayee(f.creds(mAddPayee, "stepup-grant", grant[0]), payee)
			assertRefused(t, r, err, codes.Unavailable, interceptor.WireUnavailable, interceptor.ReasonStepUpUnavailable)
			_, err = r.client.Transfer(f.creds(mTransfer), transfer())
			assertRefused(t, r, err, codes.Unavailable, interceptor.WireUnavailable, interceptor.ReasonStepUpUnavailable)
			if interceptor.ChallengeFromError(err) != nil {
				t.Errorf("replica %s issued a challenge without its store", r.name)
			}
			if n := accepted(r, marks[i]); n != 0 {
				t.Fatalf("replica %s accepted %d step-up calls with its store down", r.name, n)
			}
		}
		if n := len(b.bank.Payees("alice")); n != 0 {
			t.Fatalf("replica B added %d payees", n)
		}
	})

	t.Run("hung", func(t *testing.T) {
		srv := startServer(t)
		// Each replica's store is a patient one, switched to a quick one
		// (100 ms) while Redis hangs; both are real stores on one client.
		stores := make([]*switchStore, 2)
		for i := range stores {
			c := newClient(t, srv.Addr)
			quick, err := redisstore.New(c, redisstore.WithTimeout(100*time.Millisecond))
			if err != nil {
				t.Fatal(err)
			}
			slow, err := redisstore.New(c, patient)
			if err != nil {
				t.Fatal(err)
			}
			stores[i] = &switchStore{quick: quick, slow: slow}
		}
		f := newFleet(t, fleetOpts{
			replicas:    2,
			dpopStore:   func(i int) dpop.ReplayStore { return stores[i] },
			stepUpStore: func(i int) challenge.Store { return stores[i] },
		})
		ans := f.deviceAnswer(f.challengeFrom(f.replicas[1]))
		marks := []int{len(f.replicas[0].audit.all()), len(f.replicas[1].audit.all())}
		for _, s := range stores {
			s.useQuick.Store(true)
		}
		srv.Pause()
		for i, r := range f.replicas {
			start := time.Now()
			_, err := r.client.GetBalance(f.creds(mGetBalance), req)
			assertRefused(t, r, err, codes.Unavailable, interceptor.WireUnavailable, interceptor.Reason(dpop.ReasonStoreUnavailable))
			_, err = r.client.Transfer(f.creds(mTransfer, "stepup-answer", ans), transfer())
			assertRefused(t, r, err, codes.Unavailable, interceptor.WireUnavailable, interceptor.Reason(dpop.ReasonStoreUnavailable))
			if d := time.Since(start); d > 5*time.Second {
				t.Errorf("replica %s took %v to refuse two calls against a hung Redis", r.name, d)
			}
			if n := accepted(r, marks[i]); n != 0 {
				t.Fatalf("replica %s accepted %d calls with Redis hung", r.name, n)
			}
		}
		// Back to service as soon as Redis answers again.
		srv.Resume()
		for _, s := range stores {
			s.useQuick.Store(false)
		}
		for _, r := range f.replicas {
			f.balance(r)
		}
		if _, err := f.replicas[0].client.Transfer(f.creds(mTransfer, "stepup-answer", ans), transfer()); err != nil {
			t.Fatalf("after Redis came back: %v", err)
		}
	})
}

// switchStore sends every operation to one of two real stores: the quick
// one while useQuick is set.
type switchStore struct {
	quick, slow *redisstore.Store
	useQuick    atomic.Bool
}

func (s *switchStore) pick() *redisstore.Store {
	if s.useQuick.Load() {
		return s.quick
	}
	return s.slow
}

func (s *switchStore) Insert(ctx context.Context, key string, issued, expires time.Time) error {
	return s.pick().Insert(ctx, key, issued, expires)
}

func (s *switchStore) Increment(ctx context.Context, key string, expires time.Time) (int64, error) {
	return s.pick().Increment(ctx, key, expires)
}

func (s *switchStore) SetMax(ctx context.Context, key string, value int64, expires time.Time) error {
	return s.pick().SetMax(ctx, key, value, expires)
}

func (s *switchStore) Get(ctx context.Context, key string) (int64, error) {
	return s.pick().Get(ctx, key)
}
