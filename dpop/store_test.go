package dpop_test

import (
	"context"
	"errors"
	"fmt"
	"math"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/stepupgrpc/stepup/dpop"
)

func TestMemoryStoreBasics(t *testing.T) {
	clock := newClock(testNow)
	s, err := dpop.NewMemoryReplayStore(4, clock.Now)
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
	if _, err := dpop.NewMemoryReplayStore(0, nil); err == nil {
		t.Fatal("size 0 accepted")
	}
}

// TestMemoryStoreNeverAcceptsTwice floods stores of several sizes (one shard
// and many) from several goroutines, then re-inserts every key: none may be
// accepted a second time while unexpired. Keys are laid out in one
// namespace, in one per goroutine, and in so many that the namespace floor
// table overflows into the global floor.
func TestMemoryStoreNeverAcceptsTwice(t *testing.T) {
	layouts := []struct {
		name string
		key  func(w, i int) string
	}{
		{"one-namespace", func(w, i int) string { return fmt.Sprint(w, "/", i) }},
		{"per-worker", func(w, i int) string { return fmt.Sprint("dpop:worker", w, ":", i) }},
		{"many", func(w, i int) string { return fmt.Sprint("dpop:k", w, "-", i%1500, ":", i) }},
	}
	for _, layout := range layouts {
		for _, size := range []int{1, 7, 64, 1 << 14, 1 << 16} {
			t.Run(fmt.Sprint(layout.name, "/", size), func(t *testing.T) {
				testNeverAcceptsTwice(t, size, layout.key)
			})
		}
	}
}

func testNeverAcceptsTwice(t *testing.T, size int, key func(w, i int) string) {
	clock := newClock(testNow)
	s, err := dpop.NewMemoryReplayStore(size, clock.Now)
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
				err := s.Insert(ctx, key(w, i), issued, issued.Add(time.Hour))
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
			err := s.Insert(ctx, key(w, i), issued, issued.Add(time.Hour))
			if err == nil {
				t.Fatalf("key %q accepted twice", key(w, i))
			}
			if !errors.Is(err, dpop.ErrReplayed) && !errors.Is(err, dpop.ErrEvicted) {
				t.Fatalf("unexpected error %v", err)
			}
		}
	}
}

