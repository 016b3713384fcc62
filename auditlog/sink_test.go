package auditlog_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stepupgrpc/stepup/auditlog"
)

// TestConcurrentWritersOneChain: many goroutines audit at once, the files
// rotate many times; the trail verifies, holds every event exactly once,
// in one chain with consecutive sequence numbers, every full file ending
// with a rotate checkpoint and the next beginning with its header.
func TestConcurrentWritersOneChain(t *testing.T) {
	for _, alg := range []string{auditlog.AlgEd25519, auditlog.AlgES256} {
		t.Run(alg, func(t *testing.T) {
			dir := t.TempDir()
			key, keys := newKey(t, alg, "audit-1")
			s, _ := openSink(t, dir, key, auditlog.WithCheckpointEvery(97), auditlog.WithMaxFileSize(auditlog.MinFileSize),
				auditlog.WithQueueSize(64)) // a small queue: writers wait for the writer
			const writers, each = 8, 400
			var wg sync.WaitGroup
			for w := range writers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					writeEvents(s, w*each, (w+1)*each)
				}()
			}
			wg.Wait()
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			res := verify(t, keys, []string{dir})
			if !res.OK() {
				t.Fatalf("the trail does not verify:\n%s", problems(res))
			}
			if len(res.Chains) != 1 {
				t.Fatalf("%d chains", len(res.Chains))
			}
			c := res.Chains[0]
			if c.Records != writers*each || c.Verified != writers*each || c.End != auditlog.EndClosed || c.Chain != s.Chain() {
				t.Errorf("chain summary %+v", c)
			}
			paths := files(t, dir)
			if len(paths) < 10 {
				t.Fatalf("%d files: the sink did not rotate", len(paths))
			}
			seen := map[string]int{}
			var seq int64
			for i, path := range paths {
				es := entries(t, path)
				if h := es[0]; h.Kind != auditlog.KindFile || h.File != int64(i+1) {
					t.Errorf("%s begins with %+v", path, h)
				}
				last := es[len(es)-1]
				switch {
				case i < len(paths)-1 && (last.Kind != auditlog.KindCheckpoint || last.Trigger != auditlog.TriggerRotate):
					t.Errorf("full file %s ends with %s %s", path, last.Kind, last.Trigger)
				case i == len(paths)-1 && last.Trigger != auditlog.TriggerClose:
					t.Errorf("the last file ends with %s %s", last.Kind, last.Trigger)
				}
				if st, err := os.Stat(path); err != nil || st.Size() > auditlog.MinFileSize+4096 || st.Mode().Perm() != 0o600 {
					t.Errorf("%s: %v %v", path, st, err)
				}
				for _, e := range es {
					if e.Seq != seq {
						t.Fatalf("%s: seq %d, want %d", path, e.Seq, seq)
					}
					seq++
					if e.Kind == auditlog.KindRecord {
						seen[e.TokenID]++
					}
				}
			}
			for i := range writers * each {
				if n := seen[fmt.Sprintf("at-%06d", i)]; n != 1 {
					t.Errorf("event %d is in the trail %d times", i, n)
				}
			}
		})
	}
}

// TestCheckpointTriggers checks when checkpoints are written: after
// CheckpointEvery records, when the interval passes with records since the
// last one (and not without), on request, and at Close.
func TestCheckpointTriggers(t *testing.T) {
	dir := t.TempDir()
	key, keys := newKey(t, auditlog.AlgEd25519, "audit-1")
	ticks := make(chan time.Time)
	s, clock := openSink(t, dir, key, auditlog.WithCheckpointEvery(5), auditlog.WithTicks(ticks))
	tick := func() {
		ticks <- clock.Now()
		if err := s.Flush(); err != nil { // the tick was handled before the flush
			t.Fatal(err)
		}
	}
	writeEvents(s, 0, 7) // a count checkpoint after the 5th
	tick()               // an interval checkpoint after the 7th
	tick()               // nothing since: none
	writeEvents(s, 7, 8)
	clock.Advance(time.Minute)
	if err := s.Checkpoint(); err != nil {
		t.Fatal(err)
	}
	writeEvents(s, 8, 9)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range entries(t, files(t, dir)[0]) {
		switch e.Kind {
		case auditlog.KindRecord:
			got = append(got, "r")
		case auditlog.KindCheckpoint:
			got = append(got, e.Trigger)
			if e.Trigger == auditlog.TriggerRequest && e.Time != "2026-11-27T04:20:34.000000000Z" {
				t.Errorf("the checkpoint's time %s is not the sink's clock", e.Time)
			}
		default:
			got = append(got, e.Kind)
		}
	}
	want := "file r r r r r count r r interval r request r close"
	if strings.Join(got, " ") != want {
		t.Errorf("entries\n%s\nwant\n%s", strings.Join(got, " "), want)
	}
	if res := verify(t, keys, []string{dir}); !res.OK() {
		t.Errorf("%s", problems(res))
	}
	if err := s.Checkpoint(); err != auditlog.ErrClosed {
		t.Errorf("Checkpoint after Close: %v", err)
	}
}

