package dpop

import (
	"strings"
	"testing"

	"github.com/stepupgrpc/stepup/internal/strictjson"
)

// Every refusal of the strict JSON parser is ReasonMalformed, with one fixed
// detail per cause and nothing of the input. The parser itself is tested in
// internal/strictjson.
func TestJSONReasons(t *testing.T) {
	deep := `{"x":` + strings.Repeat("[", strictjson.MaxDepth) + strings.Repeat("]", strictjson.MaxDepth) + `}`
	for _, c := range []struct {
		in   string
		want *ProofError
		text string
	}{
		{`{"a":1,"b":2}`, nil, ""},
		{`{"a":1,}`, errJSONSyntax, "dpop: DPOP_MALFORMED: invalid JSON"},
		{"{\"a\":\"\xff\"}", errJSONSyntax, "dpop: DPOP_MALFORMED: invalid JSON"},
		{`{"a":"\ud800"}`, errJSONSyntax, "dpop: DPOP_MALFORMED: invalid JSON"},
		{`{"a":1,"\u0061":2}`, errJSONDup, "dpop: DPOP_MALFORMED: duplicate JSON member name"},
		{`{"o":{"b":1,"b":1}}`, errJSONDup, "dpop: DPOP_MALFORMED: duplicate JSON member name"},
		{deep, errJSONDeep, "dpop: DPOP_MALFORMED: JSON nested too deep"},
		{`["a"]`, errJSONObject, "dpop: DPOP_MALFORMED: JSON value is not an object"},
	} {
		err := parseJSONObject(c.in, nil)
		if err != c.want {
			t.Errorf("%q: %v, want %v", c.in, err, c.want)
			continue
		}
		if err != nil && (err.Reason != ReasonMalformed || err.Error() != c.text || err.Err != nil) {
			t.Errorf("%q: %#v", c.in, err)
		}
	}
	// An *Error from visit is returned as it is.
	stop := newError(ReasonBadKey, "stop")
	if err := parseJSONObject(`{"a":1}`, func(string, strictjson.Value) error { return stop }); err != stop {
		t.Errorf("visit error: %v", err)
	}
}

// Members of the wrong JSON type are refused as malformed (header, claims)
// or as a bad key (jwk), never read as if they had the right type.
func TestJSONMemberTypes(t *testing.T) {
	var c claims
	for _, payload := range []string{
		`{"jti":1,"htm":"POST","htu":"https://a/b","iat":1}`,
		`{"jti":"0123456789abcdef","htm":"POST","htu":"https://a/b","iat":"1"}`,
		`{"jti":"0123456789abcdef","htm":["POST"],"htu":"https://a/b","iat":1}`,
	} {
		if err := parseClaims(payload, &c); err == nil || err.Reason != ReasonMalformed || !strings.Contains(err.Detail, "wrong JSON type") {
			t.Errorf("%s: %v", payload, err)
		}
	}
	if _, err := parseJWK(`{"kty":"EC","crv":"P-256","x":1,"y":"y"}`, false); err == nil || err.Reason != ReasonBadKey {
		t.Errorf("ill-typed jwk: %v", err)
	}
	if _, err := parseJWK(`{"kty":"EC","kty":"EC"}`, false); err != errJSONDup {
		t.Errorf("duplicate jwk member: %v", err)
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