// TestMemoryStoreFloorPerNamespace floods a sharded store from one DPoP key
// with keys issued 5 s in the future (the largest skew a Verifier accepts
// by default), while other keys make fresh inserts: the flood evicts their
// entries too, yet their fresh keys are accepted throughout, the global
// floor never rises, and afterwards no key is accepted twice.
func TestMemoryStoreFloorPerNamespace(t *testing.T) {
	const size = 1 << 14
	clock := newClock(testNow)
	s, err := dpop.NewMemoryReplayStore(size, clock.Now)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	const window = 65 * time.Second
	type rec struct {
		key    string
		issued time.Time
	}
	var flood, victims []rec
	for i := range 4 * size {
		now := clock.Now()
		issued := now.Add(5 * time.Second)
		k := fmt.Sprint("dpop:attacker:jti-", i)
		if err := s.Insert(ctx, k, issued, issued.Add(window)); err != nil {
			t.Fatalf("flood insert %d: %v", i, err)
		}
		flood = append(flood, rec{k, issued})
		if i%16 == 0 {
			// A fresh key of one of 64 other DPoP keys, issued now.
			k := fmt.Sprint("dpop:victim", i%1024/16, ":jti-", i)
			if err := s.Insert(ctx, k, now, now.Add(window)); err != nil {
				t.Fatalf("fresh key %s during the flood: %v", k, err)
			}
			victims = append(victims, rec{k, now})
		}
		// 10 000 inserts per second: the store holds under 2 s of them,
		// so the flood evicts entries issued after now.
		clock.Advance(100 * time.Microsecond)
	}
	now := clock.Now()
	if !s.GlobalFloor().IsZero() {
		t.Fatalf("global floor raised to %v", s.GlobalFloor())
	}
	// The flood did evict live entries: what the old single floor would have
	// been is past now, and the flooder's own namespace floor is there.
	if !s.Floor().After(now) {
		t.Fatalf("Floor() = %v, want after %v", s.Floor(), now)
	}
	t.Logf("flood: latest floor now+%v", s.Floor().Sub(now))
	if f := s.NamespaceFloor("dpop:attacker"); !f.After(now) {
		t.Fatalf("attacker floor %v, want after %v", f, now)
	}
	// A key that was never evicted from has no floor; the victims were
	// evicted from, but only up to their own past issue times.
	if f := s.NamespaceFloor("dpop:bystander"); !f.IsZero() {
		t.Fatalf("bystander floor %v", f)
	}
	for v := range 64 {
		if f := s.NamespaceFloor(fmt.Sprint("dpop:victim", v)); f.After(now) {
			t.Fatalf("victim %d floor %v after now %v", v, f, now)
		}
	}
	// Fresh proofs, including older ones still inside the window, of a key
	// that never had entries evicted, are accepted; so are fresh keys of
	// the victims.
	for i, age := range []time.Duration{0, time.Second, 30 * time.Second, 59 * time.Second} {
		issued := now.Add(-age)
		if err := s.Insert(ctx, fmt.Sprint("dpop:bystander:jti-", i), issued, issued.Add(window)); err != nil {
			t.Fatalf("bystander key issued %v ago: %v", age, err)
		}
		if err := s.Insert(ctx, fmt.Sprint("dpop:victim", i, ":fresh"), now, now.Add(window)); err != nil {
			t.Fatalf("victim %d fresh key: %v", i, err)
		}
	}
	// No flood or victim key is accepted again, and the flooder's evicted
	// keys are refused as such.
	evicted := 0
	for _, r := range append(flood, victims...) {
		err := s.Insert(ctx, r.key, r.issued, r.issued.Add(window))
		switch {
		case err == nil:
			t.Fatalf("key %s accepted twice", r.key)
		case errors.Is(err, dpop.ErrEvicted):
			evicted++
		case !errors.Is(err, dpop.ErrReplayed):
			t.Fatalf("key %s: %v", r.key, err)
		}
	}
	if evicted < 2*size {
		t.Fatalf("only %d keys refused as evicted", evicted)
	}
	// New attacker keys issued at now, before the floor of the
	// attacker's namespace in every shard, are refused too.
	for i := range 64 {
		if err := s.Insert(ctx, fmt.Sprint("dpop:attacker:new-", i), now, now.Add(window)); !errors.Is(err, dpop.ErrEvicted) {
			t.Fatalf("new attacker key issued now: %v", err)
		}
	}
}

// TestMemoryStoreFloorTableFull fills the namespace floor table of a small
// store (one floor per entry it holds) and checks the fallback: one more
// namespace raises the global floor, which refuses every namespace at or
// before it, and no evicted key is ever accepted again.
func TestMemoryStoreFloorTableFull(t *testing.T) {
	const size = 4
	clock := newClock(testNow)
	s, err := dpop.NewMemoryReplayStore(size, clock.Now)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	exp := testNow.Add(time.Hour)
	issued := func(i int) time.Time { return testNow.Add(time.Duration(i) * time.Second) }
	// Keys 0..size-1 fill the store; each of the next size keys evicts one
	// of them and gives its namespace a floor: the table is then full.
	for i := range 2 * size {
		if err := s.Insert(ctx, fmt.Sprint("ns", i, ":k"), issued(i), exp); err != nil {
			t.Fatal(err)
		}
	}
	if !s.GlobalFloor().IsZero() {
		t.Fatalf("global floor %v before the table is full", s.GlobalFloor())
	}
	for i := range size {
		if f := s.NamespaceFloor(fmt.Sprint("ns", i)); !f.Equal(issued(i)) {
			t.Fatalf("floor of ns%d = %v, want %v", i, f, issued(i))
		}
	}
	// One more namespace: the eviction of ns<size> finds the table full.
	if err := s.Insert(ctx, "other:k", issued(2*size), exp); err != nil {
		t.Fatal(err)
	}
	if g := s.GlobalFloor(); !g.Equal(issued(size)) {
		t.Fatalf("global floor %v, want %v", g, issued(size))
	}
	if err := s.Insert(ctx, "unrelated:k", issued(size), exp); !errors.Is(err, dpop.ErrEvicted) {
		t.Fatalf("key of another namespace at the global floor: %v", err)
	}
	if err := s.Insert(ctx, "unrelated:k", issued(size).Add(time.Millisecond), exp); err != nil {
		t.Fatalf("key of another namespace after the global floor: %v", err)
	}
	for i := range 2 * size {
		if err := s.Insert(ctx, fmt.Sprint("ns", i, ":k"), issued(i), exp); err == nil {
			t.Fatalf("key ns%d accepted twice", i)
		}
	}
}

