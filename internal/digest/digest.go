// Package digest hashes strings without copying them: the credentials
// hashed on every call (an access token for the proof's ath, a token's
// signing input) are strings, and []byte(s) copies anything longer than 32
// bytes to the heap when the callee's parameter escapes, as the SHA-256
// implementation's does. A Memo remembers the SHA-256 of the strings
// hashed last, for a string that comes back on every call.
package digest

import (
	"crypto/sha256"
	"hash"
	"unsafe"
)

// SHA256 returns the SHA-256 of s.
func SHA256(s string) [sha256.Size]byte {
	// sha256.Sum256 reads its argument and neither keeps nor modifies it,
	// so it may see the string's bytes directly.
	return sha256.Sum256(unsafe.Slice(unsafe.StringData(s), len(s)))
}

// WriteString writes s to h. A hash.Hash's Write neither keeps nor
// modifies its argument (hash.Hash documents Write as io.Writer's), so it
// may see the string's bytes directly.
func WriteString(h hash.Hash, s string) {
	h.Write(unsafe.Slice(unsafe.StringData(s), len(s)))
}
