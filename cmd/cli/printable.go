package cli

import (
	"bytes"
	"io"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Printable returns s with everything a terminal could act on, or that
// could make a line read as something else, written as an escape: every
// rune that unicode.IsGraphic refuses (the C0 and C1 controls, ESC and BEL
// among them, DEL, line and paragraph separators, format characters such
// as bidirectional overrides and zero-width marks, private-use and
// unassigned code points) and every byte that is not valid UTF-8. Letters,
// marks, digits, punctuation, symbols and spaces (U+00A0, which protobuf's
// error texts use, among them) stay. A command prints every
// value that comes from its input (a token, a status, a descriptor set, an
// error that quotes them) through it, so that ESC or BEL sequences cannot
// clear the screen, rewrite a line or hide the ones after it.
//
// The escapes are those of JSON, so that the text of a JSON value stays
// JSON with the same meaning: \b \t \n \f \r, \u followed by four hex
// digits (a UTF-16 surrogate pair above U+FFFF); an invalid byte is
// \x followed by two hex digits. Everything else, backslashes included, is
// left as it is: a string that is all printable comes back unchanged.
func Printable(s string) string {
	i := 0
	for i < len(s) {
		r, n := utf8.DecodeRuneInString(s[i:])
		if (r == utf8.RuneError && n == 1) || !unicode.IsGraphic(r) {
			break
		}
		i += n
	}
	if i == len(s) {
		return s
	}
	var b strings.Builder
	b.Grow(len(s) + 16)
	b.WriteString(s[:i])
	for i < len(s) {
		r, n := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && n == 1:
			b.WriteString(`\x`)
			b.WriteString(hex2(uint16(s[i]), 2))
		case unicode.IsGraphic(r):
			b.WriteString(s[i : i+n])
		default:
			writeEscape(&b, r)
		}
		i += n
	}
	return b.String()
}

func writeEscape(b *strings.Builder, r rune) {
	switch r {
	case '\b':
		b.WriteString(`\b`)
	case '\t':
		b.WriteString(`\t`)
	case '\n':
		b.WriteString(`\n`)
	case '\f':
		b.WriteString(`\f`)
	case '\r':
		b.WriteString(`\r`)
	default:
		if r > 0xFFFF {
			r -= 0x10000
			b.WriteString(`\u` + hex2(uint16(0xD800+(r>>10)), 4))
			r = 0xDC00 + r&0x3FF
		}
		b.WriteString(`\u` + hex2(uint16(r), 4))
	}
}

// hex2 is v in lower-case hexadecimal, zero-padded to width digits.
func hex2(v uint16, width int) string {
	h := strconv.FormatUint(uint64(v), 16)
	return strings.Repeat("0", width-len(h)) + h
}

// PrintableWriter returns a writer that writes to w what it is given
// through Printable, except its line feeds and tabs, which stay: for text
// whose line breaks and indentation are the command's own (a usage, with
// the flag package's tabs; JSON from encoding/json, which escapes both
// inside strings). A value whose own line breaks must not start a line goes
// through Printable itself. Each Write must hold whole UTF-8 sequences (as
// fmt and encoding/json write them).
func PrintableWriter(w io.Writer) io.Writer { return printableWriter{w} }

type printableWriter struct{ w io.Writer }

func (p printableWriter) Write(b []byte) (int, error) {
	n := len(b)
	var out bytes.Buffer
	for len(b) > 0 {
		i := bytes.IndexAny(b, "\n\t")
		if i < 0 {
			out.WriteString(Printable(string(b)))
			break
		}
		out.WriteString(Printable(string(b[:i])))
		out.WriteByte(b[i])
		b = b[i+1:]
	}
	if _, err := p.w.Write(out.Bytes()); err != nil {
		return 0, err
	}
	return n, nil
}
