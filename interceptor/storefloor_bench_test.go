package interceptor_test

import (
	"bufio"
	"cmp"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// The network floor of a shared replay store (docs/PERFORMANCE.md, "The
// floor of a store across the network"): floorStore does what the
// batching of challenge/redisstore does with each insert, but its round
// trip goes to a responder in another process that answers at once, so
// that no store's work is in it. Its server CPU per call against the store
// in process is the least any store across the network can cost on this
// machine, with the responder on the same cores as Redis would be.

// floorEnv starts this test binary as the floor's responder.
const floorEnv = "STEPUP_BENCH_FLOOR_RESPONDER"

// runFloorResponder listens on a loopback port, prints its address, and
// answers every frame on every connection until stdin closes. A frame is
// the number of inserts n and the length of the payload (two big-endian
// uint32s), then the payload; the answer is n bytes '1' (each key set),
// written when no further frame is buffered, as Redis answers a pipeline.
func runFloorResponder(stdin io.Reader, stdout io.Writer) error {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	if _, err := fmt.Fprintln(stdout, lis.Addr()); err != nil {
		return err
	}
	go func() {
		_, _ = io.Copy(io.Discard, stdin)
		_ = lis.Close()
	}()
	for {
		c, err := lis.Accept()
		if err != nil {
			return nil // closed
		}
		go func() {
			defer c.Close()
			r, w := bufio.NewReaderSize(c, 64<<10), bufio.NewWriterSize(c, 4<<10)
			var hdr [8]byte
			ones := []byte(strings.Repeat("1", 512))
			busy, _ := time.ParseDuration(os.Getenv(floorEnv + "_BUSY")) // per key: a stand-in for a store's own CPU
			for {
				if _, err := io.ReadFull(r, hdr[:]); err != nil {
					return
				}
				n, l := int(binary.BigEndian.Uint32(hdr[:4])), int(binary.BigEndian.Uint32(hdr[4:]))
				if _, err := r.Discard(l); err != nil {
					return
				}
				if busy > 0 {
					for t := time.Now().Add(time.Duration(n) * busy); time.Now().Before(t); {
					}
				}
				for n > 0 {
					k := min(n, len(ones))
					_, _ = w.Write(ones[:k])
					n -= k
				}
				if r.Buffered() == 0 && w.Flush() != nil {
					return
				}
			}
		}()
	}
}

// startFloorResponder starts the responder process and returns its
// address; it stops with the benchmark.
func startFloorResponder(tb testing.TB, busy time.Duration) string {
	tb.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), floorEnv+"=1", floorEnv+"_BUSY="+busy.String())
	cmd.Stderr = os.Stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		tb.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		tb.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = in.Close(); _ = cmd.Wait() })
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		tb.Fatalf("floor responder: %v", err)
	}
	return strings.TrimSpace(line)
}

// floorStore is a dpop.ReplayStore whose inserts take the batching path of
// challenge/redisstore (batch.go): one batch in flight at a time; an
// insert that finds none is sent at once from its caller's goroutine; the
// inserts queued meanwhile leave together as the next batch, sent by a
// goroutine that yields once between batches; each caller waits for its
// reply or its context. A batch is one frame written and its answer read
// on one connection, under the latest deadline of its callers. It records
// nothing: it is a floor, not a store.
type floorStore struct {
	conn    net.Conn
	r       *bufio.Reader
	buf     []byte
	timeout time.Duration

	mu      sync.Mutex
	pending []*floorInsert
	busy    bool
}

type floorInsert struct {
	key      string
	exp      int64
	ctx      context.Context
	deadline time.Time
	done     chan error
}

var floorInserts = sync.Pool{New: func() any { return &floorInsert{done: make(chan error, 1)} }}

func newFloorStore(tb testing.TB, addr string) *floorStore {
	tb.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = c.Close() })
	return &floorStore{conn: c, r: bufio.NewReaderSize(c, 4<<10), timeout: 250 * time.Millisecond}
}

func (s *floorStore) Insert(ctx context.Context, key string, _, expires time.Time) error {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	r := floorInserts.Get().(*floorInsert)
	r.key, r.exp, r.ctx = "stepup-floor:"+key, expires.UnixMilli(), ctx
	r.deadline, _ = ctx.Deadline()
	s.mu.Lock()
	s.pending = append(s.pending, r)
	var alone []*floorInsert
	if !s.busy {
		s.busy = true
		alone = s.take()
	}
	s.mu.Unlock()
	if alone != nil {
		s.flush(alone)
		s.mu.Lock()
		if next := s.take(); len(next) > 0 {
			go s.loop(next)
		} else {
			s.busy = false
		}
		s.mu.Unlock()
	}
	select {
	case err := <-r.done:
		*r = floorInsert{done: r.done}
		floorInserts.Put(r)
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (s *floorStore) loop(batch []*floorInsert) {
	for {
		s.flush(batch)
		runtime.Gosched()
		s.mu.Lock()
		batch = s.take()
		if len(batch) == 0 {
			s.busy = false
			s.mu.Unlock()
			return
		}
		s.mu.Unlock()
	}
}

// take removes the next batch (at most 256 inserts) from the queue; s.mu
// is held.
func (s *floorStore) take() []*floorInsert {
	n := min(len(s.pending), 256)
	if n == 0 {
		return nil
	}
	batch := make([]*floorInsert, n)
	copy(batch, s.pending)
	rest := copy(s.pending, s.pending[n:])
	clear(s.pending[rest:])
	s.pending = s.pending[:rest]
	return batch
}

// flush sends one batch: the keys and expiries in one frame, as many
// bytes as a script call would carry, and reads one byte per key. Only
// one batch is in flight, so the connection and buffer are its own.
func (s *floorStore) flush(batch []*floorInsert) {
	now := time.Now()
	var deadline time.Time
	live := batch[:0]
	for _, r := range batch {
		if err := r.ctx.Err(); err != nil || !now.Before(r.deadline) {
			r.done <- cmp.Or(err, context.DeadlineExceeded)
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
	b := append(s.buf[:0], make([]byte, 8)...)
	for _, r := range live {
		b = append(b, r.key...)
		b = strconv.AppendInt(b, r.exp, 10)
	}
	binary.BigEndian.PutUint32(b[:4], uint32(len(live)))
	binary.BigEndian.PutUint32(b[4:8], uint32(len(b)-8))
	s.buf = b
	err := s.conn.SetDeadline(deadline)
	if err == nil {
		_, err = s.conn.Write(b)
	}
	for _, r := range live {
		if err == nil {
			var c byte
			if c, err = s.r.ReadByte(); err == nil && c != '1' {
				err = errors.New("floor: unexpected answer")
			}
		}
		r.done <- err
	}
}
