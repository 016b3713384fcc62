// Command demo runs Stepup end to end in one process: a bank server behind
// the Stepup Guard on loopback TLS, a client holding a DPoP key, a transfer
// approved with TOTP, a payee added twice under one grant, the attacks that
// fail, each with the audit line that explains it, a transfer approved
// on a second device (the approver page, in a headless Chromium when one is
// installed), and the tamper-evident audit trail of it all, verified and
// reported as an auditor would read it.
//
// With -gateway (make gateway-demo) the bank is a Node backend that knows
// nothing of Stepup, behind stepup-gateway.
//
// It exits 0 only if every step behaved as shown.
package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/lestrrat-go/jwx/v3/jws"
	"github.com/lestrrat-go/jwx/v3/jwt"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/stepupgrpc/stepup/challenge"
	"github.com/stepupgrpc/stepup/challenge/totp"
	"github.com/stepupgrpc/stepup/dpop"
	"github.com/stepupgrpc/stepup/examples/bank/bankserver"
	bankv1 "github.com/stepupgrpc/stepup/examples/bank/v1"
	"github.com/stepupgrpc/stepup/interceptor"
	"github.com/stepupgrpc/stepup/metrics"
	stepupv1 "github.com/stepupgrpc/stepup/proto/stepup/v1"
)

const (
	authority = "bank.example"
	issuerURL = "https://issuer.example"
	audience  = "https://bank.example"
	// aliceTOTP is the secret alice's authenticator app holds.
	aliceTOTP = "KRSXG5CTMVRXEZLUKN2XAZLSKNSWG4TF"
	aliceIBAN = "DE89370400440532013000"
)

func main() {
	demo := run
	if len(os.Args) == 2 && os.Args[1] == "-gateway" {
		demo = runGateway // make gateway-demo
	} else if len(os.Args) > 1 {
		fmt.Fprintln(os.Stderr, "usage: demo [-gateway]")
		os.Exit(2)
	}
	ok, err := demo(os.Stdout)
	if err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		os.Exit(1)
	}
	if !ok {
		fmt.Println("\nSOME STEPS DID NOT BEHAVE AS SHOWN")
		os.Exit(1)
	}
}

// demo holds the running pieces.
type demo struct {
	out     io.Writer
	audit   *auditTape
	tap     *wiretap
	clock   *clock
	bank    *bankserver.Bank
	addr    string
	tlsConf *tls.Config
	failed  int
	steps   int
	reg     *prometheus.Registry
}

// metrics returns the demo's Prometheus sink (what a server exports at
// /metrics), on a registry of its own.
func (d *demo) metrics() interceptor.AuditSink {
	d.reg = prometheus.NewRegistry()
	m, err := metrics.New(d.reg)
	if err != nil {
		d.fail("metrics: %v", err)
		return interceptor.AuditFunc(func(context.Context, *interceptor.Event) {})
	}
	return m
}

// printCounters prints the decision counters, as a dashboard would show
// them.
func (d *demo) printCounters() {
	if d.reg == nil {
		return
	}
	mfs, err := d.reg.Gather()
	if err != nil {
		d.fail("metrics: %v", err)
		return
	}
	d.section("Decision counters (stepup_decisions_total, as /metrics exports them)")
	fmt.Fprint(d.out, countersLegend)
	for _, mf := range mfs {
		if mf.GetName() != "stepup_decisions_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			l := map[string]string{}
			for _, lp := range m.GetLabel() {
				l[lp.GetName()] = lp.GetValue()
			}
			fmt.Fprintf(d.out, "   %-45s %-16s %-32s %v\n", l["method"], l["decision"], l["reason"], m.GetCounter().GetValue())
		}
	}
}

