package challenge

import (
	"encoding/json"
	"strings"
	"testing"
)

// The strict parser refuses what other JSON parsers could read differently
// (RFC 8725 §3.4) and accepts everything RFC 8259 allows otherwise.
func TestParseJSONObject(t *testing.T) {
	refused := map[string]string{
		"duplicate":             `{"a":1,"a":2}`,
		"duplicate via escape":  `{"a":1,"\u0061":2}`,
		"nested duplicate":      `{"a":{"b":1,"b":2}}`,
		"too deep":              strings.Repeat(`{"a":`, maxJSONDepth+1) + "1" + strings.Repeat("}", maxJSONDepth+1),
		"too deep arrays":       `{"a":` + strings.Repeat("[", maxJSONDepth) + strings.Repeat("]", maxJSONDepth) + `}`,
		"lone high surrogate":   `{"a":"\ud800"}`,
		"lone low surrogate":    `{"a":"\udc00"}`,
		"invalid utf-8":         "{\"a\":\"\xff\"}",
		"control character":     "{\"a\":\"\x01\"}",
		"trailing data":         `{"a":1} {}`,
		"trailing comma":        `{"a":1,}`,
		"not an object":         `[1]`,
		"single quotes":         `{'a':1}`,
		"leading zero":          `{"a":01}`,
		"bad escape":            `{"a":"\x"}`,
		"unterminated":          `{"a":"b`,
		"empty":                 ``,
		"bare word":             `{"a":nul}`,
		"many members with dup": `{` + manyMembers(40) + `,"m7":0}`,
	}
	for name, in := range refused {
		t.Run(name, func(t *testing.T) {
			if err := parseJSONObject(in, nil); err == nil {
				t.Fatalf("accepted %q", in)
			}
		})
	}
	accepted := []string{
		`{}`,
		` {"a" : [1, -2.5e3, true, false, null, "x\u00e9\ud83d\ude00", {"b":[]}]} `,
		`{` + manyMembers(40) + `}`,
		strings.Repeat(`{"a":`, maxJSONDepth-1) + "1" + strings.Repeat("}", maxJSONDepth-1),
	}
	for _, in := range accepted {
		if err := parseJSONObject(in, nil); err != nil {
			t.Errorf("refused %q: %v", in, err)
		}
		if !json.Valid([]byte(in)) {
			t.Errorf("test input %q is not JSON", in)
		}
	}
}

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

func TestJSONValues(t *testing.T) {
	var got []any
	err := parseJSONObject(`{"s":"a\"b\\c\/\n\u00e9\ud83d\ude00","i":-42,"f":1.5,"big":9007199254740993,"l":["x","y"],"e":[],"n":[1]}`, func(name string, v jsonValue) error {
		switch name {
		case "s":
			s, ok := v.str()
			got = append(got, s, ok)
		case "i", "f", "big":
			n, ok := v.int()
			got = append(got, n, ok)
		case "l", "e", "n":
			l, ok := v.strings()
			got = append(got, len(l), ok)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	want := []any{"a\"b\\c/\né😀", true, int64(-42), true, int64(0), false, int64(0), false, 2, true, 0, true, 0, false}
	if len(got) != len(want) {
		t.Fatalf("got %v", got)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("value %d: %#v, want %#v", i, got[i], want[i])
		}
	}
}

// Claims that are missing, mistyped or duplicated make a token malformed
// even behind a valid MAC.
func TestClaimsStrict(t *testing.T) {
	valid := `{"jti":"x","sub":"alice","jkt":"t","mth":"/a.B/C","acr":[],"fac":["totp"],"mxa":0,"iat":1,"exp":2}`
	if _, err := parseChallengeClaims([]byte(valid)); err != nil {
		t.Fatal(err)
	}
	for _, in := range []string{
		strings.Replace(valid, `"jti":"x",`, ``, 1),
		strings.Replace(valid, `"jti":"x"`, `"jti":""`, 1),
		strings.Replace(valid, `"exp":2`, `"exp":"2"`, 1),
		strings.Replace(valid, `"exp":2`, `"exp":2.5`, 1),
		strings.Replace(valid, `"fac":["totp"]`, `"fac":"totp"`, 1),
		strings.Replace(valid, `"fac":["totp"]`, `"fac":[1]`, 1),
		strings.Replace(valid, `"mxa":0`, `"mxa":-1`, 1),
		strings.Replace(valid, `"sub":"alice"`, `"sub":"alice","sub":"bob"`, 1),
	} {
		if _, err := parseChallengeClaims([]byte(in)); err == nil {
			t.Errorf("accepted %s", in)
		}
	}
	answer := `{"chl":"a.b.c","fac":"webauthn","wan":{"id":"x"},"iat":1}`
	if a, err := parseAnswerPayload([]byte(answer)); err != nil || a.WebAuthn != `{"id":"x"}` {
		t.Fatal(a, err)
	}
	for _, in := range []string{
		`{"chl":"a.b.c","fac":"webauthn","wan":"{}","iat":1}`,
		`{"chl":"a.b.c","fac":"totp","wan":{},"iat":1}`,
		`{"chl":"a.b.c","fac":"totp","otp":"1","dev":"x","iat":1}`,
		`{"chl":"a.b.c","fac":"totp","otp":"1"}`,
		`{"chl":"","fac":"totp","otp":"1","iat":1}`,
	} {
		if _, err := parseAnswerPayload([]byte(in)); err == nil {
			t.Errorf("accepted %s", in)
		}
	}
}

func TestHeaderParsing(t *testing.T) {
	ks, err := NewKeySet(Key{ID: "k1", Secret: []byte("0123456789abcdef0123456789abcdef")})
	if err != nil {
		t.Fatal(err)
	}
	tok := ks.sign(GrantType, []byte(`{}`))
	if _, _, f := ks.verify(tok, GrantType); f != tokenOK {
		t.Fatal(f)
	}
	if _, _, f := ks.verify(tok, ChallengeType); f != tokenMalformed {
		t.Fatalf("typ confusion: %v", f)
	}
	for hdr, want := range map[string]tokenFailure{
		`{"kid":"k1","alg":"HS256","typ":"stepup-grant+jwt"}`:            tokenBadSignature, // reordered: parsed, then MAC
		`{"alg":"HS256","kid":"k9","typ":"stepup-grant+jwt"}`:            tokenBadSignature,
		`{"alg":"HS384","kid":"k1","typ":"stepup-grant+jwt"}`:            tokenMalformed,
		`{"alg":"none","kid":"k1","typ":"stepup-grant+jwt"}`:             tokenMalformed,
		`{"alg":"HS256","kid":"k1","typ":"stepup-challenge+jwt"}`:        tokenMalformed,
		`{"alg":"HS256","kid":"k1"}`:                                     tokenMalformed,
		`{"alg":"HS256","kid":"k1","typ":"stepup-grant+jwt","x":"y"}`:    tokenMalformed,
		`{"alg":"HS256","kid":"k1","typ":"stepup-grant+jwt","kid":"k1"}`: tokenMalformed,
	} {
		_, rest, _ := strings.Cut(tok, ".")
		forged := b64.EncodeToString([]byte(hdr)) + "." + rest
		if _, _, f := ks.verify(forged, GrantType); f != want {
			t.Errorf("%s: %v, want %v", hdr, f, want)
		}
	}
}
