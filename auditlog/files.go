package auditlog

import (
	"bufio"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// FileExt ends the name of every file of a trail.
const FileExt = ".jsonl"

// chainTimeLayout is the start time in a chain id: UTC, to the second,
// sortable as text.
const chainTimeLayout = "20060102T150405Z"

// newChainID returns a new chain id: "<replica>-<start time>-<16 hex
// digits of randomness>".
func newChainID(replica string, start time.Time) (string, error) {
	var r [8]byte
	if _, err := rand.Read(r[:]); err != nil {
		return "", err
	}
	return replica + "-" + start.UTC().Format(chainTimeLayout) + "-" + hex.EncodeToString(r[:]), nil
}

// splitChainID returns the replica of a chain id and the rest (start time
// and randomness), which sorts the chains of one replica by their start.
func splitChainID(chain string) (replica, rest string, ok bool) {
	i := strings.LastIndexByte(chain, '-')
	if i <= 0 {
		return "", "", false
	}
	j := strings.LastIndexByte(chain[:i], '-')
	if j <= 0 || i-j-1 != len(chainTimeLayout) || len(chain)-i-1 != 16 {
		return "", "", false
	}
	return chain[:j], chain[j+1:], true
}

// validReplica reports whether name can start a chain id (and so a file
// name): 1 to 64 of A-Z a-z 0-9 . _ -, not starting with a dot.
func validReplica(name string) bool {
	if name == "" || len(name) > 64 || name[0] == '.' {
		return false
	}
	for i := range len(name) {
		c := name[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// defaultReplica is the host name, made a valid replica name.
func defaultReplica() string {
	h, _ := os.Hostname()
	b := []byte(h)
	for i, c := range b {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '-') {
			b[i] = '_'
		}
	}
	name := strings.TrimLeft(string(b), ".")
	if len(name) > 64 {
		name = name[:64]
	}
	if name == "" {
		return "stepup"
	}
	return name
}

// FileName returns the name of file n (from 1) of a chain:
// "<chain>.<n, at least six digits>.jsonl".
func FileName(chain string, n int64) string {
	return fmt.Sprintf("%s.%06d%s", chain, n, FileExt)
}

// ParseFileName reads a name made by FileName (without a directory). The
// name of a file says nothing a verifier trusts: its header entry does.
func ParseFileName(name string) (chain string, n int64, ok bool) {
	base, found := strings.CutSuffix(name, FileExt)
	if !found {
		return "", 0, false
	}
	i := strings.LastIndexByte(base, '.')
	if i <= 0 || len(base)-i-1 < 6 {
		return "", 0, false
	}
	n, err := strconv.ParseInt(base[i+1:], 10, 64)
	if err != nil || n < 1 {
		return "", 0, false
	}
	return base[:i], n, true
}

// line is one line of a file as read: its number (from 1), the entry or
// why it is not one, its canonical hash.
type line struct {
	no    int
	entry *Entry
	err   error
	hash  string
}

// fileContent is one file of a trail as read.
type fileContent struct {
	path  string
	lines []line
	// torn is the length of an incomplete last line (no line feed): the
	// writer stopped in the middle of it. 0 when the file ends with a line
	// feed (or is empty).
	torn int
}

// readFile reads every line of a trail file. Only I/O errors are errors:
// what the lines hold, valid or not, is in the result.
func readFile(path string) (*fileContent, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return readLines(path, f)
}

// readLines reads the lines of a trail file from r.
func readLines(path string, r io.Reader) (*fileContent, error) {
	fc := &fileContent{path: path}
	br := bufio.NewReaderSize(r, 64<<10)
	for no := 1; ; no++ {
		data, long, err := readLine(br)
		if err == io.EOF {
			if len(data) > 0 || long > 0 {
				fc.torn = len(data) + long
			}
			return fc, nil
		}
		if err != nil {
			return nil, err
		}
		l := line{no: no}
		if long > 0 {
			l.err = fmt.Errorf("%w: longer than %d bytes", ErrMalformed, MaxLine)
		} else if l.entry, l.err = ParseEntry(data); l.err == nil {
			l.hash = l.entry.HashString()
		}
		fc.lines = append(fc.lines, l)
	}
}

// readLine returns the next line without its line feed, or io.EOF with
// what was left after the last line feed. A line longer than MaxLine is
// skipped to its end: long then counts its bytes and data is nil.
func readLine(br *bufio.Reader) (data []byte, long int, err error) {
	var buf []byte
	for {
		chunk, err := br.ReadSlice('\n')
		switch {
		case err == nil:
			chunk = chunk[:len(chunk)-1]
		case errors.Is(err, bufio.ErrBufferFull):
		case err == io.EOF:
		default:
			return nil, 0, err
		}
		if long > 0 || len(buf)+len(chunk) > MaxLine {
			long += len(buf) + len(chunk)
			buf = nil
		} else {
			buf = append(buf, chunk...)
		}
		switch {
		case err == nil:
			if long > 0 {
				return nil, long, nil
			}
			return buf, 0, nil
		case err == io.EOF:
			return buf, long, io.EOF
		}
	}
}

// listDir returns the trail files in dir, by name.
func listDir(dir string) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range entries {
		if _, _, ok := ParseFileName(e.Name()); ok && e.Type().IsRegular() {
			out = append(out, filepath.Join(dir, e.Name()))
		}
	}
	return out, nil
}

// Predecessor is what a new sink found of the chain its replica wrote
// last in the same directory: the chain its first file names in
// "prev_chain", and how that chain ended.
type Predecessor struct {
	Chain string // its id
	File  string // the path of its last file
	Seq   int64  // the seq of its last complete entry
	Hash  string // that entry's hash
	// End is EndClosed, EndUnsealed or EndTorn.
	End string
	// Unsealed counts its records after its last checkpoint: not covered
	// by any signature.
	Unsealed int
	// Torn is the length of the incomplete line its last file ends with.
	Torn int
}

// findPredecessor finds the chain of replica in dir that self follows,
// and reads how it ended. It returns nil when there is none. That chain is
// the head of the replica's chains: the one no other chain's first header
// names as its predecessor (each new chain names the head it found); when
// links are missing, the one that started last, and of those the one whose
// last file was written last.
func findPredecessor(dir, replica, self string) (*Predecessor, error) {
	paths, err := listDir(dir)
	if err != nil {
		return nil, err
	}
	files := map[string]int64{} // chain -> its highest file index
	for _, p := range paths {
		chain, n, _ := ParseFileName(filepath.Base(p))
		if r, _, ok := splitChainID(chain); !ok || r != replica || chain == self {
			continue
		}
		files[chain] = max(files[chain], n)
	}
	named := map[string]bool{}
	for chain := range files {
		if h := firstEntry(filepath.Join(dir, FileName(chain, 1))); h != nil && h.Kind == KindFile && h.Chain == chain && h.PrevChain != "" {
			named[h.PrevChain] = true
		}
	}
	var best, bestRest string
	var bestTime time.Time
	for chain, n := range files {
		if named[chain] {
			continue
		}
		_, rest, _ := splitChainID(chain)
		var mtime time.Time
		if st, err := os.Stat(filepath.Join(dir, FileName(chain, n))); err == nil {
			mtime = st.ModTime()
		}
		if best == "" || rest[:len(chainTimeLayout)] > bestRest[:len(chainTimeLayout)] ||
			rest[:len(chainTimeLayout)] == bestRest[:len(chainTimeLayout)] && (mtime.After(bestTime) || mtime.Equal(bestTime) && rest > bestRest) {
			best, bestRest, bestTime = chain, rest, mtime
		}
	}
	if best == "" {
		return nil, nil
	}
	// The last file of the chain holding a complete entry.
	for n := files[best]; n >= 1; n-- {
		path := filepath.Join(dir, FileName(best, n))
		fc, err := readFile(path)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, err
		}
		p := &Predecessor{Chain: best, File: path, Torn: fc.torn}
		found := false
		for _, l := range fc.lines {
			if l.entry == nil || l.entry.Chain != best {
				continue
			}
			found = true
			p.Seq, p.Hash = l.entry.Seq, l.hash
			switch {
			case l.entry.Kind == KindCheckpoint:
				p.Unsealed = 0
			case l.entry.Kind == KindRecord:
				p.Unsealed++
			}
		}
		if !found {
			continue
		}
		last := fc.lines[len(fc.lines)-1].entry
		switch {
		case fc.torn > 0:
			p.End = EndTorn
		case last != nil && last.Kind == KindCheckpoint && last.Trigger == TriggerClose:
			p.End = EndClosed
		default:
			p.End = EndUnsealed
		}
		return p, nil
	}
	return nil, nil
}

// firstEntry returns the first line of a file as an entry, nil when it is
// not one (or the file cannot be read).
func firstEntry(path string) *Entry {
	f, err := os.Open(path)
	if err != nil {
		return nil
	}
	defer f.Close()
	data, long, err := readLine(bufio.NewReaderSize(f, 4096))
	if err != nil || long > 0 {
		return nil
	}
	e, _ := ParseEntry(data)
	return e
}
