package redisstore_test

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"

	"github.com/stepupgrpc/stepup/challenge"
	"github.com/stepupgrpc/stepup/dpop"
	"github.com/stepupgrpc/stepup/examples/bank/bankserver"
	bankv1 "github.com/stepupgrpc/stepup/examples/bank/v1"
	"github.com/stepupgrpc/stepup/interceptor"
	stepupv1 "github.com/stepupgrpc/stepup/proto/stepup/v1"
	"github.com/stepupgrpc/stepup/testing/testkit"
)

// A fleet is several replicas of the example bank on loopback TCP, each with
// its own Guard, dpop.Verifier, challenge.Service and bank, sharing what real
// replicas share: the access-token issuer's keys, the step-up key file (read
// with challenge.LoadKeySet) and a Redis store.

const (
	issuerURL  = "https://issuer.example"
	audience   = "https://bank.example"
	authority  = "bank.example"
	totpSecret = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"
	openingEUR = 100_000

	mGetBalance = "/bank.v1.BankService/GetBalance"
	mTransfer   = "/bank.v1.BankService/Transfer"
	mAddPayee   = "/bank.v1.BankService/AddPayee"
)

// newClock returns the clock shared by every component of a test. It starts
// at the real time, so that Redis expires the keys of the test within
// minutes.
func newClock() *testkit.Clock { return testkit.NewClock(time.Now().Truncate(time.Second)) }

// auditLog records every audit event.
type auditLog struct{ interceptor.AuditRecorder }

func (a *auditLog) all() []interceptor.Event { return a.Events() }

func (a *auditLog) last(t testing.TB) interceptor.Event {
	t.Helper()
	ev, ok := a.Last()
	if !ok {
		t.Fatal("no audit event")
	}
	return ev
}

// replica is one server of the fleet.
type replica struct {
	name   string
	audit  *auditLog
	bank   *bankserver.Bank
	stepUp *challenge.Service
	addr   string
	client bankv1.BankServiceClient // raw: the test sets every header itself
}

// fleet is the replicas, and alice: her DPoP key, device key and token.
type fleet struct {
	t        testing.TB
	clock    *testkit.Clock
	replicas []*replica
	signer   *dpop.Signer
	device   *ecdsa.PrivateKey
	token    string
}

// fleetOpts say which store each replica uses for DPoP replay and for
// step-up, and any extra step-up options.
type fleetOpts struct {
	replicas    int
	dpopStore   func(i int) dpop.ReplayStore
	stepUpStore func(i int) challenge.Store
	stepUpOpts  []challenge.Option
	realClock   bool // benchmarks: time.Now instead of a settable clock
	noAudit     bool // benchmarks: discard audit events instead of keeping them
	guardOpts   []interceptor.Option
}

func newFleet(t testing.TB, o fleetOpts) *fleet {
	t.Helper()
	f := &fleet{t: t, clock: newClock()}
	now := f.clock.Now
	if o.realClock {
		now = time.Now
	}
	is := testkit.NewIssuer(t)

	// The step-up key file every replica loads.
	key, err := challenge.GenerateKey("k1")
	if err != nil {
		t.Fatal(err)
	}
	ks, err := challenge.NewKeySet(key)
	if err != nil {
		t.Fatal(err)
	}
	keyJSON, err := ks.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	keyFile := filepath.Join(t.TempDir(), "stepup-keys.json")
	if err := os.WriteFile(keyFile, keyJSON, 0o600); err != nil {
		t.Fatal(err)
	}

	f.device, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	dpopKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	f.signer, err = dpop.NewSigner(dpopKey, dpop.WithClock(now))
	if err != nil {
		t.Fatal(err)
	}
	f.token = mintToken(t, is, now(), f.signer.Thumbprint())

	for i := range o.replicas {
		f.replicas = append(f.replicas, f.startReplica(t, i, o, is, keyFile, now))
	}
	return f
}

func (f *fleet) startReplica(t testing.TB, i int, o fleetOpts, is *testkit.Issuer, keyFile string, now func() time.Time) *replica {
	t.Helper()
	r := &replica{name: string(rune('A' + i)), audit: &auditLog{}, bank: bankserver.New(now)}
	r.bank.Open("alice", "alice-checking", "EUR", openingEUR)
	tokens, err := interceptor.NewJWTVerifier(interceptor.JWTConfig{Issuer: issuerURL, Audience: audience, JWKS: is.PublicJWKS(), Clock: now})
	if err != nil {
		t.Fatal(err)
	}
	proofs, err := dpop.NewVerifier(dpop.WithClock(now), dpop.WithAuthorities(authority), dpop.WithReplayStore(o.dpopStore(i)))
	if err != nil {
		t.Fatal(err)
	}
	keys, err := challenge.LoadKeySet(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	device := f.device.Public()
	r.stepUp, err = challenge.NewService(append([]challenge.Option{
		challenge.WithKeys(keys), challenge.WithClock(now), challenge.WithStore(o.stepUpStore(i)),
		challenge.WithTOTP(challenge.TOTPSecretsFunc(func(_ context.Context, sub string) (string, error) {
			if sub == "alice" {
				return totpSecret, nil
			}
			return "", challenge.ErrUnknownSubject
		}), challenge.TOTPOptions{}),
		challenge.WithDeviceKeys(challenge.DeviceKeysFunc(func(_ context.Context, sub string) ([]crypto.PublicKey, error) {
			if sub == "alice" {
				return []crypto.PublicKey{device}, nil
			}
			return nil, challenge.ErrUnknownSubject
		})),
	}, o.stepUpOpts...)...)
	if err != nil {
		t.Fatal(err)
	}
	var sink interceptor.AuditSink = r.audit
	if o.noAudit {
		sink = interceptor.AuditFunc(func(context.Context, *interceptor.Event) {})
	}
	guard, err := interceptor.New(append([]interceptor.Option{
		interceptor.WithTokenVerifier(tokens), interceptor.WithDPoP(proofs), interceptor.WithStepUp(r.stepUp),
		interceptor.WithAuditSink(sink), interceptor.WithClock(now), interceptor.WithRequirePolicy(),
	}, o.guardOpts...)...)
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer(grpc.UnaryInterceptor(guard.UnaryServerInterceptor()), grpc.StreamInterceptor(guard.StreamServerInterceptor()))
	r.bank.Register(srv)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r.addr = lis.Addr().String()
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)
	r.client = bankv1.NewBankServiceClient(dial(t, r.addr))
	return r
}

