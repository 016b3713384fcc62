package auditlog_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"os"
	"regexp"
	"strings"
	"sync"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/stats"

	"github.com/stepupgrpc/stepup/auditlog"
	"github.com/stepupgrpc/stepup/dpop"
	"github.com/stepupgrpc/stepup/interceptor"
	relayv1 "github.com/stepupgrpc/stepup/internal/testproto/relay/v1"
	"github.com/stepupgrpc/stepup/testing/relaykit"
)

// wiretap records every credential header a server receives or sends, as
// someone reading the wire would: a stats handler sees the headers before
// any interceptor.
type wiretap struct {
	mu   sync.Mutex
	seen map[string][]string // header -> values, in order
}

func (w *wiretap) TagRPC(ctx context.Context, _ *stats.RPCTagInfo) context.Context { return ctx }
func (w *wiretap) TagConn(ctx context.Context, _ *stats.ConnTagInfo) context.Context {
	return ctx
}
func (w *wiretap) HandleConn(context.Context, stats.ConnStats) {}
func (w *wiretap) HandleRPC(_ context.Context, s stats.RPCStats) {
	var md metadata.MD
	switch h := s.(type) {
	case *stats.InHeader:
		md = h.Header
	case *stats.OutHeader:
		md = h.Header
	default:
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.seen == nil {
		w.seen = map[string][]string{}
	}
	for _, k := range []string{"authorization", "dpop", "stepup-answer", "stepup-grant"} {
		w.seen[k] = append(w.seen[k], md.Get(k)...)
	}
}

func (w *wiretap) last(k string) string {
	w.mu.Lock()
	defer w.mu.Unlock()
	v := w.seen[k]
	if len(v) == 0 {
		return ""
	}
	return v[len(v)-1]
}

// TestNoCredentialInTheTrail runs real calls with real credentials through
// a real Guard writing to the trail — a TOTP step-up, a grant reused,
// plain calls, and an attacker replaying what they captured and using the
// token with their own key — then greps the trail for every credential
// that crossed the wire: access tokens, proofs, answers, the challenges
// inside them, grants, TOTP codes and the TOTP secret.
func TestNoCredentialInTheTrail(t *testing.T) {
	dir := t.TempDir()
	key, keys := newKey(t, auditlog.AlgES256, "audit-1")
	sink, err := auditlog.Open(dir, key, auditlog.WithCheckpointEvery(4), auditlog.WithLogger(discardLogger()))
	if err != nil {
		t.Fatal(err)
	}
	tap := &wiretap{}
	w := relaykit.Start(t, []interceptor.Option{interceptor.WithAuditSink(sink)}, grpc.StatsHandler(tap))
	ctx := context.Background()
	for range 2 { // a TOTP step-up, then its grant
		if _, err := w.Relay.Whoami(ctx, &relayv1.WhoamiRequest{}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := w.Relay.Echo(ctx, &relayv1.EchoRequest{Payload: []byte("ping")}); err != nil {
		t.Fatal(err)
	}
	raw := relayv1.NewRelayServiceClient(w.RawConn(t))
	authz, proof, grant := tap.last("authorization"), tap.last("dpop"), tap.last("stepup-grant")
	token, _ := strings.CutPrefix(authz, "DPoP ")
	// The attacker replays the last call's token and proof, presents the
	// grant, and signs proofs with a key of their own.
	if _, err := raw.Echo(metadata.AppendToOutgoingContext(ctx, "authorization", authz, "dpop", proof), &relayv1.EchoRequest{}); err == nil {
		t.Fatal("a replayed proof was accepted")
	}
	mk, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	mallory, err := dpop.NewSigner(mk)
	if err != nil {
		t.Fatal(err)
	}
	own, err := mallory.Proof("POST", "http://api.example/relay.v1.RelayService/Whoami", token)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := raw.Whoami(metadata.AppendToOutgoingContext(ctx, "authorization", authz, "dpop", own, "stepup-grant", grant), &relayv1.WhoamiRequest{}); err == nil {
		t.Fatal("a stolen token with another key was accepted")
	}
	if _, err := raw.Echo(metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+token), &relayv1.EchoRequest{}); err == nil {
		t.Fatal("a bound token was accepted as bearer")
	}
	if err := sink.Close(); err != nil {
		t.Fatal(err)
	}

	var trail strings.Builder
	for _, f := range files(t, dir) {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		trail.Write(data)
	}
	log := trail.String()
	if res := verify(t, keys, []string{dir}); !res.OK() || res.Chains[0].Records != 7 {
		t.Fatalf("%+v\n%s", res.Chains, problems(res))
	}
	for _, want := range []string{`"decision":"step_up_passed"`, `"via":"grant"`, `"reason":"DPOP_REPLAYED"`,
		`"reason":"DPOP_KEY_MISMATCH"`, `"reason":"TOKEN_BOUND_AS_BEARER"`, `"factor":"totp"`} {
		if !strings.Contains(log, want) {
			t.Errorf("the trail lacks %s", want)
		}
	}

	// Every credential value, and every 16 characters of it: a part long
	// enough to be recognised (or to help forge) is a leak too.
	var secrets []string
	var codes []string
	tap.mu.Lock()
	for k, vals := range tap.seen {
		for _, v := range vals {
			if k == "authorization" {
				_, v, _ = strings.Cut(v, " ")
			}
			secrets = append(secrets, v)
			if k != "stepup-answer" {
				continue
			}
			payload, err := base64.RawURLEncoding.DecodeString(strings.Split(v, ".")[1])
			if err != nil {
				t.Fatal(err)
			}
			var a struct{ Chl, Otp string }
			if err := json.Unmarshal(payload, &a); err != nil {
				t.Fatal(err)
			}
			secrets = append(secrets, a.Chl)
			codes = append(codes, a.Otp)
		}
	}
	tap.mu.Unlock()
	if len(codes) == 0 || len(tap.seen["stepup-grant"]) < 2 {
		t.Fatalf("the wiretap saw no TOTP answer, or no grant: %v", tap.seen)
	}
	secrets = append(secrets, relaykit.Secret)
	const window = 16
	inLog := map[string]bool{}
	for i := 0; i+window <= len(log); i++ {
		inLog[log[i:i+window]] = true
	}
	for _, s := range secrets {
		for i := 0; i+window <= len(s); i++ {
			if inLog[s[i:i+window]] {
				t.Errorf("the trail holds part of a credential: %q of %.30s…", s[i:i+window], s)
				break
			}
		}
	}
	// A TOTP code is six digits: looked for everywhere but in times and
	// latencies, whose digits could hold any six by chance.
	digits := regexp.MustCompile(`"time":"[^"]*"|"latency_ns":\d+`).ReplaceAllString(log, "")
	for _, c := range codes {
		if len(c) != 6 || strings.Contains(digits, c) {
			t.Errorf("the trail holds TOTP code %q", c)
		}
	}
	t.Logf("%d credentials looked for in %d bytes of trail", len(secrets)+len(codes), len(log))
}