// TestAuditAfterClose: events audited after Close are dropped and
// counted; the trail stays closed and verifies.
func TestAuditAfterClose(t *testing.T) {
	dir := t.TempDir()
	key, keys := newKey(t, auditlog.AlgEd25519, "audit-1")
	s, _ := openSink(t, dir, key)
	writeEvents(s, 0, 3)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	writeEvents(s, 3, 5)
	if err := s.Close(); err != nil { // a second Close does nothing
		t.Fatal(err)
	}
	if s.Lost() != 2 {
		t.Errorf("Lost() = %d, want 2", s.Lost())
	}
	res := verify(t, keys, []string{dir})
	if !res.OK() || res.Chains[0].Records != 3 {
		t.Errorf("%+v\n%s", res.Chains, problems(res))
	}
}

// TestOpenRefuses checks the configuration mistakes Open reports.
func TestOpenRefuses(t *testing.T) {
	key, _ := newKey(t, auditlog.AlgEd25519, "audit-1")
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		key  auditlog.SigningKey
		opts []auditlog.Option
		want string
	}{
		{"no key id", auditlog.SigningKey{Signer: key.Signer}, nil, "key id"},
		{"no key", auditlog.SigningKey{ID: "k"}, nil, "no signing key"},
		{"an RSA key", auditlog.SigningKey{ID: "k", Signer: rsaKey}, nil, "Ed25519 or ECDSA P-256 only"},
		{"a replica name with a slash", key, []auditlog.Option{auditlog.WithReplica("a/b")}, "replica name"},
		{"a replica name starting with a dot", key, []auditlog.Option{auditlog.WithReplica(".x")}, "replica name"},
		{"checkpoints every 0 records", key, []auditlog.Option{auditlog.WithCheckpointEvery(0)}, "at least 1"},
		{"files of 1 KiB", key, []auditlog.Option{auditlog.WithMaxFileSize(1024)}, "at least"},
		{"a negative interval", key, []auditlog.Option{auditlog.WithCheckpointInterval(-time.Second)}, "negative"},
		{"a batch delay of a minute", key, []auditlog.Option{auditlog.WithBatchDelay(time.Minute)}, "0 to 1s"},
		{"a queue of none", key, []auditlog.Option{auditlog.WithQueueSize(0)}, "at least 1"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := auditlog.Open(t.TempDir(), c.key, c.opts...)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("Open: %v, want %q", err, c.want)
			}
		})
	}
}

