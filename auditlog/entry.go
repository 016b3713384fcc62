package auditlog

import (
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"time"

	"github.com/stepupgrpc/stepup/internal/strictjson"
)

// Version is the format version every entry carries in "v".
const Version = 1

// The kinds of entries, in "kind".
const (
	// KindFile is the first entry of every file: the file's index in its
	// chain; in the chain's first file, also the chain's predecessor.
	KindFile = "file"
	// KindRecord is one audit event.
	KindRecord = "record"
	// KindCheckpoint is a signature over the chain up to the checkpoint.
	KindCheckpoint = "checkpoint"
)

// The triggers of a checkpoint, in "trigger".
const (
	TriggerCount    = "count"    // CheckpointEvery records since the last one
	TriggerInterval = "interval" // CheckpointInterval passed with records since the last one
	TriggerRotate   = "rotate"   // the file is full: it ends here, the chain goes on in the next file
	TriggerClose    = "close"    // the sink was closed: the chain ends here
	TriggerRequest  = "request"  // Sink.Checkpoint was called
)

// The ends of a predecessor chain, in "prev_chain_end".
const (
	EndClosed   = "closed"   // its last entry is a close checkpoint
	EndUnsealed = "unsealed" // it has entries after its last checkpoint: its process stopped without closing the sink
	EndTorn     = "torn"     // its last file ends with an incomplete line: its process stopped in the middle of a write
)

// MaxLine bounds one line of a trail, its line feed excluded. The writer
// never comes close: it cuts every string member to MaxString bytes.
const MaxLine = 64 << 10

// MaxString bounds a string member as the writer writes it: longer values
// (a long user agent or detail) are cut at a UTF-8 boundary.
const MaxString = 1024

// Entry is one line of a trail: a file header, a record or a checkpoint.
// Members that do not belong to its Kind are zero. docs/AUDITLOG.md
// specifies every member.
type Entry struct {
	// Present in every entry.
	V     int64  // format version: 1
	Kind  string // KindFile, KindRecord or KindCheckpoint
	Chain string // the chain's id
	Seq   int64  // position in the chain, from 0
	Prev  string // base64url SHA-256 of the previous entry's canonical form; "" for seq 0
	Time  string // RFC 3339 UTC with nanoseconds

	// File header.
	File          int64  // the file's index in the chain, from 1
	Replica       string // the replica name the chain id starts with
	PrevChain     string // the predecessor chain (same replica, same directory)
	PrevChainSeq  int64  // the seq of its last complete entry
	PrevChainHash string // the hash of that entry
	PrevChainEnd  string // EndClosed, EndUnsealed or EndTorn

	// Record: the interceptor.Event, never a credential.
	Decision          string
	Reason            string
	Code              string // the gRPC status code name: "OK", "UNAUTHENTICATED", ...
	Method            string
	Stream            bool
	Peer              string
	UserAgent         string
	TraceID           string
	Subject           string
	ClientID          string
	TokenID           string
	JKT               string
	StepUpRequired    bool
	Factor            string
	Via               string
	ChallengeID       string
	GrantID           string
	IssuedChallengeID string
	IssuedGrantID     string
	SummaryDigest     string
	Detail            string
	LatencyNS         int64

	// Checkpoint.
	Trigger string // TriggerCount, TriggerInterval, TriggerRotate, TriggerClose or TriggerRequest
	Alg     string // "Ed25519" or "ES256"
	KeyID   string // the signing key's kid
	Sig     string // base64url signature over SigningInput
}

// kindSet says which kinds of entries a member belongs to.
type kindSet uint8

const (
	inFile kindSet = 1 << iota
	inRecord
	inCheckpoint
	inAll = inFile | inRecord | inCheckpoint
)

func kindBit(kind string) kindSet {
	switch kind {
	case KindFile:
		return inFile
	case KindRecord:
		return inRecord
	case KindCheckpoint:
		return inCheckpoint
	}
	return 0
}

// member is one JSON member of an entry: its name, the kinds it belongs
// to, whether it is written even when empty (the core members), and where
// its value is.
type member struct {
	name  string
	kinds kindSet
	core  bool
	str   func(*Entry) *string
	num   func(*Entry) *int64
	flag  func(*Entry) *bool
}

