package auditlog_test

import (
	"bytes"
	"crypto/ed25519"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/stepupgrpc/stepup/auditlog"
)

// fuzzKey is a fixed key, so that the seed corpus's checkpoints verify.
var fuzzKey = func() auditlog.SigningKey {
	return auditlog.SigningKey{ID: "fuzz-1", Signer: ed25519.NewKeyFromSeed(bytes.Repeat([]byte{7}, 32))}
}()

// FuzzParseEntry feeds the line parser untrusted lines: it never panics,
// and what it accepts has one canonical form, which it reads back as the
// same entry.
func FuzzParseEntry(f *testing.F) {
	for _, l := range fuzzSeeds(f) {
		f.Add([]byte(l))
	}
	f.Add([]byte(`{"v":1,"kind":"record","chain":"a-20261127T041934Z-0123456789abcdef","seq":1,"prev":"` + strings.Repeat("A", 43) + `","time":"2026-11-27T04:19:34Z","decision":"allow","reason":"ALLOWED","code":"OK","detail":"\u00e9\ud83d\ude00\n"}`))
	f.Add([]byte(`{"v":1,"v":1}`))
	f.Add([]byte(`{"seq":9007199254740993}`))
	f.Fuzz(func(t *testing.T, line []byte) {
		e, err := auditlog.ParseEntry(line)
		if err != nil {
			return
		}
		canon := e.AppendCanonical(nil, true)
		again, err := auditlog.ParseEntry(canon)
		if err != nil {
			t.Fatalf("the canonical form of an accepted entry is refused: %v\n%s", err, canon)
		}
		if !reflect.DeepEqual(e, again) {
			t.Fatalf("read back differently:\n%+v\n%+v", e, again)
		}
		if !bytes.Equal(again.AppendCanonical(nil, true), canon) {
			t.Fatalf("the canonical form is not stable:\n%s", canon)
		}
	})
}

// FuzzVerify feeds Verify untrusted files: a trail file and a file of
// checkpoint copies. It never panics or fails with an error (only I/O
// does), and a file it finds nothing wrong with is made of entries that
// parse.
func FuzzVerify(f *testing.F) {
	seeds := fuzzSeeds(f)
	f.Add([]byte(strings.Join(seeds, "\n")+"\n"), []byte(""))
	f.Add([]byte(strings.Join(seeds[:len(seeds)-1], "\n")), []byte(seeds[len(seeds)-1]+"\n"))
	f.Add([]byte(strings.Join(append([]string{seeds[0], seeds[2], seeds[1]}, seeds[3:]...), "\n")+"\n"), []byte(""))
	keys, err := fuzzKey.PublicKeySet()
	if err != nil {
		f.Fatal(err)
	}
	dir := f.TempDir() // one per worker process, reused: the inputs are written over
	f.Fuzz(func(t *testing.T, trail, copies []byte) {
		path := filepath.Join(dir, "bank-1-20261127T041934Z-0123456789abcdef.000001.jsonl")
		cp := filepath.Join(dir, "copies")
		if os.WriteFile(path, trail, 0o600) != nil || os.WriteFile(cp, copies, 0o600) != nil {
			t.Fatal("writing the inputs")
		}
		res, err := auditlog.Verify([]string{path}, auditlog.VerifyOptions{Keys: keys, Checkpoints: []string{cp}})
		if err != nil {
			t.Fatal(err)
		}
		if res.OK() {
			for _, l := range strings.Split(strings.TrimSuffix(string(trail), "\n"), "\n") {
				if l == "" && len(trail) == 0 {
					continue
				}
				if _, err := auditlog.ParseEntry([]byte(l)); err != nil {
					t.Fatalf("verified, with a line that is no entry: %v", err)
				}
			}
		}
		for _, p := range res.Problems {
			if p.Message == "" || res.Worst() == "" {
				t.Fatalf("a problem without a message or kind: %+v", p)
			}
		}
	})
}

// fuzzSeeds are the lines of a small trail signed by fuzzKey, read from
// testdata (regenerated when missing).
func fuzzSeeds(tb testing.TB) []string {
	tb.Helper()
	path := filepath.Join("testdata", "fuzz-trail.jsonl")
	data, err := os.ReadFile(path)
	if err != nil {
		tb.Fatalf("%v (the seed trail, written by TestFuzzSeedTrail)", err)
	}
	return strings.Split(strings.TrimSuffix(string(data), "\n"), "\n")
}

// TestFuzzSeedTrail checks the fuzzers' seed trail: it verifies with the
// fixed key. STEPUP_WRITE_SEEDS=1 writes it again.
func TestFuzzSeedTrail(t *testing.T) {
	path := filepath.Join("testdata", "fuzz-trail.jsonl")
	if os.Getenv("STEPUP_WRITE_SEEDS") != "" {
		dir := t.TempDir()
		s, _ := openSink(t, dir, fuzzKey, auditlog.WithCheckpointEvery(3))
		writeEvents(s, 0, 5)
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		data, err := os.ReadFile(files(t, dir)[0])
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	keys, _ := fuzzKey.PublicKeySet()
	if res := verify(t, keys, []string{path}); !res.OK() {
		t.Fatal(problems(res))
	}
}
