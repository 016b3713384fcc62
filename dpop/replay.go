package dpop

import (
	"context"
	"errors"
	"hash/maphash"
	"math"
	"strings"
	"sync"
	"time"

	"github.com/stepupgrpc/stepup/internal/nanotime"
)

// ErrReplayed is returned by ReplayStore.Insert when the key is already
// recorded.
var ErrReplayed = errors.New("dpop: key already recorded")

// ErrEvicted is returned by ReplayStore.Insert when the store can no longer
// vouch for the key: it evicted entries that had not yet expired, and the
// key, issued at or before the latest of them, could have been one of them
// (for MemoryReplayStore, one of the key's namespace unless its namespace floors
// overflowed: see MemoryReplayStore), or it lost its data (a shared store such as
// redisstore.Store that found Redis emptied) and the key was issued before
// the floor it raised then. Callers must refuse: accepting could let the
// lost entry be replayed.
var ErrEvicted = errors.New("dpop: issued before the eviction horizon")

// ReplayStore records single-use keys: DPoP proof identifiers, and also
// single-use challenges or TOTP time steps in other packages.
type ReplayStore interface {
	// Insert atomically records key until expires. It returns nil when
	// key was absent, ErrReplayed when present, ErrEvicted when the store
	// can no longer vouch for the key (it evicted entries that had not
	// yet expired, and the key, issued at or before them, could be one of
	// them), and any other error when it cannot answer (callers must
	// refuse).
	Insert(ctx context.Context, key string, issued, expires time.Time) error
}

// ReplayStoreFunc adapts a function to ReplayStore.
type ReplayStoreFunc func(ctx context.Context, key string, issued, expires time.Time) error

// Insert calls f.
func (f ReplayStoreFunc) Insert(ctx context.Context, key string, issued, expires time.Time) error {
	return f(ctx, key, issued, expires)
}