func run(out io.Writer) (bool, error) {
	d := &demo{out: out, audit: &auditTape{}, tap: &wiretap{}, clock: &clock{now: time.Now()}}
	ctx := context.Background()
	now := d.clock.Now

	// The access-token issuer (your OAuth server) and its public JWKS.
	issuerKey, issuerJWKS, err := newIssuer()
	if err != nil {
		return false, err
	}
	tokens, err := interceptor.NewJWTVerifier(interceptor.JWTConfig{Issuer: issuerURL, Audience: audience, JWKS: issuerJWKS, Clock: now})
	if err != nil {
		return false, err
	}
	// Step-up: server keys for challenges and grants, and the TOTP factor.
	stepKey, err := challenge.GenerateKey("demo-1")
	if err != nil {
		return false, err
	}
	keys, err := challenge.NewKeySet(stepKey)
	if err != nil {
		return false, err
	}
	// alice's phone: the approver page and her passkey (step 5).
	phone, err := newPhone()
	if err != nil {
		return false, err
	}
	codes, err := totp.New(totp.SecretsFunc(func(_ context.Context, sub string) (string, error) {
		if sub == "alice" {
			return aliceTOTP, nil
		}
		return "", challenge.ErrUnknownSubject
	}), totp.Options{})
	if err != nil {
		return false, err
	}
	stepUp, err := challenge.NewService(append([]challenge.Option{challenge.WithKeys(keys), challenge.WithClock(now),
		challenge.WithFactor(codes)}, phone.options()...)...)
	if err != nil {
		return false, err
	}
	proofs, err := dpop.NewVerifier(dpop.WithAuthorities(authority), dpop.WithClock(now))
	if err != nil {
		return false, err
	}
	// The tamper-evident trail (package auditlog), verified at the end.
	auditTrail, err := openTrail(now)
	if err != nil {
		return false, err
	}
	defer auditTrail.remove()
	guard, err := interceptor.New(
		interceptor.WithTokenVerifier(tokens),
		interceptor.WithDPoP(proofs),
		interceptor.WithStepUp(stepUp),
		interceptor.WithAuditSink(interceptor.Sinks(d.audit, d.metrics(), auditTrail.sink)),
		interceptor.WithRequirePolicy(),
		interceptor.WithClock(now),
	)
	if err != nil {
		return false, err
	}

	// The bank server on loopback TLS.
	serverTLS, clientTLS, err := selfSignedTLS(authority)
	if err != nil {
		return false, err
	}
	d.tlsConf = clientTLS
	d.bank = bankserver.New(now)
	d.bank.Open("alice", "alice-checking", "EUR", 100_000)
	srv := grpc.NewServer(append(interceptor.TransportLimits(),
		grpc.Creds(credentials.NewTLS(serverTLS)),
		// The wiretap stands for an attacker who reads requests on the way
		// (a leaky proxy, a log file): it sees every credential header.
		grpc.ChainUnaryInterceptor(d.tap.unary, guard.UnaryServerInterceptor()),
		grpc.ChainStreamInterceptor(guard.StreamServerInterceptor()),
	)...)
	d.bank.Register(srv)
	if err := guard.CheckCoverage(srv); err != nil {
		return false, err
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return false, err
	}
	d.addr = lis.Addr().String()
	go func() { _ = srv.Serve(lis) }()
	defer srv.Stop()
	stopPage, err := phone.serve(interceptor.Sinks(d.audit, auditTrail.sink))
	if err != nil {
		return false, err
	}
	defer stopPage()

	// Alice: a DPoP key on her device, a token bound to it, a TOTP app.
	aliceKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return false, err
	}
	alice, err := dpop.NewSigner(aliceKey, dpop.WithClock(now))
	if err != nil {
		return false, err
	}
	aliceToken, err := mintToken(issuerKey, now(), "alice", alice.Thumbprint(), "bank bank:transfer")
	if err != nil {
		return false, err
	}
	totpApp := challenge.TOTPResponder(func(_ context.Context, ch *stepupv1.StepUpChallenge) (string, error) {
		code, err := totp.Code(aliceTOTP, now())
		fmt.Fprintf(out, "     alice's phone shows: %s\n", ch.GetSummaryText())
		fmt.Fprintf(out, "     alice approves and types the code from her authenticator app: %s\n", code)
		return code, err
	})
	client, err := interceptor.NewClient(alice, interceptor.StaticToken(aliceToken), interceptor.WithResponder(totpApp))
	if err != nil {
		return false, err
	}
	bank, err := d.dial(client.DialOptions()...)
	if err != nil {
		return false, err
	}

	fmt.Fprintf(out, "Stepup demo: bank.v1.BankService behind the Stepup Guard on %s (TLS, authority %s)\n", d.addr, authority)
	fmt.Fprintf(out, "alice holds a P-256 DPoP key (thumbprint %s)\n", alice.Thumbprint())
	fmt.Fprintf(out, "and an access token bound to it (cnf.jkt), scopes \"bank bank:transfer\".\n")

	// 1. A balance call: DPoP-bound token, no step-up.
	d.section("1. alice reads her balance (GetBalance: DPoP-bound token, no step-up)")
	mark := d.audit.mark()
	bal, err := bank.GetBalance(ctx, &bankv1.GetBalanceRequest{AccountId: "alice-checking"})
	d.expectOK(err, "balance %s", money(bal.GetBalance()))
	d.expectAudit(mark, interceptor.DecisionAllow, interceptor.ReasonAllowed)
	balanceCreds := d.tap.last("/bank.v1.BankService/GetBalance")

	// 2. A transfer: challenged, shown, approved with TOTP, executed.
	d.section("2. alice transfers 120.00 EUR (Transfer: step-up on every call, bound to the request)")
	mark = d.audit.mark()
	transfer := &bankv1.TransferRequest{FromAccountId: "alice-checking", AmountMinor: 12_000, Currency: "EUR", ToIban: aliceIBAN, Reference: "rent"}
	tr, err := bank.Transfer(ctx, transfer)
	d.expectOK(err, "transfer %s done, balance after: %s", tr.GetTransferId(), money(tr.GetBalanceAfter()))
	d.expectAudit(mark, interceptor.DecisionChallenge, interceptor.ReasonStepUpRequired)
	d.expectAudit(mark+1, interceptor.DecisionStepUpPassed, interceptor.ReasonAllowed)
	transferCreds := d.tap.last("/bank.v1.BankService/Transfer")

	// 3. The attacks, seconds after alice's calls.
	d.section("3. Attacks")
	fmt.Fprint(out, attacksLegend)
	// mallory's own tool: another user agent, which the audit trail's
	// report tells apart from alice's app.
	raw, err := d.dial(grpc.WithUserAgent("mallory-tool/0.1"))
	if err != nil {
		return false, err
	}

	fmt.Fprintln(out, "\n a) mallory stole alice's access token, but not her key; she signs proofs with her own key")
	malloryKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	mallory, _ := dpop.NewSigner(malloryKey, dpop.WithClock(now))
	proof, _ := mallory.Proof("POST", "https://"+authority+"/bank.v1.BankService/GetBalance", aliceToken)
	mark = d.audit.mark()
	_, err = raw.GetBalance(metadata.AppendToOutgoingContext(ctx, "authorization", "DPoP "+aliceToken, "dpop", proof),
		&bankv1.GetBalanceRequest{AccountId: "alice-checking"})
	d.expectRefused(err, mark, interceptor.Reason(dpop.ReasonKeyMismatch))

	fmt.Fprintln(out, "\n b) mallory sends the stolen token as a plain bearer token")
	mark = d.audit.mark()
	_, err = raw.GetBalance(metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+aliceToken),
		&bankv1.GetBalanceRequest{AccountId: "alice-checking"})
	d.expectRefused(err, mark, interceptor.ReasonBoundTokenAsBearer)

	fmt.Fprintln(out, "\n c) mallory replays alice's captured balance request (token and proof, byte for byte)")
	mark = d.audit.mark()
	_, err = raw.GetBalance(metadata.AppendToOutgoingContext(ctx, balanceCreds.pairs("authorization", "dpop")...),
		&bankv1.GetBalanceRequest{AccountId: "alice-checking"})
	d.expectRefused(err, mark, interceptor.Reason(dpop.ReasonReplayed))

	fmt.Fprintln(out, "\n d) malware on alice's device reuses her approval of 120.00 EUR for 9,999.00 EUR to another IBAN")
	fmt.Fprintln(out, "    (it even holds her DPoP key, so its proofs are valid)")
	evil := &bankv1.TransferRequest{FromAccountId: "alice-checking", AmountMinor: 999_900, Currency: "EUR", ToIban: "GB33BUKB20201555555555", Reference: "rent"}
	proof, _ = alice.Proof("POST", "https://"+authority+"/bank.v1.BankService/Transfer", aliceToken)
	mark = d.audit.mark()
	_, err = raw.Transfer(metadata.AppendToOutgoingContext(ctx, "authorization", "DPoP "+aliceToken, "dpop", proof,
		"stepup-answer", transferCreds.get("stepup-answer")), evil)
	d.expectRefused(err, mark, interceptor.Reason(challenge.ReasonChallengeWrongRequest))

	fmt.Fprintln(out, "\n e) the same malware replays the approval for the very same transfer, to send it twice")
	proof, _ = alice.Proof("POST", "https://"+authority+"/bank.v1.BankService/Transfer", aliceToken)
	mark = d.audit.mark()
	_, err = raw.Transfer(metadata.AppendToOutgoingContext(ctx, "authorization", "DPoP "+aliceToken, "dpop", proof,
		"stepup-answer", transferCreds.get("stepup-answer")), transfer)
	d.expectRefused(err, mark, interceptor.Reason(challenge.ReasonTOTPReused))

	// 4. A payee added twice: one approval, reused through a grant.
	d.later(time.Minute, "a minute later (TOTP accepts each code once, so alice's app shows a new one)")
	d.section("4. alice adds two payees within 5 minutes (AddPayee: step-up reusable for 5 minutes)")
	mark = d.audit.mark()
	p1, err := bank.AddPayee(ctx, &bankv1.AddPayeeRequest{Name: "Landlord GmbH", Iban: "DE02120300000000202051"})
	d.expectOK(err, "payee %s added after a step-up; the server returned a grant for 5 minutes", p1.GetPayeeId())
	d.expectAudit(mark+1, interceptor.DecisionStepUpPassed, interceptor.ReasonAllowed)
	d.later(2*time.Minute, "two minutes later")
	mark = d.audit.mark()
	p2, err := bank.AddPayee(ctx, &bankv1.AddPayeeRequest{Name: "Power Utility AG", Iban: "DE12500105170648489890"})
	d.expectOK(err, "payee %s added without a challenge: the grant satisfied the policy", p2.GetPayeeId())
	d.expectAudit(mark, interceptor.DecisionAllow, interceptor.ReasonAllowed)
	d.check(d.audit.at(mark) != nil && d.audit.at(mark).Via == "grant", "the second AddPayee was not satisfied by the grant")

	// 5. A transfer approved on a second device.
	d.approvalStep(ctx, phone, alice, aliceToken)

	bal, err = bank.GetBalance(ctx, &bankv1.GetBalanceRequest{AccountId: "alice-checking"})
	d.section("6. Outcome")
	d.expectOK(err, "alice's balance is %s: the transfers of 120.00 EUR and 250.00 EUR, nothing else", money(bal.GetBalance()))
	d.check(bal.GetBalance().GetAmountMinor() == 63_000, "the balance should be 630.00 EUR")
	d.printCounters()
	srv.Stop()
	d.verifyAndReport(auditTrail)
	fmt.Fprintf(out, "\n%d of %d checks behaved as shown.\n", d.steps-d.failed, d.steps)
	return d.failed == 0, nil
}

