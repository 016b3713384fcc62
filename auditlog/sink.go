package auditlog

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"
	"unicode/utf8"
	"unsafe"

	"google.golang.org/grpc/codes"

	"github.com/stepupgrpc/stepup/interceptor"
	"github.com/stepupgrpc/stepup/internal/option"
)

// Defaults of the options.
const (
	DefaultCheckpointEvery    = 1000
	DefaultCheckpointInterval = time.Minute
	DefaultMaxFileSize        = 64 << 20
	DefaultQueueSize          = 1 << 16
	DefaultBatchDelay         = 2 * time.Millisecond
	// MinFileSize is the smallest WithMaxFileSize accepted.
	MinFileSize = 64 << 10
)

// ErrClosed is returned by Flush and Checkpoint after Close.
var ErrClosed = errors.New("auditlog: sink closed")

// batchSize is how many queued events wake the writer at once, whatever
// the batch delay.
const batchSize = 256

// Sink is an interceptor.AuditSink that writes a tamper-evident trail:
// JSON Lines in which every entry carries its chain, its sequence number
// and the hash of the entry before it, with checkpoints signed by a
// SigningKey every CheckpointEvery records, every CheckpointInterval, when
// a file is full and at Close. docs/AUDITLOG.md specifies the format.
//
// Audit copies the event into a queue and returns: encoding, hashing,
// signing and file I/O happen on the sink's own goroutine. It is safe for
// concurrent use. Close it after the server has stopped, so that its last
// decisions are sealed by the closing checkpoint.
type Sink struct {
	dir, chain string
	key        SigningKey
	alg        string
	o          options
	pred       *Predecessor

	mu     sync.Mutex
	space  sync.Cond // signalled when the queue has room, or the sink closes
	queue  []interceptor.Event
	spare  []interceptor.Event
	closed bool
	lost   int64 // events audited after Close

	wake chan struct{} // the queue went from empty to not
	full chan struct{} // the queue reached batchSize
	reqs chan request
	done chan struct{} // the writer goroutine ended

	closeOnce sync.Once
	closeErr  error

	errMu sync.Mutex
	err   error

	w writer // the writer goroutine's
}

// writer is the state of the writer goroutine.
type writer struct {
	file     *os.File
	index    int64 // the current file's index
	size     int64 // bytes in the current file
	seq      int64 // the next entry's seq
	prev     [sha256.Size]byte
	since    int    // records since the last checkpoint
	buf      []byte // encoded entries not yet written
	failing  bool   // the last write failed: buf holds what it left
	noRotate int64  // after a failed rotation: no new attempt before this size
	entry    Entry
	stamp    []byte   // the time of the entry being encoded
	prevText [43]byte // prev, in BASE64URL (32 bytes in 43 characters)
}

type request struct {
	op    int
	reply chan error
}

const (
	opFlush = iota
	opCheckpoint
	opClose
)

// Open starts a new chain in dir (created, mode 0700, if missing), signed
// by key. Its first file's header names the newest chain the same replica
// wrote in dir and how that chain ended; when it did not end with its
// closing checkpoint (a crash), Open logs a warning, and Predecessor
// reports it. Open never modifies an existing file.
func Open(dir string, key SigningKey, opts ...Option) (*Sink, error) {
	o := options{every: DefaultCheckpointEvery, interval: DefaultCheckpointInterval, maxBytes: DefaultMaxFileSize,
		queue: DefaultQueueSize, delay: DefaultBatchDelay, mode: 0o600, log: slog.Default(), now: time.Now}
	alg, err := key.alg()
	if err := errors.Join(err, option.Apply("auditlog", "Open", opts, func(opt Option) error { return opt.applySink(&o) })); err != nil {
		return nil, err
	}
	if o.replica == "" {
		o.replica = defaultReplica()
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("auditlog: %w", err)
	}
	s := &Sink{dir: dir, key: key, alg: alg, o: o,
		wake: make(chan struct{}, 1), full: make(chan struct{}, 1), reqs: make(chan request), done: make(chan struct{})}
	s.space.L = &s.mu
	if s.chain = o.chain; s.chain == "" {
		if s.chain, err = newChainID(o.replica, o.now()); err != nil {
			return nil, fmt.Errorf("auditlog: %w", err)
		}
	}
	if s.pred, err = findPredecessor(dir, o.replica, s.chain); err != nil {
		return nil, fmt.Errorf("auditlog: reading the previous chain: %w", err)
	}
	if p := s.pred; p != nil && p.End != EndClosed {
		o.log.Warn("auditlog: the previous chain did not end with its closing checkpoint: its process stopped without closing the sink",
			slog.String("chain", p.Chain), slog.String("file", p.File), slog.String("end", p.End),
			slog.Int("unsealed_records", p.Unsealed), slog.Int("torn_bytes", p.Torn))
	}
	if err := s.openFile(1); err != nil {
		return nil, err
	}
	header := Entry{Kind: KindFile, File: 1, Replica: o.replica}
	if p := s.pred; p != nil {
		header.PrevChain, header.PrevChainSeq, header.PrevChainHash, header.PrevChainEnd = p.Chain, p.Seq, p.Hash, p.End
	}
	s.next(&header, o.now())
	s.appendEntry(&header)
	if !s.write() {
		s.w.file.Close()
		return nil, s.Err()
	}
	if err := s.w.file.Sync(); err != nil {
		s.w.file.Close()
		return nil, fmt.Errorf("auditlog: %w", err)
	}
	go s.run()
	return s, nil
}