// MemoryReplayStore is an in-process ReplayStore bounded by entry count,
// which evicts its oldest entries first. It fails closed: when an entry that
// has not expired is evicted to make room, the store raises a floor to that entry's
// issue time, and from then on refuses (ErrEvicted) every key of the same
// namespace issued at or before the floor. An evicted key can therefore
// never be accepted twice; under a flood the cost is that older, legitimate
// keys of the flooded namespaces are refused too.
//
// # Namespaces
//
// A key's namespace is the part of the key before its last ':', cut after
// its first two ':'-separated fields: the key up to its second ':' when it
// has two or more, up to its first ':' when it has one, and "" when it has
// none. So
//
//	dpop:<thumbprint>:<jti>  → dpop:<thumbprint>  (one per DPoP key)
//	totp:<sub>:<step>        → totp:<sub>         (one per subject)
//	chl:<jti>                → chl                (all challenges)
//
// Cutting at two fields keeps the namespace out of the client's hands: a
// DPoP jti may contain ':' but cannot make a new namespace, so a client
// has one namespace per DPoP key it can use (behind the interceptor, per
// key bound to one of its tokens). A subject that contains
// ':' shares its namespace with the subjects of the same first field,
// which only widens the refusals. Keys that should be isolated must put
// the isolating value (chosen by the server) in the first two fields, and
// the client-chosen part last.
//
// Floors are kept per namespace, so a client that floods the store with
// its own keys (even issued in the future, as far as the caller allows)
// raises only its own namespace's floor: other namespaces are refused only
// if their own entries were evicted, and then only at or before their own
// floor. A namespace floor is dropped once every evicted entry it covers
// has expired (a later replay of them is an expired key, which Insert does
// not record and callers refuse themselves). Each shard (see below) holds
// at most as many namespace floors as entries; when its table is full of
// floors that still apply, an eviction in a further namespace raises the
// shard's global floor instead, which refuses the shard's keys of every
// namespace issued at or before it (fail closed: the evicted key is still
// refused). Floor reports the latest floor of any kind, GlobalFloor the
// global one and NamespaceFloor that of one namespace.
//
// Safety does not depend on the namespace rule: a key always has the same
// namespace, so a replay of an evicted key meets the floor its eviction
// raised. A namespace is stored as a 32-bit hash under the store's secret
// seed: two namespaces that collide share a floor, which can only refuse
// more (probability about floors/2³² for a given namespace, and the seed
// cannot be learnt to aim at one).
//
// # Implementation
//
// Keys are stored as 64-bit hashes under a secret per-store seed
// (hash/maphash), so memory per entry does not depend on key length. A hash
// collision can only make a fresh key look replayed, never let a replay in,
// and happens with probability about entries/2⁶⁴ per insert. An entry
// keeps its expiry as a whole number of milliseconds after its issue time,
// rounded up (so a key stays recorded up to a millisecond longer); for a
// lifetime over about 49 days it keeps the expiry exactly and an issue time
// that late before it, so that the floor its eviction raises covers more.
// Both only refuse more.
//
// Entries are evicted in the order they were recorded. They are held in a
// ring in that order, indexed by an open-addressed table of their hashes:
// an insert allocates nothing once the store has grown, and the store holds
// no pointers for the garbage collector to scan. A key recorded again after
// its entry expired keeps its entry's place in the eviction order, so it
// may be evicted sooner than a key recorded at the same time (and then
// raises a floor if it is still live: that only refuses more). Memory grows
// with use, by doubling, up to 56 to 88 bytes per entry at the bound.
//
// Large stores are split into shards (each with its own lock, entries, floor
// table and global floor) so that parallel inserts do not contend; a key
// always lands in the same shard, so per-shard floors keep the guarantee.
// Each shard gets 1/8 more than its even share so that the random spread of
// keys does not make one shard evict before the store holds size entries:
// memory is bounded by about 1.13 × size entries, plus at most as many
// namespace floors (a few tens of bytes each, held only while they apply).
// Safe for concurrent use.
type MemoryReplayStore struct {
	now        func() time.Time
	seed       maphash.Seed
	shards     []memoryShard
	mask       uint64
	shardLimit int
}

type storeKey = uint64

// storeEntry is 16 bytes, the size of two Unix times: with its key, a ring
// entry is 24.
type storeEntry struct {
	issued int64  // Unix nanoseconds
	lag    uint32 // from issued to the expiry, in lagUnits rounded up
	ns     uint32 // namespace hash
}

// lagUnit is the resolution of storeEntry.lag, and maxLag the longest lag
// it holds (about 49.7 days).
const (
	lagUnit = int64(time.Millisecond)
	maxLag  = math.MaxUint32 * uint64(lagUnit)
)

// makeEntry packs an entry issued at iss that expires at exp (both Unix
// nanoseconds, iss <= exp). The expiry it keeps is later than exp by less
// than lagUnit; when exp is more than maxLag after iss, the expiry is exact
// and the issue time it keeps is later than iss. Both only make the store
// refuse more: an entry is kept a little longer, and its floor covers more.
func makeEntry(iss, exp int64, ns uint32) storeEntry {
	// exp >= iss, so the unsigned difference is exact.
	d := uint64(exp) - uint64(iss)
	if d > maxLag {
		return storeEntry{issued: exp - int64(maxLag), lag: math.MaxUint32, ns: ns}
	}
	return storeEntry{issued: iss, lag: uint32((d + uint64(lagUnit) - 1) / uint64(lagUnit)), ns: ns}
}

// expires returns the expiry the entry keeps, saturated to the int64 range.
func (e storeEntry) expires() int64 {
	l := int64(e.lag) * lagUnit
	if e.issued > math.MaxInt64-l {
		return math.MaxInt64
	}
	return e.issued + l
}

