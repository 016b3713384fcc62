package quickstart_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/protobuf/encoding/prototext"

	"github.com/stepupgrpc/stepup/challenge"
	"github.com/stepupgrpc/stepup/challenge/totp"
	"github.com/stepupgrpc/stepup/dpop"
	"github.com/stepupgrpc/stepup/examples/bank/bankserver"
	bankv1 "github.com/stepupgrpc/stepup/examples/bank/v1"
	"github.com/stepupgrpc/stepup/examples/quickstart"
	"github.com/stepupgrpc/stepup/interceptor"
	stepupv1 "github.com/stepupgrpc/stepup/proto/stepup/v1"
	"github.com/stepupgrpc/stepup/stepuptest"
	"github.com/stepupgrpc/stepup/testing/testkit"
)

// aliceSecret is the TOTP secret alice's authenticator app holds.
const aliceSecret = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"

// TestQuickStartOverTLS runs the README's server (step 2) on loopback TLS
// and its client (step 3) against it: a protected call with a DPoP-bound
// token, then a transfer the client approves with a TOTP code. The client
// dials 127.0.0.1:<port> and names the server bank.example.com in its TLS
// config; that name, without port, is the :authority grpc-go sends and the
// one the server lists.
func TestQuickStartOverTLS(t *testing.T) {
	is := stepuptest.NewIssuer(t)
	jwks := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/jwk-set+json")
		_, _ = w.Write(is.PublicJWKS())
	}))
	t.Cleanup(jwks.Close)
	key, err := challenge.GenerateKey("quickstart-1")
	if err != nil {
		t.Fatal(err)
	}
	keys, err := challenge.NewKeySet(key)
	if err != nil {
		t.Fatal(err)
	}
	secrets := totp.SecretsFunc(func(_ context.Context, subject string) (string, error) {
		if subject == "alice" {
			return aliceSecret, nil
		}
		return "", challenge.ErrUnknownSubject
	})
	cert := testkit.NewCert(t, "bank.example.com")
	serverTLS := credentials.NewTLS(&tls.Config{Certificates: []tls.Certificate{cert.TLS}, MinVersion: tls.VersionTLS13})
	bank := bankserver.New(nil)
	bank.Open("alice", "alice-checking", "EUR", 100_000)

	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, stop := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() {
		err := quickstart.Serve(ctx, lis, stepuptest.Issuer, stepuptest.Audience, jwks.URL, keys, secrets, serverTLS, bank)
		_ = lis.Close() // a Serve that failed before serving refuses the connection
		served <- err
	}()
	t.Cleanup(func() {
		stop()
		if err := <-served; err != nil && !errors.Is(err, grpc.ErrServerStopped) {
			t.Errorf("Serve: %v", err)
		}
	})

	privateKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	jkt, err := dpop.ThumbprintOf(privateKey.Public())
	if err != nil {
		t.Fatal(err)
	}
	accessToken := is.Token(t, stepuptest.TokenOptions{Subject: "alice", Scope: "bank bank:transfer", JKT: jkt})
	var prompted []string
	promptForCode := func(_ context.Context, ch *stepupv1.StepUpChallenge) (string, error) {
		prompted = append(prompted, ch.GetSummaryText())
		return totp.Code(aliceSecret, time.Now())
	}
	clientTLS := credentials.NewTLS(&tls.Config{ServerName: "bank.example.com", RootCAs: cert.Pool, MinVersion: tls.VersionTLS13})
	conn, err := quickstart.Dial(lis.Addr().String(), privateKey, accessToken, clientTLS, promptForCode)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	client := bankv1.NewBankServiceClient(conn)

	// The listener is bound: the handshake waits for Serve to accept, or
	// fails when Serve returned before serving.
	balance, err := client.GetBalance(context.Background(), &bankv1.GetBalanceRequest{AccountId: "alice-checking"})
	if err != nil {
		select {
		case serr := <-served:
			served <- serr
			t.Fatalf("GetBalance: %v; Serve: %v", err, serr)
		default:
			t.Fatalf("GetBalance: %v", err)
		}
	}
	if got := balance.GetBalance().GetAmountMinor(); got != 100_000 {
		t.Errorf("balance %d", got)
	}
	resp, err := client.Transfer(context.Background(), &bankv1.TransferRequest{
		FromAccountId: "alice-checking", AmountMinor: 12_000, Currency: "EUR", ToIban: "DE89370400440532013000"})
	if err != nil {
		t.Fatalf("Transfer: %v", err)
	}
	if got := resp.GetBalanceAfter().GetAmountMinor(); got != 88_000 {
		t.Errorf("balance after %d", got)
	}
	if len(prompted) != 1 || !strings.Contains(prompted[0], "120.00 EUR") {
		t.Errorf("alice was shown %q", prompted)
	}
}

