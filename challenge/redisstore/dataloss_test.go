package redisstore_test

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/stepupgrpc/stepup/challenge/redisstore"
	"github.com/stepupgrpc/stepup/dpop"
	"github.com/stepupgrpc/stepup/testing/testkit"
)

// The tests of this file make Redis lose its data (FLUSHALL, or a private
// redis-server killed by its PID and started again empty) and present again
// what was accepted before: nothing may be accepted twice.

// lossFloor is the floor a store with the default margin and future
// window raises when it notices a loss at now: now + 1 s + 5 s, rounded up
// to the millisecond.
func lossFloor(now time.Time) time.Time {
	return time.UnixMilli(expiryMillis(now.Add(dpop.DefaultIATFuture), redisstore.DefaultExpiryMargin))
}

// TestDataLossRaisesFloor: after a FLUSHALL, a store refuses every key
// issued up to the moment it noticed (plus the margin and the future
// window), with dpop.ErrEvicted and ErrDataLoss, and records later keys as
// usual; the floor is shared through the epoch record with the replicas
// that notice later (each counts its own loss), with the replicas started
// after the loss, and with a replica that only sees the floor raised.
func TestDataLossRaisesFloor(t *testing.T) {
	srv := startServer(t)
	admin := newClient(t, srv.Addr)
	clock := testkit.NewClock(time.Now())
	open := func(opts ...redisstore.Option) *redisstore.Store {
		t.Helper()
		s, err := redisstore.New(newClient(t, srv.Addr),
			append([]redisstore.Option{patient, redisstore.WithPrefix("p:"), redisstore.WithClock(clock.Now)}, opts...)...)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	ctx := context.Background()
	a, b := open(), open()
	// Keys are issued and expire by the callers' clocks (real time here);
	// the stores' clock only dates the floors.
	now := time.Now()
	exp := now.Add(time.Hour)
	insert := func(s *redisstore.Store, key string, issued time.Time, want error) {
		t.Helper()
		err := s.Insert(ctx, key, issued, exp)
		switch {
		case want == nil && err != nil, want != nil && !errors.Is(err, want):
			t.Fatalf("Insert(%s, issued %v) = %v, want %v", key, issued.Sub(now), err, want)
		case errors.Is(want, dpop.ErrEvicted) && !errors.Is(err, redisstore.ErrDataLoss):
			t.Fatalf("Insert(%s) = %v, does not wrap ErrDataLoss", key, err)
		}
	}
	insert(a, "dpop:k:1", now, nil)
	insert(b, "dpop:k:1", now, dpop.ErrReplayed)
	if !a.Floor().IsZero() || a.Losses() != 0 {
		t.Fatalf("a new prefix: floor %v, %d losses; want none", a.Floor(), a.Losses())
	}

	if err := admin.FlushAll(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	// a notices: the record is gone. What was recorded is refused as
	// evicted, not accepted again, and so is any key issued before the
	// floor, which could be one that was lost.
	insert(a, "dpop:k:1", now, dpop.ErrEvicted)
	floor := lossFloor(clock.Now())
	if !a.Floor().Equal(floor) || a.Losses() != 1 {
		t.Fatalf("after the loss: a's floor %v, %d losses; want %v, 1", a.Floor(), a.Losses(), floor)
	}
	insert(a, "dpop:k:2", floor, dpop.ErrEvicted)
	after := floor.Add(time.Millisecond)
	insert(a, "dpop:k:3", after, nil)
	insert(a, "dpop:k:3", after, dpop.ErrReplayed)

	// b still knows the record of before: it finds a's, notices the loss
	// too, and takes a's floor, which covers all that was recorded before
	// a made the record (raising it to b's own, later, time would refuse
	// fresh keys again for nothing).
	clock.Advance(10 * time.Second)
	insert(b, "dpop:k:1", now, dpop.ErrEvicted)
	if !b.Floor().Equal(floor) || b.Losses() != 1 {
		t.Fatalf("b's floor %v, %d losses; want a's %v, 1", b.Floor(), b.Losses(), floor)
	}
	insert(b, "dpop:k:3", after, dpop.ErrReplayed) // the same epoch as a's
	insert(b, "dpop:k:4", after, nil)
	insert(a, "dpop:k:4", after, dpop.ErrReplayed)
	// A replica started after the loss reads the floor from the record.
	c := open()
	if !c.Floor().Equal(floor) || c.Losses() != 0 {
		t.Fatalf("a replica started after the loss: floor %v, %d losses; want %v, 0", c.Floor(), c.Losses(), floor)
	}
	insert(c, "dpop:k:1", now, dpop.ErrEvicted)
	insert(c, "dpop:k:4", after, dpop.ErrReplayed)

	// The residual: a replica that starts while nobody has noticed a loss
	// yet takes the empty store for a new one (a record without a floor),
	// and accepts what was recorded before, until a replica that knew the
	// old record notices (docs/REPLICAS.md). That one raises the new
	// record's floor to the moment it noticed, and the new replica, which
	// finds its own record with a floor, takes it without counting a loss.
	if err := admin.FlushAll(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	d := open()
	if !d.Floor().IsZero() {
		t.Fatalf("a replica started on an emptied store: floor %v, want none", d.Floor())
	}
	insert(d, "dpop:k:4", after, nil)
	clock.Advance(time.Second)
	insert(a, "dpop:k:6", now.Add(time.Hour), nil) // a notices: another record, without a floor
	floor2 := lossFloor(clock.Now())
	if a.Losses() != 2 || !a.Floor().Equal(floor2) {
		t.Fatalf("a after the second flush: floor %v, %d losses; want %v, 2", a.Floor(), a.Losses(), floor2)
	}
	// From then on d refuses what it accepted, and what was lost.
	insert(d, "dpop:k:4", after, dpop.ErrEvicted)
	insert(d, "dpop:k:1", now, dpop.ErrEvicted)
	if !d.Floor().Equal(floor2) || d.Losses() != 0 {
		t.Fatalf("d: floor %v, %d losses; want a's %v, 0", d.Floor(), d.Losses(), floor2)
	}
}

// TestDataLossFloorOptions: WithFutureWindow and WithExpiryMargin set
// how far past the moment of the loss the floor lies, and New checks the
// window.
func TestDataLossFloorOptions(t *testing.T) {
	srv := startServer(t)
	admin := newClient(t, srv.Addr)
	clock := testkit.NewClock(time.Now().Truncate(time.Millisecond))
	s, err := redisstore.New(newClient(t, srv.Addr), patient, redisstore.WithClock(clock.Now),
		redisstore.WithFutureWindow(0), redisstore.WithExpiryMargin(0))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := admin.FlushAll(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	at := clock.Now()
	if err := s.Insert(ctx, "k", at, at.Add(time.Minute)); !errors.Is(err, dpop.ErrEvicted) {
		t.Fatalf("a key issued at the moment of the loss: %v, want dpop.ErrEvicted", err)
	}
	if !s.Floor().Equal(at) {
		t.Fatalf("floor %v, want the moment of the loss %v", s.Floor(), at)
	}
	if err := s.Insert(ctx, "k", at.Add(time.Millisecond), at.Add(time.Minute)); err != nil {
		t.Fatalf("a key issued 1 ms after the floor: %v", err)
	}
	for _, d := range []time.Duration{-time.Second, 5*time.Minute + time.Second} {
		if _, err := redisstore.New(admin, redisstore.WithFutureWindow(d)); err == nil || !strings.Contains(err.Error(), "WithFutureWindow") {
			t.Errorf("WithFutureWindow(%v): New = %v, want an error naming the option", d, err)
		}
	}
}

// TestEpochRecordNotOurs: a value under the store's prefix that is not an
// epoch record (something else writes there) fails New and every insert
// (fail closed), never reads as a loss to recover from.
func TestEpochRecordNotOurs(t *testing.T) {
	s, c, prefix := sharedStore(t)
	ctx := context.Background()
	if err := c.Set(ctx, prefix+"epoch", "not a record", 0).Err(); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	err := s.Insert(ctx, "k", now, now.Add(time.Minute))
	if err == nil || errors.Is(err, dpop.ErrEvicted) || errors.Is(err, dpop.ErrReplayed) || !strings.Contains(err.Error(), "not an epoch record") {
		t.Fatalf("Insert = %v, want an error naming the record", err)
	}
	if _, err := redisstore.New(c, redisstore.WithPrefix(prefix)); err == nil || !strings.Contains(err.Error(), "not an epoch record") {
		t.Fatalf("New = %v, want an error naming the record", err)
	}
}

// roundTrips counts the commands and pipelines a client sends.
type roundTrips struct{ n atomic.Int64 }

func (r *roundTrips) DialHook(next redis.DialHook) redis.DialHook { return next }
func (r *roundTrips) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error { r.n.Add(1); return next(ctx, cmd) }
}
func (r *roundTrips) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error { r.n.Add(1); return next(ctx, cmds) }
}

// TestInsertOneRoundTrip: the epoch check rides in the insert's script,
// so an insert is one round trip to Redis, as the plain SET NX it
// replaces was; with WithDurableWrites, one pipeline (the script and WAIT).
// Only a change of the epoch record costs more.
func TestInsertOneRoundTrip(t *testing.T) {
	srv := startServer(t)
	for _, durable := range []bool{false, true} {
		c := newClient(t, srv.Addr)
		var opts []redisstore.Option
		if durable {
			startServer(t, "--replicaof", "127.0.0.1", strings.TrimPrefix(srv.Addr, "127.0.0.1:"))
			// Attached, and acknowledging: a write and WAIT on one
			// connection (a loaded machine can be slow at both).
			waitFor(t, 30*time.Second, "the replica acknowledges writes", func() bool {
				var wait *redis.Cmd
				_, err := c.Pipelined(context.Background(), func(p redis.Pipeliner) error {
					p.Set(context.Background(), "rt:attached", "1", time.Minute)
					wait = p.Do(context.Background(), "wait", 1, 200)
					return nil
				})
				n, werr := wait.Int()
				return err == nil && werr == nil && n >= 1
			})
			opts = append(opts, redisstore.WithDurableWrites(1, 2*time.Second))
		}
		s, err := redisstore.New(c, append([]redisstore.Option{patient, redisstore.WithPrefix("rt:" + randomHex(t, 4) + ":")}, opts...)...)
		if err != nil {
			t.Fatal(err)
		}
		var rt roundTrips
		c.AddHook(&rt)
		ctx := context.Background()
		now := time.Now()
		const n = 50
		for i := range n {
			key := "dpop:k:" + randomHex(t, 8)
			if err := s.Insert(ctx, key, now, now.Add(time.Minute)); err != nil {
				t.Fatal(err)
			}
			if i == 0 {
				if err := s.Insert(ctx, key, now, now.Add(time.Minute)); !errors.Is(err, dpop.ErrReplayed) {
					t.Fatalf("second insert: %v", err)
				}
			}
		}
		if got := rt.n.Load(); got != n+1 {
			t.Errorf("durable=%v: %d inserts took %d round trips, want %d", durable, n+1, got, n+1)
		}
	}
}

// TestDataLossUnderLoad kills a redis-server (SIGKILL to the PID of the
// process the test started) while 8 callers present DPoP proofs and answer
// device-key challenges in a loop through it, after each has also answered
// a TOTP challenge, and starts it again empty on the same port. Then every
// proof and answer accepted before, during and after is presented again
// through three replicas: the one under load, one that sat idle through
// the loss, and one started after it. None may be accepted: before the
// epoch record, a proof or an answer accepted in the seconds before the
// kill was accepted again. The same stores serve every caller again once
// the floor has passed (it lies 6 s past the moment the loss was noticed:
// the expiry margin and the future window), without a restart.
func TestDataLossUnderLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("kills a redis-server; takes seconds")
	}
	srv := startServer(t)
	newStore := func() *redisstore.Store {
		t.Helper()
		c := newClient(t, srv.Addr, failFast, func(o *redis.Options) { o.DialTimeout = 200 * time.Millisecond })
		s, err := redisstore.New(c, redisstore.WithPrefix("load:"), redisstore.WithTimeout(time.Second))
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	s, idle := newStore(), newStore()
	w := newWorkload(t, s, 8)
	for i := range w.callers {
		w.totpOp(i)
	}
	stop := make(chan struct{})
	wg := w.run(stop)
	waitFor(t, 30*time.Second, "load", func() bool { return w.ok.Load() >= 200 })

	killed := time.Now()
	w.afterLoss.Store(true)
	srv.Kill()
	waitFor(t, 30*time.Second, "the store refuses while Redis is down", func() bool { return w.refused.Load() > 0 })
	srv.Restart()
	restarted := time.Now()
	waitFor(t, 30*time.Second, "the loss noticed", func() bool { return s.Losses() > 0 })
	time.Sleep(time.Second) // load after the restart, refused below the floor
	close(stop)
	wg.Wait()
	stopped := time.Now()
	recovered, refusedAfter := w.awaitRecovery(30 * time.Second)
	if recovered < 0 {
		t.Fatalf("30 s after the load stopped, operations are still refused (%d)", refusedAfter)
	}

	w.mu.Lock()
	var lastSecond int
	for _, p := range w.acceptedProofs {
		if killed.Sub(p.at) <= time.Second && !p.at.After(killed) {
			lastSecond++
		}
	}
	proofs, answers := len(w.acceptedProofs), len(w.acceptedAnswer)
	w.mu.Unlock()
	lost := 0
	for _, r := range []struct {
		name  string
		store *redisstore.Store
	}{{"the replica under load", s}, {"an idle replica", idle}, {"a replica started after the loss", newStore()}} {
		w.replayThrough(r.store)
		p, a, _ := w.replayAll()
		lost += p + a
		floor := "none"
		if f := r.store.Floor(); !f.IsZero() {
			floor = f.Sub(restarted).Round(time.Millisecond).String() + " after the restart"
		}
		t.Logf("through %s (floor %s, %d losses seen): %d of %d proofs and %d of %d answers accepted again",
			r.name, floor, r.store.Losses(), p, proofs, a, answers)
	}
	t.Logf("%d proofs accepted in the second before the kill; store refusals %d (%d below the floor); every caller "+
		"served again %v after the restart; replays accepted at once: %d proofs, %d answers", lastSecond, w.refused.Load(),
		w.windowed.Load(), (stopped.Sub(restarted) + recovered).Round(time.Millisecond), w.proofReplays.Load(), w.answerReplays.Load())
	if n := lost + int(w.proofReplays.Load()+w.answerReplays.Load()); n != 0 {
		t.Errorf("%d single uses accepted twice across the loss; want 0", n)
	}
	if lastSecond == 0 || w.windowed.Load() == 0 {
		t.Errorf("the test did not reach what it tests: %d proofs accepted in the second before the kill, %d refusals below a floor",
			lastSecond, w.windowed.Load())
	}
}

// TestClusterShardLoss: on Redis Cluster every hash slot has its own epoch
// record, on the shard that holds the slot's keys. A primary that loses its
// data (FLUSHALL on it; its replica follows) raises the floor of its own
// slots only: the keys of the other shards are still known, and fresh keys
// there are accepted at once. A store started afterwards finds the records
// of those slots missing while the others exist, and starts with the loss
// floor on them.
func TestClusterShardLoss(t *testing.T) {
	d := deployments()[0]
	d.healthy(t)
	clock := testkit.NewClock(time.Now())
	s, prefix := newDeploymentStore(t, d, redisstore.WithClock(clock.Now))
	ctx := context.Background()
	slots, err := clusterSlots(envAddrs(t, "STEPUP_REDIS_CLUSTER")[0])
	if err != nil || len(slots) != 3 {
		t.Fatalf("cluster slots: %v, %v", slots, err)
	}
	// A key under the prefix in the slots of each primary, two on the victim.
	admin := nodeClient(t, slots[0].Nodes[0].Addr)
	keyIn := func(r redis.ClusterSlot, skip string) string {
		t.Helper()
		for i := 0; ; i++ {
			k := "dpop:k:" + randomHex(t, 6)
			slot, err := admin.ClusterKeySlot(ctx, prefix+k).Result()
			if err != nil {
				t.Fatal(err)
			}
			if slot >= int64(r.Start) && slot <= int64(r.End) && k != skip {
				return k
			}
		}
	}
	victim, others := slots[0], slots[1:]
	now := time.Now()
	exp := now.Add(time.Hour)
	lostKey := keyIn(victim, "")
	var keptKeys []string
	for _, r := range others {
		keptKeys = append(keptKeys, keyIn(r, ""))
	}
	for _, k := range append([]string{lostKey}, keptKeys...) {
		if err := s.Insert(ctx, k, now, exp); err != nil {
			t.Fatal(err)
		}
	}

	if err := nodeClient(t, victim.Nodes[0].Addr).FlushAll(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	if err := s.Insert(ctx, lostKey, now, exp); !errors.Is(err, dpop.ErrEvicted) || !errors.Is(err, redisstore.ErrDataLoss) {
		t.Fatalf("a key of the flushed shard, presented again: %v, want dpop.ErrEvicted and ErrDataLoss", err)
	}
	if s.Losses() != 1 || !s.Floor().Equal(lossFloor(clock.Now())) {
		t.Fatalf("floor %v, %d losses; want %v, 1", s.Floor(), s.Losses(), lossFloor(clock.Now()))
	}
	for i, k := range keptKeys {
		if err := s.Insert(ctx, k, now, exp); !errors.Is(err, dpop.ErrReplayed) {
			t.Fatalf("a key of another shard, presented again: %v, want dpop.ErrReplayed", err)
		}
		if err := s.Insert(ctx, keyIn(others[i], k), now, exp); err != nil {
			t.Fatalf("a fresh key of another shard: %v, want it accepted (no floor there)", err)
		}
	}
	if err := s.Insert(ctx, keyIn(victim, lostKey), now, exp); !errors.Is(err, dpop.ErrEvicted) {
		t.Fatalf("a fresh key, issued before the floor, in another slot of the flushed shard: %v, want dpop.ErrEvicted", err)
	}

	// A store started now: the flushed shard's records are gone (those of
	// the slots no insert touched since), the others are there.
	if err := nodeClient(t, victim.Nodes[0].Addr).FlushAll(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	late := storeOnPrefix(t, d, prefix, redisstore.WithClock(clock.Now))
	if late.Losses() != 1 || !late.Floor().Equal(lossFloor(clock.Now())) {
		t.Fatalf("a store started after a shard lost its data: floor %v, %d losses; want %v, 1", late.Floor(), late.Losses(), lossFloor(clock.Now()))
	}
	if err := late.Insert(ctx, keyIn(victim, lostKey), now, exp); !errors.Is(err, dpop.ErrEvicted) {
		t.Fatalf("the late store, a key of the flushed shard issued before the floor: %v, want dpop.ErrEvicted", err)
	}
	if err := late.Insert(ctx, keptKeys[0], now, exp); !errors.Is(err, dpop.ErrReplayed) {
		t.Fatalf("the late store, a key of another shard: %v, want dpop.ErrReplayed", err)
	}
}

// TestSlotTags: the epoch record of each slot hashes to that slot, and the
// record that vouches for a key lies in the key's slot, as Redis computes
// it (CLUSTER KEYSLOT on a real cluster node), with or without hash tags in
// the key, and with a hash tag in the prefix (which docs/REPLICAS.md
// advises against: every key then lands in one slot, its record too).
func TestSlotTags(t *testing.T) {
	srv := startServer(t, "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf")
	c := newClient(t, srv.Addr)
	ctx := context.Background()
	slotOf := func(keys []string) []int64 {
		t.Helper()
		pipe := c.Pipeline()
		cmds := make([]*redis.IntCmd, len(keys))
		for i, k := range keys {
			cmds[i] = pipe.ClusterKeySlot(ctx, k)
		}
		if _, err := pipe.Exec(ctx); err != nil {
			t.Fatal(err)
		}
		out := make([]int64, len(keys))
		for i, cmd := range cmds {
			out[i] = cmd.Val()
		}
		return out
	}
	for _, prefix := range []string{"", "stepup:"} {
		keys := redisstore.EpochKeys(prefix)
		if len(keys) != 16384 {
			t.Fatalf("%d records, want one per slot", len(keys))
		}
		for i, slot := range slotOf(keys) {
			if slot != int64(i) {
				t.Fatalf("prefix %q: the record of slot %d, %q, hashes to %d", prefix, i, keys[i], slot)
			}
		}
	}
	for _, prefix := range []string{"", "stepup:", "app{x}:"} {
		var keys, records []string
		recordOf := redisstore.EpochKeyFor(prefix)
		for i := range 2000 {
			k := "dpop:" + randomHex(t, 8) + ":" + randomHex(t, 4)
			switch i % 4 {
			case 1:
				k = "chl:{user-" + randomHex(t, 3) + "}:" + randomHex(t, 8)
			case 2:
				k = "totp:{}:" + randomHex(t, 4) // an empty tag hashes the whole key
			case 3:
				k = "x{" + randomHex(t, 2) + "}{y}:" + randomHex(t, 2) // the first tag counts
			}
			keys = append(keys, prefix+k)
			records = append(records, recordOf(k))
		}
		ks, rs := slotOf(keys), slotOf(records)
		for i := range keys {
			if ks[i] != rs[i] {
				t.Fatalf("prefix %q: key %q in slot %d, its record %q in slot %d", prefix, keys[i], ks[i], records[i], rs[i])
			}
		}
	}
}
