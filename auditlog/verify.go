package auditlog

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
)

// ProblemKind says what is wrong with a trail.
type ProblemKind string

// The problems Verify finds, in the order of Result.Worst: the first kind
// found in this order decides `stepup audit verify`'s exit code.
const (
	// ProblemModified: an entry's hash does not match the "prev" of the
	// entry after it, a checkpoint's signature does not verify, or a line
	// is not a valid entry.
	ProblemModified ProblemKind = "modified"
	// ProblemDeleted: sequence numbers are missing inside a file or at a
	// file's end, or the trail ends before a checkpoint whose copy exists.
	ProblemDeleted ProblemKind = "deleted"
	// ProblemInserted: a second entry with a sequence number already
	// taken, an entry of another chain in a chain's file, or entries after
	// a chain's closing checkpoint.
	ProblemInserted ProblemKind = "inserted"
	// ProblemReordered: the entries are all there, in another order.
	ProblemReordered ProblemKind = "reordered"
	// ProblemMissingFile: a whole file of a chain is not among the files
	// (the chain's header entries say which), or a chain named as a
	// predecessor, or by a checkpoint copy, is missing entirely.
	ProblemMissingFile ProblemKind = "missing_file"
	// ProblemUnknownKey: a checkpoint names a key id the key set lacks.
	ProblemUnknownKey ProblemKind = "unknown_key"
	// ProblemTorn: a file ends with an incomplete line: its writer stopped
	// in the middle of a write (a crash). The line is not read.
	ProblemTorn ProblemKind = "torn"
	// ProblemUnverifiedTail: records after a chain's last checkpoint, which
	// no signature covers: written since, or the process stopped without
	// closing its sink (and no later chain of its replica sealed them).
	ProblemUnverifiedTail ProblemKind = "unverified_tail"
)

// problemOrder ranks the kinds for Result.Worst.
var problemOrder = []ProblemKind{ProblemModified, ProblemDeleted, ProblemInserted, ProblemReordered,
	ProblemMissingFile, ProblemUnknownKey, ProblemTorn, ProblemUnverifiedTail}

// Problem is one thing wrong with a trail, said in plain words.
type Problem struct {
	Kind  ProblemKind
	Chain string // "" when the problem concerns no chain in particular
	File  string // the file where it was found, "" when none
	Line  int    // the line in File, 0 when none
	// Message says what was found and what it means.
	Message string
	// Count is how many entries (or records, for ProblemUnverifiedTail, or
	// files, for ProblemMissingFile) it concerns, when known; 0 otherwise.
	Count int64
}

func (p Problem) String() string {
	var b strings.Builder
	b.WriteString(strings.ToUpper(string(p.Kind)))
	if p.File != "" {
		fmt.Fprintf(&b, " %s", p.File)
		if p.Line > 0 {
			fmt.Fprintf(&b, ":%d", p.Line)
		}
	}
	b.WriteString(": ")
	b.WriteString(p.Message)
	return b.String()
}

// ChainSummary is what Verify read of one chain.
type ChainSummary struct {
	Chain   string
	Replica string
	Files   []string // the paths of its files, in chain order
	// FirstFile and LastFile are the indexes of its first and last files
	// given.
	FirstFile, LastFile int64
	// FirstSeq and LastSeq bound the sequence numbers read.
	FirstSeq, LastSeq int64
	// From and To are the times of its first and last records ("" without
	// records).
	From, To    string
	Records     int
	Checkpoints int      // valid checkpoints
	KeyIDs      []string // the key ids of its valid checkpoints
	// Verified counts the records a valid signature covers, directly or
	// through a successor chain's header; Unverified the records after the
	// last such signature.
	Verified, Unverified int
	// End says how the chain ends: EndClosed, EndUnsealed (records or
	// headers after its last checkpoint), or "rotate" when its last file
	// given ends with a rotate checkpoint.
	End string
	// SealedBy names the successor chain whose header covers its end, when
	// it did not close.
	SealedBy string
}

// Result is the outcome of Verify.
type Result struct {
	Files    []string // the files read, in the order read
	Chains   []ChainSummary
	Problems []Problem
	// Copies counts the checkpoint copies checked (VerifyOptions.Checkpoints).
	Copies int
}

