package challenge

import (
	"container/heap"
	"context"
	"errors"
	"fmt"
	"math"
	"sync"
	"time"

	"github.com/stepupgrpc/stepup/challenge/factor"
	"github.com/stepupgrpc/stepup/dpop"
	"github.com/stepupgrpc/stepup/internal/nanotime"
)

// Store holds every piece of state that replicas must share. Everything
// else (challenges, grants) is stateless and verifies on any replica that
// has the keys.
//
// Keys used by Service (sub is the subject, jti a token id, w a window
// number). The subject is in braces, a Redis Cluster hash tag: every key of
// one subject lives on one shard.
//
//	chl:{<sub>}:<jti>      Insert: a challenge was consumed (single use)
//	totp:{<sub>}:<step>    Insert: a TOTP time step was accepted (RFC 6238 §5.2)
//	totpby:{<sub>}:<step>  SetMax/Get: the first 8 bytes of the challenge that used the step (audit detail)
//	chlatt:{<sub>}:<jti>   Increment: answers tried on a challenge
//	att:{<sub>}:<w>        Increment: answers tried by a subject in window w
//	ok:{<sub>}:<w>         Increment: of those, answers that were not wrong
//	rev:{<sub>}            SetMax/Get: grants issued at or before this Unix time are revoked
//	revtok:{<sub>}         SetMax/Get: access tokens issued at or before this Unix time are revoked
//	revkey:{<sub>}:<jkt>   SetMax/Get: tokens bound to this DPoP key are revoked (non-zero)
//	apr:{<sub>}:<jti>      SetMax/Get: an approval's state (challenge/approval)
//	aprd:{<sub>}:<jti>     Insert: an approval was decided (one decision)
//	signin:{<sub>}:<jti>   Insert: an approver page sign-in state was used
//	aprout:{<sub>}:<jti>   SetMax/Get: an approver page session was signed out (non-zero)
//	aprrev:{<sub>}         SetMax/Get: approver page sessions begun at or before this Unix time are revoked
//
// An implementation must never drop a key before its expiry: a dropped
// single-use key could be replayed, a dropped counter gives an attacker more
// guesses, a dropped revocation revives grants. When it cannot record or
// answer it returns an error, and Service refuses the call (fail closed).
// One that loses keys anyway (an eviction, a shared store that lost its
// data) must refuse every single-use key issued at or before the latest
// moment it could have recorded a lost one (dpop.ErrEvicted); Service then
// refuses with ReasonReplayWindow. The issued time Service passes is never
// later than the key can first be recorded: a challenge's issue time, a TOTP
// step's first accepted moment (Skew steps before its own).
// For Redis that means maxmemory-policy noeviction. Implementations must be
// safe for concurrent use and atomic per operation. Keys are opaque
// strings; the keys of one subject share a "{subject}" part, a Redis
// Cluster hash tag.
type Store interface {
	// Insert records a single-use key (see dpop.ReplayStore): nil when the
	// key was absent, dpop.ErrReplayed when present, dpop.ErrEvicted when
	// the store can no longer vouch for keys issued that early, any other
	// error when it cannot answer.
	dpop.ReplayStore
	// Increment adds one to the counter at key and returns the new value
	// (1 for a new key). The expiry is set when the key is created and is
	// not moved by later increments.
	Increment(ctx context.Context, key string, expires time.Time) (int64, error)
	// SetMax sets the value at key to max(current, value) and its expiry
	// to the later of the current one and expires.
	SetMax(ctx context.Context, key string, value int64, expires time.Time) error
	// Get returns the value at key; 0 when absent or expired.
	Get(ctx context.Context, key string) (int64, error)
}

// subjectKey is factor.SubjectKey: the keys of one subject share a
// Redis Cluster hash tag.
func subjectKey(kind, subject string, rest ...string) string {
	return factor.SubjectKey(kind, subject, rest...)
}

// getMany reads keys of one subject: with a store that is a MultiGetter in
// one operation (one Redis round trip: the keys share the subject's hash
// tag), otherwise one by one. A failure is a *StoreError.
func getMany(ctx context.Context, store Store, keys ...string) ([]int64, error) {
	var vals []int64
	var err error
	if mg, ok := store.(MultiGetter); ok {
		vals, err = mg.GetMany(ctx, keys...)
		if err == nil && len(vals) != len(keys) {
			err = fmt.Errorf("GetMany returned %d values for %d keys", len(vals), len(keys))
		}
	} else {
		vals = make([]int64, len(keys))
		for i, k := range keys {
			if vals[i], err = store.Get(ctx, k); err != nil {
				break
			}
		}
	}
	if err != nil {
		return nil, storeError(err)
	}
	return vals, nil
}

