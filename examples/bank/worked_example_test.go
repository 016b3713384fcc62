package bank_test

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/base32"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/cryptotest"
	"testing/synctest"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/test/bufconn"

	"github.com/stepupgrpc/stepup/challenge"
	"github.com/stepupgrpc/stepup/challenge/webauthn"
	"github.com/stepupgrpc/stepup/cmd/cli"
	"github.com/stepupgrpc/stepup/dpop"
	"github.com/stepupgrpc/stepup/examples/bank/bankserver"
	bankv1 "github.com/stepupgrpc/stepup/examples/bank/v1"
	"github.com/stepupgrpc/stepup/interceptor"
	stepupv1 "github.com/stepupgrpc/stepup/proto/stepup/v1"
	"github.com/stepupgrpc/stepup/testing/testkit"
)

var updateExchange = flag.Bool("update", false, "rewrite docs/examples/exchange.txt from a new run of the worked example")

const (
	// exchangePath is the transcript the worked example of
	// docs/PROTOCOL.md §12 is taken from.
	exchangePath = "../../docs/examples/exchange.txt"
	// exampleAuthority is the bank's authority: the htu host, the TLS
	// server name, the WebAuthn relying party.
	exampleAuthority = "bank.example"
	// exampleSeed seeds crypto/rand for the whole run.
	exampleSeed = 20261127
	// The IBANs and the other payee of the story.
	landlordIBAN = "DE02120300000000202051"
	powerIBAN    = "DE12500105170648489890"
)

// exampleTime is the instant of the whole exchange: every clock reads it.
var exampleTime = time.Date(2026, 11, 27, 4, 19, 34, 0, time.UTC)