// OK reports whether the trail verified without any problem, an
// unverified tail included.
func (r *Result) OK() bool { return len(r.Problems) == 0 }

// Worst returns the first kind of problem found in the order of the
// ProblemKind constants, or "" when there is none.
func (r *Result) Worst() ProblemKind {
	for _, k := range problemOrder {
		for _, p := range r.Problems {
			if p.Kind == k {
				return k
			}
		}
	}
	return ""
}

// VerifyOptions are Verify's inputs besides the files.
type VerifyOptions struct {
	// Keys verify the checkpoints. Required.
	Keys *KeySet
	// Partial accepts that the files are a contiguous part of each chain
	// (earlier files removed by a retention policy, later ones not yet
	// copied): files before the first given and after the last given, and
	// predecessor chains, are not reported missing. Entries missing inside
	// the files given still are.
	Partial bool
	// Checkpoints are files of checkpoint copies (WithCheckpointCopy):
	// every copy must be in the trail, unchanged.
	Checkpoints []string
}

// pos is one valid entry of a chain where it was read.
type pos struct {
	e     *Entry
	hash  string
	file  *chainFile
	line  int
	order int // position in the chain's files, in reading order
}

// at names where p was read: "<file name>:<line>".
func (p *pos) at() string { return fmt.Sprintf("%s:%d", filepath.Base(p.file.path), p.line) }

type chainFile struct {
	path  string
	index int64
	fc    *fileContent
	bad   []int // the lines that are not valid entries, in order
}

type chainState struct {
	id    string
	files []*chainFile
	ents  []*pos         // genuine entries, by seq after analysis
	bySeq map[int64]*pos // genuine entries
	valid map[int64]bool // checkpoints whose signature verified
	sum   *ChainSummary
	// breaks: i where the link from ents[i-1] to ents[i] is broken (a gap
	// or a hash that does not match).
	breaks []int
	// successor is the chain whose first header names this one, and
	// matches its entry sealedAt.
	successor *chainState
	sealedAt  int64
}

// Verify reads the trail files at paths (a directory stands for the trail
// files in it) and checks every chain they hold: sequence numbers, hash
// links, checkpoint signatures, file headers, predecessors and, with
// opts.Checkpoints, the copies of checkpoints kept elsewhere. Only I/O
// errors and a missing key set are errors; what is wrong with the trail is
// in the Result's Problems.
func Verify(paths []string, opts VerifyOptions) (*Result, error) {
	if opts.Keys == nil {
		return nil, errors.New("auditlog: Verify needs the keys (VerifyOptions.Keys)")
	}
	files, err := expand(paths)
	if err != nil {
		return nil, err
	}
	v := &verifier{opts: opts, res: &Result{}, chains: map[string]*chainState{}}
	for _, path := range files {
		fc, err := readFile(path)
		if err != nil {
			return nil, fmt.Errorf("auditlog: %w", err)
		}
		v.res.Files = append(v.res.Files, path)
		v.addFile(fc)
	}
	ids := make([]string, 0, len(v.chains))
	for id := range v.chains {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		v.analyse(v.chains[id])
	}
	for _, id := range ids {
		v.checkPredecessor(v.chains[id])
	}
	for _, id := range ids {
		v.coverage(v.chains[id])
	}
	for _, path := range opts.Checkpoints {
		if err := v.checkCopies(path); err != nil {
			return nil, err
		}
	}
	for _, id := range ids {
		v.res.Chains = append(v.res.Chains, *v.chains[id].sum)
	}
	return v.res, nil
}

// expand replaces directories by the trail files in them and drops
// duplicates.
func expand(paths []string) ([]string, error) {
	seen := map[string]bool{}
	var out []string
	add := func(p string) {
		abs, err := filepath.Abs(p)
		if err != nil {
			abs = p
		}
		if !seen[abs] {
			seen[abs] = true
			out = append(out, p)
		}
	}
	for _, p := range paths {
		st, err := os.Stat(p)
		if err != nil {
			return nil, fmt.Errorf("auditlog: %w", err)
		}
		if !st.IsDir() {
			add(p)
			continue
		}
		in, err := listDir(p)
		if err != nil {
			return nil, fmt.Errorf("auditlog: %w", err)
		}
		for _, f := range in {
			add(f)
		}
	}
	return out, nil
}

