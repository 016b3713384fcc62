package redisstore

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/stepupgrpc/stepup/internal/groupcommit"
)

// Batched single-use inserts.
//
// Each call that the store admits makes one single-use insert, and each
// insert sent on its own costs the server a pooled connection, a write and
// a read system call and a netpoll wake-up, and once the callers outnumber
// the client's pool, a wait for a free connection. The store therefore
// gathers the inserts of concurrent callers (group commit): one batch is in
// flight at a time; an insert that finds none is sent at once, alone, from
// its caller's goroutine, as before; one that finds a batch in flight joins
// the queue, and when that batch comes back the queue (up to maxBatchKeys
// inserts) leaves as the next batch, sent by a goroutine of the store that
// runs while inserts keep queuing (its stack, grown once for go-redis, is
// not grown again for every batch), and yields the processor once between
// two batches (internal/groupcommit). Every insert of a slot that expects the
// same epoch record goes in one script call (insertScript, one key or
// many), and the calls for different slots of a batch in one pipeline
// (go-redis sends the pipeline of a Redis Cluster to each node
// concurrently). A batch is one round trip, as a lone insert is, so the
// epoch check adds none, and the single use of every key is decided by
// Redis as before: each key is SET NX on its own, in a script that runs
// atomically. With WithDurableWrites, a batch is followed by one WAIT on
// the same connection (on Redis Cluster, one per slot's primary).
//
// Each caller waits for its own reply or its own context, whichever comes
// first: a call whose deadline passes while its insert waits or is in
// flight fails (and is refused) at its deadline, as a lone insert does, and
// an insert whose caller has already given up is not sent. A queued batch
// runs under the latest deadline of its callers; a lone insert, sent from
// its caller's goroutine, under its caller's.

// maxBatchKeys bounds the keys of one script call (and of one batch): a
// script blocks Redis while it runs.
const maxBatchKeys = 256

// insertRequest is one insert waiting in, or sent with, a batch.
type insertRequest struct {
	key      string          // with the prefix
	slot     int             // of its epoch record
	ep       *epoch          // the record the store expects
	exp      int64           // expiry, Unix ms
	ctx      context.Context // the caller's
	deadline time.Time
	done     chan insertResult // buffered: the flusher never blocks
}

// insertResult is the reply for one key: 1 (set) or 0 (present) as an
// int64, or the epoch record found instead of the one expected (a
// string), or an error.
type insertResult struct {
	v   any
	err error
}

var requestPool = sync.Pool{New: func() any { return &insertRequest{done: make(chan insertResult, 1)} }}

// batcher is the queue of a Store's inserts.
type batcher struct {
	s *Store
	q *groupcommit.Queue[*insertRequest]
}

func newBatcher(s *Store) *batcher {
	b := &batcher{s: s}
	b.q = groupcommit.New(maxBatchKeys, b.flush)
	return b
}

// insertOnce sends one insert (in a batch) and waits for its reply or for
// ctx.
func (b *batcher) insertOnce(ctx context.Context, key string, slot int, ep *epoch, exp int64) (any, error) {
	r := requestPool.Get().(*insertRequest)
	r.key, r.slot, r.ep, r.exp, r.ctx = key, slot, ep, exp, ctx
	if d, ok := ctx.Deadline(); ok {
		r.deadline = d
	} else {
		r.deadline = time.Now().Add(b.s.timeout) // Insert always sets one
	}
	// No batch in flight: this insert is sent at once, alone, from this
	// goroutine (its deadline is the batch's); otherwise it waits in the
	// queue.
	b.q.Add(r)
	select {
	case res := <-r.done:
		*r = insertRequest{done: r.done}
		requestPool.Put(r)
		return res.v, res.err
	case <-ctx.Done():
		// The reply, if it ever comes, goes to the buffered channel of a
		// request that is not reused.
		return nil, ctx.Err()
	}
}

// insertGroup is the inserts of a batch that share a slot and the epoch
// record they expect: one script call.
type insertGroup struct {
	reqs []*insertRequest
	cmd  *redis.Cmd
}

