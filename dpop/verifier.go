package dpop

import (
	"context"
	"crypto"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"

	"github.com/stepupgrpc/stepup/internal/base64url"
	"github.com/stepupgrpc/stepup/internal/digest"
	"github.com/stepupgrpc/stepup/internal/option"
	"github.com/stepupgrpc/stepup/internal/strictjson"
)

// Defaults of a Verifier.
const (
	// DefaultIATPast is how old a proof may be. Proofs are made just before
	// each request, so a minute covers clock skew, latency and retries
	// while keeping a stolen proof useful only briefly and the replay store
	// small (RFC 9449 §11.1 leaves the window to the server).
	DefaultIATPast = 60 * time.Second
	// DefaultIATFuture is how far in the future iat may be: only clock
	// skew, so it is short. A long future window would let a client mint
	// proofs in advance (RFC 9449 §11.1).
	DefaultIATFuture = 5 * time.Second
	// DefaultReplayStoreSize is the entry count of the default MemoryReplayStore:
	// at the default windows it absorbs about 1500 proofs per second before
	// the fail-closed floor starts refusing older proofs.
	DefaultReplayStoreSize = 100_000
	// DefaultKeyCacheSize is how many distinct protected headers (one per
	// client key, in practice) keep their parsed key and thumbprint.
	DefaultKeyCacheSize = 1024
	// MaxProofSizeLimit is the largest WithMaxProofSize accepted.
	MaxProofSizeLimit = 64 << 10
)

// minJTI and maxJTI bound the jti length: at least 96 bits of entropy in
// base64 (RFC 9449 §4.2 asks for enough to make collisions negligible), and
// at most what any sane identifier needs.
const (
	minJTI = 16
	maxJTI = 256
)

// Verifier checks DPoP proofs (RFC 9449 §4.3). Safe for concurrent use.
type Verifier struct {
	cfg         jwsConfig
	past        time.Duration
	future      time.Duration
	now         func() time.Time
	store       ReplayStore
	nonces      *Nonces
	authorities []authority
	cache       *headerCache
	tables      *keyTables   // nil: no verification tables
	tokens      *digest.Memo // SHA-256 of the access tokens seen last, for ath
}

// The ath memo: a client presents the same access token on every call, so
// its SHA-256 is computed once. A slot keeps a reference to a token, so
// the memo holds at most athSlots tokens of at most maxMemoToken bytes.
const (
	athSlots     = 256
	maxMemoToken = 16 << 10
)

// NewVerifier returns a Verifier. Every configuration mistake is reported
// here, never on a request.
func NewVerifier(opts ...VerifierOption) (*Verifier, error) {
	c := verifierConfig{
		past:         DefaultIATPast,
		future:       DefaultIATFuture,
		now:          time.Now,
		minRSABits:   DefaultMinRSABits,
		maxSize:      DefaultMaxSize,
		keyCacheSize: DefaultKeyCacheSize,
		keyTables:    DefaultKeyTables,
		algs:         algAll,
	}
	err := option.Apply("dpop", "NewVerifier", opts, func(o VerifierOption) error { return o.applyVerifier(&c) })
	if c.keyTablesSet && c.keyTables > 0 && c.keyCacheSize == 0 {
		err = errors.Join(err, errors.New("dpop: WithKeyTables: key tables need the key cache (WithKeyCacheSize)"))
	}
	if err != nil {
		return nil, err
	}
	v := &Verifier{past: c.past, future: c.future, now: c.now, store: c.store, nonces: c.nonces, authorities: c.authorities}
	v.cfg = jwsConfig{typ: ProofType, algs: c.algs, maxSize: c.maxSize, minRSABits: c.minRSABits}
	if v.store == nil {
		s, err := NewMemoryReplayStore(DefaultReplayStoreSize, c.now)
		if err != nil {
			return nil, err
		}
		v.store = s
	}
	if c.keyCacheSize > 0 {
		var drop func(string, *header)
		if v.tables = newKeyTables(c.keyTables); v.tables != nil {
			drop = func(_ string, h *header) { v.tables.release(h.key) }
		}
		cache, err := lru.NewWithEvict(c.keyCacheSize, drop)
		if err != nil {
			return nil, err
		}
		v.cache = cache
	}
	v.tokens = digest.NewMemo(athSlots, maxMemoToken)
	return v, nil
}