type verifier struct {
	opts   VerifyOptions
	res    *Result
	chains map[string]*chainState
}

func (v *verifier) problem(kind ProblemKind, chain, file string, line int, count int64, format string, args ...any) {
	v.res.Problems = append(v.res.Problems, Problem{Kind: kind, Chain: chain, File: file, Line: line, Count: count,
		Message: fmt.Sprintf(format, args...)})
}

// addFile files fc under its chain: the chain its header names, else the
// chain most of its entries name, else the one its name says.
func (v *verifier) addFile(fc *fileContent) {
	if fc.torn > 0 {
		v.problem(ProblemTorn, "", fc.path, len(fc.lines)+1, 1,
			"the file ends with an incomplete line (%d bytes, no line feed): its writer stopped in the middle of a write, as in a crash; the line is not read", fc.torn)
	}
	nameChain, nameIndex, _ := ParseFileName(filepath.Base(fc.path))
	chain, index := "", int64(0)
	if len(fc.lines) > 0 {
		if h := fc.lines[0].entry; h != nil && h.Kind == KindFile {
			chain, index = h.Chain, h.File
		}
	}
	if chain == "" {
		count := map[string]int{}
		for _, l := range fc.lines {
			if l.entry != nil {
				count[l.entry.Chain]++
				if count[l.entry.Chain] > count[chain] {
					chain = l.entry.Chain
				}
			}
		}
	}
	if chain == "" {
		chain = nameChain
	}
	if index == 0 && chain == nameChain {
		index = nameIndex
	}
	if chain == "" {
		if len(fc.lines) > 0 {
			v.problem(ProblemModified, "", fc.path, 0, int64(len(fc.lines)), "no line of this file is a valid entry")
		}
		return
	}
	c := v.chains[chain]
	if c == nil {
		c = &chainState{id: chain, bySeq: map[int64]*pos{}, valid: map[int64]bool{}, sum: &ChainSummary{Chain: chain}}
		c.sum.Replica, _, _ = splitChainID(chain)
		v.chains[chain] = c
	}
	c.files = append(c.files, &chainFile{path: fc.path, index: index, fc: fc})
}

// analyse checks one chain's entries: duplicates, order, gaps, hash links,
// headers and signatures.
func (v *verifier) analyse(c *chainState) {
	sort.SliceStable(c.files, func(i, j int) bool { return c.files[i].index < c.files[j].index })
	var all []*pos
	for _, f := range c.files {
		c.sum.Files = append(c.sum.Files, f.path)
		for _, l := range f.fc.lines {
			switch {
			case l.entry == nil:
				f.bad = append(f.bad, l.no)
				v.problem(ProblemModified, c.id, f.path, l.no, 1, "not a valid entry (%v): the line was modified", strings.TrimPrefix(l.err.Error(), ErrMalformed.Error()+": "))
			case l.entry.Chain != c.id:
				v.problem(ProblemInserted, c.id, f.path, l.no, 1, "an entry of chain %s (seq %d) in a file of chain %s: inserted", l.entry.Chain, l.entry.Seq, c.id)
			default:
				all = append(all, &pos{e: l.entry, hash: l.hash, file: f, line: l.no, order: len(all)})
			}
		}
	}
	if len(c.files) > 0 {
		c.sum.FirstFile, c.sum.LastFile = c.files[0].index, c.files[len(c.files)-1].index
	}
	if len(all) == 0 {
		return
	}
	genuine := v.dropInserted(c, all)
	v.findReordered(c, genuine)
	sort.Slice(genuine, func(i, j int) bool { return genuine[i].e.Seq < genuine[j].e.Seq })
	c.ents = genuine
	for _, p := range genuine {
		c.bySeq[p.e.Seq] = p
	}
	v.checkStart(c)
	v.checkLinks(c)
	v.checkSignatures(c)
	c.sum.FirstSeq, c.sum.LastSeq = genuine[0].e.Seq, genuine[len(genuine)-1].e.Seq
	for _, p := range genuine {
		if p.e.Kind == KindRecord {
			c.sum.Records++
			if c.sum.From == "" {
				c.sum.From = p.e.Time
			}
			c.sum.To = p.e.Time
		}
	}
}