func (d *demo) dial(opts ...grpc.DialOption) (bankv1.BankServiceClient, error) {
	opts = append(opts, grpc.WithTransportCredentials(credentials.NewTLS(d.tlsConf)), grpc.WithAuthority(authority))
	cc, err := grpc.NewClient(d.addr, opts...)
	if err != nil {
		return nil, err
	}
	return bankv1.NewBankServiceClient(cc), nil
}

func (d *demo) section(title string) { fmt.Fprintf(d.out, "\n%s\n", title) }

// later moves the demo's clock, shared by every component, forward.
func (d *demo) later(by time.Duration, what string) {
	d.clock.advance(by)
	fmt.Fprintf(d.out, "\n   ... %s\n", what)
}

// clock is the demo's time: real time at the start, moved forward by the
// script so that the demo runs in a second.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) advance(by time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(by)
	c.mu.Unlock()
}

func (d *demo) fail(format string, args ...any) {
	d.failed++
	fmt.Fprintf(d.out, "   UNEXPECTED: "+format+"\n", args...)
}

// check counts one expectation that has no output of its own.
func (d *demo) check(ok bool, failure string) {
	d.steps++
	if !ok {
		d.fail("%s", failure)
	}
}

func (d *demo) expectOK(err error, format string, args ...any) {
	d.steps++
	if err != nil {
		d.fail("the call failed: %v", err)
		return
	}
	fmt.Fprintf(d.out, "   ok: "+format+"\n", args...)
}