// Nonces returns the nonce issuer configured with WithNonces, or nil. A
// server hands Current() to clients in DPoP-Nonce / dpop-nonce.
func (v *Verifier) Nonces() *Nonces { return v.nonces }

// Algorithms returns the accepted proof algorithms, in the order of
// DefaultAlgorithms: what a server advertises in the "algs" parameter of its
// WWW-Authenticate challenge (RFC 9449 §7.1).
func (v *Verifier) Algorithms() []string {
	var out []string
	for _, name := range DefaultAlgorithms() {
		if v.cfg.algs&algorithmByName(name) != 0 {
			out = append(out, name)
		}
	}
	return out
}

// HasAuthorities reports whether WithAuthorities configured the accepted
// htu authorities (otherwise each request's own authority is used).
func (v *Verifier) HasAuthorities() bool { return len(v.authorities) > 0 }

// ReplayStore returns the verifier's replay store (WithReplayStore, or its
// in-process default *MemoryReplayStore), for metrics.
func (v *Verifier) ReplayStore() ReplayStore { return v.store }

// MaxProofSize returns the largest proof accepted, in bytes.
func (v *Verifier) MaxProofSize() int { return v.cfg.maxSize }

// Request is what a proof is checked against.
type Request struct {
	// Proof is the DPoP header (or dpop metadata) value, exactly one.
	Proof string
	// Method is the expected htm ("POST" for gRPC).
	Method string
	// Authority is the request's authority (":authority" or Host), used
	// when no authorities are configured.
	Authority string
	// Path is the expected htu path, for gRPC "/package.Service/Method".
	Path string
	// AllowHTTP accepts the http scheme as well as https; only for
	// plaintext local testing.
	AllowHTTP bool
	// AccessToken, if not empty, is the presented access token: ath must
	// be present and be its hash (RFC 9449 §4.3 step 12).
	AccessToken string
	// ExpectedJKT, if not empty, is the thumbprint the proof key must have:
	// the access token's cnf.jkt (RFC 9449 §6.1).
	ExpectedJKT string
}

// Proof is a verified proof.
type Proof struct {
	// Thumbprint is the RFC 7638 thumbprint of the proof key.
	Thumbprint string
	// Algorithm is the alg header.
	Algorithm string
	// JTI, HTM, HTU, ATH and Nonce are the claims ("" when absent).
	JTI, HTM, HTU, ATH, Nonce string
	// IssuedAt is iat.
	IssuedAt time.Time
	// PublicKey is the proof key (*ecdsa.PublicKey, ed25519.PublicKey or
	// *rsa.PublicKey). It is shared with the verifier's cache: do not
	// modify it.
	PublicKey crypto.PublicKey
}

// claims are the proof claims this package reads; others are ignored.
type claims struct {
	jti, htm, htu, ath, nonce string
	iatSec, iatNsec           int64
	hasIAT                    bool
}

func parseClaims(payload string, c *claims) *ProofError {
	illTyped := ""
	err := parseJSONObject(payload, func(name string, v strictjson.Value) error {
		var dst *string
		switch name {
		case "jti":
			dst = &c.jti
		case "htm":
			dst = &c.htm
		case "htu":
			dst = &c.htu
		case "ath":
			dst = &c.ath
		case "nonce":
			dst = &c.nonce
		case "iat":
			if v.Kind() != strictjson.Number {
				illTyped = name
				return nil
			}
			sec, nsec, ok := parseNumericDate(v.Raw())
			if !ok {
				illTyped = name
				return nil
			}
			c.iatSec, c.iatNsec, c.hasIAT = sec, nsec, true
			return nil
		default:
			return nil
		}
		var ok bool
		if *dst, ok = v.Str(); !ok {
			illTyped = name
		}
		return nil
	})
	if err != nil {
		return err
	}
	if illTyped != "" {
		return newError(ReasonMalformed, "claim "+illTyped+" has the wrong JSON type")
	}
	// RFC 9449 §4.3 step 3: all required claims are present.
	switch {
	case c.jti == "":
		return newError(ReasonMalformed, "missing jti")
	case c.htm == "":
		return newError(ReasonMalformed, "missing htm")
	case c.htu == "":
		return newError(ReasonMalformed, "missing htu")
	case !c.hasIAT:
		return newError(ReasonMalformed, "missing iat")
	}
	if len(c.jti) < minJTI || len(c.jti) > maxJTI {
		return newError(ReasonMalformed, "jti length out of range")
	}
	for i := 0; i < len(c.jti); i++ {
		if ch := c.jti[i]; ch < 0x21 || ch > 0x7E {
			return newError(ReasonMalformed, "jti has a character outside printable ASCII")
		}
	}
	return nil
}