// dropInserted keeps one entry per sequence number: the one the chain
// links (the "prev" of the next entry names its hash, or its "prev" names
// the hash of the entry before it), else the first read. The others were
// inserted.
func (v *verifier) dropInserted(c *chainState, all []*pos) []*pos {
	bySeq := map[int64][]*pos{}
	for _, p := range all {
		bySeq[p.e.Seq] = append(bySeq[p.e.Seq], p)
	}
	linked := func(seq int64, match func(*pos) bool) bool {
		for _, q := range bySeq[seq] {
			if match(q) {
				return true
			}
		}
		return false
	}
	best := map[int64]*pos{}
	for seq, same := range bySeq {
		if len(same) == 1 {
			best[seq] = same[0]
			continue
		}
		// Hashes and prevs of the neighbours, once: a file of many
		// entries with one seq stays linear.
		next, prev := map[string]bool{}, map[string]bool{}
		linked(seq+1, func(q *pos) bool { next[q.e.Prev] = true; return false })
		linked(seq-1, func(q *pos) bool { prev[q.hash] = true; return false })
		score := func(p *pos) int {
			n := 0
			if next[p.hash] {
				n += 2
			}
			if prev[p.e.Prev] {
				n++
			}
			return n
		}
		b, bs := same[0], score(same[0])
		for _, q := range same[1:] {
			if s := score(q); s > bs {
				b, bs = q, s
			}
		}
		best[seq] = b
	}
	var out []*pos
	for _, p := range all {
		b := best[p.e.Seq]
		switch {
		case p == b:
			out = append(out, p)
		case p.hash == b.hash:
			v.problem(ProblemInserted, c.id, p.file.path, p.line, 1, "a copy of entry seq %d (%s): inserted", p.e.Seq, b.at())
		default:
			v.problem(ProblemInserted, c.id, p.file.path, p.line, 1, "a second entry with seq %d, which the chain does not link (it links %s): inserted", p.e.Seq, b.at())
		}
	}
	return out
}

// findReordered reports the entries out of sequence order where they were
// read: those outside a longest increasing run of sequence numbers.
func (v *verifier) findReordered(c *chainState, ents []*pos) {
	// Longest strictly increasing subsequence by seq, O(n log n).
	tails := []int{} // tails[k]: index in ents of the smallest last seq of a run of length k+1
	prev := make([]int, len(ents))
	for i, p := range ents {
		k := sort.Search(len(tails), func(k int) bool { return ents[tails[k]].e.Seq >= p.e.Seq })
		if k > 0 {
			prev[i] = tails[k-1]
		} else {
			prev[i] = -1
		}
		if k == len(tails) {
			tails = append(tails, i)
		} else {
			tails[k] = i
		}
	}
	keep := make([]bool, len(ents))
	for i := tails[len(tails)-1]; i >= 0; i = prev[i] {
		keep[i] = true
	}
	for i, p := range ents {
		if !keep[i] {
			v.problem(ProblemReordered, c.id, p.file.path, p.line, 1, "entry seq %d is out of order: the entries around it have other sequence numbers; it was moved", p.e.Seq)
		}
	}
}

// checkStart checks how the chain's first entry read begins it.
func (v *verifier) checkStart(c *chainState) {
	first := c.ents[0]
	switch {
	case first.e.Seq == 0:
	case first.e.Kind == KindFile && first.line == 1:
		if !v.opts.Partial {
			v.problem(ProblemMissingFile, c.id, first.file.path, 0, first.e.File-1,
				"the chain starts in file %d: %s not among the files (give them, or --partial if a retention policy removed them)", first.e.File, files(1, first.e.File-1))
		}
	default:
		v.problem(ProblemDeleted, c.id, first.file.path, first.line, 0,
			"the first entry read is seq %d, not a file's header: the entries before it in this file were deleted", first.e.Seq)
	}
}