// Chain returns the id of the sink's chain.
func (s *Sink) Chain() string { return s.chain }

// Dir returns the sink's directory.
func (s *Sink) Dir() string { return s.dir }

// Predecessor returns what Open found of the chain this replica wrote
// before in the directory, or nil when there was none.
func (s *Sink) Predecessor() *Predecessor { return s.pred }

// Audit queues a copy of e for the trail. It waits only when the queue is
// full (WithQueueSize). After Close, events are dropped and counted
// (Lost).
func (s *Sink) Audit(_ context.Context, e *interceptor.Event) {
	s.mu.Lock()
	for len(s.queue) >= s.o.queue && !s.closed {
		s.space.Wait()
	}
	if s.closed {
		s.lost++
		s.mu.Unlock()
		return
	}
	s.queue = append(s.queue, *e)
	n := len(s.queue)
	s.mu.Unlock()
	switch n {
	case 1:
		signal(s.wake)
	case batchSize:
		signal(s.full)
	}
}

// signal wakes the writer through c, unless a signal is already pending.
func signal(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// Flush waits until every event audited before it is written to the
// current file (not synced to disk: a checkpoint is). It returns the
// write error that keeps events from the file, if any.
func (s *Sink) Flush() error { return s.call(opFlush) }

// Checkpoint writes and syncs a checkpoint now (trigger "request"), after
// every event audited before it.
func (s *Sink) Checkpoint() error { return s.call(opCheckpoint) }

// Close writes the events still queued and the closing checkpoint (trigger
// "close"), syncs and closes the file. Events audited afterwards are
// dropped. It returns the first error that kept something from the file.
func (s *Sink) Close() error {
	s.closeOnce.Do(func() {
		s.mu.Lock()
		s.closed = true
		s.space.Broadcast()
		s.mu.Unlock()
		reply := make(chan error, 1)
		s.reqs <- request{op: opClose, reply: reply}
		s.closeErr = <-reply
		<-s.done
		if n := s.Lost(); n > 0 {
			s.o.log.Warn("auditlog: events audited after Close were dropped", slog.Int64("events", n))
		}
	})
	return s.closeErr
}

// Lost counts the events audited after Close, which are not in the trail.
func (s *Sink) Lost() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lost
}

// Err returns the error of the last failed write or signature, or nil when
// the trail is being written: for a health check.
func (s *Sink) Err() error {
	s.errMu.Lock()
	defer s.errMu.Unlock()
	return s.err
}

func (s *Sink) call(op int) error {
	reply := make(chan error, 1)
	select {
	case s.reqs <- request{op: op, reply: reply}:
	case <-s.done:
		return ErrClosed
	}
	return <-reply
}

// fail records err and logs it.
func (s *Sink) fail(err error) {
	s.errMu.Lock()
	first := s.err == nil
	s.err = err
	s.errMu.Unlock()
	if first {
		s.o.log.Error("auditlog: the trail is not being written; events wait in the queue", slog.String("error", err.Error()))
	}
}

func (s *Sink) recovered() {
	s.errMu.Lock()
	had := s.err != nil
	s.err = nil
	s.errMu.Unlock()
	if had {
		s.o.log.Info("auditlog: the trail is being written again")
	}
}

