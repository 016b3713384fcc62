package strictjson

import (
	"bytes"
	"encoding/json"
	"errors"
	"regexp"
	"strings"
	"testing"
	"unicode/utf8"
)

// The parser refuses what other JSON parsers could read differently
// (RFC 8725 §3.4) and accepts everything RFC 8259 allows otherwise.
func TestParseObject(t *testing.T) {
	ok := []string{
		`{}`, ` { } `, `{"a":1}`, `{"a":"b","c":[1,2,{"d":null}],"e":true,"f":false,"g":-0.5e+10}`,
		`{"a":"\u00e9\ud83d\ude00\n\"\\\/"}`, `{"a":{},"b":{"a":1}}`, // same name in different objects
		` {"a" : [1, -2.5e3, true, false, null, "x\u00e9\ud83d\ude00", {"b":[]}]} `,
		`{"` + strings.Repeat("k", 1000) + `":1}`,
		`{"x":` + strings.Repeat("[", MaxDepth-1) + strings.Repeat("]", MaxDepth-1) + `}`,
		strings.Repeat(`{"a":`, MaxDepth-1) + "1" + strings.Repeat("}", MaxDepth-1),
		`{` + manyMembers(40) + `}`,
	}
	for _, s := range ok {
		if err := ParseObject(s, nil); err != nil {
			t.Errorf("refused %q: %v", s, err)
		}
		if !json.Valid([]byte(s)) {
			t.Errorf("test input %q is not JSON", s)
		}
	}
	bad := []struct {
		in, why string
		want    error
	}{
		{``, "empty", ErrNotObject},
		{`[]`, "array", ErrNotObject},
		{`[1]`, "array", ErrNotObject},
		{`"x"`, "string", ErrNotObject},
		{`{}x`, "trailing", ErrSyntax},
		{`{}{}`, "two values", ErrSyntax},
		{`{"a":1} {}`, "trailing data", ErrSyntax},
		{`{"a":1,}`, "trailing comma", ErrSyntax},
		{`{"a":[1,]}`, "trailing comma in array", ErrSyntax},
		{`{"a" 1}`, "no colon", ErrSyntax},
		{`{a:1}`, "bare key", ErrSyntax},
		{`{'a':1}`, "single quotes", ErrSyntax},
		{`{"a":01}`, "leading zero", ErrSyntax},
		{`{"a":1.}`, "bare point", ErrSyntax},
		{`{"a":.5}`, "no int", ErrSyntax},
		{`{"a":1e}`, "bare exponent", ErrSyntax},
		{`{"a":+1}`, "plus", ErrSyntax},
		{`{"a":NaN}`, "NaN", ErrSyntax},
		{`{"a":tru}`, "bad literal", ErrSyntax},
		{`{"a":nul}`, "bare word", ErrSyntax},
		{"{\"a\":\"\x01\"}", "control char", ErrSyntax},
		{"{\"a\":\"\xff\"}", "invalid UTF-8", ErrSyntax},
		{`{"a":"\x"}`, "bad escape", ErrSyntax},
		{`{"a":"\u12"}`, "short escape", ErrSyntax},
		{`{"a":"\ud800"}`, "lone high surrogate", ErrSyntax},
		{`{"a":"\udc00"}`, "lone low surrogate", ErrSyntax},
		{`{"a":"\ud800\u0041"}`, "bad pair", ErrSyntax},
		{`{"a":"unterminated}`, "unterminated", ErrSyntax},
		{`{"a":"b`, "unterminated at the end", ErrSyntax},
		{`{"a":1`, "unclosed object", ErrSyntax},
		{`{"a":1,"a":2}`, "duplicate", ErrDuplicate},
		{`{"a":1,"\u0061":2}`, "escaped duplicate", ErrDuplicate},
		{`{"o":{"b":1,"b":1}}`, "nested duplicate", ErrDuplicate},
		{`{"l":[{"b":1,"b":1}]}`, "duplicate in an array", ErrDuplicate},
		{`{` + manyMembers(40) + `,"m7":0}`, "many members with a duplicate", ErrDuplicate},
		{`{"x":` + strings.Repeat("[", MaxDepth) + strings.Repeat("]", MaxDepth) + `}`, "too deep arrays", ErrTooDeep},
		{strings.Repeat(`{"a":`, MaxDepth+1) + "1" + strings.Repeat("}", MaxDepth+1), "too deep objects", ErrTooDeep},
	}
	for _, b := range bad {
		if err := ParseObject(b.in, nil); err != b.want {
			t.Errorf("%s: %q: %v, want %v", b.why, b.in, err, b.want)
		}
	}
	// Many members: the map path finds duplicates too.
	var sb strings.Builder
	sb.WriteString("{")
	for i := range 100 {
		sb.WriteString(`"k` + string(rune('A'+i%26)) + string(rune('a'+i/26)) + `":1,`)
	}
	if err := ParseObject(sb.String()+`"z":1}`, nil); err != nil {
		t.Fatalf("100 members: %v", err)
	}
	if err := ParseObject(sb.String()+`"kAa":1}`, nil); err != ErrDuplicate {
		t.Fatalf("duplicate after 100 members: %v", err)
	}
}