type memoryShard struct {
	mu      sync.Mutex
	entries entryRing
	floors  nsFloors
	global  int64  // Unix nanoseconds; math.MinInt64 while the floor table never overflowed
	horizon int64  // latest floor raised, of any kind; math.MinInt64 while nothing live was evicted
	now     int64  // time of the Insert in progress, read by onEvict under mu
	evicted uint64 // live entries evicted, under mu (Evictions)
	_       [64]byte
}

// minShardSize keeps small stores (tests, tiny deployments) in one shard so
// that their capacity is exact.
const minShardSize = 4096

// maxShards bounds lock striping; more shards than cores brings nothing.
const maxShards = 32

// NewMemoryReplayStore returns a store that holds at least size entries (size > 0)
// before it evicts; stores of 8192 entries or more are sharded and may hold
// up to about 1.13 × size.
// now defaults to time.Now when nil.
func NewMemoryReplayStore(size int, now func() time.Time) (*MemoryReplayStore, error) {
	if size <= 0 {
		return nil, errors.New("dpop: memory store size must be positive")
	}
	if now == nil {
		now = time.Now
	}
	n := 1
	for n < maxShards && size/(2*n) >= minShardSize {
		n *= 2
	}
	per := size / n
	if size%n != 0 {
		per++
	}
	if n > 1 {
		// Headroom for the spread of keys over shards: per/8 is more
		// than 8 standard deviations for per >= 4096.
		per += per/8 + 64
	}
	if per > maxRingLimit {
		return nil, errors.New("dpop: memory store size too large")
	}
	s := &MemoryReplayStore{
		now:        now,
		seed:       maphash.MakeSeed(),
		shards:     make([]memoryShard, n),
		mask:       uint64(n - 1),
		shardLimit: per,
	}
	for i := range s.shards {
		sh := &s.shards[i]
		sh.global = math.MinInt64
		sh.horizon = math.MinInt64
		sh.floors.limit = min(per, math.MaxInt32)
		sh.entries = newEntryRing(per)
	}
	return s, nil
}

// namespace returns the namespace of key (see MemoryReplayStore).
func namespace(key string) string {
	i := strings.IndexByte(key, ':')
	if i < 0 {
		return ""
	}
	if j := strings.IndexByte(key[i+1:], ':'); j >= 0 {
		return key[:i+1+j]
	}
	return key[:i]
}

// onEvict runs under the shard lock whenever the ring drops an entry to make
// room. Dropping a live entry forgets a key that could still be replayed, so
// the floor of its namespace rises to cover it, or the global floor when
// the floor table is full.
func (sh *memoryShard) onEvict(_ storeKey, e storeEntry) {
	exp := e.expires()
	if exp <= sh.now {
		return
	}
	sh.evicted++
	sh.horizon = max(sh.horizon, e.issued)
	if !sh.floors.raise(e.ns, e.issued, exp) {
		sh.global = max(sh.global, e.issued)
	}
}

// Insert implements ReplayStore. A key whose expires is not after now is
// never recorded, and returns nil unless it is refused as replayed or
// evicted: callers refuse expired items themselves.
func (s *MemoryReplayStore) Insert(ctx context.Context, key string, issued, expires time.Time) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return s.insertHashed(maphash.String(s.seed, key), uint32(maphash.String(s.seed, namespace(key))), issued, expires)
}

// insertProof is Insert of the key "dpop:" + thumbprint + ":" + jti
// without building it: the hashes of its parts, written in turn, are those
// of the whole key and of its namespace (maphash is streaming).
func (s *MemoryReplayStore) insertProof(ctx context.Context, thumbprint, jti string, issued, expires time.Time) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	var h maphash.Hash
	h.SetSeed(s.seed)
	h.WriteString(proofKeyPrefix)
	h.WriteString(thumbprint)
	ns := uint32(h.Sum64())
	h.WriteByte(':')
	h.WriteString(jti)
	return s.insertHashed(h.Sum64(), ns, issued, expires)
}

