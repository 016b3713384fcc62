// Package groupcommit sends the requests of concurrent callers in batches
// (group commit), one batch in flight at a time: the batching of
// challenge/redisstore's single-use inserts, shared with the benchmark
// store that measures the floor of a store across the network
// (docs/PERFORMANCE.md).
//
// A request that finds no batch in flight is sent at once, alone, from its
// caller's goroutine; one that finds a batch in flight joins the queue, and
// when that batch comes back the queue (up to the queue's maximum) leaves
// as the next batch, sent by a goroutine of the queue that runs while
// requests keep queuing and yields the processor once between two batches.
// There is no timer: a request never waits for others to arrive.
package groupcommit

import (
	"runtime"
	"sync"
)

// Queue batches requests of type R for its send function. Safe for
// concurrent use.
type Queue[R any] struct {
	send func(batch []R)
	max  int

	mu      sync.Mutex
	pending []R
	busy    bool // a batch is in flight
}

// New returns a Queue that hands send batches of at most max requests,
// one batch at a time. send must hand each request of a batch its reply
// (the queue knows nothing of replies) and must not call Add.
func New[R any](max int, send func(batch []R)) *Queue[R] {
	return &Queue[R]{send: send, max: max}
}

// Add queues r. When no batch is in flight, r is sent at once, alone, from
// this goroutine, and Add returns once it was sent (the requests queued
// meanwhile leave from a goroutine of the queue); otherwise Add returns at
// once and r leaves with a later batch. The caller then waits for the
// reply that send hands r.
func (q *Queue[R]) Add(r R) {
	q.mu.Lock()
	q.pending = append(q.pending, r)
	var alone []R
	if !q.busy {
		q.busy = true
		alone = q.take()
	}
	q.mu.Unlock()
	if alone == nil {
		return
	}
	q.send(alone)
	q.mu.Lock()
	if next := q.take(); len(next) > 0 {
		go q.loop(next)
	} else {
		q.busy = false
	}
	q.mu.Unlock()
}

// loop sends batch, then the batches queued meanwhile, until the queue is
// empty.
//
// Between two batches it yields the processor (runtime.Gosched) once: the
// goroutines already runnable (callers just handed their replies, requests
// on their way to Add) run first, and those that reach Add meanwhile join
// the next batch instead of the one after. It is not a timer: with nothing
// else runnable it returns at once, and a lone request, sent from its
// caller's goroutine, never passes here. Under load batches grow and each
// request costs less (docs/PERFORMANCE.md).
func (q *Queue[R]) loop(batch []R) {
	for {
		q.send(batch)
		runtime.Gosched()
		q.mu.Lock()
		batch = q.take()
		if len(batch) == 0 {
			q.busy = false
			q.mu.Unlock()
			return
		}
		q.mu.Unlock()
	}
}

// take removes the next batch from the queue; q.mu is held.
func (q *Queue[R]) take() []R {
	n := min(len(q.pending), q.max)
	if n == 0 {
		return nil
	}
	batch := make([]R, n)
	copy(batch, q.pending)
	rest := copy(q.pending, q.pending[n:])
	clear(q.pending[rest:])
	q.pending = q.pending[:rest]
	return batch
}

// State reports whether a batch is in flight and how many requests wait
// for the next one.
func (q *Queue[R]) State() (inFlight bool, queued int) {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.busy, len(q.pending)
}
