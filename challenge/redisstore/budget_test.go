package redisstore_test

import (
	"fmt"
	"sync"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/stepupgrpc/stepup/challenge"
	"github.com/stepupgrpc/stepup/dpop"
	"github.com/stepupgrpc/stepup/interceptor"
	stepupv1 "github.com/stepupgrpc/stepup/proto/stepup/v1"
)

// memoryFleet returns two replicas sharing one in-process MemoryStore, for
// DPoP replay and step-up: the memory store's answer to what redisFleet
// does over Redis.
func memoryFleet(t *testing.T, stepUpOpts ...challenge.Option) *fleet {
	t.Helper()
	s, err := challenge.NewMemoryStore(10_000, nil)
	if err != nil {
		t.Fatal(err)
	}
	return newFleet(t, fleetOpts{
		replicas:    2,
		dpopStore:   func(int) dpop.ReplayStore { return s },
		stepUpStore: func(int) challenge.Store { return s },
		stepUpOpts:  stepUpOpts,
	})
}

// TestConcurrentCorrectAnswersKeepTheBudget: 32 concurrent retries of one
// Transfer with the same correct TOTP answer, spread over two replicas of
// one store, transfer once and spend none of the subject's wrong-answer
// budget: afterwards exactly DefaultPerSubject wrong answers lock the
// subject, not fewer. Before, answers refused at the subject's limit were
// never refunded (and a copy of the accepted code counted as a wrong
// answer): the same run left alice locked after about five wrong answers.
func TestConcurrentCorrectAnswersKeepTheBudget(t *testing.T) {
	for _, c := range []struct {
		name  string
		fleet func(*testing.T, ...challenge.Option) *fleet
	}{{"memory", memoryFleet}, {"redis", redisFleet}} {
		t.Run(c.name, func(t *testing.T) {
			f := c.fleet(t)
			const n = 32
			answer := f.totpAnswer(f.challengeFrom(f.replicas[0]))
			before := f.balance(f.replicas[0]) + f.balance(f.replicas[1]) // each replica has its own bank
			start := make(chan struct{})
			errs := make([]error, n)
			var wg sync.WaitGroup
			for i := range n {
				r := f.replicas[i%2]
				ctx := f.creds(mTransfer, "stepup-answer", answer) // a fresh proof each
				wg.Go(func() {
					<-start
					_, errs[i] = r.client.Transfer(ctx, transfer())
				})
			}
			close(start)
			wg.Wait()
			ok, counts := 0, map[string]int{}
			for i, err := range errs {
				switch {
				case err == nil:
					ok++
				case status.Code(err) == codes.Unauthenticated && interceptor.ChallengeFromError(err) != nil:
					counts["a new challenge"]++
				default:
					counts[fmt.Sprintf("%s %s", status.Code(err), interceptor.ReasonFromError(err))]++
					t.Errorf("call %d: %v, want OK or a new challenge", i, err)
				}
			}
			t.Logf("%d concurrent correct answers: %d OK, %v", n, ok, counts)
			if ok != 1 {
				t.Fatalf("%d of %d concurrent answers transferred, want exactly 1", ok, n)
			}
			if got := before - f.balance(f.replicas[0]) - f.balance(f.replicas[1]); got != transfer().GetAmountMinor() {
				t.Fatalf("debited %d, want %d once", got, transfer().GetAmountMinor())
			}
			wantBudget(t, f, challenge.DefaultPerSubject)
		})
	}
}

// wantBudget checks that the subject has exactly budget wrong answers left
// in the window: budget-1 wrong answers (each to a fresh challenge, on
// alternate replicas) are refused as wrong and still get challenges, and
// the next one locks the subject.
func wantBudget(t *testing.T, f *fleet, budget int) {
	t.Helper()
	code, err := challenge.TOTPCode(totpSecret, f.clock.Now())
	if err != nil {
		t.Fatal(err)
	}
	wrong := fmt.Sprintf("%06d", (mustAtoi(t, code)+500_000)%1_000_000)
	for i := 1; i <= budget; i++ {
		r := f.replicas[i%2]
		ans := f.answer(f.challengeFrom(r), &challenge.Evidence{Factor: stepupv1.Factor_FACTOR_TOTP, TOTP: wrong})
		_, err := r.client.Transfer(f.creds(mTransfer, "stepup-answer", ans), transfer())
		if i < budget {
			if status.Code(err) != codes.Unauthenticated || interceptor.ChallengeFromError(err) == nil {
				t.Fatalf("wrong answer %d of a budget of %d: %v, want a refusal with a new challenge (the budget was spent early)", i, budget, err)
			}
			continue
		}
		assertRefused(t, r, err, codes.PermissionDenied, interceptor.WireStepUpLocked, interceptor.ReasonStepUpLocked)
	}
}
