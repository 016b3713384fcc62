package dpop

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/binary"
	"errors"
	"sync/atomic"
	"time"

	"github.com/stepupgrpc/stepup/internal/base64url"
)

// DefaultNonceWindow is the default lifetime step of server nonces. A nonce
// is accepted during the window it was issued in and the next one, so it
// lives between one and two windows.
const DefaultNonceWindow = 5 * time.Minute

// nonceLabel separates these MACs from any other use of the same key.
const nonceLabel = "stepup dpop nonce v1\x00"

// Nonces issues and checks stateless server nonces (RFC 9449 §8). A nonce is
// base64url(HMAC-SHA256(key, label || window index)), where the window index
// is the current time divided by the window. Nonces of the current and the
// previous window are accepted, so replicas that share the key agree without
// sharing state, and a nonce outlives its window by at most one window.
// Safe for concurrent use.
type Nonces struct {
	key    []byte
	window int64 // nanoseconds
	now    func() time.Time
	state  atomic.Pointer[nonceState]
}

// nonceState caches the two acceptable nonces of one window index, so that
// Check is two constant-time comparisons instead of two HMACs.
type nonceState struct {
	index     int64
	cur, prev string
}

// NewNonces returns a nonce issuer. key must be at least 32 random bytes and
// shared by every replica; window defaults to DefaultNonceWindow when 0; now
// defaults to time.Now when nil.
func NewNonces(key []byte, window time.Duration, now func() time.Time) (*Nonces, error) {
	if len(key) < 32 {
		return nil, errors.New("dpop: nonce key must be at least 32 bytes")
	}
	if window == 0 {
		window = DefaultNonceWindow
	}
	if window < 0 {
		return nil, errors.New("dpop: nonce window must be positive")
	}
	if now == nil {
		now = time.Now
	}
	return &Nonces{key: append([]byte(nil), key...), window: int64(window), now: now}, nil
}

func (n *Nonces) current() *nonceState {
	t := n.now().UnixNano()
	idx := t / n.window
	if t < 0 && t%n.window != 0 {
		idx-- // floor division before 1970
	}
	if s := n.state.Load(); s != nil && s.index == idx {
		return s
	}
	s := &nonceState{index: idx, cur: n.mac(idx), prev: n.mac(idx - 1)}
	n.state.Store(s)
	return s
}

func (n *Nonces) mac(idx int64) string {
	m := hmac.New(sha256.New, n.key)
	var b [len(nonceLabel) + 8]byte
	copy(b[:], nonceLabel)
	binary.BigEndian.PutUint64(b[len(nonceLabel):], uint64(idx))
	m.Write(b[:])
	return base64url.EncodeToString(m.Sum(nil))
}

// Current returns the nonce to hand to clients now (in the DPoP-Nonce
// response header, or dpop-nonce metadata for gRPC).
func (n *Nonces) Current() string { return n.current().cur }

// Check returns nil when nonce is the current or the previous window's
// nonce, a *ProofError with ReasonNonceRequired when it is empty, and a *ProofError
// with ReasonNonceInvalid otherwise. Both refusals mean the client should
// retry with Current() (use_dpop_nonce, RFC 9449 §8).
func (n *Nonces) Check(nonce string) error {
	if err := n.check(nonce); err != nil {
		return err
	}
	return nil
}

func (n *Nonces) check(nonce string) *ProofError {
	if nonce == "" {
		return newError(ReasonNonceRequired, "proof has no nonce")
	}
	s := n.current()
	ok := subtle.ConstantTimeCompare([]byte(nonce), []byte(s.cur)) |
		subtle.ConstantTimeCompare([]byte(nonce), []byte(s.prev))
	if ok != 1 {
		return newError(ReasonNonceInvalid, "nonce is not current")
	}
	return nil
}
