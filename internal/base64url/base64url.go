// Package base64url encodes and decodes the unpadded base64url of JOSE
// (RFC 7515 §2, RFC 4648 §5) with one spelling per value: every base64url
// value Stepup reads (JWS segments, JWK members, ath, chh, key files) goes
// through Decode or DecodeString, so that no value has a second accepted
// form that a log, a cache or a denylist keyed on its text would miss.
//
// Decoding accepts exactly the strings EncodeToString produces: only the
// characters A–Z, a–z, 0–9, "-" and "_"; no "=" padding; a length that is
// not 1 modulo 4; zero bits after the last byte (RFC 4648 §3.5). The
// standard library's strict decoder refuses everything else except CR and
// LF, which it skips wherever they are; in a JSON string they can be sent
// as the escapes "\r" and "\n", which decode to those bytes. Decode
// refuses them too: the length of what was read must be the length of
// the encoding of what it decoded to.
package base64url

import (
	"encoding/base64"
	"errors"
)

var enc = base64.RawURLEncoding.Strict()

// ErrNotCanonical is returned for input that the standard library's strict
// decoder reads but that is not the one encoding of its bytes: it holds a
// CR or LF.
var ErrNotCanonical = errors.New("base64url: a line break in the value")

// Decode decodes src into dst, which must hold DecodedLen(len(src)) bytes,
// and returns the number of bytes written. Anything but the one unpadded
// base64url spelling of the bytes is an error (a base64.CorruptInputError
// or ErrNotCanonical); dst then holds nothing of use.
func Decode(dst, src []byte) (int, error) {
	n, err := enc.Decode(dst, src)
	if err != nil {
		return n, err
	}
	if enc.EncodedLen(n) != len(src) {
		return n, ErrNotCanonical
	}
	return n, nil
}

// DecodeString returns the bytes s encodes, refusing what Decode refuses.
func DecodeString(s string) ([]byte, error) {
	b, err := enc.DecodeString(s)
	if err != nil {
		return nil, err
	}
	if enc.EncodedLen(len(b)) != len(s) {
		return nil, ErrNotCanonical
	}
	return b, nil
}

// EncodeToString returns the unpadded base64url encoding of b.
func EncodeToString(b []byte) string { return enc.EncodeToString(b) }

// AppendEncode appends the unpadded base64url encoding of src to dst.
func AppendEncode(dst, src []byte) []byte { return enc.AppendEncode(dst, src) }

// EncodedLen is the length of the encoding of n bytes.
func EncodedLen(n int) int { return enc.EncodedLen(n) }

// DecodedLen is the largest number of bytes an encoding of n characters
// can decode to (exact for every length Decode accepts).
func DecodedLen(n int) int { return enc.DecodedLen(n) }
