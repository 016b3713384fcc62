package auditlog_test

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/stepupgrpc/stepup/auditlog"
	"github.com/stepupgrpc/stepup/interceptor"
	relayv1 "github.com/stepupgrpc/stepup/internal/testproto/relay/v1"
	"github.com/stepupgrpc/stepup/testing/relaykit"
)

// guardTrail is a trail written by a real Guard: real calls with real
// credentials (relaykit's world), a step-up answered and a grant reused,
// over several files with checkpoints every 10 records. It is made once
// and copied for each test that tampers with it.
var guardTrail = struct {
	once  sync.Once
	dir   string
	keys  *auditlog.KeySet
	chain string
}{}

func realTrail(t *testing.T) (dir string, keys *auditlog.KeySet) {
	t.Helper()
	guardTrail.once.Do(func() {
		dir, err := os.MkdirTemp("", "auditlog-trail")
		if err != nil {
			t.Fatal(err)
		}
		key, keys := newKey(t, auditlog.AlgEd25519, "audit-1")
		sink, err := auditlog.Open(dir, key, auditlog.WithReplica("bank-1"), auditlog.WithCheckpointEvery(10),
			auditlog.WithMaxFileSize(auditlog.MinFileSize), auditlog.WithLogger(discardLogger()))
		if err != nil {
			t.Fatal(err)
		}
		w := relaykit.Start(t, []interceptor.Option{interceptor.WithAuditSink(sink)})
		ctx := context.Background()
		if _, err := w.Relay.Whoami(ctx, &relayv1.WhoamiRequest{}); err != nil { // challenge, answer
			t.Fatal(err)
		}
		if _, err := w.Relay.Whoami(ctx, &relayv1.WhoamiRequest{}); err != nil { // grant
			t.Fatal(err)
		}
		for range 400 {
			if _, err := w.Relay.Echo(ctx, &relayv1.EchoRequest{Payload: []byte("ping")}); err != nil {
				t.Fatal(err)
			}
		}
		if err := sink.Close(); err != nil {
			t.Fatal(err)
		}
		guardTrail.dir, guardTrail.keys, guardTrail.chain = dir, keys, sink.Chain()
	})
	if guardTrail.dir == "" {
		t.Fatal("the trail could not be made")
	}
	dir = t.TempDir()
	for _, f := range files(t, guardTrail.dir) {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, filepath.Base(f)), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return dir, guardTrail.keys
}

func TestMain(m *testing.M) {
	code := m.Run()
	if guardTrail.dir != "" {
		os.RemoveAll(guardTrail.dir)
	}
	os.Exit(code)
}

// tamper edits one file of a copy of the real trail: edit gets its lines
// and returns the new ones.
func tamper(t *testing.T, dir string, file int, edit func([]string) []string) string {
	t.Helper()
	path := files(t, dir)[file]
	writeLines(t, path, edit(readLines(t, path)))
	return path
}

// setMember replaces the value of a string member of a line.
func setMember(t *testing.T, line, name, value string) string {
	t.Helper()
	i := strings.Index(line, `"`+name+`":"`)
	if i < 0 {
		t.Fatalf("no %s in %s", name, line)
	}
	j := i + len(name) + 4
	k := strings.IndexByte(line[j:], '"')
	return line[:j] + value + line[j+k:]
}

// rehash recomputes the "prev" of every entry of a file from line from on,
// as someone who knows the format but not the key would after an edit.
func rehash(t *testing.T, lines []string, from int) []string {
	t.Helper()
	for i := from; i < len(lines); i++ {
		prev, err := auditlog.ParseEntry([]byte(lines[i-1]))
		if err != nil {
			t.Fatal(err)
		}
		e, err := auditlog.ParseEntry([]byte(lines[i]))
		if err != nil {
			t.Fatal(err)
		}
		e.Prev = prev.HashString()
		lines[i] = string(e.AppendCanonical(nil, true))
	}
	return lines
}

func TestRealTrailVerifies(t *testing.T) {
	dir, keys := realTrail(t)
	res := verify(t, keys, []string{dir})
	if !res.OK() {
		t.Fatal(problems(res))
	}
	c := res.Chains[0]
	if len(c.Files) < 3 || c.Records != 403 || c.Verified != 403 || c.End != auditlog.EndClosed || len(c.KeyIDs) != 1 {
		t.Errorf("%+v", c)
	}
}

