package dpop

// entryRing holds a shard's entries in insertion order, which is the
// eviction order, with an index from key to position. It replaces a
// linked-list LRU: an insert allocates nothing once the ring has grown,
// touches two places of memory at random (the index slot of the new key and
// that of the key it evicts; the ring itself is written in sequence), and
// holds no pointers, so the garbage collector never scans it.
//
// The index is open-addressed with linear probing and at most half full;
// deletion shifts later entries of a probe run back (Knuth's Algorithm R)
// instead of leaving tombstones, so probe runs never lengthen with churn.
// Keys are hashes under the store's secret seed: a client cannot aim keys
// at one run of the index.
//
// Not safe for concurrent use: the shard lock guards it.
type entryRing struct {
	ring  []ringEntry // len grows up to limit, then the ring wraps at head
	head  int         // when full: position of the oldest entry
	limit int
	index []indexSlot // power-of-two size, at least twice cap(ring)
	mask  uint64
}

type ringEntry struct {
	key storeKey
	storeEntry
}

// indexSlot maps a key to its position in the ring; pos is the position
// plus one, and 0 marks an empty slot.
type indexSlot struct {
	key storeKey
	pos uint32
}

// initialRing is the ring's first capacity: stores grow as they fill, so
// a large store that sees little traffic stays small.
const initialRing = 256

// maxRingLimit bounds a shard's entries so that positions fit indexSlot.pos.
const maxRingLimit = 1<<31 - 1

func newEntryRing(limit int) entryRing {
	var r entryRing
	r.limit = limit
	r.grow(min(limit, initialRing))
	return r
}

// Len returns the number of entries held.
func (r *entryRing) Len() int { return len(r.ring) }

// find returns the index slot of k, or -1.
func (r *entryRing) find(k storeKey) int {
	for i := k & r.mask; ; i = (i + 1) & r.mask {
		s := &r.index[i]
		if s.pos == 0 {
			return -1
		}
		if s.key == k {
			return int(i)
		}
	}
}

// Peek returns the entry of k, if held.
func (r *entryRing) Peek(k storeKey) (storeEntry, bool) {
	i := r.find(k)
	if i < 0 {
		return storeEntry{}, false
	}
	return r.ring[r.index[i].pos-1].storeEntry, true
}

// Add records e under k. A key already held is updated where it stands in
// the eviction order. A new key, when the ring is full, replaces the oldest
// entry, which is passed to evicted first.
func (r *entryRing) Add(k storeKey, e storeEntry, evicted func(storeKey, storeEntry)) {
	if i := r.find(k); i >= 0 {
		r.ring[r.index[i].pos-1].storeEntry = e
		return
	}
	var pos int
	switch {
	case len(r.ring) < r.limit:
		if len(r.ring) == cap(r.ring) {
			r.grow(min(2*cap(r.ring), r.limit))
		}
		pos = len(r.ring)
		r.ring = append(r.ring, ringEntry{})
	default:
		pos = r.head
		old := r.ring[pos]
		r.remove(r.find(old.key))
		evicted(old.key, old.storeEntry)
		r.head++
		if r.head == r.limit {
			r.head = 0
		}
	}
	r.ring[pos] = ringEntry{key: k, storeEntry: e}
	r.insert(k, pos)
}

// insert adds k at pos to the index; k is not in it.
func (r *entryRing) insert(k storeKey, pos int) {
	i := k & r.mask
	for r.index[i].pos != 0 {
		i = (i + 1) & r.mask
	}
	r.index[i] = indexSlot{key: k, pos: uint32(pos + 1)}
}

// remove empties index slot i and moves back the later slots of its probe
// run that would otherwise no longer be found from their home slot.
func (r *entryRing) remove(i int) {
	hole := uint64(i)
	for j := (hole + 1) & r.mask; r.index[j].pos != 0; j = (j + 1) & r.mask {
		home := r.index[j].key & r.mask
		// Slot j stays when its home lies cyclically in (hole, j].
		if hole <= j {
			if hole < home && home <= j {
				continue
			}
		} else if hole < home || home <= j {
			continue
		}
		r.index[hole] = r.index[j]
		hole = j
	}
	r.index[hole] = indexSlot{}
}

// grow gives the ring capacity n (while it has not wrapped) and rebuilds
// the index at twice that size or more.
func (r *entryRing) grow(n int) {
	ring := make([]ringEntry, len(r.ring), n)
	copy(ring, r.ring)
	r.ring = ring
	size := 2
	for size < 2*n {
		size *= 2
	}
	r.index = make([]indexSlot, size)
	r.mask = uint64(size - 1)
	for pos, e := range r.ring {
		r.insert(e.key, pos)
	}
}