// Verify checks a proof against a request and, when everything holds,
// records its jti so it cannot be used again. Cheap checks run first, the
// signature next, the replay insert last: a refused proof never consumes its
// jti. Errors are *ProofError; see Reason for the codes.
func (v *Verifier) Verify(ctx context.Context, req Request) (*Proof, error) {
	scratch := getScratch()
	defer putScratch(scratch)
	var p pending
	if err := v.precheck(&req, &p, *scratch); err != nil {
		return nil, err
	}
	// RFC 9449 §4.3 step 6: the signature, with the key from the header.
	if !verifySignature(p.j.hdr, p.j.signingInput, p.j.sig) {
		return nil, newError(ReasonBadSignature, "signature does not verify")
	}
	proof, err := v.record(ctx, &p)
	if err == nil {
		v.tables.note(p.j.hdr.key)
	}
	return proof, err
}

// scratchPool recycles the buffer that holds a proof's signing input and
// decoded parts during Verify; nothing returned by Verify points into it.
var scratchPool = sync.Pool{New: func() any { b := make([]byte, 0, 2048); return &b }}

// maxPooledScratch keeps rare large proofs from pinning large buffers.
const maxPooledScratch = 16 << 10

func getScratch() *[]byte { return scratchPool.Get().(*[]byte) }

func putScratch(b *[]byte) {
	if cap(*b) <= maxPooledScratch {
		scratchPool.Put(b)
	}
}

// pending is a proof that passed every check but the signature and the
// replay insert.
type pending struct {
	j   compactJWS
	c   claims
	iat time.Time
}

// precheck runs every check that comes before the signature, cheapest
// first.
func (v *Verifier) precheck(req *Request, p *pending, scratch []byte) *ProofError {
	// RFC 9449 §4.3 steps 1-7 (but 6): one well-formed JWS, typ, alg,
	// public jwk.
	j, err := parseCompact(req.Proof, &v.cfg, v.cache, scratch)
	if err != nil {
		return err
	}
	p.j = j
	// RFC 9449 §4.3 step 3: required claims, well typed.
	c := &p.c
	if err := parseClaims(string(j.payload), c); err != nil {
		return err
	}
	// RFC 9449 §4.3 step 8: htm matches the request method (case-sensitive,
	// RFC 9110 §9.1).
	if req.Method == "" || c.htm != req.Method {
		return newError(ReasonBadMethod, "htm does not match the request method")
	}
	// RFC 9449 §4.3 step 9: htu matches the request URI after RFC 3986 §6
	// normalisation.
	if err := v.checkHTU(c.htu, req); err != nil {
		return err
	}
	// RFC 9449 §4.3 step 11: iat within the acceptance window (§11.1).
	now := v.now()
	p.iat = time.Unix(c.iatSec, c.iatNsec)
	if p.iat.Before(now.Add(-v.past)) {
		return newError(ReasonIssuedTooOld, "iat is too old")
	}
	if p.iat.After(now.Add(v.future)) {
		return newError(ReasonIssuedInFuture, "iat is in the future")
	}
	// RFC 9449 §4.3 step 12: with an access token, ath is its hash.
	if req.AccessToken != "" {
		if c.ath == "" {
			return newError(ReasonBadATH, "ath missing")
		}
		if !athMatches(c.ath, v.tokens.SHA256(req.AccessToken)) {
			return newError(ReasonBadATH, "ath does not match the access token")
		}
	}
	// RFC 9449 §4.3 step 12 and §6.1: the proof key is the token's cnf.jkt.
	if req.ExpectedJKT != "" &&
		subtle.ConstantTimeCompare([]byte(req.ExpectedJKT), []byte(j.hdr.key.thumbprint)) != 1 {
		return newError(ReasonKeyMismatch, "proof key does not match the token binding")
	}
	// RFC 9449 §4.3 step 10 and §8: the server nonce, when required.
	if v.nonces != nil {
		if err := v.nonces.check(c.nonce); err != nil {
			return err
		}
	}
	return nil
}

// proofKeyPrefix starts every replay key of a proof: "dpop:<jkt>:<jti>".
const proofKeyPrefix = "dpop:"