// TestWorkedExample runs the worked example of docs/PROTOCOL.md §12 — the
// example bank behind the real Guard, with TOTP, device-key and WebAuthn
// step-up and DPoP nonces, called over TLS by the real client — records
// every HTTP/2 header block, message and audit record, and compares the
// transcript with docs/examples/exchange.txt byte for byte. With -update it
// rewrites the file instead; then update the values quoted in §12 (see
// TestProtocolWorkedExample) and docs/AUDIT.md.
//
// The run is deterministic: crypto/rand is seeded
// (cryptotest.SetGlobalRandom), every component gets a clock fixed at
// exampleTime, and the run is inside a synctest bubble whose clock stands
// still at that instant, for what reads time.Now (the iat of answers and
// device evidence, the audit record's time). A Go release that changes how
// crypto uses randomness changes the keys and signatures: regenerate then.
func TestWorkedExample(t *testing.T) {
	var got []byte
	synctest.Test(t, func(t *testing.T) {
		// The bubble's clock starts in 2000; nothing else runs yet, so
		// this moves it to exampleTime at once.
		time.Sleep(exampleTime.Sub(time.Now()))
		cryptotest.SetGlobalRandom(t, exampleSeed)
		got = runWorkedExample(t)
	})
	if t.Failed() {
		return
	}
	if *updateExchange {
		if err := os.WriteFile(exchangePath, got, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("wrote %s; now update docs/PROTOCOL.md §12 and docs/AUDIT.md from it", exchangePath)
		return
	}
	want, err := os.ReadFile(exchangePath)
	if err != nil {
		t.Fatal(err)
	}
	if diff := firstDifferences(string(want), string(got), 3); diff != "" {
		t.Errorf("%s differs from the exchange the example bank makes today (go test ./examples/bank -run TestWorkedExample -update rewrites it; then update §12 of docs/PROTOCOL.md and docs/AUDIT.md):\n%s", exchangePath, diff)
	}
}

// firstDifferences describes up to max differing lines of want (the file)
// and got (the run), with the column where each first differs and the
// text around it.
func firstDifferences(want, got string, max int) string {
	if want == got {
		return ""
	}
	wl, gl := strings.Split(want, "\n"), strings.Split(got, "\n")
	var b strings.Builder
	n := 0
	for i := 0; i < len(wl) || i < len(gl); i++ {
		var w, g string
		if i < len(wl) {
			w = wl[i]
		}
		if i < len(gl) {
			g = gl[i]
		}
		if w == g && i < len(wl) && i < len(gl) {
			continue
		}
		col := 0
		for col < len(w) && col < len(g) && w[col] == g[col] {
			col++
		}
		fmt.Fprintf(&b, "line %d, from column %d:\n  file: %s\n  run:  %s\n", i+1, col+1, excerpt(w, col, i < len(wl)), excerpt(g, col, i < len(gl)))
		if n++; n == max {
			break
		}
	}
	if len(wl) != len(gl) {
		fmt.Fprintf(&b, "the file has %d lines, the run %d\n", len(wl), len(gl))
	}
	return b.String()
}

// excerpt shows line around col: the start of the line, then the text
// from a little before col.
func excerpt(line string, col int, present bool) string {
	if !present {
		return "(no such line)"
	}
	const head, around = 40, 60
	if len(line) <= head+2*around {
		return line
	}
	from := max(col-around/2, head)
	if from <= head {
		return line[:min(len(line), head+2*around)] + "…"
	}
	return line[:head] + " … " + line[from:min(len(line), from+2*around)] + "…"
}

// runWorkedExample serves the bank and makes the calls of the worked
// example; it returns the transcript.
func runWorkedExample(t *testing.T) []byte {
	now := func() time.Time { return exampleTime }
	ctx := t.Context()

	// Every key, in a fixed order: each draws from the seeded crypto/rand.
	issuer := testkit.NewIssuer(t)
	cert := testkit.NewCert(t, exampleAuthority)
	stepUpKey, err := challenge.GenerateKey("k1")
	if err != nil {
		t.Fatal(err)
	}
	nonceKey := make([]byte, 32)
	_, _ = rand.Read(nonceKey)
	secrets := map[string]string{"alice": newTOTPSecret(), "bob": newTOTPSecret()}
	aliceKey := newP256(t)
	_, aliceDevice, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	authenticator, err := webauthn.NewSoftAuthenticator(exampleAuthority, "https://"+exampleAuthority)
	if err != nil {
		t.Fatal(err)
	}
	credential, err := authenticator.RegisterCredential([]byte("user-handle-alice"))
	if err != nil {
		t.Fatal(err)
	}
	bobKey := newP256(t)

	// The server: the example bank behind the Guard, configured as
	// examples/bank/server configures it, plus WebAuthn and clocks.
	audit := &lineLog{}
	x := &workedExample{t: t, rec: &wireRecorder{}, audit: audit, pool: cert.Pool}
	tokens, err := interceptor.NewJWTVerifier(interceptor.JWTConfig{
		Issuer: issuerURL, Audience: audience, JWKS: issuer.PublicJWKS(), Clock: now,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(tokens.Close)
	nonces, err := dpop.NewNonces(nonceKey, 0, now)
	if err != nil {
		t.Fatal(err)
	}
	proofs, err := dpop.NewVerifier(dpop.WithAuthorities(exampleAuthority), dpop.WithNonces(nonces), dpop.WithClock(now))
	if err != nil {
		t.Fatal(err)
	}
	keys, err := challenge.NewKeySet(stepUpKey)
	if err != nil {
		t.Fatal(err)
	}
	webauthnCreds := webauthn.NewMemoryCredentials()
	webauthnCreds.AddCredential("alice", []byte("user-handle-alice"), credential)
	stepUp, err := challenge.NewService(
		challenge.WithKeys(keys),
		challenge.WithTOTP(challenge.TOTPSecretsMap(secrets), challenge.TOTPOptions{}),
		challenge.WithDeviceKeys(challenge.DeviceKeysMap(map[string][]crypto.PublicKey{"alice": {aliceDevice.Public()}})),
		webauthn.With(webauthn.Config{RPID: exampleAuthority, RPOrigins: []string{"https://" + exampleAuthority}}, webauthnCreds),
		challenge.WithClock(now),
	)
	if err != nil {
		t.Fatal(err)
	}
	guard, err := interceptor.New(
		interceptor.WithTokenVerifier(tokens),
		interceptor.WithDPoP(proofs),
		interceptor.WithStepUp(stepUp),
		interceptor.WithAuditSink(interceptor.NewSlogSink(slog.New(slog.NewJSONHandler(audit, nil)))),
		interceptor.WithRequirePolicy(),
		interceptor.WithInsecureInfrastructure(),
		interceptor.WithClock(now),
	)
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer(
		grpc.Creds(credentials.NewTLS(&tls.Config{
			Certificates: []tls.Certificate{cert.TLS}, MinVersion: tls.VersionTLS12,
			// A ticket is made with fresh randomness while the client
			// may already be signing its first proof: without tickets,
			// crypto/rand is drawn in one order only.
			SessionTicketsDisabled: true,
		})),
		grpc.ChainUnaryInterceptor(guard.UnaryServerInterceptor()),
		grpc.ChainStreamInterceptor(guard.StreamServerInterceptor()),
	)
	bank := bankserver.New(now)
	for _, sub := range []string{"alice", "bob"} {
		bank.Open(sub, sub+"-checking", "EUR", 100_000)
	}
	bank.Register(srv)
	if err := guard.CheckCoverage(srv); err != nil {
		t.Fatal(err)
	}
	x.lis = bufconn.Listen(1 << 20)
	served := make(chan error, 1)
	go func() { served <- srv.Serve(x.lis) }()
	t.Cleanup(func() {
		srv.Stop()
		if err := <-served; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})

	// Alice's client: her DPoP key, her token, and answers chosen per call.
	alice, err := dpop.NewSigner(aliceKey, dpop.WithClock(now))
	if err != nil {
		t.Fatal(err)
	}
	token := mintToken(t, issuer, "alice", alice.Thumbprint(), "bank bank:transfer")
	responder := &chosenResponder{}
	grants := &withheldGrants{}
	client, err := interceptor.NewClient(alice, interceptor.StaticToken(token),
		interceptor.WithResponder(responder), interceptor.WithGrantStore(grants), interceptor.WithClock(now))
	if err != nil {
		t.Fatal(err)
	}
	conn := x.dial(client.DialOptions()...)
	bankClient := bankv1.NewBankServiceClient(conn)

	x.header(issuer, alice, token)

	// Exchanges 1 and 2: a balance, refused for want of a nonce, retried.
	if _, err := bankClient.GetBalance(ctx, &bankv1.GetBalanceRequest{AccountId: "alice-checking"}); err != nil {
		t.Fatalf("GetBalance: %v", err)
	}
	ex := x.take(2)
	x.exchange(ex[0], "exchange 1: GetBalance, proof without a nonce")
	x.exchange(ex[1], "exchange 2: GetBalance, retried with the nonce")

	// Exchanges 3 and 4: a transfer, bound to its request, answered with
	// a TOTP code.
	secret := secrets["alice"]
	responder.set(challenge.TOTPResponder(func(context.Context, *stepupv1.StepUpChallenge) (string, error) {
		return challenge.TOTPCode(secret, now())
	}))
	rent := &bankv1.TransferRequest{FromAccountId: "alice-checking", AmountMinor: 12000, Currency: "EUR", ToIban: aliceIBAN, Reference: "rent"}
	x.answered(func() error { _, err := bankClient.Transfer(ctx, rent); return err }, "TOTP",
		"exchange 3: Transfer, no step-up presented", "exchange 4: Transfer retried with a TOTP answer")

	// Exchanges 5 and 6: a payee, a reusable step-up answered with
	// WebAuthn, which earns a grant.
	responder.set(challenge.WebAuthnResponder(authenticator))
	landlord := &bankv1.AddPayeeRequest{Name: "Landlord GmbH", Iban: landlordIBAN}
	retried := x.answered(func() error { _, err := bankClient.AddPayee(ctx, landlord); return err }, "WebAuthn",
		"exchange 5: AddPayee, no step-up presented", "exchange 6: AddPayee retried with a WebAuthn answer")
	x.grant(retried)

	// Exchange 7: another payee, with the grant.
	responder.set(nil)
	if _, err := bankClient.AddPayee(ctx, &bankv1.AddPayeeRequest{Name: "Power Co", Iban: powerIBAN}); err != nil {
		t.Fatalf("AddPayee with the grant: %v", err)
	}
	x.exchange(x.take(1)[0], "exchange 7: AddPayee (another payee) with the grant")

	// Exchanges 8 and 9: a transfer with the grant, which a bound
	// requirement ignores, answered with the device key.
	device, err := challenge.DeviceKeyResponder(aliceDevice)
	if err != nil {
		t.Fatal(err)
	}
	responder.set(device)
	power := &bankv1.TransferRequest{FromAccountId: "alice-checking", AmountMinor: 4250, Currency: "EUR", ToIban: powerIBAN, Reference: "power"}
	x.answered(func() error { _, err := bankClient.Transfer(ctx, power); return err }, "device key",
		"exchange 8: Transfer with the grant (ignored: bound requirement)", "exchange 9: Transfer retried with a device-key answer")

	// Exchanges 10 and 11: a stream, opened without the grant (withheld)
	// and not answered, then reopened with the grant.
	responder.set(nil)
	grants.withhold.Store(true)
	n, err := x.export(bankClient)
	if want := interceptor.WireInsufficientUserAuthentication; interceptor.ReasonFromError(err) != want || n != 0 {
		t.Fatalf("ExportStatements without the grant: %d messages, %v; want 0 and %s", n, err, want)
	}
	x.exchange(x.take(1)[0], "exchange 10: ExportStatements (server stream), no step-up presented")
	x.printf("note 0 response messages; the refusal arrived on the first receive\n")
	grants.withhold.Store(false)
	if n, err = x.export(bankClient); err != nil || n != 2 {
		t.Fatalf("ExportStatements with the grant: %d messages, %v; want 2", n, err)
	}
	x.exchange(x.take(1)[0], "exchange 11: ExportStatements reopened with the grant")
	x.printf("note %d response messages, then end of stream\n", n)

	// Refusals of GetBalance, each made by hand on a connection without
	// the client's interceptors.
	raw := bankv1.NewBankServiceClient(x.dial())
	lowToken := mintToken(t, issuer, "alice", alice.Thumbprint(), "profile")
	htu := "https://" + exampleAuthority + bankv1.BankService_GetBalance_FullMethodName
	proof := func(nonce string) string {
		p, err := alice.ProofWithNonce("POST", htu, token, nonce)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	nonce := alice.Nonce(exampleAuthority)
	replayed := proof(nonce)
	x.printf("\n######## refusals of GetBalance, made by hand: the refusal's ErrorInfo, www-authenticate and audit\n")
	for _, c := range []struct {
		title string
		md    metadata.MD
	}{
		{"no credentials", metadata.MD{}},
		{"first use of a proof (accepted)", metadata.Pairs("authorization", "DPoP "+token, "dpop", replayed)},
		{"the same proof again", metadata.Pairs("authorization", "DPoP "+token, "dpop", replayed)},
		{"the DPoP-bound token sent as Bearer", metadata.Pairs("authorization", "Bearer "+token)},
		{"two dpop values", metadata.Pairs("authorization", "DPoP "+token, "dpop", proof(nonce), "dpop", proof(nonce))},
		{"a token with scope profile only", metadata.Pairs("authorization", "DPoP "+lowToken, "dpop", proofFor(t, alice, htu, lowToken, nonce))},
		{"proof without the nonce", metadata.Pairs("authorization", "DPoP "+token, "dpop", proof(""))},
	} {
		_, _ = raw.GetBalance(metadata.NewOutgoingContext(ctx, c.md), &bankv1.GetBalanceRequest{AccountId: "alice-checking"})
		x.refusal(x.take(1)[0], c.title)
	}

	// Bob: ten wrong TOTP codes lock him out; an eleventh answer is
	// refused without being checked.
	bob, err := dpop.NewSigner(bobKey, dpop.WithClock(now))
	if err != nil {
		t.Fatal(err)
	}
	wrong := wrongCode(t, secrets["bob"], now())
	var lastChallenge *stepupv1.StepUpChallenge
	bobClient, err := interceptor.NewClient(bob, interceptor.StaticToken(mintToken(t, issuer, "bob", bob.Thumbprint(), "bank bank:transfer")),
		interceptor.WithResponder(challenge.TOTPResponder(func(_ context.Context, ch *stepupv1.StepUpChallenge) (string, error) {
			lastChallenge = ch
			return wrong, nil
		})), interceptor.WithClock(now))
	if err != nil {
		t.Fatal(err)
	}
	bobConn := x.dial(bobClient.DialOptions()...)
	bobBank := bankv1.NewBankServiceClient(bobConn)
	bobTransfer := &bankv1.TransferRequest{FromAccountId: "bob-checking", AmountMinor: 5000, Currency: "EUR", ToIban: aliceIBAN, Reference: "bob"}
	const lockedAfter = 10
	for i := 1; i <= lockedAfter; i++ {
		_, err := bobBank.Transfer(ctx, bobTransfer)
		want := interceptor.WireInsufficientUserAuthentication
		if i == lockedAfter {
			want = interceptor.WireStepUpLocked
		}
		if got := interceptor.ReasonFromError(err); got != want {
			t.Fatalf("bob's transfer %d: %v; want %s", i, err, want)
		}
	}
	// A nonce refusal, then a challenge and a wrong answer per call.
	ex = x.take(1 + 2*lockedAfter)
	x.exchange(ex[len(ex)-1], fmt.Sprintf("bob, answer %d (wrong TOTP code)", lockedAfter))
	answer, err := challenge.Answer(bob, lastChallenge, &challenge.Evidence{Factor: stepupv1.Factor_FACTOR_TOTP, TOTP: wrong})
	if err != nil {
		t.Fatal(err)
	}
	_, err = bobBank.Transfer(metadata.AppendToOutgoingContext(ctx, interceptor.MetadataStepUpAnswer, answer), bobTransfer)
	if got := interceptor.ReasonFromError(err); got != interceptor.WireStepUpLocked {
		t.Fatalf("bob's answer %d: %v; want %s", lockedAfter+1, err, interceptor.WireStepUpLocked)
	}
	x.exchange(x.take(1)[0], fmt.Sprintf("bob, answer %d (wrong TOTP code, the same challenge)", lockedAfter+1))

	if rest, err := x.rec.take(); len(rest) != 0 || err != nil {
		t.Errorf("%d calls were not printed (%v)", len(rest), err)
	}
	return []byte(x.out.String())
}

// answered makes a call that is challenged, then answered with factor
// and retried by the client; it writes the refused attempt, the
// challenge, the answer and the retry, and returns the retry.
func (x *workedExample) answered(call func() error, factor, refused, retried string) *wireStream {
	x.t.Helper()
	if err := call(); err != nil {
		x.t.Fatalf("%s: %v", retried, err)
	}
	ex := x.take(2)
	x.exchange(ex[0], refused)
	x.challenge(ex[0])
	x.answer(ex[1], factor)
	x.exchange(ex[1], retried)
	return ex[1]
}

// export reads alice's statements and returns how many messages came.
func (x *workedExample) export(c bankv1.BankServiceClient) (int, error) {
	stream, err := c.ExportStatements(x.t.Context(), &bankv1.ExportStatementsRequest{AccountId: "alice-checking"})
	if err != nil {
		return 0, err
	}
	n := 0
	for {
		if _, err := stream.Recv(); err != nil {
			if errors.Is(err, io.EOF) {
				return n, nil
			}
			return n, err
		}
		n++
	}
}

func newP256(t *testing.T) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// newTOTPSecret returns a random base32 secret of 20 bytes (RFC 4226 §4).
func newTOTPSecret() string {
	b := make([]byte, 20)
	_, _ = rand.Read(b)
	return base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(b)
}

// mintToken mints an access token as the example issuer does.
func mintToken(t *testing.T, issuer *testkit.Issuer, sub, jkt, scope string) string {
	t.Helper()
	tok, err := cli.DevToken{
		Issuer: issuerURL, Subject: sub, Audience: audience, ClientID: "bank-app", Scope: scope,
		JKT: jkt, Now: exampleTime, TTL: time.Hour,
	}.Mint(issuer.PrivateJWK())
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// proofFor signs a proof for another token than the client's.
func proofFor(t *testing.T, s *dpop.Signer, htu, token, nonce string) string {
	t.Helper()
	p, err := s.ProofWithNonce("POST", htu, token, nonce)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// chosenResponder answers with the responder set for the next call, or
// not at all.
type chosenResponder struct {
	mu sync.Mutex
	r  challenge.Responder
}

func (c *chosenResponder) set(r challenge.Responder) {
	c.mu.Lock()
	c.r = r
	c.mu.Unlock()
}

func (c *chosenResponder) Respond(ctx context.Context, ch *stepupv1.StepUpChallenge) (*challenge.Evidence, error) {
	c.mu.Lock()
	r := c.r
	c.mu.Unlock()
	if r == nil {
		return nil, errors.New("no answer for this call")
	}
	return r.Respond(ctx, ch)
}

// withheldGrants keeps grants in memory and withholds them on demand.
type withheldGrants struct {
	interceptor.MemoryGrants
	withhold atomic.Bool
}

func (g *withheldGrants) Grant(authority string, now time.Time) string {
	if g.withhold.Load() {
		return ""
	}
	return g.MemoryGrants.Grant(authority, now)
}

// lineLog collects what the server logs, line by line.
type lineLog struct {
	mu    sync.Mutex
	buf   bytes.Buffer
	lines []string
	taken int
}

func (l *lineLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.buf.Write(p)
	for {
		line, err := l.buf.ReadString('\n')
		if err != nil {
			// Not a whole line yet: keep it for the next write.
			l.buf.Reset()
			l.buf.WriteString(line)
			return len(p), nil
		}
		l.lines = append(l.lines, strings.TrimSuffix(line, "\n"))
	}
}

func (l *lineLog) take() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := l.lines[l.taken:]
	l.taken = len(l.lines)
	return out
}

// workedExample is the run: the server's listener, the recorder of the
// client side's wire, the server's log, and the transcript being written.
type workedExample struct {
	t     *testing.T
	rec   *wireRecorder
	audit *lineLog
	lis   *bufconn.Listener
	pool  *x509.CertPool // trusts the server's certificate
	out   strings.Builder
	// auditOf holds the audit record of each stream taken, in order.
	auditOf map[*wireStream]string
}

// dial opens a recorded TLS connection to the bank.
func (x *workedExample) dial(opts ...grpc.DialOption) *grpc.ClientConn {
	x.t.Helper()
	creds := x.rec.credentials(credentials.NewTLS(&tls.Config{RootCAs: x.pool, MinVersion: tls.VersionTLS12}))
	conn, err := grpc.NewClient("passthrough:///"+exampleAuthority, append(opts,
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return x.lis.DialContext(ctx) }),
		grpc.WithTransportCredentials(creds))...)
	if err != nil {
		x.t.Fatal(err)
	}
	x.t.Cleanup(func() { _ = conn.Close() })
	return conn
}

// take returns the n streams opened since the last take and pairs each
// with its audit record: the server writes one per call before it
// answers, and the calls are made one after the other.
func (x *workedExample) take(n int) []*wireStream {
	x.t.Helper()
	streams, err := x.rec.take()
	if err != nil {
		x.t.Fatalf("decoding the HTTP/2 frames: %v", err)
	}
	var records []string
	for _, l := range x.audit.take() {
		var rec struct{ Msg string }
		if json.Unmarshal([]byte(l), &rec) == nil && rec.Msg == "stepup.audit" {
			records = append(records, l)
		}
	}
	if len(streams) != n || len(records) != n {
		x.t.Fatalf("%d calls on the wire and %d audit records, want %d of each", len(streams), len(records), n)
	}
	if x.auditOf == nil {
		x.auditOf = map[*wireStream]string{}
	}
	for i, s := range streams {
		x.auditOf[s] = records[i]
	}
	return streams
}
