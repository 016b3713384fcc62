package dpop

import (
	"context"
	"errors"
	"hash/maphash"
	"math"
	"sync"
	"time"

	"github.com/hashicorp/golang-lru/v2/simplelru"
)

// ErrReplayed is returned by ReplayStore.Insert when the key is already
// recorded.
var ErrReplayed = errors.New("dpop: key already recorded")

// ErrEvicted is returned by ReplayStore.Insert when the store can no longer
// vouch for anything issued at or before the given time, because it evicted
// an entry that had not yet expired. Callers must refuse: accepting could let
// the evicted entry be replayed.
var ErrEvicted = errors.New("dpop: issued before the eviction horizon")

// ReplayStore records single-use keys: DPoP proof identifiers, and also
// single-use challenges or TOTP time steps in other packages.
type ReplayStore interface {
	// Insert atomically records key until expires. It returns nil when
	// key was absent, ErrReplayed when present, ErrEvicted when the store
	// can no longer vouch for anything issued at or before issued (because
	// an entry that had not yet expired was evicted), and any other error
	// when it cannot answer (callers must refuse).
	Insert(ctx context.Context, key string, issued, expires time.Time) error
}

// ReplayStoreFunc adapts a function to ReplayStore.
type ReplayStoreFunc func(ctx context.Context, key string, issued, expires time.Time) error

// Insert calls f.
func (f ReplayStoreFunc) Insert(ctx context.Context, key string, issued, expires time.Time) error {
	return f(ctx, key, issued, expires)
}

// MemoryStore is an in-process ReplayStore bounded by entry count, built on
// the hashicorp/golang-lru LRU. It fails closed: when an entry that has not
// expired is evicted to make room, the store raises a floor to that entry's
// issue time and from then on refuses (ErrEvicted) every key issued at or
// before the floor. An evicted key can therefore never be accepted twice;
// under a flood the cost is that older, legitimate keys are refused too.
//
// Keys are stored as 64-bit hashes under a secret per-store seed
// (hash/maphash), so memory per entry does not depend on key length. A hash
// collision can only make a fresh key look replayed, never let a replay in,
// and happens with probability about entries/2⁶⁴ per insert.
//
// Large stores are split into shards (each with its own lock, LRU and
// floor) so that parallel inserts do not contend; a key always lands in the
// same shard, so per-shard floors keep the guarantee. Each shard gets 1/8
// more than its even share so that the random spread of keys does not make
// one shard evict before the store holds size entries: memory is bounded by
// about 1.13 × size entries. Safe for concurrent use.
type MemoryStore struct {
	now        func() time.Time
	seed       maphash.Seed
	shards     []memoryShard
	mask       uint64
	shardLimit int
}

type storeKey = uint64

type storeEntry struct {
	issued, expires int64 // Unix nanoseconds
}

type memoryShard struct {
	mu    sync.Mutex
	lru   *simplelru.LRU[storeKey, storeEntry]
	floor int64 // Unix nanoseconds; math.MinInt64 while nothing live was evicted
	now   int64 // time of the Insert in progress, read by onEvict under mu
	_     [64]byte
}

// minShardSize keeps small stores (tests, tiny deployments) in one shard so
// that their capacity is exact.
const minShardSize = 4096

// maxShards bounds lock striping; more shards than cores brings nothing.
const maxShards = 32

// NewMemoryStore returns a store that holds at least size entries (size > 0)
// before it evicts; stores of 8192 entries or more are sharded and may hold
// up to about 1.13 × size.
// now defaults to time.Now when nil.
func NewMemoryStore(size int, now func() time.Time) (*MemoryStore, error) {
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
	per := (size + n - 1) / n
	if n > 1 {
		// Headroom for the spread of keys over shards: per/8 is more
		// than 8 standard deviations for per >= 4096.
		per += per/8 + 64
	}
	s := &MemoryStore{
		now:        now,
		seed:       maphash.MakeSeed(),
		shards:     make([]memoryShard, n),
		mask:       uint64(n - 1),
		shardLimit: per,
	}
	for i := range s.shards {
		sh := &s.shards[i]
		sh.floor = math.MinInt64
		l, err := simplelru.NewLRU[storeKey, storeEntry](per, sh.onEvict)
		if err != nil {
			return nil, err
		}
		sh.lru = l
	}
	return s, nil
}

// onEvict runs under the shard lock whenever the LRU drops an entry to make
// room. Dropping a live entry forgets a key that could still be replayed, so
// the floor rises to cover it.
func (sh *memoryShard) onEvict(_ storeKey, e storeEntry) {
	if e.expires > sh.now && e.issued > sh.floor {
		sh.floor = e.issued
	}
}

// Insert implements ReplayStore. A key whose expires is not after now is
// never recorded and always returns nil: callers refuse expired items
// themselves.
func (s *MemoryStore) Insert(ctx context.Context, key string, issued, expires time.Time) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	now := unixNano(s.now())
	k := maphash.String(s.seed, key)
	e := storeEntry{issued: unixNano(issued), expires: unixNano(expires)}
	// The top bits pick the shard; the map hashes the whole value again.
	sh := &s.shards[(k>>32)&s.mask]
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if old, ok := sh.lru.Peek(k); ok && old.expires > now {
		return ErrReplayed
	}
	// Fail closed: this key may have been recorded and evicted.
	if e.issued <= sh.floor {
		return ErrEvicted
	}
	if e.expires <= now {
		return nil
	}
	sh.now = now
	sh.lru.Add(k, e)
	return nil
}

// Len returns the number of entries held, expired ones included.
func (s *MemoryStore) Len() int {
	n := 0
	for i := range s.shards {
		sh := &s.shards[i]
		sh.mu.Lock()
		n += sh.lru.Len()
		sh.mu.Unlock()
	}
	return n
}

// Floor returns the latest eviction horizon over all shards: keys issued at
// or before it may be refused with ErrEvicted. It is the zero Time while no
// live entry has been evicted. Useful as a metric: a floor close to now
// means the store is too small for the traffic.
func (s *MemoryStore) Floor() time.Time {
	f := int64(math.MinInt64)
	for i := range s.shards {
		sh := &s.shards[i]
		sh.mu.Lock()
		f = max(f, sh.floor)
		sh.mu.Unlock()
	}
	if f == math.MinInt64 {
		return time.Time{}
	}
	return time.Unix(0, f)
}

// unixNano is t.UnixNano saturated to the int64 range (UnixNano is undefined
// outside years 1678-2262).
func unixNano(t time.Time) int64 {
	const maxSec = math.MaxInt64/int64(time.Second) - 1
	switch sec := t.Unix(); {
	case sec > maxSec:
		return math.MaxInt64
	case sec < -maxSec:
		return math.MinInt64 + 1
	}
	return t.UnixNano()
}
