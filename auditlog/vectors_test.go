package auditlog_test

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"os"
	"os/exec"
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

// vectorsDir holds the example trail of docs/AUDITLOG.md: its files, the
// keys that signed it, and vectors.json (every entry's canonical form,
// hash and, for checkpoints, signing input).
const vectorsDir = "../docs/examples/audit"

// The vector keys. FOR TEST VECTORS ONLY: their private halves are
// published.
var (
	vectorEd25519 = auditlog.SigningKey{ID: "audit-ed25519-1", Signer: ed25519.NewKeyFromSeed(seq32(1))}
	vectorES256   = func() auditlog.SigningKey {
		k, err := ecdsa.ParseRawPrivateKey(elliptic.P256(), seq32(0x41))
		if err != nil {
			panic(err)
		}
		return auditlog.SigningKey{ID: "audit-es256-1", Signer: k}
	}()
)

// seq32 returns the 32 bytes first, first+1, ...
func seq32(first byte) []byte {
	b := make([]byte, 32)
	for i := range b {
		b[i] = first + byte(i)
	}
	return b
}

// vectorEvents are the decisions of the example trail: a step-up (its
// challenge, the TOTP answer), a grant reused, a replay refused, a refusal
// whose detail needs escaping, a shadow refusal and an approver page
// decision.
func vectorEvents() []interceptor.Event {
	base := interceptor.Event{Peer: "192.0.2.7:50123", UserAgent: "bank-app/2.1 grpc-go/1.85.0", Subject: "alice", TokenID: "at-alice-1",
		ClientID: "bank-app", Thumbprint: "-5AHaR6LZ51lOtEmijz3_cT4d9APOSi5sXMloY-tipE", Latency: 511720 * time.Nanosecond}
	with := func(f func(*interceptor.Event)) interceptor.Event {
		e := base
		f(&e)
		return e
	}
	const transfer, addPayee = "/bank.v1.BankService/Transfer", "/bank.v1.BankService/AddPayee"
	return []interceptor.Event{
		with(func(e *interceptor.Event) {
			e.Decision, e.Reason, e.Code, e.Method, e.StepUpRequired = interceptor.DecisionChallenge, interceptor.ReasonStepUpRequired, codes.Unauthenticated, transfer, true
			e.TraceID, e.IssuedChallengeID = "4bf92f3577b34da6a3ce929d0e0e4736", "NGAvshlMUiuTf_sbIvHAiA"
		}),
		with(func(e *interceptor.Event) {
			e.Decision, e.Reason, e.Code, e.Method, e.StepUpRequired = interceptor.DecisionStepUpPassed, interceptor.ReasonAllowed, codes.OK, transfer, true
			e.Via, e.Factor, e.ChallengeID = "answer", "totp", "NGAvshlMUiuTf_sbIvHAiA"
		}),
		with(func(e *interceptor.Event) {
			e.Decision, e.Reason, e.Code, e.Method, e.StepUpRequired = interceptor.DecisionStepUpPassed, interceptor.ReasonAllowed, codes.OK, addPayee, true
			e.Via, e.Factor, e.ChallengeID, e.IssuedGrantID = "answer", "totp", "f2NZQmy0LOrJ5CtbVoCcMg", "vQX_Y-CUzmKOz8qriZNrgg"
		}),
		with(func(e *interceptor.Event) {
			e.Decision, e.Reason, e.Code, e.Method, e.StepUpRequired = interceptor.DecisionAllow, interceptor.ReasonAllowed, codes.OK, addPayee, true
			e.Via, e.Factor, e.GrantID = "grant", "totp", "vQX_Y-CUzmKOz8qriZNrgg"
		}),
		with(func(e *interceptor.Event) {
			e.Decision, e.Reason, e.Code, e.Method = interceptor.DecisionDeny, "DPOP_REPLAYED", codes.Unauthenticated, "/bank.v1.BankService/GetBalance"
			e.Peer, e.UserAgent, e.Thumbprint, e.Detail = "198.51.100.9:4242", "curl/8.5.0", "", "dpop: DPOP_REPLAYED: jti already used"
		}),
		with(func(e *interceptor.Event) {
			e.Decision, e.Reason, e.Code, e.Method = interceptor.DecisionDeny, interceptor.ReasonTokenVerifierFailed, codes.Unavailable, "/bank.v1.BankService/GetBalance"
			e.Subject, e.TokenID, e.ClientID, e.Thumbprint = "", "", "", ""
			e.Detail = "introspection said \"inactive\"\n\tat C:\\idp\\é\x01 €"
		}),
		with(func(e *interceptor.Event) {
			e.Decision, e.Reason, e.Code, e.Method, e.StepUpRequired = interceptor.DecisionShadowDeny, interceptor.ReasonStepUpRequired, codes.OK, "/bank.v1.BankService/ExportStatements", true
			e.Stream = true
		}),
		{Decision: interceptor.DecisionApprovalApproved, Reason: interceptor.ReasonAllowed, Code: codes.OK, Method: transfer, Subject: "alice",
			ChallengeID: "aWQtb2YtYW4tYXBwcm92YWw", SummaryDigest: "o7vHwFnr2lqnNzUNZxt0oMSgNBMjmXYkkWdLEIhnlBU", Peer: "198.51.100.20:51000",
			UserAgent: "Mozilla/5.0 (iPhone)"},
	}
}

