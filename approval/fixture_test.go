package approval_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"net"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/stepupgrpc/stepup/approval"
	"github.com/stepupgrpc/stepup/challenge"
	approvalfactor "github.com/stepupgrpc/stepup/challenge/approval"
	"github.com/stepupgrpc/stepup/challenge/redisstore"
	"github.com/stepupgrpc/stepup/challenge/webauthn"
	"github.com/stepupgrpc/stepup/dpop"
	"github.com/stepupgrpc/stepup/examples/bank/bankserver"
	bankv1 "github.com/stepupgrpc/stepup/examples/bank/v1"
	"github.com/stepupgrpc/stepup/interceptor"
	"github.com/stepupgrpc/stepup/testing/testkit"
)

const (
	alice        = "alice"
	aliceHandle  = "user-handle-alice"
	issuer       = "https://issuer.test"
	audience     = "bank.test"
	transferRPC  = "/bank.v1.BankService/Transfer"
	checkingAcct = "alice-checking"
)

// passkey is alice's passkey: a P-256 key and credential id, registered
// with the server and loaded into the browser's virtual authenticator.
type passkey struct {
	id  []byte
	key *ecdsa.PrivateKey
}

func newPasskey(t testing.TB) *passkey {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	id := make([]byte, 16)
	if _, err := rand.Read(id); err != nil {
		t.Fatal(err)
	}
	return &passkey{id: id, key: key}
}

// replica is one server of the deployment: a challenge.Service, a Guard in
// front of the bank on loopback gRPC, and the approver page on loopback
// HTTP, all sharing the keys and the store of the others.
type replica struct {
	svc *challenge.Service
	// approvals is the Service's approval factor, the page's Approvals.
	approvals *approvalfactor.Factor
	grpcAddr  string
	pageURL   string // http://localhost:<port>/
	origin    string
	guard     *interceptor.AuditRecorder
	page      *interceptor.AuditRecorder
}

// deployment is one or more replicas, the token issuer, alice's DPoP key
// and token, and her passkey.
type deployment struct {
	t        testing.TB
	replicas []*replica
	issuer   *testkit.Issuer
	signer   *dpop.Signer
	token    string
	passkey  *passkey
}