// checkLinks walks the chain by sequence number: gaps, hash links, file
// headers, entries after the closing checkpoint.
func (v *verifier) checkLinks(c *chainState) {
	mismatch := map[int]bool{} // i: ents[i]'s "prev" is not ents[i-1]'s hash, their seqs consecutive
	for i := 1; i < len(c.ents); i++ {
		a, b := c.ents[i-1], c.ents[i]
		if a.e.Kind == KindCheckpoint && a.e.Trigger == TriggerClose {
			v.problem(ProblemInserted, c.id, b.file.path, b.line, int64(len(c.ents)-i),
				"%s after the chain's closing checkpoint (seq %d): inserted", count(int64(len(c.ents)-i), "entry", "entries"), a.e.Seq)
			c.ents = c.ents[:i]
			break
		}
		if b.e.Kind == KindFile && b.e.Seq == a.e.Seq+1 && b.e.File != a.file.index+1 {
			v.problem(ProblemModified, c.id, b.file.path, b.line, 1, "the header of file %d follows file %d", b.e.File, a.file.index)
		}
		gap := b.e.Seq - a.e.Seq - 1
		if gap > 0 {
			// Lines between them that are no entry were reported as
			// modified; they stand for that many entries.
			gap -= min(gap, c.badBetween(a, b))
			if gap == 0 {
				c.breaks = append(c.breaks, i)
				continue
			}
		}
		switch {
		case gap > 0 && b.e.Kind == KindFile && b.e.File > a.file.index+1:
			v.problem(ProblemMissingFile, c.id, b.file.path, 0, b.e.File-a.file.index-1,
				"%s not among the files: the chain's entries seq %s are missing with it", files(a.file.index+1, b.e.File-1), span(a.e.Seq+1, b.e.Seq-1))
		case gap > 0 && b.e.Kind == KindFile:
			v.problem(ProblemDeleted, c.id, a.file.path, 0, gap,
				"%s (seq %s) missing at the end of the file: deleted", count(gap, "entry", "entries"), span(a.e.Seq+1, b.e.Seq-1))
		case gap > 0:
			v.problem(ProblemDeleted, c.id, b.file.path, b.line, gap,
				"%s (seq %s) missing before this line (after line %d of %s): deleted", count(gap, "entry", "entries"), span(a.e.Seq+1, b.e.Seq-1), a.line, filepath.Base(a.file.path))
		case b.e.Prev != a.hash:
			mismatch[i] = true
		default:
			continue
		}
		c.breaks = append(c.breaks, i)
	}
	// A changed entry breaks the link after it; a changed "prev" breaks
	// the link before its entry and, its hash changing too, the one after.
	for _, i := range c.breaks {
		switch {
		case !mismatch[i]:
		case mismatch[i+1]:
			p := c.ents[i]
			v.problem(ProblemModified, c.id, p.file.path, p.line, 1,
				"entry seq %d was modified: it does not link to the entry before it, nor the entry after it to it", p.e.Seq)
			mismatch[i+1] = false
		default:
			a, b := c.ents[i-1], c.ents[i]
			v.problem(ProblemModified, c.id, a.file.path, a.line, 1,
				"entry seq %d was modified: its hash is not the \"prev\" of entry seq %d (%s)", a.e.Seq, b.e.Seq, b.at())
		}
	}
}

// badBetween counts the lines that are no entry between a and b, in the
// order the chain's files were read.
func (c *chainState) badBetween(a, b *pos) int64 {
	fa, fb := slices.Index(c.files, a.file), slices.Index(c.files, b.file)
	var n int64
	for i := fa; i <= fb; i++ {
		for _, no := range c.files[i].bad {
			if (i > fa || no > a.line) && (i < fb || no < b.line) {
				n++
			}
		}
	}
	return n
}

// count writes n with the noun's singular or plural.
func count(n int64, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %s", n, many)
}

// files names files a to b of a chain, with the verb: "file 2 is",
// "files 2 to 4 are".
func files(a, b int64) string {
	if a == b {
		return fmt.Sprintf("file %d is", a)
	}
	return fmt.Sprintf("files %d to %d are", a, b)
}

// span writes a range of numbers.
func span(a, b int64) string {
	if a == b {
		return fmt.Sprint(a)
	}
	return fmt.Sprintf("%d to %d", a, b)
}

