package challenge

import (
	"crypto/hmac"
	"crypto/sha256"
	"hash"
	"strings"

	"github.com/stepupgrpc/stepup/internal/base64url"
	"github.com/stepupgrpc/stepup/internal/digest"
	"github.com/stepupgrpc/stepup/internal/strictjson"
)

// maxTokenSize bounds a challenge or grant before any decoding. Our own
// tokens are a few hundred bytes; the bound leaves room for long subjects.
const maxTokenSize = 4 << 10

// maxHeaderSize bounds the decoded JOSE header of an HS256 token.
const maxHeaderSize = 512

// tokenFailure says why an HS256 token was refused; the caller maps it to
// the reason of its token kind.
type tokenFailure uint8

const (
	tokenOK tokenFailure = iota
	tokenMalformed
	tokenBadSignature
)

// macState is a keyed HMAC-SHA256 state and room for its sum. States are
// pooled per key, so that verifying a token neither makes two SHA-256
// states nor allocates its sum.
type macState struct {
	h   hash.Hash
	sum [sha256.Size]byte
}

func (m *macKey) state() *macState {
	st, _ := m.pool.Get().(*macState)
	if st == nil {
		st = &macState{h: hmac.New(sha256.New, m.key)}
	}
	return st
}

// mac returns HMAC-SHA256 of the signing input.
func (m *macKey) mac(signingInput string) []byte {
	st := m.state()
	defer m.pool.Put(st)
	return append([]byte(nil), st.compute(signingInput)...)
}

// macEqual reports, in constant time, whether sig is the HMAC-SHA256 of the
// signing input.
func (m *macKey) macEqual(signingInput string, sig []byte) bool {
	st := m.state()
	defer m.pool.Put(st)
	return hmac.Equal(sig, st.compute(signingInput))
}

func (st *macState) compute(signingInput string) []byte {
	st.h.Reset()
	digest.WriteString(st.h, signingInput)
	return st.h.Sum(st.sum[:0])
}

// sign returns the compact JWS (RFC 7515 §7.1) of claims, a JSON object,
// with the canonical header {"alg":"HS256","kid":<current>,"typ":typ}.
func (k *KeySet) sign(typ string, claims []byte) string {
	m := k.signer(typ)
	var b strings.Builder
	b.Grow(len(m.hdr) + 1 + base64url.EncodedLen(len(claims)) + 1 + base64url.EncodedLen(sha256.Size))
	b.WriteString(m.hdr)
	b.WriteByte('.')
	b.WriteString(base64url.EncodeToString(claims))
	mac := m.mac(b.String())
	b.WriteByte('.')
	b.WriteString(base64url.EncodeToString(mac))
	return b.String()
}

// verify checks an HS256 token of type typ and returns its payload. Cheap
// checks come first and the payload is decoded only after the MAC verifies,
// so unauthenticated claims are never parsed (RFC 8725 §3.1: the algorithm
// is fixed by the verifier, never taken from the token).
func (k *KeySet) verify(token, typ string) ([]byte, *macKey, tokenFailure) {
	if len(token) > maxTokenSize {
		return nil, nil, tokenMalformed
	}
	h, rest, ok := strings.Cut(token, ".")
	if !ok {
		return nil, nil, tokenMalformed
	}
	p, s, ok := strings.Cut(rest, ".")
	if !ok || strings.IndexByte(s, '.') >= 0 {
		return nil, nil, tokenMalformed
	}
	m := k.byHeader[h]
	if m == nil {
		var f tokenFailure
		if m, f = k.parseHeader(h, typ); f != tokenOK {
			return nil, nil, f
		}
	}
	if m.typ != typ {
		return nil, nil, tokenMalformed
	}
	// An HS256 MAC is 32 bytes, 43 characters: any other length is not a
	// well-formed token (whatever the bits of a truncated one happen to
	// be). base64url accepts one spelling: the MAC covers the header and
	// claims segments as sent, not its own, so a line break there (F6)
	// would otherwise give a grant a second accepted form.
	var sig [sha256.Size]byte
	if len(s) != base64url.EncodedLen(sha256.Size) {
		return nil, nil, tokenMalformed
	}
	if _, err := base64url.Decode(sig[:], []byte(s)); err != nil {
		return nil, nil, tokenMalformed
	}
	if !m.macEqual(token[:len(h)+1+len(p)], sig[:]) {
		return nil, nil, tokenBadSignature
	}
	payload, err := base64url.DecodeString(p)
	if err != nil {
		return nil, nil, tokenMalformed
	}
	return payload, m, tokenOK
}

// readHeader reads the header segment of an HS256 token of type typ and
// returns its kid; only alg, kid and typ are allowed, each a string.
func readHeader(seg, typ string) (string, bool) {
	if base64url.DecodedLen(len(seg)) > maxHeaderSize {
		return "", false
	}
	raw, err := base64url.DecodeString(seg)
	if err != nil {
		return "", false
	}
	var alg, kid, htyp string
	var haveAlg, haveKid, haveTyp bool
	err = strictjson.ParseObject(string(raw), func(name string, v strictjson.Value) error {
		s, ok := v.Str()
		if !ok {
			return strictjson.ErrSyntax
		}
		switch name {
		case "alg":
			alg, haveAlg = s, true
		case "kid":
			kid, haveKid = s, true
		case "typ":
			htyp, haveTyp = s, true
		default:
			return strictjson.ErrSyntax
		}
		return nil
	})
	return kid, err == nil && haveAlg && haveKid && haveTyp && alg == "HS256" && htyp == typ
}

// parseHeader reads a header that is not byte for byte one we write (another
// member order, another implementation). Only alg, kid and typ are allowed:
// crit, jku, jwk, x5u and the like have no meaning for a server MAC and are
// refused rather than ignored.
func (k *KeySet) parseHeader(seg, typ string) (*macKey, tokenFailure) {
	kid, ok := readHeader(seg, typ)
	if !ok {
		return nil, tokenMalformed
	}
	m := k.byKid[typ+"\x00"+kid]
	if m == nil {
		return nil, tokenBadSignature
	}
	return m, tokenOK
}
