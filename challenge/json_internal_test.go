package challenge

import (
	"strings"
	"testing"

	"github.com/stepupgrpc/stepup/internal/base64url"
)

// The claims are written in a fixed member order: tokens are byte for byte
// reproducible, and the strict parser reads back what was written.
func TestClaimsEncoding(t *testing.T) {
	shared := tokenClaims{ID: "id", Subject: "al\"ice\u00e9", Thumbprint: "t", IssuedAt: 1, Expires: 2}
	c := challengeClaims{tokenClaims: shared, Method: "/a.B/C", ACR: []string{}, Factors: []string{"totp", "webauthn"}, MaxAge: 60}
	const wantC = `{"jti":"id","sub":"al\"iceé","jkt":"t","mth":"/a.B/C","acr":[],"fac":["totp","webauthn"],"mxa":60,"iat":1,"exp":2}`
	if got := string(c.encode()); got != wantC {
		t.Errorf("challenge claims:\n%s\nwant\n%s", got, wantC)
	}
	c.Digest = "d"
	const wantD = `{"jti":"id","sub":"al\"iceé","jkt":"t","mth":"/a.B/C","dig":"d","acr":[],"fac":["totp","webauthn"],"mxa":60,"iat":1,"exp":2}`
	if got := string(c.encode()); got != wantD {
		t.Errorf("challenge claims with dig:\n%s\nwant\n%s", got, wantD)
	}
	if again, err := parseChallengeClaims(c.encode()); err != nil || again.tokenClaims != shared || again.Digest != "d" ||
		again.Method != c.Method || len(again.ACR) != 0 || strings.Join(again.Factors, ",") != "totp,webauthn" || again.MaxAge != 60 {
		t.Errorf("challenge round trip: %+v, %v", again, err)
	}
	g := grantClaims{tokenClaims: shared, Factor: "totp", AuthTime: 1}
	const wantG = `{"jti":"id","sub":"al\"iceé","jkt":"t","fac":"totp","auth_time":1,"iat":1,"exp":2}`
	if got := string(g.encode()); got != wantG {
		t.Errorf("grant claims:\n%s\nwant\n%s", got, wantG)
	}
	if again, err := parseGrantClaims(g.encode()); err != nil || *again != g {
		t.Errorf("grant round trip: %+v, %v", again, err)
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
		forged := base64url.EncodeToString([]byte(hdr)) + "." + rest
		if _, _, f := ks.verify(forged, GrantType); f != want {
			t.Errorf("%s: %v, want %v", hdr, f, want)
		}
	}
}