// checkSignatures verifies the chain's checkpoints.
func (v *verifier) checkSignatures(c *chainState) {
	kids := map[string]bool{}
	for _, p := range c.ents {
		if p.e.Kind != KindCheckpoint {
			continue
		}
		err := v.opts.Keys.verify(p.e)
		switch {
		case err == nil:
			c.valid[p.e.Seq] = true
			c.sum.Checkpoints++
			kids[p.e.KeyID] = true
		case errors.Is(err, errUnknownKey):
			v.problem(ProblemUnknownKey, c.id, p.file.path, p.line, 1,
				"checkpoint seq %d is signed by key %q, which the keys given do not hold (they hold %s)", p.e.Seq, p.e.KeyID, strings.Join(quoteAll(v.opts.Keys.KeyIDs()), ", "))
		default:
			v.problem(ProblemModified, c.id, p.file.path, p.line, 1,
				"checkpoint seq %d: %v: it was modified, or forged", p.e.Seq, err)
		}
	}
	for k := range kids {
		c.sum.KeyIDs = append(c.sum.KeyIDs, k)
	}
	sort.Strings(c.sum.KeyIDs)
}

func quoteAll(s []string) []string {
	out := make([]string, len(s))
	for i, v := range s {
		out[i] = fmt.Sprintf("%q", v)
	}
	return out
}

// checkPredecessor checks the chain the first header names.
func (v *verifier) checkPredecessor(c *chainState) {
	if len(c.ents) == 0 || c.ents[0].e.Seq != 0 || c.ents[0].e.PrevChain == "" {
		return
	}
	h := c.ents[0]
	p := v.chains[h.e.PrevChain]
	if p == nil {
		if !v.opts.Partial {
			v.problem(ProblemMissingFile, c.id, h.file.path, h.line, 0,
				"the chain's first header names chain %s as its predecessor (it ended at seq %d, %s), whose files are not among the files (give them, or --partial)", h.e.PrevChain, h.e.PrevChainSeq, h.e.PrevChainEnd)
		}
		return
	}
	last := p.bySeq[h.e.PrevChainSeq]
	switch {
	case last == nil:
		if len(p.ents) == 0 || p.ents[len(p.ents)-1].e.Seq < h.e.PrevChainSeq {
			end := int64(-1)
			if len(p.ents) > 0 {
				end = p.ents[len(p.ents)-1].e.Seq
			}
			v.problem(ProblemDeleted, p.id, "", 0, h.e.PrevChainSeq-end,
				"the chain ends at seq %d, but its successor %s recorded its end at seq %d: entries %s were deleted", end, c.id, h.e.PrevChainSeq, span(end+1, h.e.PrevChainSeq))
		}
	case last.hash != h.e.PrevChainHash:
		v.problem(ProblemModified, p.id, last.file.path, last.line, 1,
			"entry seq %d is not the one its successor chain %s recorded as this chain's end: it was modified", last.e.Seq, c.id)
	default:
		p.successor = c
		p.sealedAt = h.e.PrevChainSeq
		if n := len(p.ents); n > 0 && p.ents[n-1].e.Seq > h.e.PrevChainSeq {
			x := p.bySeq[h.e.PrevChainSeq+1]
			if x == nil {
				x = p.ents[n-1]
			}
			v.problem(ProblemInserted, p.id, x.file.path, x.line, p.ents[n-1].e.Seq-h.e.PrevChainSeq,
				"entries after seq %d, where its successor %s recorded this chain's end: they were added afterwards", h.e.PrevChainSeq, c.id)
		}
	}
}

