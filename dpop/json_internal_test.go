package dpop

import (
	"bytes"
	"encoding/json"
	"regexp"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestParseJSONObject(t *testing.T) {
	ok := []string{
		`{}`, ` { } `, `{"a":1}`, `{"a":"b","c":[1,2,{"d":null}],"e":true,"f":false,"g":-0.5e+10}`,
		`{"a":"\u00e9\ud83d\ude00\n\"\\\/"}`, `{"a":{},"b":{"a":1}}`, // same name in different objects
		`{"` + strings.Repeat("k", 1000) + `":1}`,
		`{"x":` + strings.Repeat("[", maxJSONDepth-1) + strings.Repeat("]", maxJSONDepth-1) + `}`,
	}
	for _, s := range ok {
		if err := parseJSONObject(s, nil); err != nil {
			t.Errorf("refused %q: %v", s, err)
		}
	}
	bad := []struct{ in, why string }{
		{``, "empty"}, {`[]`, "array"}, {`"x"`, "string"}, {`{}x`, "trailing"}, {`{}{}`, "two values"},
		{`{"a":1,}`, "trailing comma"}, {`{"a" 1}`, "no colon"}, {`{a:1}`, "bare key"},
		{`{"a":01}`, "leading zero"}, {`{"a":1.}`, "bare point"}, {`{"a":.5}`, "no int"}, {`{"a":1e}`, "bare exponent"},
		{`{"a":+1}`, "plus"}, {`{"a":NaN}`, "NaN"}, {`{"a":tru}`, "bad literal"},
		{"{\"a\":\"\x01\"}", "control char"}, {"{\"a\":\"\xff\"}", "invalid UTF-8"},
		{`{"a":"\x"}`, "bad escape"}, {`{"a":"\u12"}`, "short escape"},
		{`{"a":"\ud800"}`, "lone high surrogate"}, {`{"a":"\udc00"}`, "lone low surrogate"},
		{`{"a":"\ud800\u0041"}`, "bad pair"},
		{`{"a":1,"a":2}`, "duplicate"}, {`{"a":1,"\u0061":2}`, "escaped duplicate"},
		{`{"o":{"b":1,"b":1}}`, "nested duplicate"},
		{`{"x":` + strings.Repeat("[", maxJSONDepth) + strings.Repeat("]", maxJSONDepth) + `}`, "too deep"},
		{`{"a":"unterminated}`, "unterminated"},
	}
	for _, b := range bad {
		if err := parseJSONObject(b.in, nil); err == nil || err.Reason != ReasonMalformed {
			t.Errorf("%s: accepted %q (%v)", b.why, b.in, err)
		}
	}
	// Many members: the map path finds duplicates too.
	var sb strings.Builder
	sb.WriteString("{")
	for i := range 100 {
		sb.WriteString(`"k` + string(rune('A'+i%26)) + string(rune('a'+i/26)) + `":1,`)
	}
	if err := parseJSONObject(sb.String()+`"z":1}`, nil); err != nil {
		t.Fatalf("100 members: %v", err)
	}
	if err := parseJSONObject(sb.String()+`"kAa":1}`, nil); err != errJSONDup {
		t.Fatalf("duplicate after 100 members: %v", err)
	}
}

func TestUnescapeAndAppend(t *testing.T) {
	for _, s := range []string{"plain", "quote\"back\\slash", "ctrl\x01\x1f", "é😀", "tab\tnl\n"} {
		enc := appendJSONString(nil, s)
		var dec string
		if err := json.Unmarshal(enc, &dec); err != nil || dec != s {
			t.Errorf("appendJSONString(%q) = %s, decoded %q, %v", s, enc, dec, err)
		}
		var got string
		err := parseJSONObject(`{"k":`+string(enc)+`}`, func(_ string, v jsonValue) *Error {
			got = v.str()
			return nil
		})
		if err != nil || got != s {
			t.Errorf("round trip of %q: %q, %v", s, got, err)
		}
	}
	if got := string(appendJSONString(nil, "a\xffb")); got != "\"a\ufffdb\"" {
		t.Errorf("invalid UTF-8 encoded as %q", got)
	}
}

func TestNormalisePath(t *testing.T) {
	cases := map[string]string{
		"/a/b":         "/a/b",
		"/%7Euser":     "/~user",
		"/a%2fb":       "/a%2Fb",
		"/%41%42":      "/AB",
		"/a%20b":       "/a%20b",
		"/a/./b":       "",
		"/a/../b":      "",
		"/a/%2E%2E/b":  "",
		"/..":          "",
		"/a%2":         "",
		"/a%zz":        "",
		"relative":     "",
		"/a/.b/..c/.d": "/a/.b/..c/.d",
	}
	for in, want := range cases {
		got, ok := normalisePath(in)
		if want == "" && ok {
			t.Errorf("normalisePath(%q) accepted: %q", in, got)
		}
		if want != "" && (!ok || got != want) {
			t.Errorf("normalisePath(%q) = %q, %v; want %q", in, got, ok, want)
		}
	}
}

// FuzzJSONObject compares the strict parser with encoding/json: whatever we
// accept, encoding/json accepts as an object; whatever encoding/json accepts
// we refuse only for a documented reason (duplicates, depth, invalid UTF-8,
// unpaired surrogates).
func FuzzJSONObject(f *testing.F) {
	for _, s := range []string{`{}`, `{"a":[1,{"b":"c"}],"d":-1.5e3}`, `{"a":1,"a":2}`, `{"a":"\ud83d\ude00"}`, `[1]`} {
		f.Add(s)
	}
	surrogate := regexp.MustCompile(`(?i)\\u[dD][89a-f]`)
	f.Fuzz(func(t *testing.T, s string) {
		err := parseJSONObject(s, nil)
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
		if err == errJSONDup || err == errJSONDeep || !utf8.ValidString(s) || surrogate.MatchString(s) {
			return
		}
		t.Fatalf("refused valid object %q: %v", s, err)
	})
}
