package dpop

import (
	"context"
	"errors"
	"strconv"
	"testing"
	"time"
)

// TestInsertProofIsInsertOfTheKey: the Verifier's allocation-free insert
// and Insert of the concatenated key name the same entry, in the same
// namespace, both ways round.
func TestInsertProofIsInsertOfTheKey(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	s, err := NewMemoryReplayStore(16, func() time.Time { return now })
	if err != nil {
		t.Fatal(err)
	}
	ctx, exp := context.Background(), now.Add(time.Minute)
	const jkt = "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"
	if err := s.insertProof(ctx, jkt, "jti-one:with-colon", now, exp); err != nil {
		t.Fatal(err)
	}
	if err := s.Insert(ctx, "dpop:"+jkt+":jti-one:with-colon", now, exp); !errors.Is(err, ErrReplayed) {
		t.Fatalf("Insert after insertProof: %v, want ErrReplayed", err)
	}
	if err := s.Insert(ctx, "dpop:"+jkt+":jti-two", now, exp); err != nil {
		t.Fatal(err)
	}
	if err := s.insertProof(ctx, jkt, "jti-two", now, exp); !errors.Is(err, ErrReplayed) {
		t.Fatalf("insertProof after Insert: %v, want ErrReplayed", err)
	}
	if err := s.insertProof(ctx, jkt+"x", "jti-two", now, exp); err != nil {
		t.Fatalf("another key's jti: %v", err)
	}
	// Overflow the store with one key's proofs: the evictions raise the
	// floor of the namespace NamespaceFloor names by its string.
	for i := range 64 {
		iat := now.Add(time.Duration(i) * time.Millisecond)
		if err := s.insertProof(ctx, jkt, "flood-"+strconv.Itoa(i), iat, iat.Add(time.Minute)); err != nil && !errors.Is(err, ErrEvicted) {
			t.Fatal(err)
		}
	}
	if s.NamespaceFloor("dpop:"+jkt).IsZero() || !s.NamespaceFloor("dpop:other").IsZero() && s.GlobalFloor().IsZero() {
		t.Fatalf("the evictions raised the floors %v (this key) and %v (another)", s.NamespaceFloor("dpop:"+jkt), s.NamespaceFloor("dpop:other"))
	}
}
