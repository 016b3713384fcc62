package interceptor_test

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stepupgrpc/stepup/challenge/redisstore"
	"github.com/stepupgrpc/stepup/internal/groupcommit"
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
			for {
				if _, err := io.ReadFull(r, hdr[:]); err != nil {
					return
				}
				n, l := int(binary.BigEndian.Uint32(hdr[:4])), int(binary.BigEndian.Uint32(hdr[4:]))
				if _, err := r.Discard(l); err != nil {
					return
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
func startFloorResponder(tb testing.TB) string {
	tb.Helper()
	_, out := startHelper(tb, floorEnv)
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		tb.Fatalf("floor responder: %v", err)
	}
	return strings.TrimSpace(line)
}

// floorStore is a dpop.ReplayStore whose inserts are batched as those of
// challenge/redisstore are (internal/groupcommit, the same queue), each
// caller waiting for its reply or its context. A batch is one frame written
// and its answer read on one connection, under the latest deadline of its
// callers. It records nothing: it is a floor, not a store.
type floorStore struct {
	conn    net.Conn
	r       *bufio.Reader
	buf     []byte
	timeout time.Duration
	q       *groupcommit.Queue[*floorInsert]
	batches atomic.Int64
}

type floorInsert struct {
	key      string
	exp      int64
	deadline time.Time
	done     chan error
}

func newFloorStore(tb testing.TB, addr string) *floorStore {
	tb.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = c.Close() })
	s := &floorStore{conn: c, r: bufio.NewReaderSize(c, 4<<10), timeout: redisstore.DefaultTimeout}
	s.q = groupcommit.New(256, s.flush)
	return s
}

func (s *floorStore) Insert(ctx context.Context, key string, _, expires time.Time) error {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	r := &floorInsert{key: "stepup-floor:" + key, exp: expires.UnixMilli(), done: make(chan error, 1)}
	r.deadline, _ = ctx.Deadline()
	s.q.Add(r)
	select {
	case err := <-r.done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// flush sends one batch: the keys and expiries in one frame, about the
// bytes of the store's script call, and reads one byte per key. One batch
// is in flight at a time, so the connection and the buffer are its own.
func (s *floorStore) flush(batch []*floorInsert) {
	s.batches.Add(1)
	var deadline time.Time
	for _, r := range batch {
		if r.deadline.After(deadline) {
			deadline = r.deadline
		}
	}
	b := append(s.buf[:0], make([]byte, 8)...)
	for _, r := range batch {
		b = append(b, r.key...)
		b = strconv.AppendInt(b, r.exp, 10)
	}
	binary.BigEndian.PutUint32(b[:4], uint32(len(batch)))
	binary.BigEndian.PutUint32(b[4:8], uint32(len(b)-8))
	s.buf = b
	err := s.conn.SetDeadline(deadline)
	if err == nil {
		_, err = s.conn.Write(b)
	}
	for _, r := range batch {
		if err == nil {
			var c byte
			if c, err = s.r.ReadByte(); err == nil && c != '1' {
				err = errors.New("floor: unexpected answer")
			}
		}
		r.done <- err
	}
}