// newDeployment starts n replicas sharing store (the memory store only
// makes sense for one).
func newDeployment(t testing.TB, n int, store challenge.ApprovalStore) *deployment {
	t.Helper()
	d := &deployment{t: t, issuer: testkit.NewIssuer(t), passkey: newPasskey(t)}
	keys := newKeys(t)
	cred, err := webauthn.CredentialFromKey(d.passkey.id, &d.passkey.key.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	creds := webauthn.NewMemoryCredentials()
	creds.AddCredential(alice, []byte(aliceHandle), cred)

	// Listen first: the WebAuthn origins are the pages' addresses.
	pageLis := make([]net.Listener, n)
	var origins []string
	for i := range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		pageLis[i] = l
		origins = append(origins, "http://localhost:"+strconv.Itoa(l.Addr().(*net.TCPAddr).Port))
	}
	wa, err := webauthn.New(webauthn.Config{RPID: "localhost", RPDisplayName: "Stepup bank", RPOrigins: origins}, creds)
	if err != nil {
		t.Fatal(err)
	}
	tokens, err := interceptor.NewJWTVerifier(interceptor.JWTConfig{Issuer: issuer, Audience: audience, JWKS: d.issuer.PublicJWKS()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(tokens.Close)
	for i := range n {
		approvals, err := wa.NewApproval(origins[i], nil, approvalfactor.Options{Poll: 100 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		svc, err := challenge.NewService(challenge.WithKeys(keys), challenge.WithStore(store),
			challenge.WithFactor(wa), challenge.WithFactor(approvals))
		if err != nil {
			t.Fatal(err)
		}
		proofs, err := dpop.NewVerifier(dpop.WithReplayStore(store))
		if err != nil {
			t.Fatal(err)
		}
		r := &replica{svc: svc, approvals: approvals, origin: origins[i], pageURL: origins[i] + "/",
			guard: &interceptor.AuditRecorder{}, page: &interceptor.AuditRecorder{}}
		guard, err := interceptor.New(interceptor.WithTokenVerifier(tokens), interceptor.WithDPoP(proofs),
			interceptor.WithStepUp(svc), interceptor.WithAuditSink(r.guard), interceptor.WithRequirePolicy())
		if err != nil {
			t.Fatal(err)
		}
		bank := bankserver.New(nil)
		bank.Open(alice, checkingAcct, "EUR", 1_000_000)
		srv := grpc.NewServer(grpc.ChainUnaryInterceptor(guard.UnaryServerInterceptor()), grpc.ChainStreamInterceptor(guard.StreamServerInterceptor()))
		bank.Register(srv)
		gl, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		r.grpcAddr = gl.Addr().String()
		go func() { _ = srv.Serve(gl) }()
		t.Cleanup(srv.Stop)

		page, err := approval.New(approval.Config{Approvals: approvals, Origin: origins[i], Audit: r.page})
		if err != nil {
			t.Fatal(err)
		}
		hs := &http.Server{Handler: page, ReadHeaderTimeout: 5 * time.Second}
		go func() { _ = hs.Serve(pageLis[i]) }()
		t.Cleanup(func() { _ = hs.Close() })
		d.replicas = append(d.replicas, r)
	}

	dkey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	if d.signer, err = dpop.NewSigner(dkey); err != nil {
		t.Fatal(err)
	}
	d.token = d.issuer.Mint(t, time.Now(), testkit.TokenOptions{
		Subject: alice, JKT: d.signer.Thumbprint(), Scope: "bank bank:transfer", Issuer: issuer, Audience: audience,
	})
	return d
}

// bank dials replica r as alice, with the given client options.
func (d *deployment) bank(r *replica, opts ...interceptor.ClientOption) bankv1.BankServiceClient {
	d.t.Helper()
	c, err := interceptor.NewClient(d.signer, interceptor.StaticToken(d.token), append(opts, interceptor.WithInsecureLocalTransport())...)
	if err != nil {
		d.t.Fatal(err)
	}
	conn, err := grpc.NewClient(r.grpcAddr, append(c.DialOptions(), grpc.WithTransportCredentials(insecure.NewCredentials()))...)
	if err != nil {
		d.t.Fatal(err)
	}
	d.t.Cleanup(func() { _ = conn.Close() })
	return bankv1.NewBankServiceClient(conn)
}

// redisApprovalStore returns the store of a deployment of several
// replicas: a private redis-server of this test (testkit.StartRedis: a free
// port, stopped by its PID at cleanup; skipped without redis-server,
// failed under CI).
func redisApprovalStore(t testing.TB) challenge.ApprovalStore {
	t.Helper()
	srv := testkit.StartRedis(t)
	c := redis.NewClient(&redis.Options{Addr: srv.Addr, ContextTimeoutEnabled: true, DisableIdentity: true})
	t.Cleanup(func() { _ = c.Close() })
	// Not a test of the store's deadline (challenge/redisstore has those):
	// a machine busy with other tests must not fail the flow closed.
	s, err := redisstore.New(c, redisstore.WithTimeout(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func memoryApprovalStore(t testing.TB) challenge.ApprovalStore {
	t.Helper()
	s, err := challenge.NewMemoryStore(10_000, nil)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// newKeys returns a fresh challenge key set.
func newKeys(t testing.TB) *challenge.KeySet {
	t.Helper()
	key, err := challenge.GenerateKey("test-1")
	if err != nil {
		t.Fatal(err)
	}
	keys, err := challenge.NewKeySet(key)
	if err != nil {
		t.Fatal(err)
	}
	return keys
}
