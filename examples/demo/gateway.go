package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"

	"github.com/stepupgrpc/stepup/challenge"
	"github.com/stepupgrpc/stepup/challenge/totp"
	"github.com/stepupgrpc/stepup/dpop"
	bankv1 "github.com/stepupgrpc/stepup/examples/bank/v1"
	"github.com/stepupgrpc/stepup/gateway"
	"github.com/stepupgrpc/stepup/gateway/assertion"
	"github.com/stepupgrpc/stepup/interceptor"
	relayv1 "github.com/stepupgrpc/stepup/internal/testproto/relay/v1"
	stepupv1 "github.com/stepupgrpc/stepup/proto/stepup/v1"
	"github.com/stepupgrpc/stepup/testing/nodebackend"
)

// NodeBackendDir is the Node backend the gateway demo runs, from the
// repository root; `npm ci --prefix gateway/testdata/node-backend` installs it.
const NodeBackendDir = nodebackend.Dir

// gatewayConfig is the demo gateway's configuration file; the %s are the
// backend's address and the JWKS address.
const gatewayConfig = `# stepup-gateway in front of a Node backend that knows nothing of Stepup.
listen: "127.0.0.1:0"
tls: {cert_file: gateway.crt, key_file: gateway.key}
backend: {address: %q, insecure_plaintext: true}
descriptor_sets: [api.binpb]   # bank.v1, annotated (and the test API the backend also serves)
token: {issuer: %q, audience: %q, jwks_file: issuer-jwks.json}
dpop: {authorities: [%s]}
step_up: {keys_file: stepup-keys.json, totp_secrets_file: totp.json}
assertion: {key_file: assertion-key.json, issuer: "https://gateway.bank.example", audience: bank-backend}
`

