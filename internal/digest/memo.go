package digest

import (
	"crypto/sha256"
	"hash/maphash"
	"sync/atomic"
)

// Memo remembers the SHA-256 of the strings it hashed last, in a fixed
// number of slots: a string that comes back on every call, such as a
// client's access token, is hashed once, and then costs a 64-bit hash
// under a secret seed (a small fraction of a SHA-256) and one comparison
// with the string remembered in its slot.
//
// The comparison, which stops at the first differing byte, only runs
// against a string with the same secret-keyed 64-bit hash, so its timing
// tells a caller nothing about the strings held. A slot holds the last
// string hashed to it; a miss costs the SHA-256 and one allocation.
//
// A Memo keeps a reference to each string it remembers (not a copy), so it
// holds at most slots strings of at most maxLen bytes alive, with whatever
// they are part of. Safe for concurrent use; a hit writes no shared memory.
type Memo struct {
	seed   maphash.Seed
	slots  []atomic.Pointer[memoEntry]
	mask   uint64
	maxLen int
}

type memoEntry struct {
	h   uint64
	s   string
	sum [sha256.Size]byte
}

// NewMemo returns a Memo of slots slots (rounded up to a power of two) that
// remembers strings of at most maxLen bytes; longer ones are hashed every
// time.
func NewMemo(slots, maxLen int) *Memo {
	n := 1
	for n < slots {
		n *= 2
	}
	return &Memo{seed: maphash.MakeSeed(), slots: make([]atomic.Pointer[memoEntry], n), mask: uint64(n - 1), maxLen: maxLen}
}

// SHA256 returns the SHA-256 of s.
func (m *Memo) SHA256(s string) [sha256.Size]byte {
	if len(s) > m.maxLen {
		return SHA256(s)
	}
	h := maphash.String(m.seed, s)
	slot := &m.slots[h&m.mask]
	if e := slot.Load(); e != nil && e.h == h && e.s == s {
		return e.sum
	}
	e := &memoEntry{h: h, s: s, sum: SHA256(s)}
	slot.Store(e)
	return e.sum
}
