package cli

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"
)

func TestPrintable(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"", ""},
		{"plain text: a.b.c, 120.00 EUR", "plain text: a.b.c, 120.00 EUR"},
		{`back\slash and "quotes"`, `back\slash and "quotes"`},
		{"Überweisung → 12 € 🙂", "Überweisung → 12 € 🙂"},
		{"proto:\u00a0not found", "proto:\u00a0not found"},
		{"\x1b[2J\x1b[H", `\u001b[2J\u001b[H`},
		{"title\x1b]0;owned\x07", `title\u001b]0;owned\u0007`},
		{"a\tb\nc\rd\be\ff", `a\tb\nc\rd\be\ff`},
		{"del\x7f", `del\u007f`},
		{"c1 csi \u009b2J", `c1 csi \u009b2J`},
		{"rtl \u202eevil", `rtl \u202eevil`},
		{"zero\u200bwidth", `zero\u200bwidth`},
		{"line\u2028sep", `line\u2028sep`},
		{"tag \U000E0041", `tag \udb40\udc41`},
		{"private \uE000", `private \ue000`},
		{"bad \xff\xfe byte", `bad \xff\xfe byte`},
		{"cut \xe2\x82", `cut \xe2\x82`},
	} {
		if got := Printable(c.in); got != c.want {
			t.Errorf("Printable(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

func TestPrintableWriter(t *testing.T) {
	var b bytes.Buffer
	in := "usage:\n\t-x \x1b[31mred\x1b[0m\n"
	n, err := PrintableWriter(&b).Write([]byte(in))
	if err != nil || n != len(in) {
		t.Fatalf("Write = %d, %v", n, err)
	}
	if want := "usage:\n\t-x \\u001b[31mred\\u001b[0m\n"; b.String() != want {
		t.Errorf("wrote %q, want %q", b.String(), want)
	}
}

// checkPrintable is what FuzzPrintable asserts of Printable(s).
func checkPrintable(t *testing.T, s string) {
	t.Helper()
	out := Printable(s)
	if !utf8.ValidString(out) {
		t.Fatalf("Printable(%q) = %q: not UTF-8", s, out)
	}
	for _, r := range out {
		if !unicode.IsGraphic(r) {
			t.Fatalf("Printable(%q) = %q holds %U", s, out, r)
		}
	}
	graphic := utf8.ValidString(s)
	for _, r := range s {
		graphic = graphic && unicode.IsGraphic(r)
	}
	if graphic != (out == s) {
		t.Fatalf("Printable(%q) = %q: a string is left as it is exactly when it is all graphic", s, out)
	}
	// The escapes are JSON's: the escaped text of a JSON string is the same
	// JSON string.
	if utf8.ValidString(s) {
		js, err := json.Marshal(s)
		if err != nil {
			t.Fatal(err)
		}
		var back string
		if err := json.Unmarshal([]byte(Printable(string(js))), &back); err != nil || back != s {
			t.Fatalf("JSON of %q, escaped, reads as %q (%v)", s, back, err)
		}
	}
	if strings.ContainsAny(out, "\n\r\x1b\x07") {
		t.Fatalf("Printable(%q) = %q", s, out)
	}
}

// FuzzPrintable: whatever the input, Printable's output is valid UTF-8 of
// graphic runes only (no control byte at all, no format character); an
// all-graphic input comes back unchanged; the escaped text of a JSON string
// is the same JSON string.
func FuzzPrintable(f *testing.F) {
	for _, s := range []string{"", "plain", "\x1b[2J\a", "\u009b\u202e\u2028", "\xff", "\U000E0041", `a\u001b`, "€\t\n"} {
		f.Add(s)
	}
	f.Fuzz(checkPrintable)
}
