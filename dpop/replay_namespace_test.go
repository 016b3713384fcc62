package dpop

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"strconv"
	"testing"
	"time"
)

func TestNamespaceRule(t *testing.T) {
	for key, want := range map[string]string{
		"dpop:0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I:jti": "dpop:0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I",
		"dpop:thumb:a:b:c":      "dpop:thumb", // a jti with ':' makes no new namespace
		"dpop:thumb:":           "dpop:thumb",
		"totp:alice:59000000":   "totp:alice",
		"totp:user:42:59000000": "totp:user", // coarser: only refuses more
		"chl:Zm9vYmFyYmF6cXV4":  "chl",
		"chl:":                  "chl",
		"plain":                 "",
		"":                      "",
		":x":                    "",
		"a::b":                  "a:",
	} {
		if got := namespace(key); got != want {
			t.Errorf("namespace(%q) = %q, want %q", key, got, want)
		}
	}
}

// TestEntryPacking checks the packed times: the issue time is exact (later
// only when the lifetime exceeds maxLag, so that a floor raised from it
// still covers the key), the expiry is never earlier than the true one and
// later by less than a millisecond.
func TestEntryPacking(t *testing.T) {
	base := testNowInternal.UnixNano()
	for _, c := range []struct{ iss, exp int64 }{
		{base, base},
		{base, base + 1},
		{base, base + int64(65*time.Second)},
		{base + 123456, base + int64(65*time.Second)},
		{base, base + int64(time.Hour) + 999_999},
		{base, base + int64(49*24*time.Hour)},
		{base, base + int64(maxLag)},
		{base, base + int64(maxLag) + 1},      // longer than maxLag
		{base, base + int64(60*24*time.Hour)}, // longer than maxLag
		{math.MinInt64 + 1, base},             // longer than maxLag
		{math.MinInt64 + 1, math.MaxInt64},    // longer than maxLag
		{math.MaxInt64 - 10, math.MaxInt64},   // expiry saturates
		{math.MaxInt64 - int64(time.Hour), math.MaxInt64 - 1},
	} {
		e := makeEntry(c.iss, c.exp, 7)
		iss, exp := e.issued, e.expires()
		long := uint64(c.exp)-uint64(c.iss) > maxLag
		if iss < c.iss || iss > c.exp || (!long && iss != c.iss) {
			t.Errorf("makeEntry(%d, %d): issued %d", c.iss, c.exp, iss)
		}
		if exp < c.exp || (long && exp != c.exp) || (exp-c.exp >= lagUnit) {
			t.Errorf("makeEntry(%d, %d): expires %d", c.iss, c.exp, exp)
		}
		if e.ns != 7 {
			t.Errorf("makeEntry(%d, %d) = %+v", c.iss, c.exp, e)
		}
	}
}

var testNowInternal = time.Unix(1_800_000_000, 0)

// checkFloors verifies the heap order and the index of a floor table.
func checkFloors(t *testing.T, f *nsFloors) {
	t.Helper()
	if len(f.heap) != len(f.index) || len(f.heap) > f.limit {
		t.Fatalf("heap %d, index %d, limit %d", len(f.heap), len(f.index), f.limit)
	}
	for i, e := range f.heap {
		if j, ok := f.index[e.ns]; !ok || int(j) != i {
			t.Fatalf("index of %d = %d, %v; want %d", e.ns, j, ok, i)
		}
		if i > 0 && f.heap[(i-1)/2].until > e.until {
			t.Fatalf("heap order broken at %d", i)
		}
	}
}

// TestFloorTable runs random raises and prunes against a plain map model.
func TestFloorTable(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, limit := range []int{1, 2, 7, 64} {
		f := nsFloors{limit: limit}
		type model struct{ floor, until int64 }
		m := map[uint32]model{}
		now := int64(0)
		for range 20_000 {
			switch rng.IntN(4) {
			case 0:
				now += rng.Int64N(50)
				f.prune(now)
				for ns, e := range m {
					if e.until <= now {
						delete(m, ns)
					}
				}
			default:
				ns := uint32(rng.IntN(3 * limit))
				iss := now + rng.Int64N(100) - 50
				exp := now + rng.Int64N(100) + 1
				ok := f.raise(ns, iss, exp)
				e, had := m[ns]
				want := had || len(m) < limit
				switch {
				case had:
					m[ns] = model{max(e.floor, iss), max(e.until, exp)}
				case want:
					m[ns] = model{iss, exp}
				}
				if ok != want {
					t.Fatalf("raise(%d) = %v, want %v", ns, ok, want)
				}
			}
			checkFloors(t, &f)
			if len(m) != len(f.heap) {
				t.Fatalf("model holds %d floors, table %d", len(m), len(f.heap))
			}
			for ns, e := range m {
				floor, ok := f.get(ns)
				if !ok || floor != e.floor || f.heap[f.index[ns]].until != e.until {
					t.Fatalf("floor of %d = %d, %v; want %+v", ns, floor, ok, e)
				}
			}
		}
	}
}