// TestMemoryStoreFloorsExpire checks that a namespace floor applies until
// every evicted entry it covers has expired, and is then dropped, so that
// the table does not fill with floors that protect nothing.
func TestMemoryStoreFloorsExpire(t *testing.T) {
	const size = 8
	clock := newClock(testNow)
	s, err := dpop.NewMemoryReplayStore(size, clock.Now)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	// A long-lived and a short-lived key in namespace "a", evicted by
	// short-lived keys of other namespaces.
	if err := s.Insert(ctx, "a:long", testNow, testNow.Add(2*time.Minute)); err != nil {
		t.Fatal(err)
	}
	if err := s.Insert(ctx, "a:short", testNow.Add(time.Second), testNow.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	for i := range size {
		if err := s.Insert(ctx, fmt.Sprint("b", i, ":k"), testNow, testNow.Add(10*time.Second)); err != nil {
			t.Fatal(err)
		}
	}
	if f := s.NamespaceFloor("a"); !f.Equal(testNow.Add(time.Second)) {
		t.Fatalf("floor of a = %v", f)
	}
	// After the short key expired, the long one still needs the floor.
	clock.Advance(90 * time.Second)
	if err := s.Insert(ctx, "a:long", testNow, testNow.Add(2*time.Minute)); !errors.Is(err, dpop.ErrEvicted) {
		t.Fatalf("evicted key, still live: %v", err)
	}
	// Once both expired, the floor is gone; the keys are expired, which
	// Insert does not record (callers refuse them).
	clock.Advance(time.Minute)
	if f := s.NamespaceFloor("a"); !f.IsZero() {
		t.Fatalf("floor of a after expiry: %v", f)
	}
	if err := s.Insert(ctx, "a:new", testNow.Add(time.Second), clock.Now().Add(time.Minute)); err != nil {
		t.Fatalf("fresh key once the floor expired: %v", err)
	}
	// Floors come and go without ever falling back to the global floor:
	// each round evicts live entries in size new namespaces (a full table),
	// and the floors of the previous rounds have expired.
	clock.Advance(time.Minute)
	for round := range 50 {
		now := clock.Now()
		for i := range 2 * size {
			k := fmt.Sprint("r", round, "-", i, ":k")
			if err := s.Insert(ctx, k, now, now.Add(10*time.Second)); err != nil {
				t.Fatalf("round %d key %d: %v", round, i, err)
			}
		}
		clock.Advance(11 * time.Second)
	}
	if !s.GlobalFloor().IsZero() {
		t.Fatalf("global floor %v: expired floors were not dropped", s.GlobalFloor())
	}
}

// TestReplayFloodIsolation is the flood through a Verifier: one client,
// with its key and token, sends proofs issued 5 s in the future (the
// largest skew accepted by default) fast enough to make the store evict.
// Another client's fresh proofs are still accepted; a third client, whose
// proof was evicted by the flood, sees its evicted proof refused and its
// proofs issued later accepted; the flooder's evicted proofs are refused.
func TestReplayFloodIsolation(t *testing.T) {
	keys(t)
	const size = 16
	clock := newClock(testNow)
	store, err := dpop.NewMemoryReplayStore(size, clock.Now)
	if err != nil {
		t.Fatal(err)
	}
	v := newTestVerifier(t, clock, dpop.WithReplayStore(store))
	ctx := context.Background()
	flooder := func(jti string, iat int64) string { return goodProof(t, jti, iat) }
	victim := func(jti string, iat int64) string {
		return sign(t, "EdDSA", edKey, proofHeader(t, "EdDSA", edKey.Public()), claimsJSON(jti, iat))
	}
	bystander := func(jti string, iat int64) string {
		return sign(t, "ES384", ec384Key, proofHeader(t, "ES384", ec384Key.Public()), claimsJSON(jti, iat))
	}
	verify := func(proof string) (*dpop.Proof, error) { return v.Verify(ctx, testRequest(proof)) }

	// The victim's proof goes in first, so it is the first evicted.
	early := victim("victim-early-000001", testNow.Unix())
	p, err := verify(early)
	if err != nil {
		t.Fatal(err)
	}
	victimNS := "dpop:" + p.Thumbprint
	clock.Advance(time.Second)

	// The flood: proofs issued 5 s ahead, several per second. Once the
	// store is full each one evicts the oldest entry; the flooder's own
	// floor then refuses its later proofs of the same second.
	var accepted []string
	var flooderNS string
	for i := range 8 * size {
		if i%size == 0 {
			clock.Advance(time.Second)
		}
		proof := flooder(fmt.Sprintf("flood-%06d-abcdefgh", i), clock.Now().Add(5*time.Second).Unix())
		p, err := verify(proof)
		if err != nil {
			wantReason(t, err, dpop.ReasonReplayWindow)
			continue
		}
		flooderNS = "dpop:" + p.Thumbprint
		accepted = append(accepted, proof)
	}
	now := clock.Now()
	if len(accepted) < 2*size {
		t.Fatalf("flood: only %d proofs accepted", len(accepted))
	}
	if f := store.NamespaceFloor(flooderNS); !f.After(now) {
		t.Fatalf("flooder's floor %v, want after %v", f, now)
	}
	if !store.GlobalFloor().IsZero() {
		t.Fatalf("global floor raised to %v", store.GlobalFloor())
	}

	// Another client's fresh proofs are accepted, even those issued 50 s
	// ago (inside the 60 s window): the flooder's floor is not theirs.
	for i, age := range []int64{0, 1, 50} {
		if _, err := verify(bystander(fmt.Sprintf("bystander-%06d-abc", i), now.Unix()-age)); err != nil {
			t.Fatalf("bystander proof issued %ds ago: %v", age, err)
		}
	}
	// The victim's evicted proof is refused, as is a new proof issued at
	// or before its floor; its later proofs are accepted.
	_, err = verify(early)
	wantReason(t, err, dpop.ReasonReplayWindow)
	if f := store.NamespaceFloor(victimNS); !f.Equal(testNow) {
		t.Fatalf("victim floor %v, want %v", f, testNow)
	}
	_, err = verify(victim("victim-same-second-01", testNow.Unix()))
	wantReason(t, err, dpop.ReasonReplayWindow)
	if _, err := verify(victim("victim-fresh-0000001", now.Unix())); err != nil {
		t.Fatalf("victim's fresh proof: %v", err)
	}
	// No flood proof is accepted twice; the evicted ones are refused with
	// DPOP_REPLAY_WINDOW.
	evicted := 0
	for _, proof := range accepted {
		_, err := verify(proof)
		switch dpop.ReasonOf(err) {
		case dpop.ReasonReplayWindow:
			evicted++
		case dpop.ReasonReplayed:
		default:
			t.Fatalf("flood proof replayed: %v", err)
		}
	}
	if evicted < len(accepted)-size {
		t.Fatalf("%d of %d flood proofs refused as evicted", evicted, len(accepted))
	}
}

// TestMemoryStoreSizeBounds: sizes a store cannot index are refused at
// construction, never a panic or a smaller store; a large store is cheap
// to make, as it allocates as it fills.
func TestMemoryStoreSizeBounds(t *testing.T) {
	for _, size := range []int{0, -1, math.MinInt, math.MaxInt, math.MaxInt / 2} {
		if s, err := dpop.NewMemoryReplayStore(size, nil); err == nil {
			t.Errorf("NewMemoryReplayStore(%d) = %v, want an error", size, s.Len())
		}
	}
	var m0, m1 runtime.MemStats
	runtime.ReadMemStats(&m0)
	s, err := dpop.NewMemoryReplayStore(1<<26, nil)
	if err != nil {
		t.Fatal(err)
	}
	runtime.ReadMemStats(&m1)
	if grown := m1.TotalAlloc - m0.TotalAlloc; grown > 8<<20 {
		t.Errorf("an empty store of 2^26 entries allocated %d bytes up front", grown)
	}
	if err := s.Insert(context.Background(), "dpop:k:1", time.Now(), time.Now().Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
}
