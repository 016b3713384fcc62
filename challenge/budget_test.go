package challenge_test

import (
	"context"
	"crypto"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stepupgrpc/stepup/challenge"
	stepupv1 "github.com/stepupgrpc/stepup/proto/stepup/v1"
)

// wantBudget checks that alice has exactly budget wrong answers left in the
// window: budget-1 wrong TOTP codes, each to a fresh challenge, are refused
// without locking her, and the next one locks her.
func wantBudget(t *testing.T, f *fixture, budget int) {
	t.Helper()
	wrong := &challenge.Evidence{Factor: stepupv1.Factor_FACTOR_TOTP, TOTP: wrongCode(f)}
	for i := 1; i <= budget; i++ {
		call := f.call(bound, transfer(int64(1000+i), "EUR", "x"))
		call.Answer = f.answer(f.client, f.challengeFor(call), wrong)
		out := f.check(call)
		if out.Reason != challenge.ReasonTOTPInvalid || out.Locked != (i == budget) {
			t.Fatalf("wrong answer %d of a budget of %d: reason %s, locked %v (%s)", i, budget, out.Reason, out.Locked, out.Detail)
		}
	}
}

// wrongCode is a TOTP code that is not alice's at the fixture's time.
func wrongCode(f *fixture) string {
	if c, _ := challenge.TOTPCode(totpSecret, f.clock.Now()); c == "000000" {
		return "000001"
	}
	return "000000"
}

// TestAnswerRefusedAtTheLimitIsRefunded: an answer refused because the
// subject's attempts are all in flight is not a wrong answer, and gives its
// attempt back. Ten correct device-key answers are held in their key
// lookup (a DeviceKeysFunc that waits), so that all ten attempts of alice's
// budget are counted; an eleventh correct answer meanwhile is refused at
// the limit (ATTEMPTS_EXCEEDED, locked). Once the ten pass, the budget is
// whole again. Before, the eleventh kept its attempt: one wrong answer
// fewer locked alice, and every answer refused at the limit during a burst
// of concurrent correct answers spent one more.
func TestAnswerRefusedAtTheLimitIsRefunded(t *testing.T) {
	limit := challenge.DefaultPerSubject
	release := make(chan struct{})
	var held sync.WaitGroup
	var f *fixture
	waiting := challenge.DeviceKeysFunc(func(context.Context, string) ([]crypto.PublicKey, error) {
		held.Done()
		<-release
		return []crypto.PublicKey{f.device.Public()}, nil
	})
	f = newFixture(t, withOptions(challenge.WithDeviceKeys(waiting)))

	calls := make([]challenge.Call, limit+1)
	for i := range calls {
		calls[i] = f.call(bound, transfer(int64(i), "EUR", "x"))
		ch := f.challengeFor(calls[i])
		calls[i].Answer = f.answer(f.client, ch, f.deviceEvidence(f.device, ch))
	}
	held.Add(limit)
	outs := make([]*challenge.Outcome, limit)
	var wg sync.WaitGroup
	for i := range limit {
		wg.Go(func() { outs[i] = f.check(calls[i]) })
	}
	held.Wait() // every attempt of the budget is in flight

	out := f.check(calls[limit])
	if !out.Locked || out.Reason != challenge.ReasonAttemptsExceeded || out.Satisfied {
		t.Fatalf("an answer while %d are in flight: %+v, want refused at the limit", limit, out)
	}
	close(release)
	wg.Wait()
	for i, o := range outs {
		if !o.Satisfied {
			t.Fatalf("held answer %d: %+v", i, o)
		}
	}
	wantBudget(t, f, limit)
}

// TestCopiesOfAnAcceptedAnswerAreNotWrong: sending an accepted answer again
// (a client's retry after a lost response, two copies at once) is refused,
// and costs nothing: a TOTP code already used (TOTP_REUSED) and a WebAuthn
// assertion whose counter did not move (WEBAUTHN_COUNTER) are right
// evidence, not guesses. Before, each copy spent one wrong answer.
func TestCopiesOfAnAcceptedAnswerAreNotWrong(t *testing.T) {
	for _, c := range []struct {
		name     string
		evidence func(*fixture, *stepupv1.StepUpChallenge) *challenge.Evidence
		copy     challenge.Reason
	}{
		{"TOTP", func(f *fixture, _ *stepupv1.StepUpChallenge) *challenge.Evidence { return f.totp() }, challenge.ReasonTOTPReused},
		{"WebAuthn", (*fixture).webauthnEvidence, challenge.ReasonWebAuthnCounter},
	} {
		t.Run(c.name, func(t *testing.T) {
			f := newFixture(t)
			call := f.call(bound, transfer(1, "EUR", "x"))
			ch := f.challengeFor(call)
			call.Answer = f.answer(f.client, ch, c.evidence(f, ch))
			if out := f.check(call); !out.Satisfied {
				t.Fatalf("the answer: %+v", out)
			}
			for i := 1; i < challenge.DefaultPerChallenge; i++ {
				out := f.check(call)
				if out.Satisfied || out.Reason != c.copy || out.Locked {
					t.Fatalf("copy %d: %+v, want refused %s", i, out, c.copy)
				}
			}
			wantBudget(t, f, challenge.DefaultPerSubject)
		})
	}
}

// countingStore counts the operations a Service makes on a MemoryStore.
type countingStore struct {
	*challenge.MemoryStore
	ops atomic.Int64
}

func (s *countingStore) Get(ctx context.Context, key string) (int64, error) {
	s.ops.Add(1)
	return s.MemoryStore.Get(ctx, key)
}