// writeVectorTrail writes the example trail into dir: chain 1 of bank-1
// (Ed25519, three files), chain 2 of bank-1 (its successor), and a chain
// of bank-2 (ES256). Every step is flushed before the clock moves, so that
// the bytes depend on nothing but the keys, the clock and the events
// (Ed25519 signatures are deterministic; ES256 ones are not).
func writeVectorTrail(t *testing.T, dir string, withES256 bool) {
	t.Helper()
	clock := testkit.NewClock(start)
	open := func(key auditlog.SigningKey, replica, chain string) *auditlog.Sink {
		s, err := auditlog.Open(dir, key, auditlog.WithReplica(replica), auditlog.WithChainID(chain), auditlog.WithClock(clock.Now),
			auditlog.WithCheckpointEvery(3), auditlog.WithCheckpointInterval(0), auditlog.WithTinyFiles(2600), auditlog.WithLogger(discardLogger()))
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	write := func(s *auditlog.Sink, evs []interceptor.Event) {
		for i := range evs {
			clock.Advance(time.Second)
			evs[i].Time = clock.Now()
			s.Audit(t.Context(), &evs[i])
			if err := s.Flush(); err != nil {
				t.Fatal(err)
			}
		}
		clock.Advance(time.Second)
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
	write(open(vectorEd25519, "bank-1", "bank-1-20261127T041934Z-0123456789abcdef"), vectorEvents())
	clock.Set(start.Add(time.Hour))
	write(open(vectorEd25519, "bank-1", "bank-1-20261127T051934Z-89abcdef01234567"), vectorEvents()[4:6])
	if withES256 {
		clock.Set(start.Add(30 * time.Minute))
		write(open(vectorES256, "bank-2", "bank-2-20261127T044934Z-fedcba9876543210"), vectorEvents()[:2])
	}
}

// vector is one entry of vectors.json.
type vector struct {
	File      string `json:"file"`
	Line      int    `json:"line"`
	Canonical string `json:"canonical"`
	// SHA256 is the base64url SHA-256 of Canonical: the next entry's prev.
	SHA256 string `json:"sha256"`
	// SigningInput is what a checkpoint's sig signs, as a string.
	SigningInput string `json:"signing_input,omitempty"`
}

func trailFiles(t *testing.T, dir string) []string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(dir, "*.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(m)
	return m
}

// TestVectors checks the example trail of docs/AUDITLOG.md: it verifies
// with the published keys; this code writes its Ed25519 chains byte for
// byte; vectors.json holds each entry's canonical form, hash and signing
// input as computed here; and, when node is installed, the JavaScript
// verifier written from the specification (verify.mjs) accepts it and
// refuses a modified copy. STEPUP_WRITE_VECTORS=1 writes the files again.
func TestVectors(t *testing.T) {
	if os.Getenv("STEPUP_WRITE_VECTORS") != "" {
		for _, f := range trailFiles(t, vectorsDir) {
			os.Remove(f)
		}
		writeVectorTrail(t, vectorsDir, true)
		writeVectorKeys(t)
		writeVectorsJSON(t)
	}
	keys, err := auditlog.ReadKeySet(filepath.Join(vectorsDir, "audit-keys.jwks"))
	if err != nil {
		t.Fatal(err)
	}
	res := verify(t, keys, []string{vectorsDir})
	if !res.OK() || len(res.Chains) != 3 {
		t.Fatalf("%+v\n%s", res.Chains, problems(res))
	}
	for _, c := range res.Chains {
		if c.End != auditlog.EndClosed || c.Unverified != 0 {
			t.Errorf("%+v", c)
		}
	}

	// The Ed25519 chains, written again, are the same bytes.
	again := t.TempDir()
	writeVectorTrail(t, again, false)
	for _, f := range trailFiles(t, again) {
		want, err := os.ReadFile(filepath.Join(vectorsDir, filepath.Base(f)))
		if err != nil {
			t.Fatal(err)
		}
		got, _ := os.ReadFile(f)
		if !bytes.Equal(got, want) {
			t.Errorf("%s differs from the vector written before (STEPUP_WRITE_VECTORS=1 writes it again, if the format was meant to change)", filepath.Base(f))
		}
	}

	// vectors.json matches the files and this code's canonical forms.
	data, err := os.ReadFile(filepath.Join(vectorsDir, "vectors.json"))
	if err != nil {
		t.Fatal(err)
	}
	var vs []vector
	if err := json.Unmarshal(data, &vs); err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, f := range trailFiles(t, vectorsDir) {
		for i, l := range readLines(t, f) {
			v := vs[n]
			n++
			e, err := auditlog.ParseEntry([]byte(l))
			if err != nil {
				t.Fatal(err)
			}
			sum := sha256.Sum256([]byte(v.Canonical))
			if v.File != filepath.Base(f) || v.Line != i+1 || v.Canonical != l || string(e.AppendCanonical(nil, true)) != l ||
				v.SHA256 != base64.RawURLEncoding.EncodeToString(sum[:]) || v.SHA256 != e.HashString() {
				t.Errorf("vector %s:%d does not match", v.File, v.Line)
			}
			if e.Kind == auditlog.KindCheckpoint && v.SigningInput != string(e.SigningInput()) {
				t.Errorf("vector %s:%d: signing input differs", v.File, v.Line)
			}
		}
	}
	if n != len(vs) {
		t.Errorf("%d vectors for %d entries", len(vs), n)
	}
	checkWithNode(t, keys)
}

// checkWithNode runs the JavaScript verifier on the vectors, and on a
// copy with one record changed, when node is installed (CI has it).
func checkWithNode(t *testing.T, keys *auditlog.KeySet) {
	node, err := exec.LookPath("node")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("node is not installed")
		}
		t.Skip("node is not installed: the JavaScript verifier was not run")
	}
	run := func(dir string) (string, int) {
		cmd := exec.Command(node, filepath.Join(vectorsDir, "verify.mjs"), filepath.Join(vectorsDir, "audit-keys.jwks"), dir)
		out, err := cmd.CombinedOutput()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		return string(out), code
	}
	if out, code := run(vectorsDir); code != 0 || !strings.Contains(out, "ok: 3 chains") {
		t.Errorf("verify.mjs on the vectors: exit %d\n%s", code, out)
	}
	// A modified copy: the JavaScript verifier must refuse it too, and Go
	// with it.
	dir := t.TempDir()
	for _, f := range trailFiles(t, vectorsDir) {
		data, _ := os.ReadFile(f)
		if strings.HasSuffix(f, "0123456789abcdef.000001.jsonl") {
			data = bytes.Replace(data, []byte(`"decision":"challenge"`), []byte(`"decision":"allow"`), 1)
		}
		if err := os.WriteFile(filepath.Join(dir, filepath.Base(f)), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if out, code := run(dir); code == 0 || !strings.Contains(out, "does not match the prev") {
		t.Errorf("verify.mjs on a modified copy: exit %d\n%s", code, out)
	}
	if res := verify(t, keys, []string{dir}); res.Worst() != auditlog.ProblemModified {
		t.Errorf("Verify on the modified copy: %s", problems(res))
	}
}

func writeVectorKeys(t *testing.T) {
	t.Helper()
	var pub, priv []json.RawMessage
	for _, k := range []auditlog.SigningKey{vectorEd25519, vectorES256} {
		p, err := auditlog.PublicJWKS(k)
		if err != nil {
			t.Fatal(err)
		}
		var set struct{ Keys []json.RawMessage }
		if err := json.Unmarshal(p, &set); err != nil {
			t.Fatal(err)
		}
		pub = append(pub, set.Keys...)
		d, err := auditlog.MarshalPrivateJWK(k)
		if err != nil {
			t.Fatal(err)
		}
		priv = append(priv, d)
	}
	for name, keys := range map[string][]json.RawMessage{"audit-keys.jwks": pub, "audit-keys.private.jwks": priv} {
		data, err := json.MarshalIndent(map[string]any{"keys": keys}, "", "  ")
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(vectorsDir, name), append(data, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func writeVectorsJSON(t *testing.T) {
	t.Helper()
	var vs []vector
	for _, f := range trailFiles(t, vectorsDir) {
		for i, l := range readLines(t, f) {
			e, err := auditlog.ParseEntry([]byte(l))
			if err != nil {
				t.Fatal(err)
			}
			v := vector{File: filepath.Base(f), Line: i + 1, Canonical: l, SHA256: e.HashString()}
			if e.Kind == auditlog.KindCheckpoint {
				v.SigningInput = string(e.SigningInput())
			}
			vs = append(vs, v)
		}
	}
	data, err := json.MarshalIndent(vs, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(vectorsDir, "vectors.json"), append(data, '\n'), 0o644); err != nil {
		t.Fatal(err)
	}
}