// A MultiGetter is a Store that reads several keys in one operation (for
// Redis, one round trip). Service uses it where one call reads several
// keys; they always share one subject's hash tag, so they live on one
// Redis Cluster shard. Store implementations should provide it; without
// it, Service reads the keys one by one.
type MultiGetter interface {
	// GetMany returns the value of each key, in order; 0 when absent or
	// expired.
	GetMany(ctx context.Context, keys ...string) ([]int64, error)
}

// ErrStoreFull is returned by MemoryStore when its value table is full of
// entries that have not expired. It never evicts them (see MemoryStore).
var ErrStoreFull = errors.New("challenge: memory store is full")

// MemoryStore is an in-process Store for a single replica: single-use keys
// live in a dpop.MemoryReplayStore (LRU, fail closed under eviction: see its
// documentation), counters and values in a bounded table of their own.
//
// The value table never evicts an entry that has not expired. Evicting a
// live counter would reset an attacker's count of wrong answers, and
// evicting a revocation would revive the grants it revoked; both fail open.
// Instead, when the table is full, expired entries are dropped first, and if
// none has expired the operation fails with ErrStoreFull, so Service refuses
// the answer or RevokeGrants reports the error (fail closed, and loud).
// Counters live for an attempt window (default 15 minutes) or a challenge
// lifetime; revocations for the longest grant lifetime (default 24 hours).
// Size the store for the wrong answers and revocations expected in those
// periods, or use a shared store.
//
// Safe for concurrent use.
type MemoryStore struct {
	replay *dpop.MemoryReplayStore
	now    func() time.Time
	size   int

	mu      sync.Mutex
	entries map[string]*valueEntry
	byExp   expiryHeap

	approvals map[string]map[string]approvalEntry // subject, id
	nApproval int
}

type approvalEntry struct {
	record  []byte
	expires int64 // Unix nanoseconds
}

type valueEntry struct {
	key     string
	value   int64
	expires int64 // Unix nanoseconds
	index   int   // in byExp
}

// NewMemoryStore returns a MemoryStore holding at most size single-use keys
// and at most size counters and values (size > 0). now defaults to time.Now.
func NewMemoryStore(size int, now func() time.Time) (*MemoryStore, error) {
	if size <= 0 {
		return nil, errors.New("challenge: memory store size must be positive")
	}
	if now == nil {
		now = time.Now
	}
	replay, err := dpop.NewMemoryReplayStore(size, now)
	if err != nil {
		return nil, err
	}
	return &MemoryStore{replay: replay, now: now, size: size, entries: map[string]*valueEntry{}, approvals: map[string]map[string]approvalEntry{}}, nil
}

// Insert implements dpop.ReplayStore.
func (s *MemoryStore) Insert(ctx context.Context, key string, issued, expires time.Time) error {
	return s.replay.Insert(ctx, key, issued, expires)
}

// lookup returns the live entry at key, dropping it if it expired. Callers
// hold s.mu.
func (s *MemoryStore) lookup(key string, now int64) *valueEntry {
	e := s.entries[key]
	if e != nil && e.expires <= now {
		heap.Remove(&s.byExp, e.index)
		delete(s.entries, key)
		return nil
	}
	return e
}

// add inserts a new entry, first dropping expired ones if the table is
// full. Callers hold s.mu.
func (s *MemoryStore) add(key string, value, expires, now int64) error {
	for len(s.entries) >= s.size && len(s.byExp) > 0 && s.byExp[0].expires <= now {
		e := heap.Pop(&s.byExp).(*valueEntry)
		delete(s.entries, e.key)
	}
	if len(s.entries) >= s.size {
		return ErrStoreFull
	}
	e := &valueEntry{key: key, value: value, expires: expires}
	s.entries[key] = e
	heap.Push(&s.byExp, e)
	return nil
}