// coverage counts the records valid signatures cover, and reports the
// unverified tail.
func (v *verifier) coverage(c *chainState) {
	if len(c.ents) == 0 {
		return
	}
	broken := map[int]bool{}
	for _, i := range c.breaks {
		broken[i] = true
	}
	// A successor's header covers this chain up to sealedAt, once a valid
	// checkpoint of the successor covers its header.
	sealedBySuccessor := c.successor != nil && c.successor.headerCovered()
	pending := 0 // records since the last cover, on an unbroken stretch
	pendingFrom := -1
	for i, p := range c.ents {
		if broken[i] {
			pending, pendingFrom = 0, -1
		}
		switch {
		case p.e.Kind == KindRecord:
			if pendingFrom < 0 {
				pendingFrom = i
			}
			pending++
		case p.e.Kind == KindCheckpoint && c.valid[p.e.Seq]:
			c.sum.Verified += pending
			pending, pendingFrom = 0, -1
		}
		if sealedBySuccessor && p.e.Seq == c.sealedAt {
			c.sum.Verified += pending
			pending, pendingFrom = 0, -1
		}
	}
	last := c.ents[len(c.ents)-1]
	switch {
	case last.e.Kind == KindCheckpoint && last.e.Trigger == TriggerClose:
		c.sum.End = EndClosed
	case last.e.Kind == KindCheckpoint && last.e.Trigger == TriggerRotate && last.line == len(last.file.fc.lines):
		c.sum.End = TriggerRotate
		if !v.opts.Partial {
			v.problem(ProblemMissingFile, c.id, last.file.path, 0, 1,
				"file %d ends with a rotate checkpoint, so the chain goes on in file %d, which is not among the files (give it, or --partial)", last.file.index, last.file.index+1)
		}
	default:
		c.sum.End = EndUnsealed
	}
	if sealedBySuccessor {
		c.sum.SealedBy = c.successor.id
	}
	c.sum.Unverified = pending
	if pending > 0 {
		p := c.ents[pendingFrom]
		v.problem(ProblemUnverifiedTail, c.id, p.file.path, p.line, int64(pending),
			"%s from here on (seq %s) come after the chain's last checkpoint: no signature covers them yet; they were written since, or the process stopped without closing its sink",
			count(int64(pending), "record", "records"), span(p.e.Seq, last.e.Seq))
	}
}

// headerCovered reports whether a valid checkpoint covers the chain's
// first header through unbroken links.
func (c *chainState) headerCovered() bool {
	if len(c.ents) == 0 || c.ents[0].e.Seq != 0 {
		return false
	}
	broken := map[int]bool{}
	for _, i := range c.breaks {
		broken[i] = true
	}
	for i, p := range c.ents {
		if i > 0 && broken[i] {
			return false
		}
		if p.e.Kind == KindCheckpoint && c.valid[p.e.Seq] {
			return true
		}
	}
	return false
}

// checkCopies checks a file of checkpoint copies against the trail.
func (v *verifier) checkCopies(path string) error {
	fc, err := readFile(path)
	if err != nil {
		return fmt.Errorf("auditlog: %w", err)
	}
	if fc.torn > 0 {
		v.problem(ProblemTorn, "", path, len(fc.lines)+1, 1, "the checkpoint copies end with an incomplete line (%d bytes)", fc.torn)
	}
	for _, l := range fc.lines {
		if l.entry == nil || l.entry.Kind != KindCheckpoint {
			v.problem(ProblemModified, "", path, l.no, 1, "not a checkpoint: the copy was modified")
			continue
		}
		e := l.entry
		if err := v.opts.Keys.verify(e); err != nil {
			kind := ProblemModified
			if errors.Is(err, errUnknownKey) {
				kind = ProblemUnknownKey
			}
			v.problem(kind, e.Chain, path, l.no, 1, "the copy of checkpoint seq %d of chain %s: %v", e.Seq, e.Chain, err)
			continue
		}
		v.res.Copies++
		c := v.chains[e.Chain]
		if c == nil {
			if !v.opts.Partial {
				v.problem(ProblemMissingFile, e.Chain, path, l.no, 0,
					"chain %s, whose checkpoint seq %d was copied here, is not among the files: it was removed", e.Chain, e.Seq)
			}
			continue
		}
		got := c.bySeq[e.Seq]
		switch {
		case got != nil && got.hash == l.hash:
		case got != nil:
			v.problem(ProblemModified, c.id, got.file.path, got.line, 1,
				"checkpoint seq %d differs from its copy (%s:%d): it was replaced", e.Seq, filepath.Base(path), l.no)
		case len(c.ents) == 0 || c.ents[len(c.ents)-1].e.Seq < e.Seq:
			end := int64(-1)
			if len(c.ents) > 0 {
				end = c.ents[len(c.ents)-1].e.Seq
			}
			v.problem(ProblemDeleted, c.id, path, l.no, e.Seq-end,
				"the chain ends at seq %d, but its checkpoint seq %d was copied here: entries %s were cut off", end, e.Seq, span(end+1, e.Seq))
		default:
			// Inside a gap the chain's own walk reported.
		}
	}
	return nil
}