// expectAudit checks the audit event at index i.
func (d *demo) expectAudit(i int, decision interceptor.Decision, reason interceptor.Reason) {
	d.steps++
	ev := d.audit.at(i)
	if ev == nil || ev.Decision != decision || ev.Reason != reason {
		d.fail("audit event %d is %v, want %s %s", i, ev, decision, reason)
		return
	}
	fmt.Fprintf(d.out, "   audit: %s\n", d.audit.line(i))
}

// expectRefused checks a refusal on the wire and its audit reason.
func (d *demo) expectRefused(err error, mark int, reason interceptor.Reason) {
	d.steps++
	if err == nil {
		d.fail("the attack succeeded")
		return
	}
	st, _ := status.FromError(err)
	fmt.Fprintf(d.out, "    client sees: %s %s (%q)\n", st.Code(), interceptor.ReasonFromError(err), st.Message())
	ev := d.audit.at(mark)
	if ev == nil || ev.Reason != reason {
		d.fail("audit reason %v, want %s", ev, reason)
		return
	}
	fmt.Fprintf(d.out, "    server logs: %s\n", d.audit.line(mark))
}

// attacksLegend says what the two lines of each refusal are.
const attacksLegend = `   Each refusal is shown twice. "client sees" is all the caller gets: the gRPC
   code, the wire reason (the RFC 6750 / 9449 / 9470 error code) and a hint of
   what to change on which side, the same for every cause of its class
   (docs/PROTOCOL.md, 7.2 and 7.4). "server logs" is the audit event: its reason
   (DPOP_KEY_MISMATCH, ...) names the precise cause, for the operator only
   (docs/AUDIT.md). An attacker learns nothing from the first that helps forge.
`