// Increment implements Store.
func (s *MemoryStore) Increment(ctx context.Context, key string, expires time.Time) (int64, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	now, exp := nanotime.Unix(s.now()), nanotime.Unix(expires)
	s.mu.Lock()
	defer s.mu.Unlock()
	if e := s.lookup(key, now); e != nil {
		if e.value < math.MaxInt64 {
			e.value++
		}
		return e.value, nil
	}
	if exp <= now {
		// Already expired: nothing to remember, and the count is 1.
		return 1, nil
	}
	if err := s.add(key, 1, exp, now); err != nil {
		return 0, err
	}
	return 1, nil
}

// SetMax implements Store.
func (s *MemoryStore) SetMax(ctx context.Context, key string, value int64, expires time.Time) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	now, exp := nanotime.Unix(s.now()), nanotime.Unix(expires)
	s.mu.Lock()
	defer s.mu.Unlock()
	if e := s.lookup(key, now); e != nil {
		e.value = max(e.value, value)
		if exp > e.expires {
			e.expires = exp
			heap.Fix(&s.byExp, e.index)
		}
		return nil
	}
	if exp <= now {
		return nil
	}
	return s.add(key, value, exp, now)
}

// Get implements Store.
func (s *MemoryStore) Get(ctx context.Context, key string) (int64, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	now := nanotime.Unix(s.now())
	s.mu.Lock()
	defer s.mu.Unlock()
	if e := s.lookup(key, now); e != nil {
		return e.value, nil
	}
	return 0, nil
}

// GetMany implements MultiGetter: the values of keys, read at one instant.
func (s *MemoryStore) GetMany(ctx context.Context, keys ...string) ([]int64, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	now := nanotime.Unix(s.now())
	out := make([]int64, len(keys))
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, k := range keys {
		if e := s.lookup(k, now); e != nil {
			out[i] = e.value
		}
	}
	return out, nil
}

// Len returns the number of counters and values held, expired ones that
// were not yet dropped included.
func (s *MemoryStore) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.entries)
}

// ReplayFloor returns the eviction floor of the single-use table (see
// dpop.MemoryReplayStore.Floor): the zero Time while no live key was evicted.
func (s *MemoryStore) ReplayFloor() time.Time { return s.replay.Floor() }

// expiryHeap orders entries by expiry, earliest first.
type expiryHeap []*valueEntry

func (h expiryHeap) Len() int           { return len(h) }
func (h expiryHeap) Less(i, j int) bool { return h[i].expires < h[j].expires }
func (h expiryHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].index = i
	h[j].index = j
}
func (h *expiryHeap) Push(x any) {
	e := x.(*valueEntry)
	e.index = len(*h)
	*h = append(*h, e)
}
func (h *expiryHeap) Pop() any {
	old := *h
	e := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	return e
}

var _ ApprovalStore = (*MemoryStore)(nil)

// PutApproval implements ApprovalStore. At most size records are kept;
// when full of records that have not expired it fails with ErrStoreFull
// (the challenge is then not issued: fail closed).
func (s *MemoryStore) PutApproval(ctx context.Context, subject, id string, record []byte, expires time.Time) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	now, exp := nanotime.Unix(s.now()), nanotime.Unix(expires)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.nApproval >= s.size {
		for sub, m := range s.approvals {
			s.dropExpiredApprovals(sub, m, now)
		}
		if s.nApproval >= s.size {
			return ErrStoreFull
		}
	}
	m := s.approvals[subject]
	if m == nil {
		m = map[string]approvalEntry{}
		s.approvals[subject] = m
	}
	if _, ok := m[id]; !ok {
		s.nApproval++
	}
	m[id] = approvalEntry{record: append([]byte(nil), record...), expires: exp}
	return nil
}

// Approvals implements ApprovalStore.
func (s *MemoryStore) Approvals(ctx context.Context, subject string) (map[string][]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	now := nanotime.Unix(s.now())
	s.mu.Lock()
	defer s.mu.Unlock()
	m := s.approvals[subject]
	s.dropExpiredApprovals(subject, m, now)
	out := make(map[string][]byte, len(m))
	for id, e := range m {
		out[id] = append([]byte(nil), e.record...)
	}
	return out, nil
}

// dropExpiredApprovals drops subject's expired records. Callers hold s.mu.
func (s *MemoryStore) dropExpiredApprovals(subject string, m map[string]approvalEntry, now int64) {
	for id, e := range m {
		if e.expires <= now {
			delete(m, id)
			s.nApproval--
		}
	}
	if m != nil && len(m) == 0 {
		delete(s.approvals, subject)
	}
}
