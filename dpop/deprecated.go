package dpop

import "time"

// Names kept for one release; CHANGELOG.md says what replaces them.

// WithSignerClock sets the clock used for iat.
//
// Deprecated: use WithClock, which configures a Signer as well as a
// Verifier. WithSignerClock goes in the next release.
func WithSignerClock(now func() time.Time) SignerOption { return WithClock(now) }

// Error is the typed refusal of this package's verification functions.
//
// Deprecated: use ProofError (the same type); challenge has an error of its
// own. Error goes in the next release.
type Error = ProofError

// MemoryStore is the in-process replay store.
//
// Deprecated: use MemoryReplayStore (the same type): challenge.MemoryStore
// is the step-up store, a different thing under the same name. MemoryStore
// goes in the next release.
type MemoryStore = MemoryReplayStore

// NewMemoryStore returns an in-process replay store.
//
// Deprecated: use NewMemoryReplayStore. NewMemoryStore goes in the next
// release.
func NewMemoryStore(size int, now func() time.Time) (*MemoryReplayStore, error) {
	return NewMemoryReplayStore(size, now)
}