// run is the writer goroutine.
func (s *Sink) run() {
	defer close(s.done)
	ticks := s.o.ticks
	if ticks == nil && s.o.interval > 0 {
		t := time.NewTicker(s.o.interval)
		defer t.Stop()
		ticks = t.C
	}
	var retry <-chan time.Time
	// batch runs while the writer waits for more events (WithBatchDelay).
	batch := time.NewTimer(time.Hour)
	batch.Stop()
	var batchC <-chan time.Time
	for {
		select {
		case <-s.wake:
			if s.o.delay > 0 {
				if batchC == nil {
					batch.Reset(s.o.delay)
					batchC = batch.C
				}
				continue
			}
			s.drain()
		case <-batchC:
			batchC = nil
			s.drain()
		case <-s.full:
			s.drain()
		case <-retry:
			s.drain()
		case <-ticks:
			s.drain()
			if s.w.since > 0 && !s.w.failing {
				s.checkpoint(TriggerInterval)
			}
		case r := <-s.reqs:
			s.drain()
			switch r.op {
			case opCheckpoint:
				s.checkpoint(TriggerRequest)
			case opClose:
				s.checkpoint(TriggerClose)
				if err := s.w.file.Close(); err != nil && !s.w.failing {
					s.fail(fmt.Errorf("auditlog: %w", err))
				}
			}
			var err error
			if s.w.failing {
				err = s.Err()
			}
			r.reply <- err
			if r.op == opClose {
				return
			}
		}
		retry = nil
		if s.w.failing {
			retry = time.After(time.Second)
		}
	}
}

// take swaps the queue for the spare buffer and returns what was queued.
func (s *Sink) take() []interceptor.Event {
	s.mu.Lock()
	batch := s.queue
	s.queue, s.spare = s.spare[:0], nil
	s.space.Broadcast()
	s.mu.Unlock()
	return batch
}

// giveBack returns a written batch as the spare buffer, without keeping
// its strings alive.
func (s *Sink) giveBack(batch []interceptor.Event) {
	clear(batch)
	s.mu.Lock()
	if s.spare == nil {
		s.spare = batch[:0]
	}
	s.mu.Unlock()
}

// drain writes everything queued. While a write fails, the queue stays
// where it is: Audit waits once it is full.
func (s *Sink) drain() {
	if !s.write() {
		return
	}
	for {
		batch := s.take()
		if len(batch) == 0 {
			s.giveBack(batch)
			return
		}
		for i := range batch {
			s.appendRecord(&batch[i])
			switch {
			case s.w.size+int64(len(s.w.buf)) >= s.o.maxBytes && s.w.size+int64(len(s.w.buf)) >= s.w.noRotate:
				s.rotate()
			case s.w.since >= s.o.every:
				s.checkpoint(TriggerCount)
			}
		}
		ok := s.write()
		s.giveBack(batch)
		if !ok {
			return
		}
	}
}

// write writes the buffered entries; on failure, what was not written
// stays buffered for the next attempt (nothing is lost or torn).
func (s *Sink) write() bool {
	if len(s.w.buf) == 0 {
		return !s.w.failing
	}
	n, err := s.w.file.Write(s.w.buf)
	s.w.size += int64(n)
	s.w.buf = s.w.buf[:copy(s.w.buf, s.w.buf[n:])]
	if err != nil {
		s.w.failing = true
		s.fail(fmt.Errorf("auditlog: writing %s: %w", s.w.file.Name(), err))
		return false
	}
	if s.w.failing {
		s.w.failing = false
		s.recovered()
	}
	return true
}

// next completes e as the chain's next entry: version, chain, seq, the
// previous entry's hash and its time. e.Prev and e.Time point into the
// writer's buffers (no allocation per record): e must be encoded before
// the next call.
func (s *Sink) next(e *Entry, t time.Time) {
	s.w.stamp = t.UTC().AppendFormat(s.w.stamp[:0], timestampLayout)
	e.V, e.Chain, e.Seq, e.Time = Version, s.chain, s.w.seq, unsafe.String(unsafe.SliceData(s.w.stamp), len(s.w.stamp))
	if s.w.seq > 0 {
		base64.RawURLEncoding.Encode(s.w.prevText[:], s.w.prev[:])
		e.Prev = unsafe.String(&s.w.prevText[0], len(s.w.prevText))
	}
}

// appendEntry appends the canonical form of e, completed by next, and a
// line feed to the buffer.
func (s *Sink) appendEntry(e *Entry) {
	start := len(s.w.buf)
	s.w.buf = e.AppendCanonical(s.w.buf, true)
	s.w.prev = sha256.Sum256(s.w.buf[start:])
	s.w.buf = append(s.w.buf, '\n')
	s.w.seq++
}

// timestampLayout is RFC 3339 in UTC with exactly nine fraction digits.
const timestampLayout = "2006-01-02T15:04:05.000000000Z"