// flush sends one batch and hands each insert its reply. A batch of one
// insert is sent under its caller's context.
func (b *batcher) flush(batch []*insertRequest) {
	now := time.Now()
	var deadline time.Time
	live := batch[:0]
	for _, r := range batch {
		if err := r.ctx.Err(); err != nil || !now.Before(r.deadline) {
			// Its caller has given up (or is about to): not sent.
			r.done <- insertResult{err: cmp.Or(err, context.DeadlineExceeded)}
			continue
		}
		if r.deadline.After(deadline) {
			deadline = r.deadline
		}
		live = append(live, r)
	}
	if len(live) == 0 {
		return
	}
	ctx := live[0].ctx
	if len(live) > 1 {
		// Not one caller's: under the latest deadline, and cancelled by
		// none of them.
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(context.Background(), deadline)
		defer cancel()
	}
	groups := groupInserts(live)
	switch {
	case len(groups) == 1:
		deliver(groups[0], b.s.write(ctx, groups[0].reqs[0].key, groups[0].queue(ctx, b.s)))
	case b.s.acks == 0:
		b.pipeline(ctx, groups)
		for _, g := range groups {
			deliver(g, nil)
		}
	default:
		// Durable writes on Redis Cluster: each slot's script call and its
		// WAIT on the connection to that slot's primary, concurrently.
		var wg sync.WaitGroup
		for _, g := range groups {
			wg.Go(func() { deliver(g, b.s.write(ctx, g.reqs[0].key, g.queue(ctx, b.s))) })
		}
		wg.Wait()
	}
}

// queue is the write of one group for Store.write.
func (g *insertGroup) queue(ctx context.Context, s *Store) func(c commander, eval bool) redis.Cmder {
	keys := make([]string, 1+len(g.reqs))
	args := make([]any, 1+len(g.reqs))
	keys[0], args[0] = s.epochs.keys[g.reqs[0].slot], g.reqs[0].ep.record
	for j, r := range g.reqs {
		keys[1+j], args[1+j] = r.key, r.exp
	}
	return func(c commander, eval bool) redis.Cmder {
		g.cmd = runScript(ctx, c, insertScript, eval, keys, args...)
		return g.cmd
	}
}

// pipeline sends the script calls of several groups (slots) in one
// pipeline, without WithDurableWrites: on Redis Cluster, go-redis sends
// each node its part concurrently. EVALSHA first; the calls a node refused
// with NOSCRIPT (it never saw the script: after a failover or a restart)
// were not run, and are sent again with EVAL.
func (b *batcher) pipeline(ctx context.Context, groups []*insertGroup) {
	send := groups
	for _, eval := range []bool{false, true} {
		pipe := b.s.client.Pipeline()
		for _, g := range send {
			g.queue(ctx, b.s)(pipe, eval)
		}
		_, _ = pipe.Exec(ctx)
		var again []*insertGroup
		for _, g := range send {
			if redis.HasErrorPrefix(g.cmd.Err(), "NOSCRIPT") {
				again = append(again, g)
			}
		}
		if len(again) == 0 {
			return
		}
		send = again
	}
}

// deliver hands the replies of one script call to its inserts; werr is
// the error of the write as a whole (WAIT), if any.
func deliver(g *insertGroup, werr error) {
	fail := func(err error) {
		for _, r := range g.reqs {
			r.done <- insertResult{err: err}
		}
	}
	switch {
	case g.cmd == nil: // never queued: no primary found for its slot
		fail(cmp.Or(werr, errors.New("not sent")))
		return
	case g.cmd.Err() != nil:
		fail(g.cmd.Err())
		return
	case werr != nil:
		fail(werr)
		return
	}
	switch v := g.cmd.Val().(type) {
	case string:
		for _, r := range g.reqs {
			r.done <- insertResult{v: v}
		}
	case []any:
		if len(v) != len(g.reqs) {
			fail(fmt.Errorf("%d replies for %d keys", len(v), len(g.reqs)))
			return
		}
		for i, r := range g.reqs {
			n, ok := v[i].(int64)
			if !ok {
				r.done <- insertResult{err: fmt.Errorf("unexpected reply %T", v[i])}
				continue
			}
			r.done <- insertResult{v: n}
		}
	default:
		fail(fmt.Errorf("unexpected reply %T", v))
	}
}

// groupInserts splits a batch into script calls: one per slot and
// expected record, in the order of their first insert.
func groupInserts(batch []*insertRequest) []*insertGroup {
	first := batch[0]
	same := true
	for _, r := range batch[1:] {
		if r.slot != first.slot || r.ep != first.ep {
			same = false
			break
		}
	}
	if same {
		return []*insertGroup{{reqs: batch}}
	}
	type groupKey struct {
		slot int
		ep   *epoch
	}
	index := map[groupKey]*insertGroup{}
	var groups []*insertGroup
	for _, r := range batch {
		k := groupKey{r.slot, r.ep}
		g, ok := index[k]
		if !ok {
			g = &insertGroup{}
			index[k] = g
			groups = append(groups, g)
		}
		g.reqs = append(g.reqs, r)
	}
	return groups
}