// countersLegend reads the decision counters.
const countersLegend = `   allow and step_up_passed let a call through; challenge, deny and
   step_up_failed refused it (the client saw the wire reason, the audit log has
   the reason in this table); approval_pending counts the retries of a call
   whose approval the user had not decided yet: waiting, not failing.
`

func money(m *bankv1.Money) string {
	if m == nil {
		return "?"
	}
	return fmt.Sprintf("%d.%02d %s", m.GetAmountMinor()/100, m.GetAmountMinor()%100, m.GetCurrency())
}

// auditTape keeps every audit event and its JSON line.
type auditTape struct {
	mu     sync.Mutex
	events []interceptor.Event
	lines  []string
}

func (a *auditTape) Audit(ctx context.Context, e *interceptor.Event) {
	var buf bytes.Buffer
	h := slog.NewJSONHandler(&buf, &slog.HandlerOptions{ReplaceAttr: func(_ []string, at slog.Attr) slog.Attr {
		if at.Key == slog.TimeKey || at.Key == slog.LevelKey || at.Key == "latency" || at.Key == "peer" {
			return slog.Attr{}
		}
		if at.Key == "jkt" {
			at.Value = slog.StringValue(at.Value.String()[:12] + "…")
		}
		return at
	}})
	interceptor.NewSlogSink(slog.New(h)).Audit(ctx, e)
	a.mu.Lock()
	a.events = append(a.events, *e)
	a.lines = append(a.lines, strings.TrimSpace(buf.String()))
	a.mu.Unlock()
}

