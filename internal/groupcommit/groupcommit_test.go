package groupcommit_test

import (
	"sync"
	"testing"

	"github.com/stepupgrpc/stepup/internal/groupcommit"
)

// A request that finds no batch in flight is sent alone, before Add
// returns; those added while a batch is in flight leave together as the
// next batch, at most max of them at a time, and every request is sent
// exactly once.
func TestQueue(t *testing.T) {
	const max = 3
	var (
		mu      sync.Mutex
		batches [][]int
		release = make(chan struct{})
		first   = make(chan struct{})
		done    sync.WaitGroup
	)
	var q *groupcommit.Queue[int]
	q = groupcommit.New(max, func(batch []int) {
		mu.Lock()
		batches = append(batches, append([]int(nil), batch...))
		n := len(batches)
		mu.Unlock()
		if n == 1 {
			close(first)
			<-release // the first batch stays in flight while the others queue
		}
		for range batch {
			done.Done()
		}
	})
	done.Add(8)
	go q.Add(0)
	<-first
	for i := 1; i < 8; i++ {
		q.Add(i) // returns at once: a batch is in flight
	}
	if inFlight, queued := q.State(); !inFlight || queued != 7 {
		t.Fatalf("State() = %v, %d; want true, 7", inFlight, queued)
	}
	close(release)
	done.Wait()
	mu.Lock()
	defer mu.Unlock()
	want := [][]int{{0}, {1, 2, 3}, {4, 5, 6}, {7}}
	if len(batches) != len(want) {
		t.Fatalf("batches %v; want %v", batches, want)
	}
	for i := range want {
		if len(batches[i]) != len(want[i]) {
			t.Fatalf("batches %v; want %v", batches, want)
		}
		for j := range want[i] {
			if batches[i][j] != want[i][j] {
				t.Fatalf("batches %v; want %v", batches, want)
			}
		}
	}
}
