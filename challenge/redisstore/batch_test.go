package redisstore_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/stepupgrpc/stepup/challenge/redisstore"
	"github.com/stepupgrpc/stepup/dpop"
)

// waitBatch waits until s has a batch in flight and queued inserts
// waiting for the next one.
func waitBatch(t *testing.T, s *redisstore.Store, queued int) {
	t.Helper()
	for {
		busy, n := redisstore.Batch(s)
		if busy && n == queued {
			return
		}
		if n > queued {
			t.Fatalf("%d inserts queued, want %d", n, queued)
		}
		time.Sleep(time.Millisecond)
	}
}

// insertAsync starts an insert of key and returns the channel of its
// result.
func insertAsync(s *redisstore.Store, ctx context.Context, key string, now time.Time) <-chan error {
	done := make(chan error, 1)
	go func() { done <- s.Insert(ctx, key, now, now.Add(time.Minute)) }()
	return done
}

// pending fails the test when the insert of done has already ended.
func pending(t *testing.T, name string, done <-chan error) {
	t.Helper()
	select {
	case err := <-done:
		t.Fatalf("insert %s ended (%v) while Redis is stopped", name, err)
	default:
	}
}

// TestBatchDeadlines stops Redis (SIGSTOP) with one insert in flight and
// others queued behind it: each caller gets its own deadline's error at
// that deadline, while the others still wait, and an insert whose caller
// gave up before its batch left is not sent. The store's own timeout is a
// minute, so only the callers' contexts can end the waits.
func TestBatchDeadlines(t *testing.T) {
	srv := startServer(t)
	s, err := redisstore.New(newClient(t, srv.Addr), redisstore.WithTimeout(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	deadline := func(d time.Duration) context.Context {
		ctx, cancel := context.WithTimeout(context.Background(), d)
		t.Cleanup(cancel)
		return ctx
	}
	srv.Pause()
	resumed := false
	defer func() {
		if !resumed {
			srv.Resume()
		}
	}()

	// a: sent alone (no batch in flight), from its caller's goroutine, and
	// stuck there. Its deadline passes first.
	a := insertAsync(s, deadline(500*time.Millisecond), "a", now)
	waitBatch(t, s, 0)
	// b gives up while queued; c and d wait for the next batch. When a's
	// deadline passes, [b, c, d] leave as the next batch, without b, under
	// c's deadline (the store's timeout, a minute): d still returns at its
	// own deadline.
	b := insertAsync(s, deadline(100*time.Millisecond), "b", now)
	waitBatch(t, s, 1)
	c := insertAsync(s, context.Background(), "c", now)
	waitBatch(t, s, 2)
	d := insertAsync(s, deadline(1500*time.Millisecond), "d", now)
	waitBatch(t, s, 3)

	for _, w := range []struct {
		name string
		done <-chan error
	}{{"b", b}, {"a", a}, {"d", d}} {
		select {
		case err := <-w.done:
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("insert %s against a stopped Redis = %v, want its deadline's error", w.name, err)
			}
		case <-time.After(30 * time.Second): // the store's timeout is a minute
			t.Fatalf("insert %s still waits, long past its deadline", w.name)
		}
		pending(t, "c", c)
	}
	if busy, n := redisstore.Batch(s); !busy || n != 0 {
		t.Fatalf("batch in flight %v, %d queued; want c's batch in flight", busy, n)
	}

	srv.Resume()
	resumed = true
	if err := <-c; err != nil {
		t.Fatalf("insert c after Redis resumed = %v", err)
	}
	// d was sent (with c), so its key is used although its call was
	// refused: fail closed. b was never sent.
	for key, want := range map[string]error{"c": dpop.ErrReplayed, "d": dpop.ErrReplayed, "b": nil} {
		if err := s.Insert(context.Background(), key, now, now.Add(time.Minute)); !errors.Is(err, want) {
			t.Errorf("insert %s again = %v, want %v", key, err, want)
		}
	}
}

// TestBatchSingleUse queues, behind an insert stuck on a stopped Redis,
// many inserts of distinct keys and of one key several times, so that they
// leave in one batch (one round trip, one script call): each distinct key
// is recorded, and the repeated key is accepted exactly once.
func TestBatchSingleUse(t *testing.T) {
	srv := startServer(t)
	c := newClient(t, srv.Addr)
	s, err := redisstore.New(c, redisstore.WithTimeout(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	var rt roundTrips
	c.AddHook(&rt)
	now := time.Now()
	ctx := context.Background()
	srv.Pause()
	first := insertAsync(s, ctx, "first", now)
	waitBatch(t, s, 0)
	const distinct, repeats = 40, 24
	var dones []<-chan error
	for i := range distinct {
		dones = append(dones, insertAsync(s, ctx, fmt.Sprintf("k%d", i), now))
	}
	var same []<-chan error
	for range repeats {
		same = append(same, insertAsync(s, ctx, "same", now))
	}
	waitBatch(t, s, distinct+repeats)
	srv.Resume()

	if err := <-first; err != nil {
		t.Fatal(err)
	}
	for i, done := range dones {
		if err := <-done; err != nil {
			t.Errorf("insert k%d = %v", i, err)
		}
	}
	accepted := 0
	for _, done := range same {
		switch err := <-done; {
		case err == nil:
			accepted++
		case !errors.Is(err, dpop.ErrReplayed):
			t.Errorf("insert of the repeated key = %v", err)
		}
	}
	if accepted != 1 {
		t.Errorf("the repeated key was accepted %d times in one batch, want once", accepted)
	}
	if n := rt.n.Load(); n != 2 {
		t.Errorf("%d inserts took %d round trips, want 2 (the first alone, then one batch)", 1+distinct+repeats, n)
	}
}
