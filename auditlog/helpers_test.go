package auditlog_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"

	"github.com/stepupgrpc/stepup/auditlog"
	"github.com/stepupgrpc/stepup/interceptor"
	"github.com/stepupgrpc/stepup/testing/testkit"
)

// newKey returns a new signing key of alg and the key set that verifies
// it, read back from its public JWKS as a verifier would.
func newKey(t testing.TB, alg, kid string) (auditlog.SigningKey, *auditlog.KeySet) {
	t.Helper()
	var key auditlog.SigningKey
	switch alg {
	case auditlog.AlgEd25519:
		_, priv, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		key = auditlog.SigningKey{ID: kid, Signer: priv}
	case auditlog.AlgES256:
		priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		key = auditlog.SigningKey{ID: kid, Signer: priv}
	default:
		t.Fatalf("alg %s", alg)
	}
	jwks, err := auditlog.PublicJWKS(key)
	if err != nil {
		t.Fatal(err)
	}
	keys, err := auditlog.ParseKeySet(jwks)
	if err != nil {
		t.Fatal(err)
	}
	return key, keys
}

var start = time.Date(2026, 11, 27, 4, 19, 34, 0, time.UTC)

// event returns the i-th event of a made-up stream of decisions, each
// told apart by its token id.
func event(i int) *interceptor.Event {
	return &interceptor.Event{
		Time: start.Add(time.Duration(i) * time.Millisecond), Decision: interceptor.DecisionAllow, Reason: interceptor.ReasonAllowed,
		Code: codes.OK, Method: "/bank.v1.BankService/GetBalance", Peer: "192.0.2.7:50123", UserAgent: "bank-app/2.1 grpc-go/1.85.0",
		Subject: "alice", TokenID: fmt.Sprintf("at-%06d", i), ClientID: "bank-app", Thumbprint: "-5AHaR6LZ51lOtEmijz3_cT4d9APOSi5sXMloY-tipE",
		Latency: 86 * time.Microsecond,
	}
}

// openSink opens a sink in dir with a settable clock.
func openSink(t testing.TB, dir string, key auditlog.SigningKey, opts ...auditlog.Option) (*auditlog.Sink, *testkit.Clock) {
	t.Helper()
	clock := testkit.NewClock(start)
	s, err := auditlog.Open(dir, key, append([]auditlog.Option{auditlog.WithClock(clock.Now), auditlog.WithReplica("bank-1"),
		auditlog.WithLogger(discardLogger())}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	return s, clock
}

// writeEvents audits events from..to-1.
func writeEvents(s *auditlog.Sink, from, to int) {
	for i := from; i < to; i++ {
		s.Audit(context.Background(), event(i))
	}
}

// files returns the trail files of dir, in chain order (their names sort
// so within a chain).
func files(t testing.TB, dir string) []string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(dir, "*"+auditlog.FileExt))
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(m)
	return m
}

// readLines returns a file's lines, without line feeds.
func readLines(t testing.TB, path string) []string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return strings.Split(strings.TrimSuffix(string(data), "\n"), "\n")
}

// writeLines replaces a file's content by lines.
func writeLines(t testing.TB, path string, lines []string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
}

// entries parses a file's lines.
func entries(t testing.TB, path string) []*auditlog.Entry {
	t.Helper()
	var out []*auditlog.Entry
	for i, l := range readLines(t, path) {
		e, err := auditlog.ParseEntry([]byte(l))
		if err != nil {
			t.Fatalf("%s:%d: %v", path, i+1, err)
		}
		out = append(out, e)
	}
	return out
}

// verify runs Verify on dir and fails the test on an error.
func verify(t testing.TB, keys *auditlog.KeySet, paths []string, opts ...func(*auditlog.VerifyOptions)) *auditlog.Result {
	t.Helper()
	o := auditlog.VerifyOptions{Keys: keys}
	for _, f := range opts {
		f(&o)
	}
	res, err := auditlog.Verify(paths, o)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// problems lists a result's problems, one a line, for failure messages.
func problems(r *auditlog.Result) string {
	var b bytes.Buffer
	for _, p := range r.Problems {
		fmt.Fprintln(&b, p)
	}
	return b.String()
}

func discardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }
