package dpop

import (
	"math/rand/v2"
	"slices"
	"strconv"
	"testing"
)

// ringModel is the eviction order entryRing must follow, written the
// obvious way: a list of keys in the order they were first recorded.
type ringModel struct {
	order   []storeKey
	entries map[storeKey]storeEntry
	limit   int
}

func (m *ringModel) add(k storeKey, e storeEntry) (evicted storeKey, ev storeEntry, did bool) {
	if _, ok := m.entries[k]; ok {
		m.entries[k] = e
		return 0, storeEntry{}, false
	}
	if len(m.order) == m.limit {
		evicted, m.order = m.order[0], m.order[1:]
		ev, did = m.entries[evicted], true
		delete(m.entries, evicted)
	}
	m.order = append(m.order, k)
	m.entries[k] = e
	return evicted, ev, did
}

// TestEntryRingModel drives entryRing and the model with the same random
// adds and checks every Peek and every eviction. Keys are drawn so that
// many share their low bits (the index's home slot): probe runs form, wrap
// around the end of the index and are cut by deletions, which is where an
// open-addressed index goes wrong.
func TestEntryRingModel(t *testing.T) {
	for _, limit := range []int{1, 2, 3, 7, 255, 256, 257, 1000, 5000} {
		t.Run(strconv.Itoa(limit), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(uint64(limit), 9))
			r := newEntryRing(limit)
			m := &ringModel{entries: map[storeKey]storeEntry{}, limit: limit}
			var held []storeKey // keys ever added, some evicted since
			for step := range 60_000 {
				var k storeKey
				switch {
				case len(held) > 0 && rng.IntN(4) == 0:
					// An existing or evicted key again.
					k = held[rng.IntN(len(held))]
				case rng.IntN(2) == 0:
					// Few home slots, near the end of the index, so runs wrap.
					k = rng.Uint64()&^0xffff | (0xfff0+rng.Uint64N(32))&0xffff
				default:
					k = rng.Uint64()
				}
				e := storeEntry{issued: int64(step), lag: rng.Uint32(), ns: rng.Uint32()}
				wantKey, wantEntry, wantEvict := m.add(k, e)
				evicted := false
				r.Add(k, e, func(gk storeKey, ge storeEntry) {
					if evicted {
						t.Fatalf("step %d: two evictions", step)
					}
					evicted = true
					if !wantEvict || gk != wantKey || ge != wantEntry {
						t.Fatalf("step %d: evicted %x %+v, want %x %+v (%v)", step, gk, ge, wantKey, wantEntry, wantEvict)
					}
				})
				if evicted != wantEvict {
					t.Fatalf("step %d: evicted %v, want %v", step, evicted, wantEvict)
				}
				held = append(held, k)
				if r.Len() != len(m.order) {
					t.Fatalf("step %d: Len %d, want %d", step, r.Len(), len(m.order))
				}
				// Probe a few keys, held or not.
				for range 3 {
					q := held[rng.IntN(len(held))]
					got, ok := r.Peek(q)
					want, wok := m.entries[q]
					if ok != wok || got != want {
						t.Fatalf("step %d: Peek(%x) = %+v, %v; want %+v, %v", step, q, got, ok, want, wok)
					}
				}
			}
			checkIndex(t, &r)
			// Every held key is found, in the model's order.
			var order []storeKey
			for i := range r.Len() {
				order = append(order, r.ring[(r.head+i)%len(r.ring)].key)
			}
			if !slices.Equal(order, m.order) {
				t.Fatal("ring order differs from the model's")
			}
		})
	}
}

// checkIndex checks the index's invariants: it is at most half full, holds
// exactly the ring's keys at their positions, and every key is reachable
// from its home slot without crossing an empty slot.
func checkIndex(t *testing.T, r *entryRing) {
	t.Helper()
	used := 0
	for i, s := range r.index {
		if s.pos == 0 {
			continue
		}
		used++
		if int(s.pos) > len(r.ring) || r.ring[s.pos-1].key != s.key {
			t.Fatalf("slot %d points to ring position %d, which holds another key", i, s.pos-1)
		}
		for j := s.key & r.mask; j != uint64(i); j = (j + 1) & r.mask {
			if r.index[j].pos == 0 {
				t.Fatalf("slot %d is cut off from its home %d by an empty slot at %d", i, s.key&r.mask, j)
			}
		}
	}
	if used != len(r.ring) || 2*used > len(r.index) {
		t.Fatalf("%d index slots used for %d entries in %d slots", used, len(r.ring), len(r.index))
	}
}