func (s *countingStore) GetMany(ctx context.Context, keys ...string) ([]int64, error) {
	s.ops.Add(1)
	return s.MemoryStore.GetMany(ctx, keys...)
}

func (s *countingStore) Increment(ctx context.Context, key string, expires time.Time) (int64, error) {
	s.ops.Add(1)
	return s.MemoryStore.Increment(ctx, key, expires)
}

func (s *countingStore) Insert(ctx context.Context, key string, issuedAt, expires time.Time) error {
	s.ops.Add(1)
	return s.MemoryStore.Insert(ctx, key, issuedAt, expires)
}

func (s *countingStore) SetMax(ctx context.Context, key string, value int64, expires time.Time) error {
	s.ops.Add(1)
	return s.MemoryStore.SetMax(ctx, key, value, expires)
}

// TestChallengeIssuedInOneStoreOperation: issuing a challenge reads the
// subject's attempts and refunds in one store operation (one round trip
// to Redis), whether or not the subject has answered wrongly before.
// Before, the two counters were two reads.
func TestChallengeIssuedInOneStoreOperation(t *testing.T) {
	f := newFixture(t)
	store := &countingStore{MemoryStore: f.store}
	svc, err := challenge.NewService(challenge.WithKeys(f.keys), challenge.WithClock(f.clock.Now), challenge.WithStore(store),
		challenge.WithTOTP(challenge.TOTPSecretsFunc(func(context.Context, string) (string, error) { return totpSecret, nil }), challenge.TOTPOptions{}))
	if err != nil {
		t.Fatal(err)
	}
	issue := func(when string) {
		t.Helper()
		store.ops.Store(0)
		out, err := svc.Check(context.Background(), f.call(bound, transfer(1, "EUR", "x")))
		if err != nil || out.Challenge == nil {
			t.Fatalf("%s: %+v, %v", when, out, err)
		}
		if n := store.ops.Load(); n != 1 {
			t.Errorf("%s: issuing a challenge took %d store operations, want 1", when, n)
		}
	}
	issue("no attempt yet")
	call := f.call(bound, transfer(2, "EUR", "x"))
	call.Answer = f.answer(f.client, f.challengeFor(call), &challenge.Evidence{Factor: stepupv1.Factor_FACTOR_TOTP, TOTP: wrongCode(f)})
	if out := f.check(call); out.Reason != challenge.ReasonTOTPInvalid {
		t.Fatalf("wrong answer: %+v", out)
	}
	issue("after a wrong answer")
}

// heldKey marks the context of an answer whose attempt, once counted,
// waits (holdingStore).
type heldKey struct{}

// held is what an answer's context carries: counted is closed once its
// attempt is counted, and the answer then waits for release.
type held struct{ counted, release chan struct{} }

// holdingStore holds an answer between counting its attempt and what
// follows, when its context says so.
type holdingStore struct{ *challenge.MemoryStore }

func (s holdingStore) Increment(ctx context.Context, key string, expires time.Time) (int64, error) {
	n, err := s.MemoryStore.Increment(ctx, key, expires)
	if h, ok := ctx.Value(heldKey{}).(held); ok && strings.HasPrefix(key, "att:") {
		close(h.counted)
		<-h.release
	}
	return n, err
}

// TestRefundOfALaterAnswerIsNotSubtracted: alice has used her ten wrong
// answers. Answer A is counted (11th) and held; answer B is counted
// (12th), refused at the limit and refunded; then A goes on. A must be
// refused at the limit too: B's refund gives back B's attempt, not A's.
// Reading the refunds after counting, A subtracted B's refund and its
// guess was checked, the 11th (TestConcurrentGuessesBounded sees this
// interleaving in a few runs of a hundred; this one forces it).
func TestRefundOfALaterAnswerIsNotSubtracted(t *testing.T) {
	f := newFixture(t)
	svc, err := challenge.NewService(challenge.WithKeys(f.keys), challenge.WithClock(f.clock.Now), challenge.WithStore(holdingStore{f.store}),
		challenge.WithTOTP(challenge.TOTPSecretsFunc(func(context.Context, string) (string, error) { return totpSecret, nil }), challenge.TOTPOptions{}))
	if err != nil {
		t.Fatal(err)
	}
	wrong := &challenge.Evidence{Factor: stepupv1.Factor_FACTOR_TOTP, TOTP: wrongCode(f)}
	a, b := f.call(bound, transfer(1, "EUR", "x")), f.call(bound, transfer(2, "EUR", "x"))
	a.Answer = f.answer(f.client, f.challengeFor(a), wrong)
	b.Answer = f.answer(f.client, f.challengeFor(b), wrong)
	wantBudget(t, f, challenge.DefaultPerSubject)

	h := held{counted: make(chan struct{}), release: make(chan struct{})}
	outA := make(chan *challenge.Outcome, 1)
	go func() {
		out, err := svc.Check(context.WithValue(context.Background(), heldKey{}, h), a)
		if err != nil {
			t.Error(err)
		}
		outA <- out
	}()
	<-h.counted
	outB, err := svc.Check(context.Background(), b)
	if err != nil {
		t.Fatal(err)
	}
	close(h.release)
	if outB.Reason != challenge.ReasonAttemptsExceeded || !outB.Locked {
		t.Errorf("B, counted 12th: %s, locked %v; want ATTEMPTS_EXCEEDED, locked", outB.Reason, outB.Locked)
	}
	if out := <-outA; out == nil || out.Reason != challenge.ReasonAttemptsExceeded || !out.Locked {
		t.Fatalf("A, counted 11th: %+v; want ATTEMPTS_EXCEEDED, locked (its guess not checked)", out)
	}
}