// TestMemoryStoreModel drives stores with random keys, namespaces, issue
// times (up to 5 s ahead) and lifetimes while the clock moves, so floors
// are raised, overflow and expire; a model of every accepted key checks
// that none is accepted again while it has not expired.
func TestMemoryStoreModel(t *testing.T) {
	for _, size := range []int{1, 3, 16, 200, 1 << 13} {
		t.Run(strconv.Itoa(size), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(uint64(size), 3))
			now := testNowInternal
			s, err := NewMemoryReplayStore(size, func() time.Time { return now })
			if err != nil {
				t.Fatal(err)
			}
			ctx := context.Background()
			type rec struct{ issued, expires time.Time }
			accepted := map[string]rec{}
			var keys []string
			namespaces := 2 + rng.IntN(3*size)
			for range 40_000 {
				now = now.Add(time.Duration(rng.Int64N(int64(20 * time.Millisecond))))
				var key string
				var r rec
				if len(keys) > 0 && rng.IntN(3) == 0 {
					// A replay of an accepted key.
					key = keys[rng.IntN(len(keys))]
					r = accepted[key]
				} else {
					key = fmt.Sprint("dpop:k", rng.IntN(namespaces), ":", len(keys), ":x")
					r.issued = now.Add(time.Duration(rng.Int64N(int64(65*time.Second))) - 60*time.Second)
					r.expires = r.issued.Add(time.Duration(1 + rng.Int64N(int64(2*time.Minute))))
					if rng.IntN(50) == 0 {
						// A lifetime longer than maxLag.
						r.issued = now.Add(-100 * 24 * time.Hour)
						r.expires = now.Add(time.Duration(1 + rng.Int64N(int64(2*time.Minute))))
					}
					if rng.IntN(50) == 0 {
						// Nonsense, but must not open a hole: issued
						// after expires.
						r.expires = r.issued.Add(-time.Duration(rng.Int64N(int64(time.Minute))))
					}
				}
				err := s.Insert(ctx, key, r.issued, r.expires)
				if old, ok := accepted[key]; ok && old.expires.After(now) && err == nil {
					t.Fatalf("key %s accepted twice while live", key)
				}
				if err != nil && !errors.Is(err, ErrEvicted) && !errors.Is(err, ErrReplayed) {
					t.Fatal(err)
				}
				if _, ok := accepted[key]; err == nil && !ok && r.expires.After(now) {
					accepted[key] = r
					keys = append(keys, key)
				}
			}
			for i := range s.shards {
				checkFloors(t, &s.shards[i].floors)
			}
		})
	}
}

// TestMemoryStoreInsertAllocs checks that an insert allocates nothing once
// the store has grown, whether or not it evicts: neither the ring and its
// index nor the namespace floors.
func TestMemoryStoreInsertAllocs(t *testing.T) {
	const n = 1000
	now := testNowInternal
	s, err := NewMemoryReplayStore(n, func() time.Time { return now })
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	keys := make([]string, 3*n+200)
	for i := range keys {
		keys[i] = "dpop:0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I:" + strconv.Itoa(i)
	}
	next := 0
	insert := func() {
		issued := now.Add(time.Duration(next))
		if err := s.Insert(ctx, keys[next], issued, issued.Add(time.Hour)); err != nil {
			t.Fatal(err)
		}
		next++
	}
	for range n / 2 { // grow the ring before measuring
		insert()
	}
	if a := testing.AllocsPerRun(n/4, insert); a > 0 {
		t.Errorf("insert without eviction: %v allocs", a)
	}
	for s.Len() < n {
		insert()
	}
	insert() // the first eviction creates the namespace floor
	if a := testing.AllocsPerRun(n, insert); a > 0 {
		t.Errorf("insert with eviction: %v allocs", a)
	}
	if g := s.GlobalFloor(); !g.IsZero() {
		t.Errorf("global floor %v", g)
	}
}
