package challenge_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stepupgrpc/stepup/challenge"
	"github.com/stepupgrpc/stepup/dpop"
)

func TestMemoryStore(t *testing.T) {
	ctx := context.Background()
	clock := newClock()
	s, err := challenge.NewMemoryStore(3, clock.Now)
	if err != nil {
		t.Fatal(err)
	}
	now := clock.Now()

	// Counters: the expiry is set at creation and not moved.
	for want := int64(1); want <= 3; want++ {
		n, err := s.Increment(ctx, "a", now.Add(time.Minute))
		if err != nil || n != want {
			t.Fatalf("Increment = %d, %v; want %d", n, err, want)
		}
	}
	if n, _ := s.Increment(ctx, "a", now.Add(time.Hour)); n != 4 {
		t.Fatalf("Increment = %d", n)
	}
	if v, _ := s.Get(ctx, "a"); v != 4 {
		t.Fatalf("Get = %d", v)
	}
	if v, _ := s.Get(ctx, "absent"); v != 0 {
		t.Fatalf("Get(absent) = %d", v)
	}

	// SetMax keeps the maximum and the later expiry.
	if err := s.SetMax(ctx, "rev", 10, now.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	if err := s.SetMax(ctx, "rev", 5, now.Add(2*time.Minute)); err != nil {
		t.Fatal(err)
	}
	clock.Advance(90 * time.Second)
	if v, _ := s.Get(ctx, "rev"); v != 10 {
		t.Fatalf("SetMax: Get = %d, want 10 (value kept, expiry extended)", v)
	}
	if v, _ := s.Get(ctx, "a"); v != 0 {
		t.Fatalf("expired counter: Get = %d", v)
	}

	// Full of live entries: refuse, never evict.
	if _, err := s.Increment(ctx, "b", clock.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Increment(ctx, "c", clock.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Increment(ctx, "d", clock.Now().Add(time.Hour)); !errors.Is(err, challenge.ErrStoreFull) {
		t.Fatalf("full store: %v", err)
	}
	if err := s.SetMax(ctx, "e", 1, clock.Now().Add(time.Hour)); !errors.Is(err, challenge.ErrStoreFull) {
		t.Fatalf("full store: %v", err)
	}
	if n, err := s.Increment(ctx, "b", clock.Now().Add(time.Hour)); err != nil || n != 2 {
		t.Fatalf("existing key in a full store: %d, %v", n, err)
	}
	// Once an entry expires, its room is reused.
	clock.Advance(time.Minute)
	if _, err := s.Increment(ctx, "d", clock.Now().Add(time.Hour)); err != nil {
		t.Fatalf("after expiry: %v", err)
	}

	// Single-use keys.
	exp := clock.Now().Add(time.Minute)
	if err := s.Insert(ctx, "chl:x", clock.Now(), exp); err != nil {
		t.Fatal(err)
	}
	if err := s.Insert(ctx, "chl:x", clock.Now(), exp); !errors.Is(err, dpop.ErrReplayed) {
		t.Fatalf("second insert: %v", err)
	}

	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := s.Get(cancelled, "b"); err == nil {
		t.Fatal("cancelled context accepted")
	}
	if _, err := challenge.NewMemoryStore(0, nil); err == nil {
		t.Fatal("size 0 accepted")
	}
}

// A full value table makes Check fail (refuse) rather than lose count of
// wrong answers.
func TestFullStoreFailsClosed(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	for i := 0; f.store.Len() < 10_000; i++ {
		if _, err := f.store.Increment(ctx, "filler:"+string(rune('a'+i%26))+time.Duration(i).String(), f.clock.Now().Add(time.Hour)); err != nil {
			t.Fatal(err)
		}
	}
	call := f.call(bound, transfer(1, "EUR", "x"))
	ch := f.challengeFor(call)
	call.Answer = f.answer(f.client, ch, f.totp())
	_, err := f.svc.Check(ctx, call)
	if !errors.Is(err, challenge.ErrStoreFull) || challenge.ReasonOf(err) != challenge.ReasonStoreUnavailable {
		t.Fatalf("Check on a full store: %v", err)
	}
}