// members lists every member, sorted by name: the canonical order (RFC
// 8785 sorts by UTF-16 code units; every name is ASCII).
var members = func() []member {
	s := func(name string, k kindSet, f func(*Entry) *string) member {
		return member{name: name, kinds: k, str: f}
	}
	n := func(name string, k kindSet, f func(*Entry) *int64) member {
		return member{name: name, kinds: k, num: f}
	}
	b := func(name string, k kindSet, f func(*Entry) *bool) member {
		return member{name: name, kinds: k, flag: f}
	}
	core := func(m member) member { m.core = true; return m }
	ms := []member{
		core(n("v", inAll, func(e *Entry) *int64 { return &e.V })),
		core(s("kind", inAll, func(e *Entry) *string { return &e.Kind })),
		core(s("chain", inAll, func(e *Entry) *string { return &e.Chain })),
		core(n("seq", inAll, func(e *Entry) *int64 { return &e.Seq })),
		core(s("prev", inAll, func(e *Entry) *string { return &e.Prev })),
		core(s("time", inAll, func(e *Entry) *string { return &e.Time })),

		n("file", inFile, func(e *Entry) *int64 { return &e.File }),
		s("replica", inFile, func(e *Entry) *string { return &e.Replica }),
		s("prev_chain", inFile, func(e *Entry) *string { return &e.PrevChain }),
		n("prev_chain_seq", inFile, func(e *Entry) *int64 { return &e.PrevChainSeq }),
		s("prev_chain_hash", inFile, func(e *Entry) *string { return &e.PrevChainHash }),
		s("prev_chain_end", inFile, func(e *Entry) *string { return &e.PrevChainEnd }),

		s("decision", inRecord, func(e *Entry) *string { return &e.Decision }),
		s("reason", inRecord, func(e *Entry) *string { return &e.Reason }),
		s("code", inRecord, func(e *Entry) *string { return &e.Code }),
		s("method", inRecord, func(e *Entry) *string { return &e.Method }),
		b("stream", inRecord, func(e *Entry) *bool { return &e.Stream }),
		s("peer", inRecord, func(e *Entry) *string { return &e.Peer }),
		s("user_agent", inRecord, func(e *Entry) *string { return &e.UserAgent }),
		s("trace_id", inRecord, func(e *Entry) *string { return &e.TraceID }),
		s("subject", inRecord, func(e *Entry) *string { return &e.Subject }),
		s("client_id", inRecord, func(e *Entry) *string { return &e.ClientID }),
		s("token_id", inRecord, func(e *Entry) *string { return &e.TokenID }),
		s("jkt", inRecord, func(e *Entry) *string { return &e.JKT }),
		b("step_up_required", inRecord, func(e *Entry) *bool { return &e.StepUpRequired }),
		s("factor", inRecord, func(e *Entry) *string { return &e.Factor }),
		s("via", inRecord, func(e *Entry) *string { return &e.Via }),
		s("challenge_id", inRecord, func(e *Entry) *string { return &e.ChallengeID }),
		s("grant_id", inRecord, func(e *Entry) *string { return &e.GrantID }),
		s("issued_challenge_id", inRecord, func(e *Entry) *string { return &e.IssuedChallengeID }),
		s("issued_grant_id", inRecord, func(e *Entry) *string { return &e.IssuedGrantID }),
		s("summary_digest", inRecord, func(e *Entry) *string { return &e.SummaryDigest }),
		s("detail", inRecord, func(e *Entry) *string { return &e.Detail }),
		n("latency_ns", inRecord, func(e *Entry) *int64 { return &e.LatencyNS }),

		s("trigger", inCheckpoint, func(e *Entry) *string { return &e.Trigger }),
		s("alg", inCheckpoint, func(e *Entry) *string { return &e.Alg }),
		s("kid", inCheckpoint, func(e *Entry) *string { return &e.KeyID }),
		s("sig", inCheckpoint, func(e *Entry) *string { return &e.Sig }),
	}
	sort.Slice(ms, func(i, j int) bool { return ms[i].name < ms[j].name })
	return ms
}()

// memberIndex finds a member by name.
var memberIndex = func() map[string]int {
	m := make(map[string]int, len(members))
	for i, mb := range members {
		m[mb.name] = i
	}
	return m
}()

// empty reports whether e has the zero value of m.
func (m *member) empty(e *Entry) bool {
	switch {
	case m.str != nil:
		return *m.str(e) == ""
	case m.num != nil:
		return *m.num(e) == 0
	default:
		return !*m.flag(e)
	}
}

// AppendCanonical appends the canonical form of e to b: the RFC 8785
// (JCS) serialisation of the JSON object made of e's core members and its
// other members that are not empty (not "", 0 or false), in the order of
// their names. Without sig, a checkpoint's "sig" is left out: what
// SigningInput signs.
func (e *Entry) AppendCanonical(b []byte, sig bool) []byte {
	bit := kindBit(e.Kind)
	b = append(b, '{')
	first := true
	for i := range members {
		m := &members[i]
		if !m.core && (m.kinds&bit == 0 || m.empty(e)) || !sig && m.name == "sig" {
			continue
		}
		if !first {
			b = append(b, ',')
		}
		first = false
		b = append(b, '"')
		b = append(b, m.name...)
		b = append(b, '"', ':')
		switch {
		case m.str != nil:
			b = strictjson.AppendCanonicalString(b, *m.str(e))
		case m.num != nil:
			b = strconv.AppendInt(b, *m.num(e), 10)
		default:
			b = strconv.AppendBool(b, *m.flag(e))
		}
	}
	return append(b, '}')
}

// Hash returns the SHA-256 of e's canonical form: the "prev" of the entry
// after it.
func (e *Entry) Hash() [sha256.Size]byte {
	var buf [1024]byte
	return sha256.Sum256(e.AppendCanonical(buf[:0], true))
}