// insertHashed is Insert of the key hashed to k in the namespace hashed to ns.
func (s *MemoryReplayStore) insertHashed(k uint64, ns uint32, issued, expires time.Time) error {
	now := nanotime.Unix(s.now())
	iss, exp := nanotime.Unix(issued), nanotime.Unix(expires)
	// The top bits pick the shard; the map hashes the whole value again.
	sh := &s.shards[(k>>32)&s.mask]
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if old, ok := sh.entries.Peek(k); ok && old.expires() > now {
		return ErrReplayed
	}
	// Fail closed: this key may have been recorded and evicted.
	if iss <= sh.global {
		return ErrEvicted
	}
	if h := sh.floors.heap; len(h) > 0 {
		if h[0].until <= now {
			sh.floors.prune(now)
		}
		// No namespace floor is above the horizon: keys issued after it,
		// the usual case, skip the look-up.
		if iss <= sh.horizon {
			if f, ok := sh.floors.get(ns); ok && iss <= f {
				return ErrEvicted
			}
		}
	}
	if exp <= now {
		return nil
	}
	sh.now = now
	// An entry is kept at least until its issue time, so that its floor
	// can cover it even if issued is after expires.
	sh.entries.Add(k, makeEntry(iss, max(exp, iss), ns), sh.onEvict)
	return nil
}

// Evictions returns how many entries were evicted before they expired:
// each raised a floor (fail closed). Useful as a metric: it should stay 0.
func (s *MemoryReplayStore) Evictions() uint64 {
	var n uint64
	for i := range s.shards {
		sh := &s.shards[i]
		sh.mu.Lock()
		n += sh.evicted
		sh.mu.Unlock()
	}
	return n
}

// Len returns the number of entries held, expired ones included.
func (s *MemoryReplayStore) Len() int {
	n := 0
	for i := range s.shards {
		sh := &s.shards[i]
		sh.mu.Lock()
		n += sh.entries.Len()
		sh.mu.Unlock()
	}
	return n
}

// Floor returns the latest floor the store has raised, in any namespace:
// the latest issue time of the live entries it evicted. Keys
// issued at or before it may be refused with ErrEvicted in the namespace of
// that entry (in all of them when it is also the GlobalFloor). It is the
// zero Time while no live entry has been evicted. Useful as a metric: a
// floor close to now means the store is too small for the traffic, or that
// a client is flooding it (see NamespaceFloor).
func (s *MemoryReplayStore) Floor() time.Time {
	return s.maxFloor(func(sh *memoryShard) int64 { return sh.horizon })
}

// GlobalFloor returns the floor that applies to every namespace: keys issued
// at or before it are refused with ErrEvicted whatever their namespace. It
// rises only when an eviction finds the namespace floor table full, and is
// the zero Time until then. Useful as an alert: once it is set, a flood in
// enough namespaces to fill the table can refuse everyone's keys.
func (s *MemoryReplayStore) GlobalFloor() time.Time {
	return s.maxFloor(func(sh *memoryShard) int64 { return sh.global })
}

// NamespaceFloor returns the latest floor that applies now to keys of
// namespace ns (see MemoryReplayStore for the rule that maps a key to its
// namespace; for a DPoP key, "dpop:" followed by its thumbprint), the
// global floor included: keys of ns issued at or before it may be refused
// with ErrEvicted. (Each shard keeps its own floors and a key meets those
// of its shard, so a key just at this floor may still be accepted.) It is
// the zero Time while no floor applies to ns.
func (s *MemoryReplayStore) NamespaceFloor(ns string) time.Time {
	h := uint32(maphash.String(s.seed, ns))
	now := nanotime.Unix(s.now())
	return s.maxFloor(func(sh *memoryShard) int64 {
		f := sh.global
		if i, ok := sh.floors.index[h]; ok && sh.floors.heap[i].until > now {
			f = max(f, sh.floors.heap[i].floor)
		}
		return f
	})
}