// dial connects to addr over plaintext loopback, naming the server
// bank.example as a real client would.
func dial(t testing.TB, addr string, opts ...grpc.DialOption) *grpc.ClientConn {
	t.Helper()
	cc, err := grpc.NewClient(addr, append([]grpc.DialOption{
		grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithAuthority(authority),
	}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cc.Close() })
	return cc
}

// creds returns a context carrying alice's token, a fresh proof for method,
// and the extra header pairs (stepup-answer, stepup-grant).
func (f *fleet) creds(method string, kv ...string) context.Context {
	f.t.Helper()
	return f.credsWithProof(f.proof(method), kv...)
}

func (f *fleet) proof(method string) string {
	f.t.Helper()
	p, err := f.signer.Proof("POST", "https://"+authority+method, f.token)
	if err != nil {
		f.t.Fatal(err)
	}
	return p
}

func (f *fleet) credsWithProof(proof string, kv ...string) context.Context {
	return metadata.AppendToOutgoingContext(context.Background(),
		append([]string{"authorization", "DPoP " + f.token, "dpop", proof}, kv...)...)
}

// transfer is the request every step-up test approves.
func transfer() *bankv1.TransferRequest {
	return &bankv1.TransferRequest{FromAccountId: "alice-checking", AmountMinor: 12_000, Currency: "EUR", ToIban: "DE89370400440532013000"}
}

// challengeFrom makes a Transfer on r without an answer and returns the
// challenge it is refused with.
func (f *fleet) challengeFrom(r *replica) *stepupv1.StepUpChallenge {
	f.t.Helper()
	_, err := r.client.Transfer(f.creds(mTransfer), transfer())
	ch := interceptor.ChallengeFromError(err)
	if ch == nil {
		f.t.Fatalf("replica %s: Transfer without an answer = %v, want a step-up challenge", r.name, err)
	}
	return ch
}

// totpAnswer answers ch with the TOTP code of the fleet's current time.
func (f *fleet) totpAnswer(ch *stepupv1.StepUpChallenge) string {
	f.t.Helper()
	code, err := challenge.TOTPCode(totpSecret, f.clock.Now())
	if err != nil {
		f.t.Fatal(err)
	}
	return f.answer(ch, &challenge.Evidence{Factor: stepupv1.Factor_FACTOR_TOTP, TOTP: code})
}

// deviceAnswer answers ch with a signature by alice's device key.
func (f *fleet) deviceAnswer(ch *stepupv1.StepUpChallenge) string {
	f.t.Helper()
	resp, err := challenge.DeviceKeyResponder(f.device)
	if err != nil {
		f.t.Fatal(err)
	}
	ev, err := resp.Respond(context.Background(), ch)
	if err != nil {
		f.t.Fatal(err)
	}
	return f.answer(ch, ev)
}

func (f *fleet) answer(ch *stepupv1.StepUpChallenge, ev *challenge.Evidence) string {
	f.t.Helper()
	a, err := challenge.Answer(f.signer, ch, ev)
	if err != nil {
		f.t.Fatal(err)
	}
	return a
}

// balance returns alice's balance on r's in-memory bank.
func (f *fleet) balance(r *replica) int64 {
	f.t.Helper()
	resp, err := r.client.GetBalance(f.creds(mGetBalance), &bankv1.GetBalanceRequest{AccountId: "alice-checking"})
	if err != nil {
		f.t.Fatalf("replica %s: GetBalance: %v", r.name, err)
	}
	return resp.GetBalance().GetAmountMinor()
}

// mintToken returns a token of is for alice, bound to the DPoP key
// thumbprint jkt, with the scopes of every bank method.
func mintToken(t testing.TB, is *testkit.Issuer, now time.Time, jkt string) string {
	t.Helper()
	return is.Mint(t, now, testkit.TokenOptions{
		Issuer: issuerURL, Audience: audience, ClientID: "bank-app", JTI: "tok-alice",
		Scope: "bank bank:transfer", JKT: jkt,
	})
}
