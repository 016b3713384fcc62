package dpop_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stepupgrpc/stepup/dpop"
)

func TestMemoryStoreBasics(t *testing.T) {
	clock := newClock(testNow)
	s, err := dpop.NewMemoryStore(4, clock.Now)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	exp := testNow.Add(time.Minute)
	if err := s.Insert(ctx, "a", testNow, exp); err != nil {
		t.Fatal(err)
	}
	if err := s.Insert(ctx, "a", testNow, exp); !errors.Is(err, dpop.ErrReplayed) {
		t.Fatalf("second insert: %v", err)
	}
	// Entries that expired are forgotten, and evicting them raises no floor.
	clock.Advance(2 * time.Minute)
	if err := s.Insert(ctx, "a", clock.Now(), clock.Now().Add(time.Second)); err != nil {
		t.Fatalf("insert after expiry: %v", err)
	}
	clock.Advance(2 * time.Second)
	for i := range 3 {
		_ = s.Insert(ctx, fmt.Sprint("old", i), testNow, exp) // already expired: not recorded
	}
	for i := range 10 {
		if err := s.Insert(ctx, fmt.Sprint("short", i), clock.Now(), clock.Now().Add(time.Second)); err != nil {
			t.Fatal(err)
		}
		clock.Advance(2 * time.Second)
	}
	if !s.Floor().IsZero() {
		t.Fatalf("floor raised by expired evictions: %v", s.Floor())
	}
	// Evicting a live entry raises the floor to its issue time.
	live := clock.Now()
	if err := s.Insert(ctx, "live", live, live.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	for i := range 4 {
		clock.Advance(time.Second)
		if err := s.Insert(ctx, fmt.Sprint("newer", i), clock.Now(), clock.Now().Add(time.Hour)); err != nil {
			t.Fatal(err)
		}
	}
	if !s.Floor().Equal(live) {
		t.Fatalf("floor = %v, want %v", s.Floor(), live)
	}
	if err := s.Insert(ctx, "live", live, live.Add(time.Hour)); !errors.Is(err, dpop.ErrEvicted) {
		t.Fatalf("evicted live key: %v", err)
	}
	if err := s.Insert(ctx, "never-seen", live, live.Add(time.Hour)); !errors.Is(err, dpop.ErrEvicted) {
		t.Fatalf("key issued at the floor: %v", err)
	}
	if _, err := dpop.NewMemoryStore(0, nil); err == nil {
		t.Fatal("size 0 accepted")
	}
}

// TestMemoryStoreNeverAcceptsTwice floods stores of several sizes (one shard
// and many) from several goroutines, then re-inserts every key: none may be
// accepted a second time while unexpired.
func TestMemoryStoreNeverAcceptsTwice(t *testing.T) {
	for _, size := range []int{1, 7, 64, 1 << 14, 1 << 16} {
		t.Run(fmt.Sprint(size), func(t *testing.T) {
			clock := newClock(testNow)
			s, err := dpop.NewMemoryStore(size, clock.Now)
			if err != nil {
				t.Fatal(err)
			}
			ctx := context.Background()
			const workers, per = 8, 4000
			var wg sync.WaitGroup
			for w := range workers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := range per {
						issued := testNow.Add(time.Duration(i) * time.Millisecond)
						err := s.Insert(ctx, fmt.Sprint(w, "/", i), issued, issued.Add(time.Hour))
						if err != nil && !errors.Is(err, dpop.ErrEvicted) {
							t.Errorf("insert: %v", err)
						}
					}
				}()
			}
			wg.Wait()
			if s.Len() > size+size/8+64*32 { // per-shard headroom
				t.Fatalf("store holds %d entries for size %d", s.Len(), size)
			}
			for w := range workers {
				for i := range per {
					issued := testNow.Add(time.Duration(i) * time.Millisecond)
					err := s.Insert(ctx, fmt.Sprint(w, "/", i), issued, issued.Add(time.Hour))
					if err == nil {
						t.Fatalf("key %d/%d accepted twice", w, i)
					}
					if !errors.Is(err, dpop.ErrReplayed) && !errors.Is(err, dpop.ErrEvicted) {
						t.Fatalf("unexpected error %v", err)
					}
				}
			}
		})
	}
}