// record inserts a verified proof's jti into the replay store
// (RFC 9449 §4.3 step 11, §11.1) and returns the proof.
func (v *Verifier) record(ctx context.Context, p *pending) (*Proof, error) {
	k := p.j.hdr.key
	// Namespaced by key, so clients cannot collide with each other; kept
	// for the whole window in which the proof could still be accepted.
	var err error
	if ms, ok := v.store.(*MemoryReplayStore); ok {
		err = ms.insertProof(ctx, k.thumbprint, p.c.jti, p.iat, p.iat.Add(v.past+v.future))
	} else {
		err = v.store.Insert(ctx, proofKeyPrefix+k.thumbprint+":"+p.c.jti, p.iat, p.iat.Add(v.past+v.future))
	}
	switch {
	case err == nil:
	case errors.Is(err, ErrReplayed):
		return nil, &ProofError{Reason: ReasonReplayed, Detail: "jti already used", Err: err}
	case errors.Is(err, ErrEvicted):
		return nil, &ProofError{Reason: ReasonReplayWindow, Detail: "proof older than the replay store can vouch for", Err: err}
	default:
		return nil, &ProofError{Reason: ReasonStoreUnavailable, Detail: "replay store failed", Err: err}
	}
	return &Proof{
		Thumbprint: k.thumbprint,
		Algorithm:  p.j.hdr.alg.String(),
		JTI:        p.c.jti,
		HTM:        p.c.htm,
		HTU:        p.c.htu,
		ATH:        p.c.ath,
		Nonce:      p.c.nonce,
		IssuedAt:   p.iat,
		PublicKey:  k.public(),
	}, nil
}

// checkHTU compares the htu claim with the request (RFC 9449 §4.3 step 9).
func (v *Verifier) checkHTU(htu string, req *Request) *ProofError {
	u, err := parseHTU(htu)
	if err != nil {
		return err
	}
	if !u.https && !req.AllowHTTP {
		return newError(ReasonBadURI, "htu scheme must be https")
	}
	if len(v.authorities) > 0 {
		ok := false
		for _, a := range v.authorities {
			if a.matches(&u) {
				ok = true
				break
			}
		}
		if !ok {
			return newError(ReasonBadURI, fmt.Sprintf("htu authority %s is not served here (%s)", clipped(u.host, u.port), v.authorityList()))
		}
	} else {
		host, port, ok := parseAuthority(req.Authority)
		if !ok {
			return newError(ReasonBadURI, "request authority is invalid")
		}
		if port < 0 {
			port = defaultPort(u.https)
		}
		if !strings.EqualFold(host, u.host) || port != u.port {
			return newError(ReasonBadURI, fmt.Sprintf("htu authority %s does not match the request's %q", clipped(u.host, u.port), req.Authority))
		}
	}
	got, ok := normalisePath(u.path)
	if !ok {
		return newError(ReasonBadURI, "htu path is invalid")
	}
	want, ok := normalisePath(req.Path)
	if !ok || got != want {
		if len(got) > 128 {
			got = got[:128] + "…"
		}
		return newError(ReasonBadURI, fmt.Sprintf("htu path %q does not match the request's %q", got, req.Path))
	}
	return nil
}

// clipped names an htu authority in an error, at most 128 bytes of its host.
func clipped(host string, port int) string {
	if len(host) > 128 {
		host = host[:128] + "…"
	}
	return fmt.Sprintf("%q port %d", host, port)
}

// authorityList names the configured authorities in an error.
func (v *Verifier) authorityList() string {
	names := make([]string, 0, len(v.authorities))
	for _, a := range v.authorities {
		if a.port < 0 {
			// No port configured: the default port of the htu's scheme.
			names = append(names, a.host)
			continue
		}
		names = append(names, net.JoinHostPort(a.host, strconv.Itoa(a.port)))
	}
	return "configured: " + strings.Join(names, ", ")
}

// athMatches compares an ath claim with want, the SHA-256 of the access
// token, in constant time.
func athMatches(ath string, want [sha256.Size]byte) bool {
	var got [sha256.Size]byte
	if base64url.DecodedLen(len(ath)) != len(got) {
		return false
	}
	if _, err := base64url.Decode(got[:], []byte(ath)); err != nil {
		return false
	}
	return subtle.ConstantTimeCompare(got[:], want[:]) == 1
}