// appendRecord appends the record of ev.
func (s *Sink) appendRecord(ev *interceptor.Event) {
	e := &s.w.entry
	*e = Entry{
		Kind:              KindRecord,
		Decision:          cut(string(ev.Decision)),
		Reason:            cut(string(ev.Reason)),
		Code:              codeName(ev.Code),
		Method:            cut(ev.Method),
		Stream:            ev.Stream,
		Peer:              cut(ev.Peer),
		UserAgent:         cut(ev.UserAgent),
		TraceID:           cut(ev.TraceID),
		Subject:           cut(ev.Subject),
		ClientID:          cut(ev.ClientID),
		TokenID:           cut(ev.TokenID),
		JKT:               cut(ev.Thumbprint),
		StepUpRequired:    ev.StepUpRequired,
		Factor:            cut(ev.Factor),
		Via:               cut(ev.Via),
		ChallengeID:       cut(ev.ChallengeID),
		GrantID:           cut(ev.GrantID),
		IssuedChallengeID: cut(ev.IssuedChallengeID),
		IssuedGrantID:     cut(ev.IssuedGrantID),
		SummaryDigest:     cut(ev.SummaryDigest),
		Detail:            cut(ev.Detail),
		LatencyNS:         max(int64(ev.Latency), 0),
	}
	t := ev.Time
	if t.IsZero() {
		t = s.o.now()
	}
	s.next(e, t)
	s.appendEntry(e)
	s.w.since++
}

// cut shortens v to MaxString bytes at a UTF-8 boundary.
func cut(v string) string {
	if len(v) <= MaxString {
		return v
	}
	i := MaxString
	for i > 0 && !utf8.RuneStart(v[i]) {
		i--
	}
	return v[:i]
}

// codeNames are the gRPC status code names of the specification
// (grpc/doc/statuscodes.md).
var codeNames = [...]string{"OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND",
	"ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION", "ABORTED", "OUT_OF_RANGE",
	"UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS", "UNAUTHENTICATED"}

func codeName(c codes.Code) string {
	if int(c) < len(codeNames) {
		return codeNames[c]
	}
	return "CODE_" + strconv.FormatUint(uint64(c), 10)
}

// checkpoint appends a signed checkpoint, writes it and syncs the file;
// then copies it to the second place. A failure leaves the records
// unsealed until the next checkpoint.
func (s *Sink) checkpoint(trigger string) bool {
	e := &s.w.entry
	*e = Entry{Kind: KindCheckpoint, Trigger: trigger, Alg: s.alg, KeyID: s.key.ID}
	s.next(e, s.o.now())
	sig, err := s.key.sign(s.alg, e.SigningInput())
	if err != nil {
		s.fail(fmt.Errorf("auditlog: signing a checkpoint: %w", err))
		return false
	}
	e.Sig = base64.RawURLEncoding.EncodeToString(sig)
	start := len(s.w.buf)
	s.appendEntry(e)
	line := string(s.w.buf[start:])
	s.w.since = 0
	if !s.write() {
		return false
	}
	if err := s.w.file.Sync(); err != nil {
		s.fail(fmt.Errorf("auditlog: syncing %s: %w", s.w.file.Name(), err))
		return false
	}
	if s.o.copyTo != nil {
		if _, err := io.WriteString(s.o.copyTo, line); err != nil {
			s.o.log.Error("auditlog: copying a checkpoint to its second place failed", slog.String("error", err.Error()))
		}
	}
	return true
}

// rotate ends the current file with a checkpoint and goes on in the next.
// When the next file cannot be created, or the checkpoint cannot be
// written, the current one grows by another sixteenth of the limit before
// the next attempt (a rotate checkpoint that could not be written stays
// buffered for this file, and entries follow it here).
func (s *Sink) rotate() {
	if s.w.failing {
		return // the next attempt comes with the next record once writes work
	}
	retryAt := s.w.size + int64(len(s.w.buf)) + s.o.maxBytes/16
	old, index, size := s.w.file, s.w.index, s.w.size
	if err := s.openFile(index + 1); err != nil {
		s.fail(err)
		s.w.noRotate = retryAt
		return
	}
	next := s.w.file
	s.w.file, s.w.index, s.w.size = old, index, size
	if !s.checkpoint(TriggerRotate) {
		// The checkpoint is not on disk: stay in this file.
		next.Close()
		os.Remove(next.Name())
		s.w.noRotate = retryAt
		return
	}
	if err := old.Close(); err != nil {
		s.o.log.Warn("auditlog: closing a full file", slog.String("file", old.Name()), slog.String("error", err.Error()))
	}
	s.w.file, s.w.index, s.w.size, s.w.noRotate = next, index+1, 0, 0
	header := &s.w.entry
	*header = Entry{Kind: KindFile, File: index + 1}
	s.next(header, s.o.now())
	s.appendEntry(header)
}

// openFile creates file n of the chain, never overwriting one, and syncs
// the directory so that the new name survives a crash.
func (s *Sink) openFile(n int64) error {
	path := filepath.Join(s.dir, FileName(s.chain, n))
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL|os.O_APPEND, s.o.mode)
	if err != nil {
		return fmt.Errorf("auditlog: %w", err)
	}
	if d, err := os.Open(s.dir); err == nil {
		_ = d.Sync()
		d.Close()
	}
	s.w.file, s.w.index, s.w.size = f, n, 0
	return nil
}