// TestTamperedTrails tampers with a trail written by a real Guard in each
// way someone with write access could, and checks that Verify finds it,
// with the kind of problem and where.
func TestTamperedTrails(t *testing.T) {
	for _, c := range []struct {
		name string
		do   func(t *testing.T, dir string) (file string, line int)
		want auditlog.ProblemKind
		// more: other problems that may be reported with it.
		more []auditlog.ProblemKind
	}{
		{"a refusal turned into an allow", func(t *testing.T, dir string) (string, int) {
			return tamper(t, dir, 0, func(l []string) []string {
				l[1] = setMember(t, l[1], "decision", "allow") // the challenge of the first Whoami
				return l
			}), 2
		}, auditlog.ProblemModified, nil},
		{"a subject changed, the next prev recomputed", func(t *testing.T, dir string) (string, int) {
			return tamper(t, dir, 0, func(l []string) []string {
				l[5] = setMember(t, l[5], "subject", "mallory")
				fixed := rehash(t, slices.Clone(l[:7]), 6)
				return append(fixed, l[7:]...)
			}), 7
		}, auditlog.ProblemModified, []auditlog.ProblemKind{auditlog.ProblemDeleted}},
		{"a subject changed, the chain recomputed to the end", func(t *testing.T, dir string) (string, int) {
			// Every link holds; the checkpoints' signatures do not.
			return tamper(t, dir, 0, func(l []string) []string {
				l[5] = setMember(t, l[5], "subject", "mallory")
				return rehash(t, l, 6)
			}), 0
		}, auditlog.ProblemModified, nil},
		{"a line that is no longer an entry", func(t *testing.T, dir string) (string, int) {
			return tamper(t, dir, 0, func(l []string) []string {
				l[3] = l[3][:len(l[3])-1]
				return l
			}), 4
		}, auditlog.ProblemModified, nil},
		{"a record deleted", func(t *testing.T, dir string) (string, int) {
			return tamper(t, dir, 0, func(l []string) []string {
				return append(l[:4:4], l[5:]...)
			}), 5
		}, auditlog.ProblemDeleted, nil},
		{"a checkpoint deleted", func(t *testing.T, dir string) (string, int) {
			return tamper(t, dir, 0, func(l []string) []string {
				i := indexOf(t, l, `"kind":"checkpoint"`)
				return append(l[:i:i], l[i+1:]...)
			}), 0
		}, auditlog.ProblemDeleted, nil},
		{"the end of a full file cut", func(t *testing.T, dir string) (string, int) {
			return tamper(t, dir, 1, func(l []string) []string { return l[:len(l)-5] }), 0
		}, auditlog.ProblemDeleted, nil},
		{"a record copied in again", func(t *testing.T, dir string) (string, int) {
			return tamper(t, dir, 0, func(l []string) []string {
				return append(l[:9:9], append([]string{l[6]}, l[9:]...)...)
			}), 10
		}, auditlog.ProblemInserted, nil},
		{"a forged record with a taken seq", func(t *testing.T, dir string) (string, int) {
			return tamper(t, dir, 0, func(l []string) []string {
				forged := setMember(t, l[6], "subject", "alice-admin")
				return append(l[:7:7], append([]string{forged}, l[7:]...)...)
			}), 8
		}, auditlog.ProblemInserted, nil},
		{"an entry of another chain pasted in", func(t *testing.T, dir string) (string, int) {
			other := setMember(t, readLines(t, files(t, dir)[0])[6], "chain", "bank-9-20261127T041934Z-0123456789abcdef")
			return tamper(t, dir, 1, func(l []string) []string {
				return append(l[:3:3], append([]string{other}, l[3:]...)...)
			}), 4
		}, auditlog.ProblemInserted, nil},
		{"an entry after the closing checkpoint", func(t *testing.T, dir string) (string, int) {
			last := len(files(t, dir)) - 1
			return tamper(t, dir, last, func(l []string) []string {
				e, err := auditlog.ParseEntry([]byte(l[len(l)-2]))
				if err != nil {
					t.Fatal(err)
				}
				close, _ := auditlog.ParseEntry([]byte(l[len(l)-1]))
				e.Seq, e.Prev, e.Subject = close.Seq+1, close.HashString(), "mallory"
				return append(l, string(e.AppendCanonical(nil, true)))
			}), 0
		}, auditlog.ProblemInserted, nil},
		{"two records swapped", func(t *testing.T, dir string) (string, int) {
			return tamper(t, dir, 0, func(l []string) []string {
				l[5], l[6] = l[6], l[5]
				return l
			}), 0
		}, auditlog.ProblemReordered, nil},
		{"a record moved to another file", func(t *testing.T, dir string) (string, int) {
			moved := readLines(t, files(t, dir)[0])[6]
			tamper(t, dir, 0, func(l []string) []string { return append(l[:6:6], l[7:]...) })
			return tamper(t, dir, 1, func(l []string) []string {
				return append(l[:2:2], append([]string{moved}, l[2:]...)...)
			}), 3
		}, auditlog.ProblemReordered, nil},
		{"a file missing in the middle", func(t *testing.T, dir string) (string, int) {
			if err := os.Remove(files(t, dir)[1]); err != nil {
				t.Fatal(err)
			}
			return "", 0
		}, auditlog.ProblemMissingFile, nil},
		{"the last file missing", func(t *testing.T, dir string) (string, int) {
			fs := files(t, dir)
			if err := os.Remove(fs[len(fs)-1]); err != nil {
				t.Fatal(err)
			}
			return "", 0
		}, auditlog.ProblemMissingFile, nil},
		{"the first file missing", func(t *testing.T, dir string) (string, int) {
			if err := os.Remove(files(t, dir)[0]); err != nil {
				t.Fatal(err)
			}
			return "", 0
		}, auditlog.ProblemMissingFile, nil},
		{"the closing checkpoint and the records before it cut", func(t *testing.T, dir string) (string, int) {
			last := len(files(t, dir)) - 1
			return tamper(t, dir, last, func(l []string) []string {
				e, _ := auditlog.ParseEntry([]byte(l[len(l)-2]))
				if e.Kind != auditlog.KindRecord {
					t.Fatalf("the entry before the close is a %s", e.Kind)
				}
				return l[:len(l)-1]
			}), 0
		}, auditlog.ProblemUnverifiedTail, nil},
		{"a torn last line", func(t *testing.T, dir string) (string, int) {
			fs := files(t, dir)
			f, err := os.OpenFile(fs[len(fs)-1], os.O_WRONLY|os.O_APPEND, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if _, err := f.WriteString(`{"chain":"bank-1`); err != nil {
				t.Fatal(err)
			}
			return fs[len(fs)-1], 0
		}, auditlog.ProblemTorn, nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir, keys := realTrail(t)
			file, line := c.do(t, dir)
			res := verify(t, keys, []string{dir})
			if res.Worst() != c.want {
				t.Fatalf("worst problem %q, want %q:\n%s", res.Worst(), c.want, problems(res))
			}
			found := false
			for _, p := range res.Problems {
				allowed := p.Kind == c.want
				for _, k := range c.more {
					allowed = allowed || p.Kind == k
				}
				if !allowed {
					t.Errorf("unexpected problem: %s", p)
				}
				if p.Kind == c.want && (file == "" || p.File == file) && (line == 0 || p.Line == line) {
					found = true
				}
				if p.Message == "" {
					t.Errorf("a problem without a message: %+v", p)
				}
			}
			if !found {
				t.Errorf("no %s problem at %s:%d:\n%s", c.want, file, line, problems(res))
			}
			t.Logf("\n%s", problems(res))
		})
	}
}

