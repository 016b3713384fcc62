package interceptor

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// addSeeds is f.Add for each seed; with -interceptor.writecorpus (defined
// in fuzz_test.go) it also writes them to testdata/fuzz/<target>/.
func addSeeds(f *testing.F, seeds []string) {
	write := false
	if fl := flag.Lookup("interceptor.writecorpus"); fl != nil {
		write, _ = strconv.ParseBool(fl.Value.String())
	}
	dir := filepath.Join("testdata", "fuzz", f.Name())
	for i, s := range seeds {
		f.Add(s)
		if !write {
			continue
		}
		if err := os.MkdirAll(dir, 0o755); err != nil {
			f.Fatal(err)
		}
		body := "go test fuzz v1\nstring(" + strconv.Quote(s) + ")\n"
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("seed-%02d", i)), []byte(body), 0o644); err != nil {
			f.Fatal(err)
		}
	}
}

// token68RE is RFC 9110 §11.2: token68 = 1*( ALPHA / DIGIT / "-" / "." /
// "_" / "~" / "+" / "/" ) *"=".
var token68RE = regexp.MustCompile(`^[A-Za-z0-9\-._~+/]+=*$`)

// FuzzIsToken68 checks isToken68 against the RFC 9110 §11.2 grammar.
func FuzzIsToken68(f *testing.F) {
	addSeeds(f, []string{
		"", "=", "a", "a=", "a==", "a=b", "=a", "abc.def.ghi", "A-Z_a~z+/09", "a b", "a\tb", "ä", "a\x00",
		"eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJhIn0.c2ln", "Kz~8mXK1EalYznwH-LC-1fBAo.4Ljp~zsPE_NeO.gxU",
	})
	f.Fuzz(func(t *testing.T, s string) {
		if got, want := isToken68(s), token68RE.MatchString(s); got != want {
			t.Fatalf("isToken68(%q) = %v, the grammar says %v", s, got, want)
		}
	})
}

// FuzzParseAuthorization checks the authorization header parser: it never
// panics, accepts only "<scheme> <token68>" with the scheme DPoP or Bearer
// in any case and exactly one space, and returns the credentials unchanged.
func FuzzParseAuthorization(f *testing.F) {
	addSeeds(f, []string{
		"", "DPoP", "DPoP ", "DPoP a", "dpop a", "DPOP a==", "Bearer a.b.c", "bearer x", "BEARER x",
		"DPoP  a", "DPoP a b", "DPoP\ta", " DPoP a", "DPoP a ", "Basic YWxpY2U6cHc=", "DPoPa",
		"DPoP a=b", "DPoP =", "Bearer ", "DPoP eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJhIn0.c2ln",
		"DPoP Kz~8mXK1EalYznwH-LC-1fBAo.4Ljp~zsPE_NeO.gxU", "Dpop\u00a0a", "DPoP\x00a", "DPoP a\r\n",
		"ＤPoP a", "Bearer, DPoP a",
	})
	f.Fuzz(func(t *testing.T, v string) {
		scheme, token, ok := parseAuthorization(v)
		name, rest, cut := strings.Cut(v, " ")
		wantOK := cut && token68RE.MatchString(rest) && (strings.EqualFold(name, "DPoP") || strings.EqualFold(name, "Bearer"))
		if ok != wantOK {
			t.Fatalf("parseAuthorization(%q) ok = %v, want %v", v, ok, wantOK)
		}
		if !ok {
			if scheme != 0 || token != "" {
				t.Fatalf("parseAuthorization(%q) refused but returned %v %q", v, scheme, token)
			}
			return
		}
		switch {
		case token != rest:
			t.Fatalf("parseAuthorization(%q) token = %q, want %q", v, token, rest)
		case strings.EqualFold(name, "DPoP") && scheme != schemeDPoP,
			strings.EqualFold(name, "Bearer") && scheme != schemeBearer:
			t.Fatalf("parseAuthorization(%q) scheme = %v for %q", v, scheme, name)
		case strings.ContainsAny(token, " \t\r\n\x00"):
			t.Fatalf("parseAuthorization(%q) token %q holds a separator", v, token)
		}
	})
}