// TestServiceTest is the README's "Testing your service": the test kit's
// issuer and caller, the service behind the Guard on bufconn.
func TestServiceTest(t *testing.T) {
	bank := bankserver.New(nil)
	bank.Open("alice", "alice-checking", "EUR", 12_345)
	ctx, req := context.Background(), &bankv1.GetBalanceRequest{AccountId: "alice-checking"}
	// README: test
	is := stepuptest.NewIssuer(t)
	key, err := challenge.GenerateKey("k1") // the step-up service's signing key
	if err != nil {
		t.Fatal(err)
	}
	keys, err := challenge.NewKeySet(key)
	if err != nil {
		t.Fatal(err)
	}
	secrets := challenge.TOTPSecretsMap(map[string]string{"alice": aliceSecret})
	codes, err := totp.New(secrets, totp.Options{})
	if err != nil {
		t.Fatal(err)
	}
	stepUp, err := challenge.NewService(challenge.WithKeys(keys), challenge.WithFactor(codes))
	if err != nil {
		t.Fatal(err)
	}
	guard, err := interceptor.New(interceptor.WithTokenVerifier(is.Verifier(t)), interceptor.WithStepUp(stepUp), interceptor.WithRequirePolicy())
	if err != nil {
		t.Fatal(err)
	}
	alice := stepuptest.NewCaller(t, is, "alice", "bank bank:transfer", interceptor.WithResponder(stepuptest.TOTP(aliceSecret, time.Now)))
	// Serve fails the test when a method of the service has no policy or
	// one this Guard cannot enforce (CheckCoverage).
	conn := stepuptest.Serve(t, guard, func(s grpc.ServiceRegistrar) { bankv1.RegisterBankServiceServer(s, bank) }, alice)
	resp, err := bankv1.NewBankServiceClient(conn).GetBalance(ctx, req)
	// README: end
	if err != nil || resp.GetBalance().GetAmountMinor() != 12_345 {
		t.Fatalf("GetBalance: %v %v", resp, err)
	}
}

// TestREADMEShowsThisCode: every Go block of the README is a region of
// this package between "// README: <name>" and "// README: end", in the
// same order, and every region is in the README: the snippets a newcomer
// copies are the code the tests above compile and run.
func TestREADMEShowsThisCode(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	blocks := fencedGo(readme)
	var regions []string
	for _, f := range []string{"quickstart.go", "quickstart_test.go"} {
		src, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		regions = append(regions, markedRegions(t, src)...)
	}
	if len(blocks) != len(regions) {
		t.Fatalf("README has %d Go blocks, this package %d README regions", len(blocks), len(regions))
	}
	for i := range blocks {
		if blocks[i] != regions[i] {
			t.Errorf("README Go block %d differs from region %d of examples/quickstart:\n--- README\n%s--- code\n%s", i+1, i+1, blocks[i], regions[i])
		}
	}
}

// fencedGo returns the contents of the ```go blocks of a Markdown text.
func fencedGo(md []byte) []string { return fenced(md, "go") }

// fenced returns the contents of the blocks of a Markdown text fenced as
// lang.
func fenced(md []byte, lang string) []string {
	var blocks []string
	var cur *strings.Builder
	sc := bufio.NewScanner(bytes.NewReader(md))
	for sc.Scan() {
		line := sc.Text()
		switch {
		case cur == nil && line == "```"+lang:
			cur = &strings.Builder{}
		case cur != nil && line == "```":
			blocks = append(blocks, cur.String())
			cur = nil
		case cur != nil:
			cur.WriteString(line + "\n")
		}
	}
	return blocks
}

// markedRegions returns the regions of a Go source between the README
// markers, each line without the one tab of a function body.
func markedRegions(t *testing.T, src []byte) []string {
	var regions []string
	var cur *strings.Builder
	for n, line := range strings.Split(string(src), "\n") {
		marker := strings.TrimSpace(line)
		switch {
		case strings.HasPrefix(marker, "// README: ") && marker != "// README: end":
			cur = &strings.Builder{}
		case marker == "// README: end" && cur != nil:
			regions = append(regions, cur.String())
			cur = nil
		case cur != nil:
			body, ok := strings.CutPrefix(line, "\t")
			if !ok && line != "" {
				t.Fatalf("line %d of a README region is not indented by a tab: %q", n+1, line)
			}
			cur.WriteString(body + "\n")
		}
	}
	return regions
}

// TestREADMEProtoOptions: the stepup options of the README's .proto blocks
// are valid stepup.v1.Policy text (field names, enum values), as protoc
// would read them: a misspelt option fails here, not in a user's build.
func TestREADMEProtoOptions(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	option := regexp.MustCompile(`(?s)option \(stepup\.v1\.(?:policy|default_policy)\) = \{(.*?)\};`)
	var n int
	for _, block := range fenced(readme, "proto") {
		for _, m := range option.FindAllStringSubmatch(block, -1) {
			n++
			body := regexp.MustCompile(`//[^\n]*`).ReplaceAllString(m[1], "")
			var p stepupv1.Policy
			if err := prototext.Unmarshal([]byte(body), &p); err != nil {
				t.Errorf("README option %q is not a stepup.v1.Policy: %v", strings.TrimSpace(m[1]), err)
			}
		}
	}
	if n == 0 {
		t.Fatal("the README shows no stepup option")
	}
}