// TestPredecessor: a new sink names the chain its replica wrote before in
// the directory, and how it ended; a chain of another replica is not its
// predecessor. A chain whose process stopped without Close (unsealed) is
// sealed by its successor's header; a torn last line is reported by the
// sink and by Verify, never taken as an entry.
func TestPredecessor(t *testing.T) {
	dir := t.TempDir()
	key, keys := newKey(t, auditlog.AlgEd25519, "audit-1")

	first, _ := openSink(t, dir, key)
	if first.Predecessor() != nil {
		t.Fatalf("a predecessor in an empty directory: %+v", first.Predecessor())
	}
	writeEvents(first, 0, 3)
	if err := first.Close(); err != nil {
		t.Fatal(err)
	}
	other, _ := openSink(t, dir, key, auditlog.WithReplica("bank-2"))
	if other.Predecessor() != nil {
		t.Errorf("another replica's chain taken as a predecessor")
	}
	if err := other.Close(); err != nil {
		t.Fatal(err)
	}

	second, clock := openSink(t, dir, key)
	if p := second.Predecessor(); p == nil || p.Chain != first.Chain() || p.End != auditlog.EndClosed || p.Seq != 4 {
		t.Fatalf("predecessor %+v", p)
	}
	// The process stops without closing the sink: its records after the
	// last checkpoint, and half a line, are on disk.
	writeEvents(second, 3, 8)
	if err := second.Checkpoint(); err != nil {
		t.Fatal(err)
	}
	writeEvents(second, 8, 11)
	if err := second.Flush(); err != nil {
		t.Fatal(err)
	}
	last := filepath.Join(dir, auditlog.FileName(second.Chain(), 1))
	f, err := os.OpenFile(last, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	torn := `{"chain":"` + second.Chain() + `","code":"OK","deci`
	if _, err := f.WriteString(torn); err != nil {
		t.Fatal(err)
	}
	f.Close()
	res := verify(t, keys, []string{dir})
	if k := res.Worst(); k != auditlog.ProblemTorn || !hasProblem(res, auditlog.ProblemTorn, 1) || !hasProblem(res, auditlog.ProblemUnverifiedTail, 3) {
		t.Errorf("before a successor: worst %q\n%s", k, problems(res))
	}

	clock.Advance(time.Hour)
	third, _ := openSink(t, dir, key)
	p := third.Predecessor()
	if p == nil || p.Chain != second.Chain() || p.End != auditlog.EndTorn || p.Unsealed != 3 || p.Torn != len(torn) {
		t.Fatalf("predecessor %+v", p)
	}
	h := entries(t, filepath.Join(dir, auditlog.FileName(third.Chain(), 1)))[0]
	if h.PrevChain != second.Chain() || h.PrevChainEnd != auditlog.EndTorn || h.PrevChainSeq != p.Seq || h.PrevChainHash != p.Hash {
		t.Errorf("the header records %+v", h)
	}
	writeEvents(third, 11, 12)
	if err := third.Close(); err != nil {
		t.Fatal(err)
	}
	res = verify(t, keys, []string{dir})
	if k := res.Worst(); k != auditlog.ProblemTorn || len(res.Problems) != 1 {
		t.Errorf("worst %q, want only the torn line:\n%s", k, problems(res))
	}
	for _, c := range res.Chains {
		if c.Chain == second.Chain() && (c.SealedBy != third.Chain() || c.Unverified != 0 || c.Verified != 8) {
			t.Errorf("the second chain %+v is not sealed by the third", c)
		}
	}
	if second.Close() != nil { // the abandoned sink's goroutine, in this test's process
		t.Log("closing the abandoned sink")
	}
}

func hasProblem(r *auditlog.Result, kind auditlog.ProblemKind, count int64) bool {
	for _, p := range r.Problems {
		if p.Kind == kind && (count == 0 || p.Count == count) {
			return true
		}
	}
	return false
}

// TestCrashedProcess kills a process that is writing a trail (SIGKILL: no
// deferred code, no Close) and checks what is left: the records it wrote
// after its last checkpoint are reported as an unverified tail, a torn
// line if the kill fell in a write, and the next process's chain seals
// the rest.
func TestCrashedProcess(t *testing.T) {
	if os.Getenv("AUDITLOG_CRASH_DIR") != "" {
		crashingWriter()
		return
	}
	dir := t.TempDir()
	key, keys := newKey(t, auditlog.AlgEd25519, "audit-1")
	jwk, err := os.CreateTemp(t.TempDir(), "key")
	if err != nil {
		t.Fatal(err)
	}
	writePrivateJWK(t, jwk.Name(), key)
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashedProcess$")
	cmd.Env = append(os.Environ(), "AUDITLOG_CRASH_DIR="+dir, "AUDITLOG_CRASH_KEY="+jwk.Name())
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// The child says when its checkpoint, and 10 records after it, are
	// in the file; it goes on writing until it is killed.
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil || line != "ready\n" {
		t.Fatalf("the child said %q: %v", line, err)
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()

	res := verify(t, keys, []string{dir})
	for _, p := range res.Problems {
		if p.Kind != auditlog.ProblemUnverifiedTail && p.Kind != auditlog.ProblemTorn {
			t.Errorf("after a crash: %s", p)
		}
	}
	s, _ := openSink(t, dir, key)
	p := s.Predecessor()
	if p == nil || (p.End != auditlog.EndUnsealed && p.End != auditlog.EndTorn) || p.Unsealed < 10 {
		t.Fatalf("predecessor %+v", p)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	res = verify(t, keys, []string{dir})
	for _, pr := range res.Problems {
		if pr.Kind != auditlog.ProblemTorn {
			t.Errorf("after the next process: %s", pr)
		}
	}
	for _, c := range res.Chains {
		if c.Chain == p.Chain && (c.SealedBy != s.Chain() || c.Unverified != 0 || c.Records == 0) {
			t.Errorf("the crashed chain %+v is not sealed by its successor", c)
		}
	}
	t.Logf("the crashed process left %d records after its last checkpoint, a torn line of %d bytes", p.Unsealed, p.Torn)
}

// crashingWriter is the child of TestCrashedProcess.
func crashingWriter() {
	key, err := auditlog.ReadSigningKey(os.Getenv("AUDITLOG_CRASH_KEY"))
	if err != nil {
		panic(err)
	}
	s, err := auditlog.Open(os.Getenv("AUDITLOG_CRASH_DIR"), key, auditlog.WithReplica("bank-1"),
		auditlog.WithCheckpointEvery(1<<30), auditlog.WithCheckpointInterval(0))
	if err != nil {
		panic(err)
	}
	writeEvents(s, 0, 10)
	if err := s.Checkpoint(); err != nil {
		panic(err)
	}
	writeEvents(s, 10, 20)
	if err := s.Flush(); err != nil {
		panic(err)
	}
	fmt.Println("ready")
	for i := 20; ; i++ {
		s.Audit(context.Background(), event(i))
	}
}

// TestCheckpointCopyCatchesTruncation: someone who can rewrite the trail
// cuts its end off at a checkpoint, which the trail alone cannot show; the
// copies of its checkpoints, kept elsewhere, do.
func TestCheckpointCopyCatchesTruncation(t *testing.T) {
	dir := t.TempDir()
	key, keys := newKey(t, auditlog.AlgEd25519, "audit-1")
	var copies bytes.Buffer
	s, _ := openSink(t, dir, key, auditlog.WithCheckpointEvery(10), auditlog.WithCheckpointCopy(&copies))
	writeEvents(s, 0, 35)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	copyFile := filepath.Join(t.TempDir(), "checkpoints.jsonl")
	if err := os.WriteFile(copyFile, copies.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(copies.String(), "\n"); n != 4 {
		t.Fatalf("%d copies, want 4 (3 count, 1 close)", n)
	}
	withCopies := func(o *auditlog.VerifyOptions) { o.Checkpoints = []string{copyFile} }
	if res := verify(t, keys, []string{dir}, withCopies); !res.OK() || res.Copies != 4 {
		t.Fatalf("%d copies checked\n%s", res.Copies, problems(res))
	}
	// Cut after the second checkpoint (seq 22): what stays is a valid,
	// fully signed trail.
	path := files(t, dir)[0]
	lines := readLines(t, path)
	writeLines(t, path, lines[:23])
	if res := verify(t, keys, []string{dir}); !res.OK() {
		t.Fatalf("the cut trail alone: %s", problems(res))
	}
	res := verify(t, keys, []string{dir}, withCopies)
	if res.Worst() != auditlog.ProblemDeleted || !hasProblem(res, auditlog.ProblemDeleted, 0) {
		t.Fatalf("with the copies: %s", problems(res))
	}
	t.Log(problems(res))
}

// writePrivateJWK writes key as the private JWK ReadSigningKey reads.
func writePrivateJWK(t testing.TB, path string, key auditlog.SigningKey) {
	t.Helper()
	data, err := auditlog.MarshalPrivateJWK(key)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
}

// blockingSigner signs only once released: a slow HSM.
type blockingSigner struct {
	crypto.Signer
	started chan struct{}
	release chan struct{}
	once    sync.Once
}

func (s *blockingSigner) Sign(r io.Reader, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	s.once.Do(func() { close(s.started) })
	<-s.release
	return s.Signer.Sign(r, digest, opts)
}

// TestAuditDoesNotWaitForSigning: while the writer is held in a
// checkpoint's signature (a slow HSM), Audit still returns at once for
// every call (until the queue is full): signing and file I/O are off the
// call path. Once the signer answers, every event is in the trail.
func TestAuditDoesNotWaitForSigning(t *testing.T) {
	dir := t.TempDir()
	key, keys := newKey(t, auditlog.AlgEd25519, "audit-1")
	slow := &blockingSigner{Signer: key.Signer, started: make(chan struct{}), release: make(chan struct{})}
	s, _ := openSink(t, dir, auditlog.SigningKey{ID: key.ID, Signer: slow}, auditlog.WithBatchDelay(0))
	writeEvents(s, 0, 1)
	checkpointed := make(chan error, 1)
	go func() { checkpointed <- s.Checkpoint() }()
	<-slow.started // the writer is in the checkpoint's signature
	writeEvents(s, 1, 500)
	select {
	case err := <-checkpointed:
		t.Fatalf("the checkpoint was written before its signature: %v", err)
	default: // 499 Audit calls returned while the signature was pending
	}
	close(slow.release)
	if err := <-checkpointed; err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	res := verify(t, keys, []string{dir})
	if !res.OK() || res.Chains[0].Records != 500 || res.Chains[0].Checkpoints != 2 {
		t.Errorf("%+v\n%s", res.Chains, problems(res))
	}
}