func indexOf(t *testing.T, lines []string, sub string) int {
	t.Helper()
	for i, l := range lines {
		if strings.Contains(l, sub) {
			return i
		}
	}
	t.Fatalf("no line holds %s", sub)
	return 0
}

// TestVerifyKeys: a checkpoint signed by a key the verifier lacks is
// reported as such; one whose key id names another key (forged with the
// attacker's own key under the real kid) does not verify.
func TestVerifyKeys(t *testing.T) {
	dir, keys := realTrail(t)
	_, other := newKey(t, auditlog.AlgEd25519, "audit-2")
	res := verify(t, other, []string{dir})
	if res.Worst() != auditlog.ProblemUnknownKey {
		t.Errorf("another key set: %q\n%s", res.Worst(), problems(res))
	}
	_, impostor := newKey(t, auditlog.AlgEd25519, "audit-1")
	res = verify(t, impostor, []string{dir})
	if res.Worst() != auditlog.ProblemModified {
		t.Errorf("a key of the same kid: %q\n%s", res.Worst(), problems(res))
	}
	_ = keys
	// An ES256 key under the kid of an Ed25519 checkpoint.
	_, es := newKey(t, auditlog.AlgES256, "audit-1")
	res = verify(t, es, []string{dir})
	if res.Worst() != auditlog.ProblemModified || !strings.Contains(problems(res), `alg "Ed25519", but key "audit-1" is an ES256 key`) {
		t.Errorf("a key of another type: %q\n%s", res.Worst(), problems(res))
	}
}

// TestVerifyPartial: with Partial, files before and after those given are
// not missing; entries missing inside them still are.
func TestVerifyPartial(t *testing.T) {
	dir, keys := realTrail(t)
	fs := files(t, dir)
	partial := func(o *auditlog.VerifyOptions) { o.Partial = true }
	if res := verify(t, keys, fs[1:len(fs)-1], partial); !res.OK() {
		t.Errorf("a middle part: %s", problems(res))
	}
	if res := verify(t, keys, fs[1:len(fs)-1]); res.Worst() != auditlog.ProblemMissingFile {
		t.Errorf("a middle part without Partial: %q", res.Worst())
	}
	if res := verify(t, keys, []string{fs[0], fs[2]}, partial); res.Worst() != auditlog.ProblemMissingFile {
		t.Errorf("a hole with Partial: %q\n%s", res.Worst(), problems(res))
	}
}