func (a *auditTape) mark() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.events)
}

func (a *auditTape) at(i int) *interceptor.Event {
	a.mu.Lock()
	defer a.mu.Unlock()
	if i < 0 || i >= len(a.events) {
		return nil
	}
	e := a.events[i]
	return &e
}

func (a *auditTape) line(i int) string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.lines[i]
}

// wiretap records the credential headers of every call, as an attacker on
// the path would.
type wiretap struct {
	mu   sync.Mutex
	seen map[string]capture
}

type capture metadata.MD

func (c capture) get(k string) string {
	if v := metadata.MD(c).Get(k); len(v) > 0 {
		return v[0]
	}
	return ""
}

func (c capture) pairs(keys ...string) []string {
	var kv []string
	for _, k := range keys {
		kv = append(kv, k, c.get(k))
	}
	return kv
}

func (w *wiretap) unary(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
	md, _ := metadata.FromIncomingContext(ctx)
	w.mu.Lock()
	if w.seen == nil {
		w.seen = map[string]capture{}
	}
	w.seen[info.FullMethod] = capture(md.Copy())
	w.mu.Unlock()
	return h(ctx, req)
}

func (w *wiretap) last(method string) capture {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.seen[method]
}

// newIssuer makes the token issuer's ES256 key and its public JWK Set
// document.
func newIssuer() (jwk.Key, []byte, error) {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	priv, err := jwk.Import(k)
	if err != nil {
		return nil, nil, err
	}
	if err := priv.Set(jwk.KeyIDKey, "issuer-1"); err != nil {
		return nil, nil, err
	}
	pub, err := priv.PublicKey()
	if err != nil {
		return nil, nil, err
	}
	set := jwk.NewSet()
	if err := set.AddKey(pub); err != nil {
		return nil, nil, err
	}
	jwks, err := json.Marshal(set)
	if err != nil {
		return nil, nil, err
	}
	return priv, jwks, nil
}

// mintToken issues an RFC 9068 access token bound to jkt.
func mintToken(key jwk.Key, now time.Time, sub, jkt, scope string) (string, error) {
	tok, err := jwt.NewBuilder().Issuer(issuerURL).Subject(sub).Audience([]string{audience}).
		IssuedAt(now).Expiration(now.Add(time.Hour)).JwtID("at-"+sub+"-1").
		Claim("client_id", "bank-app").Claim("scope", scope).Claim("cnf", map[string]any{"jkt": jkt}).Build()
	if err != nil {
		return "", err
	}
	hdr := jws.NewHeaders()
	if err := hdr.Set(jws.TypeKey, "at+jwt"); err != nil {
		return "", err
	}
	signed, err := jwt.Sign(tok, jwt.WithKey(jwa.ES256(), key, jws.WithProtectedHeaders(hdr)))
	return string(signed), err
}

// selfSignedTLS makes a certificate for name and the matching client config.
func selfSignedTLS(name string) (*tls.Config, *tls.Config, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name}, DNSNames: []string{name},
		NotBefore: time.Now().Add(-time.Minute), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, nil, err
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	server := &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}, MinVersion: tls.VersionTLS13}
	client := &tls.Config{RootCAs: pool, ServerName: name, MinVersion: tls.VersionTLS13}
	return server, client, nil
}
