package base64url

import (
	"bytes"
	"encoding/base64"
	"errors"
	"testing"
)

// TestOneSpelling: every spelling of a value other than its encoding is
// refused, by both decoders; the encoding itself is accepted.
func TestOneSpelling(t *testing.T) {
	value := []byte{0xfb, 0xff, 0x01, 0x02, 0x03, 0xfe}
	good := EncodeToString(value) // "-_8BAgP-"
	for _, tc := range []struct {
		name, in string
		ok       bool
	}{
		{"the encoding", good, true},
		{"empty", "", true},
		{"two bytes", "AQI", true},
		{"one byte", "AQ", true},
		{"LF inside", good[:3] + "\n" + good[3:], false},
		{"CR inside", good[:3] + "\r" + good[3:], false},
		{"CRLF at the end", good + "\r\n", false},
		{"LF first", "\n" + good, false},
		{"LF alone", "\n", false},
		{"space", good[:3] + " " + good[3:], false},
		{"tab", good[:3] + "\t" + good[3:], false},
		{"vertical tab", good[:3] + "\v" + good[3:], false},
		{"form feed", good[:3] + "\f" + good[3:], false},
		{"padding", "AQI=", false},
		{"padding of one byte", "AQ==", false},
		{"standard alphabet", "+/8BAgP+", false},
		{"non-zero trailing bits", "AR", false},
		{"non-zero trailing bits of two bytes", "AQJ", false},
		{"length 1 modulo 4", "AQIDB", false},
		{"NUL", "AQ\x00I", false},
		{"U+0085", "AQ\u0085I", false},
		{"U+00A0", "AQ\u00a0I", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, err := DecodeString(tc.in)
			if tc.ok != (err == nil) {
				t.Fatalf("DecodeString(%q) = %x, %v; want ok=%v", tc.in, b, err, tc.ok)
			}
			dst := make([]byte, DecodedLen(len(tc.in)))
			n, err2 := Decode(dst, []byte(tc.in))
			if (err == nil) != (err2 == nil) {
				t.Fatalf("Decode(%q) = %v, DecodeString = %v", tc.in, err2, err)
			}
			if err == nil && (!bytes.Equal(dst[:n], b) || EncodeToString(b) != tc.in) {
				t.Fatalf("%q decoded to %x, which encodes to %q", tc.in, b, EncodeToString(b))
			}
		})
	}
	// The standard library's strict decoder accepts the line breaks: the
	// reason this package exists.
	if _, err := base64.RawURLEncoding.Strict().DecodeString(good[:3] + "\n" + good[3:]); err != nil {
		t.Fatalf("encoding/base64 now refuses line breaks (%v): this package's check may be redundant", err)
	}
	if _, err := DecodeString(good[:3] + "\n" + good[3:]); !errors.Is(err, ErrNotCanonical) {
		t.Errorf("a line break: %v, want ErrNotCanonical", err)
	}
}

// FuzzDecode: DecodeString accepts s exactly when s is the encoding of
// what it decodes to, and Decode agrees with it.
func FuzzDecode(f *testing.F) {
	for _, s := range []string{"", "AQ", "AQI", "AQID", "AQ\nID", "AQ\r\nID", "AQ==", "AR", "+/8", "-_8BAgP-", "AQIDB"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		b, err := DecodeString(s)
		canonical := err == nil
		if canonical && EncodeToString(b) != s {
			t.Fatalf("accepted %q, whose bytes encode to %q", s, EncodeToString(b))
		}
		if std, serr := base64.RawURLEncoding.Strict().DecodeString(s); serr == nil && !canonical && EncodeToString(std) == s {
			t.Fatalf("refused %q, the encoding of %x: %v", s, std, err)
		}
		dst := make([]byte, DecodedLen(len(s)))
		n, err2 := Decode(dst, []byte(s))
		if canonical != (err2 == nil) || (canonical && !bytes.Equal(dst[:n], b)) {
			t.Fatalf("Decode(%q) = %x, %v; DecodeString = %x, %v", s, dst[:n], err2, b, err)
		}
	})
}