// manyMembers returns n distinct members "m0a":0, "m1a":0, ... of which the
// eighth is named "m7".
func manyMembers(n int) string {
	var b strings.Builder
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(`"m` + string(rune('0'+i%10)) + string(rune('a'+i/10)) + `":0`)
	}
	return strings.Replace(b.String(), `"m7a"`, `"m7"`, 1)
}

func TestVisit(t *testing.T) {
	var names, raws []string
	err := ParseObject(` {"a" : 1 ,"b\u0063":{"x": [ 1 ]},"d":"e\n"} `, func(name string, v Value) error {
		names = append(names, name)
		raws = append(raws, v.Raw())
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(names, "|"); got != "a|bc|d" {
		t.Errorf("names %q", got)
	}
	if got := strings.Join(raws, "|"); got != `1|{"x": [ 1 ]}|"e\n"` {
		t.Errorf("raw values %q", got)
	}
	stop := errors.New("stop")
	calls := 0
	err = ParseObject(`{"a":1,"b":2}`, func(string, Value) error {
		calls++
		return stop
	})
	if err != stop || calls != 1 {
		t.Errorf("visit error: %v after %d calls", err, calls)
	}
}

func TestValues(t *testing.T) {
	var got []any
	kinds := map[string]Kind{}
	err := ParseObject(`{"s":"a\"b\\c\/\n\u00e9\ud83d\ude00","i":-42,"f":1.5,"big":9007199254740993,"x":1e3,`+
		`"l":["x","y\u0021"],"e":[ ],"n":[1],"o":{},"t":true,"z":null}`, func(name string, v Value) error {
		kinds[name] = v.Kind()
		switch name {
		case "s", "i":
			s, ok := v.Str()
			got = append(got, s, ok)
		}
		switch name {
		case "i", "f", "big", "x", "s":
			n, ok := v.Int()
			got = append(got, n, ok)
		case "l", "e", "n", "o":
			l, ok := v.Strings()
			got = append(got, strings.Join(l, ","), l != nil, ok)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	want := []any{
		"a\"b\\c/\né😀", true, int64(0), false, // s
		"", false, int64(-42), true, // i
		int64(0), false, int64(0), false, int64(0), false, // f, big, x
		"x,y!", true, true, "", true, true, "", false, false, "", false, false, // l, e, n, o
	}
	if len(got) != len(want) {
		t.Fatalf("got %#v", got)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("value %d: %#v, want %#v", i, got[i], want[i])
		}
	}
	for name, k := range map[string]Kind{"s": String, "i": Number, "f": Number, "l": Array, "o": Object, "t": Bool, "z": Null} {
		if kinds[name] != k {
			t.Errorf("kind of %s: %v, want %v", name, kinds[name], k)
		}
	}
}

func TestElements(t *testing.T) {
	err := ParseObject(`{"a":[ {"k":1} , [2,[]], "s" ,3],"o":{"x":1}}`, func(name string, v Value) error {
		var raws []string
		for e := range v.Elements() {
			raws = append(raws, e.Raw())
			if len(raws) == 3 {
				break // stopping early is allowed
			}
		}
		want := map[string]string{"a": `{"k":1}|[2,[]]|"s"`, "o": ""}[name]
		if got := strings.Join(raws, "|"); got != want {
			t.Errorf("elements of %s: %q, want %q", name, got, want)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// Elements of an array nested as deep as allowed.
	deep := `{"x":` + strings.Repeat("[", MaxDepth-1) + strings.Repeat("]", MaxDepth-1) + `}`
	err = ParseObject(deep, func(_ string, v Value) error {
		levels := 1
		for {
			var inner Value
			for e := range v.Elements() {
				inner = e
			}
			if inner.Kind() == 0 {
				break
			}
			v, levels = inner, levels+1
		}
		if levels != MaxDepth-1 || v.Raw() != "[]" {
			t.Errorf("descended %d levels to %s", levels, v.Raw())
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n := len(func() (out []Value) {
		for e := range (Value{}).Elements() {
			out = append(out, e)
		}
		return out
	}()); n != 0 {
		t.Errorf("zero Value has %d elements", n)
	}
}

func TestAppendString(t *testing.T) {
	for _, s := range []string{"", "plain", "quote\"back\\slash", "ctrl\x01\x1f\x7f", "é😀", "tab\tnl\n", "</script>"} {
		enc := AppendString(nil, s)
		var dec string
		if err := json.Unmarshal(enc, &dec); err != nil || dec != s {
			t.Errorf("AppendString(%q) = %s, decoded %q, %v", s, enc, dec, err)
		}
		var got string
		err := ParseObject(`{"k":`+string(enc)+`}`, func(_ string, v Value) error {
			got, _ = v.Str()
			return nil
		})
		if err != nil || got != s {
			t.Errorf("round trip of %q: %q, %v", s, got, err)
		}
	}
	if got := string(AppendString([]byte("x"), "a\xffb")); got != "x\"a\ufffdb\"" {
		t.Errorf("invalid UTF-8 encoded as %q", got)
	}
}

// TestAppendCanonicalString checks the string serialisation of RFC 8785
// §3.2.2.2 (ECMAScript's JSON.stringify): the short escapes where ES has
// them, \u00xx in lower case for the other control characters, nothing
// else escaped (not '/', DEL, '<', U+2028 or non-ASCII).
func TestAppendCanonicalString(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"", `""`},
		{"quote\"back\\slash", `"quote\"back\\slash"`},
		{"\b\t\n\f\r", `"\b\t\n\f\r"`},
		{"\x00\x01\x0b\x1f", `"\u0000\u0001\u000b\u001f"`},
		{"/\x7f<>&\u2028é😀", "\"/\x7f<>&\u2028é😀\""},
		// RFC 8785 Appendix B's string example, without its lone surrogate.
		{"\u20ac$\u000F\u000aA'B\"\\\\\"/", `"€$\u000f\nA'B\"\\\\\"/"`},
		{"a\xffb", "\"a\ufffdb\""},
	} {
		if got := string(AppendCanonicalString(nil, c.in)); got != c.want {
			t.Errorf("AppendCanonicalString(%q) = %s, want %s", c.in, got, c.want)
		}
		if c.in == "a\xffb" {
			continue
		}
		var dec string
		if err := json.Unmarshal([]byte(c.want), &dec); err != nil || dec != c.in {
			t.Errorf("%s decodes to %q, %v", c.want, dec, err)
		}
	}
}

// A proof's header and claims, the common case, are read without
// allocating.
func TestParseObjectAllocs(t *testing.T) {
	hdr := `{"typ":"dpop+jwt","alg":"ES256","jwk":{"crv":"P-256","kty":"EC","x":"l8tFrhx-34tV3hRICRDY9zCkDlpBhF42UQUfWVAWBFs","y":"9VE4jf_Ok_o64zbTTlcuNJajHmt6v9TDVrU0CdvGRDA"}}`
	visit := func(string, Value) error { return nil }
	if n := testing.AllocsPerRun(100, func() { _ = ParseObject(hdr, visit) }); n != 0 {
		t.Errorf("%v allocations", n)
	}
}

func BenchmarkParseObject(b *testing.B) {
	claims := `{"jti":"Wb3ZQFEXk5HyVp2aGFPEVQ","htm":"POST","htu":"https://bank.example/bank.v1.Bank/AddPayee","iat":1700000000,"ath":"fUHyO2r2Z3DZ53EsNrWBb0xWXoaNy59IiKCAqksmQEo","nonce":"eyJ0IjoxNzAwMDAwMDAwfQ"}`
	b.ReportAllocs()
	b.SetBytes(int64(len(claims)))
	for b.Loop() {
		if err := ParseObject(claims, func(string, Value) error { return nil }); err != nil {
			b.Fatal(err)
		}
	}
}

// FuzzJSONObject compares the parser with encoding/json: whatever it
// accepts, encoding/json accepts as an object; whatever encoding/json
// accepts it refuses only for a documented reason (duplicates, depth,
// invalid UTF-8, unpaired surrogates).
func FuzzJSONObject(f *testing.F) {
	for _, s := range []string{`{}`, `{"a":[1,{"b":"c"}],"d":-1.5e3}`, `{"a":1,"a":2}`, `{"a":"\ud83d\ude00"}`, `[1]`} {
		f.Add(s)
	}
	surrogate := regexp.MustCompile(`(?i)\\u[dD][89a-f]`)
	f.Fuzz(func(t *testing.T, s string) {
		err := ParseObject(s, nil)
		valid := json.Valid([]byte(s))
		if err == nil {
			var m map[string]json.RawMessage
			if !valid || json.Unmarshal([]byte(s), &m) != nil {
				t.Fatalf("accepted %q, encoding/json refuses", s)
			}
			return
		}
		trimmed := bytes.TrimSpace([]byte(s))
		if !valid || len(trimmed) == 0 || trimmed[0] != '{' {
			return
		}
		if err == ErrDuplicate || err == ErrTooDeep || !utf8.ValidString(s) || surrogate.MatchString(s) {
			return
		}
		t.Fatalf("refused valid object %q: %v", s, err)
	})
}

func TestReadMembers(t *testing.T) {
	read := func(s string) (string, error) {
		var got string
		err := ReadMembers([]byte(s), 3, func(name string, v Value) (uint16, bool) {
			switch name {
			case "a":
				var ok bool
				got, ok = v.Str()
				return 1, ok
			case "b":
				_, ok := v.Int()
				return 2, ok
			}
			return 0, true
		})
		return got, err
	}
	if got, err := read(`{"a":"x","b":1,"c":[]}`); err != nil || got != "x" {
		t.Fatalf("%q, %v", got, err)
	}
	for _, s := range []string{`{"a":"x"}`, `{"a":1,"b":1}`, `{"a":"x","b":"1"}`} {
		if _, err := read(s); !errors.Is(err, ErrMembers) {
			t.Errorf("%s: %v, want ErrMembers", s, err)
		}
	}
	if _, err := read(`{"a":"x","b":1,"a":"y"}`); err == nil {
		t.Error("a duplicate member was accepted")
	}
}