// maxFloor returns the largest of f over the shards, each read under its
// lock, as a Time (zero for math.MinInt64).
func (s *MemoryReplayStore) maxFloor(f func(*memoryShard) int64) time.Time {
	m := int64(math.MinInt64)
	for i := range s.shards {
		sh := &s.shards[i]
		sh.mu.Lock()
		m = max(m, f(sh))
		sh.mu.Unlock()
	}
	if m == math.MinInt64 {
		return time.Time{}
	}
	return time.Unix(0, m)
}

// nsFloors is a shard's table of namespace floors: a min-heap on the time
// until which each floor must be kept, indexed by namespace. It holds at
// most limit floors. Not safe for concurrent use (the shard lock guards it).
type nsFloors struct {
	index map[uint32]int32 // namespace → position in heap
	heap  []nsFloor
	limit int
	last  int // position of the floor raised last, if still there: evictions come in runs
}

type nsFloor struct {
	floor int64  // Unix nanoseconds: keys of ns issued at or before it are refused
	until int64  // Unix nanoseconds: latest expiry of the evicted entries it covers
	ns    uint32 // namespace hash
}

// releaseCap is the heap capacity above which an emptied table gives its
// memory back, so that a past flood does not keep it.
const releaseCap = 256

// get returns the floor of namespace ns, if it has one.
func (t *nsFloors) get(ns uint32) (int64, bool) {
	i, ok := t.index[ns]
	if !ok {
		return 0, false
	}
	return t.heap[i].floor, true
}

// raise covers an evicted entry of namespace ns issued at iss that expires
// at exp. It returns false, changing nothing, when ns has no floor and the
// table is full.
func (t *nsFloors) raise(ns uint32, iss, exp int64) bool {
	i := t.last
	if i >= len(t.heap) || t.heap[i].ns != ns {
		j, ok := t.index[ns]
		i = int(j)
		if !ok {
			i = -1
		}
	}
	if i >= 0 {
		f := &t.heap[i]
		f.floor = max(f.floor, iss)
		if exp > f.until {
			f.until = exp
			if 2*i+1 < len(t.heap) {
				i = t.down(i)
			}
		}
		t.last = i
		return true
	}
	if len(t.heap) >= t.limit {
		return false
	}
	if t.index == nil {
		t.index = make(map[uint32]int32)
	}
	t.heap = append(t.heap, nsFloor{floor: iss, until: exp, ns: ns})
	i = len(t.heap) - 1
	t.index[ns] = int32(i)
	t.last = t.up(i)
	return true
}

// prune drops the floors whose evicted entries have all expired at now.
func (t *nsFloors) prune(now int64) {
	for len(t.heap) > 0 && t.heap[0].until <= now {
		delete(t.index, t.heap[0].ns)
		last := len(t.heap) - 1
		if last > 0 {
			t.heap[0] = t.heap[last]
			t.index[t.heap[0].ns] = 0
		}
		t.heap = t.heap[:last]
		t.down(0)
	}
	if len(t.heap) == 0 && cap(t.heap) > releaseCap {
		t.index, t.heap = nil, nil
	}
}

func (t *nsFloors) swap(i, j int) {
	t.heap[i], t.heap[j] = t.heap[j], t.heap[i]
	t.index[t.heap[i].ns] = int32(i)
	t.index[t.heap[j].ns] = int32(j)
}

// up and down restore the heap order after the element at i moved, and
// return its new position.
func (t *nsFloors) up(i int) int {
	for i > 0 {
		p := (i - 1) / 2
		if t.heap[p].until <= t.heap[i].until {
			break
		}
		t.swap(i, p)
		i = p
	}
	return i
}

func (t *nsFloors) down(i int) int {
	n := len(t.heap)
	for {
		m := 2*i + 1
		if m >= n {
			return i
		}
		if r := m + 1; r < n && t.heap[r].until < t.heap[m].until {
			m = r
		}
		if t.heap[i].until <= t.heap[m].until {
			return i
		}
		t.swap(i, m)
		i = m
	}
}