// runGateway is the gateway demo: the same bank API, served by a Node
// backend behind stepup-gateway. It returns whether every step behaved as
// shown.
func runGateway(out io.Writer) (bool, error) {
	d := &demo{out: out, audit: &auditTape{}, clock: &clock{now: time.Now()}}
	ctx := context.Background()
	node, err := exec.LookPath("node")
	if err != nil {
		return false, errors.New("the gateway demo needs node (the backend is in Node)")
	}
	if _, err := os.Stat(filepath.Join(NodeBackendDir, "node_modules")); err != nil {
		return false, fmt.Errorf("the Node backend is not installed: npm ci --prefix %s", NodeBackendDir)
	}
	dir, err := os.MkdirTemp("", "stepup-gateway-demo-")
	if err != nil {
		return false, err
	}
	defer os.RemoveAll(dir)

	// The files an operator writes: keys, enrolments, the descriptor set
	// (buf build -o api.binpb), the config.
	issuerKey, issuerJWKS, err := newIssuer()
	if err != nil {
		return false, err
	}
	serverTLS, clientTLS, err := selfSignedTLS(authority)
	if err != nil {
		return false, err
	}
	certDER := serverTLS.Certificates[0].Certificate[0]
	keyDER, err := x509.MarshalPKCS8PrivateKey(serverTLS.Certificates[0].PrivateKey)
	if err != nil {
		return false, err
	}
	stepKey, err := challenge.GenerateKey("demo-1")
	if err != nil {
		return false, err
	}
	keys, err := challenge.NewKeySet(stepKey)
	if err != nil {
		return false, err
	}
	rawAssertionKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return false, err
	}
	assertionKey, err := assertion.MarshalPrivateJWK(rawAssertionKey, "gateway-1")
	if err != nil {
		return false, err
	}
	descriptors, err := gateway.DescriptorSet(bankv1.File_bank_v1_bank_proto, relayv1.File_relay_v1_relay_proto)
	if err != nil {
		return false, err
	}
	files := map[string]any{
		"gateway.crt":        pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: certDER}),
		"gateway.key":        pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}),
		"issuer-jwks.json":   issuerJWKS,
		"stepup-keys.json":   keys,
		"totp.json":          map[string]string{"alice": aliceTOTP},
		"assertion-key.json": assertionKey,
		"api.binpb":          descriptors,
	}
	for name, v := range files {
		b, ok := v.([]byte)
		if !ok {
			if b, err = json.Marshal(v); err != nil {
				return false, err
			}
		}
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
			return false, err
		}
	}

	// The gateway's JWKS endpoint, which the backend fetches.
	var jwks atomic.Pointer[http.Handler]
	jwksLis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return false, err
	}
	jwksSrv := &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if h := jwks.Load(); h != nil {
			(*h).ServeHTTP(w, r)
			return
		}
		http.Error(w, "starting", http.StatusServiceUnavailable)
	})}
	go func() { _ = jwksSrv.Serve(jwksLis) }()
	defer jwksSrv.Close()

	// The Node backend.
	nodeCtx, stopNode := context.WithCancel(ctx)
	defer stopNode()
	backendAddr, waitNode, err := nodebackend.Start(nodeCtx, nodebackend.Config{
		Node: node, Dir: NodeBackendDir, Descriptors: filepath.Join(dir, "api.binpb"),
		JWKSURL: "http://" + jwksLis.Addr().String() + "/.well-known/jwks.json",
		Issuer:  "https://gateway.bank.example", Audience: "bank-backend", Stderr: os.Stderr,
	})
	if err != nil {
		return false, err
	}
	defer func() { stopNode(); waitNode() }()
	cfgPath := filepath.Join(dir, "gateway.yaml")
	cfg := fmt.Sprintf(gatewayConfig, backendAddr, issuerURL, audience, authority)
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		return false, err
	}
	gw, err := gateway.Load(cfgPath, gateway.WithAuditSink(interceptor.Sinks(d.audit, d.metrics())), gateway.WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))))
	if err != nil {
		return false, err
	}
	defer gw.Close()
	h := gw.JWKSHandler()
	jwks.Store(&h)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return false, err
	}
	go func() { _ = gw.Serve(lis) }()
	d.addr, d.tlsConf = lis.Addr().String(), clientTLS

	fmt.Fprintf(out, "Stepup gateway demo: stepup-gateway on %s (TLS, as %s) in front of a Node backend on %s\n", d.addr, authority, backendAddr)
	fmt.Fprintf(out, "(@grpc/grpc-js, no Stepup code: it trusts only the gateway's signed identity assertion, verified with jose).\n")
	fmt.Fprintf(out, "Policies come from bank.proto's annotations, read from a descriptor set.\n")

	stats := func() map[string]int64 {
		cc, err := grpc.NewClient(backendAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			return nil
		}
		defer cc.Close()
		resp, err := relayv1.NewStatsServiceClient(cc).Stats(ctx, &relayv1.StatsRequest{})
		if err != nil {
			return nil
		}
		return resp.GetCalls()
	}
	served := func() int64 {
		var n int64
		for _, v := range stats() {
			n += v
		}
		return n
	}

	// Alice: her DPoP key, a token bound to it, her TOTP app.
	aliceKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return false, err
	}
	aliceSigner, err := dpop.NewSigner(aliceKey)
	if err != nil {
		return false, err
	}
	aliceToken, err := mintToken(issuerKey, time.Now(), "alice", aliceSigner.Thumbprint(), "bank bank:transfer")
	if err != nil {
		return false, err
	}
	aliceClient, err := interceptor.NewClient(aliceSigner, interceptor.StaticToken(aliceToken))
	if err != nil {
		return false, err
	}
	aliceBank, err := d.dial(aliceClient.DialOptions()...)
	if err != nil {
		return false, err
	}

	d.section("1. Alice reads her balance through the gateway")
	mark := d.audit.mark()
	bal, err := aliceBank.GetBalance(ctx, &bankv1.GetBalanceRequest{AccountId: "alice-checking"})
	d.expectOK(err, "balance %s (answered by Node, for the subject in the gateway's assertion)", money(bal.GetBalance()))
	d.expectAudit(mark, interceptor.DecisionAllow, interceptor.ReasonAllowed)

	d.section("2. Mallory stole Alice's access token; her proofs are signed by her own key")
	malloryKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return false, err
	}
	mallorySigner, err := dpop.NewSigner(malloryKey)
	if err != nil {
		return false, err
	}
	malloryClient, err := interceptor.NewClient(mallorySigner, interceptor.StaticToken(aliceToken))
	if err != nil {
		return false, err
	}
	malloryBank, err := d.dial(malloryClient.DialOptions()...)
	if err != nil {
		return false, err
	}
	before := served()
	mark = d.audit.mark()
	_, err = malloryBank.GetBalance(ctx, &bankv1.GetBalanceRequest{AccountId: "alice-checking"})
	d.expectRefused(err, mark, interceptor.Reason(dpop.ReasonKeyMismatch))

	d.section("3. Alice transfers money: the gateway challenges her")
	transfer := &bankv1.TransferRequest{FromAccountId: "alice-checking", AmountMinor: 12_000, Currency: "EUR", ToIban: aliceIBAN, Reference: "rent"}
	bare, err := d.dial()
	if err != nil {
		return false, err
	}
	signed := func(extra ...string) context.Context {
		proof, perr := aliceSigner.Proof("POST", "https://"+authority+"/bank.v1.BankService/Transfer", aliceToken)
		if perr != nil {
			proof = "error: " + perr.Error()
		}
		kv := append([]string{interceptor.MetadataAuthorization, "DPoP " + aliceToken, interceptor.MetadataDPoP, proof}, extra...)
		return metadata.AppendToOutgoingContext(ctx, kv...)
	}
	mark = d.audit.mark()
	_, err = bare.Transfer(signed(), transfer)
	ch := interceptor.ChallengeFromError(err)
	d.check(ch != nil, fmt.Sprintf("no challenge: %v", err))
	if ch != nil {
		fmt.Fprintf(out, "   challenge: %s (factors %v, bound to this request: %v)\n", ch.GetSummaryText(), ch.GetFactors(), ch.GetBoundToRequest())
	}
	d.expectAudit(mark, interceptor.DecisionChallenge, interceptor.ReasonStepUpRequired)

	d.section("4. Alice approves with the code from her authenticator app")
	code, err := totp.Code(aliceTOTP, time.Now())
	if err != nil {
		return false, err
	}
	answer, err := challenge.Answer(aliceSigner, ch, &challenge.Evidence{Factor: stepupv1.Factor_FACTOR_TOTP, TOTP: code})
	if err != nil {
		return false, err
	}
	approved := signed(interceptor.MetadataStepUpAnswer, answer)
	mark = d.audit.mark()
	resp, err := bare.Transfer(approved, transfer)
	d.expectOK(err, "transfer %s done by Node; balance after %s", resp.GetTransferId(), money(resp.GetBalanceAfter()))
	d.expectAudit(mark, interceptor.DecisionStepUpPassed, interceptor.ReasonAllowed)

	d.section("5. The approved call, captured and replayed byte for byte")
	mark = d.audit.mark()
	_, err = bare.Transfer(approved, transfer)
	d.expectRefused(err, mark, interceptor.Reason(dpop.ReasonReplayed))

	d.section("6. A client that sends its own identity assertion and no credentials")
	forged := metadata.AppendToOutgoingContext(ctx, assertion.Metadata, "eyJhbGciOiJub25lIn0.eyJzdWIiOiJhbGljZSJ9.")
	mark = d.audit.mark()
	_, err = bare.GetBalance(forged, &bankv1.GetBalanceRequest{AccountId: "alice-checking"})
	d.expectRefused(err, mark, interceptor.ReasonTokenMissing)

	d.section("What reached the Node backend")
	calls := stats()
	for _, m := range []string{"/bank.v1.BankService/GetBalance", "/bank.v1.BankService/Transfer"} {
		fmt.Fprintf(out, "   %s: %d\n", m, calls[m])
	}
	d.check(calls["/bank.v1.BankService/GetBalance"] == 1 && calls["/bank.v1.BankService/Transfer"] == 1,
		fmt.Sprintf("the backend served %v, want one balance and one transfer", calls))
	d.check(served()-before == 1, "a refused call reached the backend")
	fmt.Fprintf(out, "   every refused call stopped at the gateway\n")

	d.printCounters()
	fmt.Fprintf(out, "\n%d of %d checks behaved as shown.\n", d.steps-d.failed, d.steps)
	return d.failed == 0, nil
}