// HashString returns Hash in base64url without padding, as "prev" and
// "prev_chain_hash" carry it.
func (e *Entry) HashString() string { return encodeHash(e.Hash()) }

func encodeHash(h [sha256.Size]byte) string { return base64.RawURLEncoding.EncodeToString(h[:]) }

// SigningPrefix starts the bytes a checkpoint's signature covers, so that
// a signature made for a trail cannot be taken for any other use of its
// key (a JWS signing input never starts with it).
const SigningPrefix = "stepup-auditlog-checkpoint-v1\n"

// SigningInput returns what a checkpoint's "sig" signs: SigningPrefix,
// then the checkpoint's canonical form without "sig".
func (e *Entry) SigningInput() []byte {
	return e.AppendCanonical([]byte(SigningPrefix), false)
}

// ErrMalformed is what ParseEntry's errors wrap: the line is not an entry
// of this format.
var ErrMalformed = errors.New("auditlog: not a valid entry")

// ParseEntry reads one line of a trail (without its line feed). It
// accepts only what this format writes, read strictly: one JSON object
// (RFC 8259, no duplicate member names, valid UTF-8), "v" 1, a known
// "kind", only the members of that kind with their JSON types (strings;
// integers from 0 to 2^53; booleans), and the members the kind requires.
// Its errors wrap ErrMalformed and never quote the line.
func ParseEntry(line []byte) (*Entry, error) {
	if len(line) > MaxLine {
		return nil, fmt.Errorf("%w: longer than %d bytes", ErrMalformed, MaxLine)
	}
	e := &Entry{}
	var seen [2]uint64 // bit i: members[i] was present
	err := strictjson.ParseObject(string(line), func(name string, v strictjson.Value) error {
		i, ok := memberIndex[name]
		if !ok {
			return fmt.Errorf("%w: unknown member %.40q", ErrMalformed, name)
		}
		seen[i/64] |= 1 << (i % 64)
		m := &members[i]
		switch {
		case m.str != nil:
			s, ok := v.Str()
			if !ok {
				return fmt.Errorf("%w: %s is not a string", ErrMalformed, name)
			}
			*m.str(e) = s
		case m.num != nil:
			n, ok := v.Int()
			if !ok || n < 0 {
				return fmt.Errorf("%w: %s is not an integer from 0 to 2^53", ErrMalformed, name)
			}
			*m.num(e) = n
		default:
			if v.Kind() != strictjson.Bool {
				return fmt.Errorf("%w: %s is not a boolean", ErrMalformed, name)
			}
			*m.flag(e) = v.Raw() == "true"
		}
		return nil
	})
	if err != nil {
		if !errors.Is(err, ErrMalformed) {
			err = fmt.Errorf("%w: %w", ErrMalformed, err)
		}
		return nil, err
	}
	bit := kindBit(e.Kind)
	if bit == 0 {
		return nil, fmt.Errorf("%w: unknown kind %.40q", ErrMalformed, e.Kind)
	}
	if e.V != Version {
		return nil, fmt.Errorf("%w: version %d, this verifier reads %d", ErrMalformed, e.V, Version)
	}
	for i := range members {
		m := &members[i]
		present := seen[i/64]&(1<<(i%64)) != 0
		switch {
		case m.core && !present:
			return nil, fmt.Errorf("%w: no %s", ErrMalformed, m.name)
		case present && m.kinds&bit == 0:
			return nil, fmt.Errorf("%w: %s in a %s entry", ErrMalformed, m.name, e.Kind)
		}
	}
	if err := e.checkRequired(); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	return e, nil
}

// checkRequired checks what a kind requires beyond its members' types.
func (e *Entry) checkRequired() error {
	need := func(ok bool, what string) error {
		if !ok {
			return fmt.Errorf("a %s entry needs %s", e.Kind, what)
		}
		return nil
	}
	var errs []error
	if _, err := time.Parse(time.RFC3339Nano, e.Time); err != nil {
		errs = append(errs, errors.New(`"time" is not an RFC 3339 time`))
	}
	if e.Seq == 0 {
		errs = append(errs, need(e.Kind == KindFile && e.File == 1 && e.Prev == "", `seq 0 to be the header of file 1, with "prev" ""`))
	} else {
		errs = append(errs, need(len(e.Prev) == 43, `"prev": a base64url SHA-256`))
	}
	switch e.Kind {
	case KindFile:
		errs = append(errs, need(e.File >= 1, `"file" from 1`))
		if e.PrevChain != "" {
			errs = append(errs, need(len(e.PrevChainHash) == 43 && e.PrevChainEnd != "", `"prev_chain_hash" and "prev_chain_end" with "prev_chain"`))
		}
	case KindRecord:
		errs = append(errs, need(e.Decision != "" && e.Reason != "" && e.Code != "", `"decision", "reason" and "code"`))
	case KindCheckpoint:
		errs = append(errs, need(e.Trigger != "" && e.Alg != "" && e.KeyID != "" && e.Sig != "", `"trigger", "alg", "kid" and "sig"`))
	}
	return errors.Join(errs...)
}
