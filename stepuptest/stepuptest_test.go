package stepuptest_test

import (
	"context"
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	healthserver "google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	"github.com/stepupgrpc/stepup/challenge"
	"github.com/stepupgrpc/stepup/examples/bank/bankserver"
	bankv1 "github.com/stepupgrpc/stepup/examples/bank/v1"
	"github.com/stepupgrpc/stepup/interceptor"
	"github.com/stepupgrpc/stepup/stepuptest"
)

const totpSecret = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"

// TestBankThroughTheGuard is what a user's test of their service looks
// like: the real Guard, the service's annotations, a DPoP caller that
// answers TOTP step-up, a caller without the transfer scope.
func TestBankThroughTheGuard(t *testing.T) {
	is := stepuptest.NewIssuer(t)
	key, _ := challenge.GenerateKey("k")
	keys, _ := challenge.NewKeySet(key)
	stepUp, err := challenge.NewService(challenge.WithKeys(keys), challenge.WithTOTP(challenge.TOTPSecretsFunc(
		func(context.Context, string) (string, error) { return totpSecret, nil }), challenge.TOTPOptions{}))
	if err != nil {
		t.Fatal(err)
	}
	audit := &interceptor.AuditRecorder{}
	guard, err := interceptor.New(interceptor.WithTokenVerifier(is.Verifier(t)), interceptor.WithStepUp(stepUp),
		interceptor.WithRequirePolicy(), interceptor.WithAuditSink(audit))
	if err != nil {
		t.Fatal(err)
	}
	bank := bankserver.New(nil)
	bank.Open("alice", "alice-checking", "EUR", 100_000)
	register := func(s grpc.ServiceRegistrar) { bank.Register(s) }

	alice := stepuptest.NewCaller(t, is, "alice", "bank bank:transfer",
		interceptor.WithResponder(stepuptest.TOTP(totpSecret, time.Now)))
	client := bankv1.NewBankServiceClient(stepuptest.Serve(t, guard, register, alice))
	resp, err := client.Transfer(context.Background(), &bankv1.TransferRequest{
		FromAccountId: "alice-checking", AmountMinor: 1_000, Currency: "EUR", ToIban: "DE89370400440532013000"})
	if err != nil {
		t.Fatal(err)
	}
	if resp.GetBalanceAfter().GetAmountMinor() != 99_000 {
		t.Errorf("balance after %v", resp.GetBalanceAfter())
	}
	if ev, _ := audit.Last(); ev.Decision != interceptor.DecisionStepUpPassed || ev.Factor != "totp" {
		t.Errorf("audit %+v", ev)
	}

	bob := stepuptest.NewCaller(t, is, "bob", "bank")
	_, err = bankv1.NewBankServiceClient(stepuptest.Serve(t, guard, register, bob)).Transfer(context.Background(), &bankv1.TransferRequest{})
	if status.Code(err) != codes.PermissionDenied || interceptor.ReasonFromError(err) != interceptor.WireInsufficientScope {
		t.Errorf("bob without bank:transfer: %v", err)
	}
	anon := bankv1.NewBankServiceClient(stepuptest.Serve(t, guard, register, nil))
	if _, err := anon.GetBalance(context.Background(), &bankv1.GetBalanceRequest{}); status.Code(err) != codes.Unauthenticated {
		t.Errorf("no credentials: %v", err)
	}
}

// TestClockMovesTokens: the issuer's clock drives the tokens, the Guard
// and the client alike.
func TestClockMovesTokens(t *testing.T) {
	clock := stepuptest.NewClock(time.Unix(1_800_000_000, 0))
	is := stepuptest.NewIssuer(t)
	is.Now = clock.Now
	key, _ := challenge.GenerateKey("k")
	keys, _ := challenge.NewKeySet(key)
	stepUp, err := challenge.NewService(challenge.WithKeys(keys), challenge.WithClock(clock.Now), challenge.WithTOTP(challenge.TOTPSecretsFunc(
		func(context.Context, string) (string, error) { return totpSecret, nil }), challenge.TOTPOptions{}))
	if err != nil {
		t.Fatal(err)
	}
	guard, err := interceptor.New(interceptor.WithTokenVerifier(is.Verifier(t)), interceptor.WithClock(clock.Now),
		interceptor.WithStepUp(stepUp), interceptor.WithRequirePolicy())
	if err != nil {
		t.Fatal(err)
	}
	bank := bankserver.New(clock.Now)
	bank.Open("alice", "alice-checking", "EUR", 100)
	alice := stepuptest.NewCaller(t, is, "alice", "bank")
	client := bankv1.NewBankServiceClient(stepuptest.Serve(t, guard, func(s grpc.ServiceRegistrar) { bank.Register(s) }, alice))
	if _, err := client.GetBalance(context.Background(), &bankv1.GetBalanceRequest{AccountId: "alice-checking"}); err != nil {
		t.Fatalf("with a fresh token: %v", err)
	}
	clock.Advance(2 * time.Hour) // the token lived an hour
	if _, err := client.GetBalance(context.Background(), &bankv1.GetBalanceRequest{AccountId: "alice-checking"}); status.Code(err) != codes.Unauthenticated {
		t.Errorf("two hours later: %v", err)
	}
}

// ExampleWithIdentity calls a handler directly, as the Guard would after
// verifying alice.
func ExampleWithIdentity() {
	bank := bankserver.New(nil)
	bank.Open("alice", "alice-checking", "EUR", 12_345)
	ctx := stepuptest.WithIdentity(context.Background(), &interceptor.Identity{Subject: "alice"})
	resp, err := bank.GetBalance(ctx, &bankv1.GetBalanceRequest{AccountId: "alice-checking"})
	fmt.Println(resp.GetBalance().GetAmountMinor(), err)
	_, err = bank.GetBalance(context.Background(), &bankv1.GetBalanceRequest{AccountId: "alice-checking"})
	fmt.Println(status.Code(err))
	// Output:
	// 12345 <nil>
	// NotFound
}

// fatalRecorder is a testing.TB whose Fatal records the message and ends
// the goroutine, as testing.T does, without failing the real test.
type fatalRecorder struct {
	*testing.T
	fatal string
}

func (r *fatalRecorder) Fatal(args ...any) { r.fatal = fmt.Sprint(args...); runtime.Goexit() }
func (r *fatalRecorder) Fatalf(format string, args ...any) {
	r.fatal = fmt.Sprintf(format, args...)
	runtime.Goexit()
}

// serveFatal runs Serve with a recorder and returns what it failed with,
// "" when it returned a connection.
func serveFatal(t *testing.T, guard *interceptor.Guard, register func(grpc.ServiceRegistrar)) string {
	rec := &fatalRecorder{T: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		stepuptest.Serve(rec, guard, register, nil)
	}()
	<-done
	return rec.fatal
}

// TestServeChecksCoverage: a step-up method nobody can enforce (no step-up
// service), or a method without a policy under WithRequirePolicy, fails
// the test at Serve instead of passing it; an enforceable Guard without
// DPoP authorities serves (the in-process connection is plaintext).
func TestServeChecksCoverage(t *testing.T) {
	is := stepuptest.NewIssuer(t)
	bank := func(s grpc.ServiceRegistrar) { bankserver.New(nil).Register(s) }
	noStepUp, err := interceptor.New(interceptor.WithTokenVerifier(is.Verifier(t)))
	if err != nil {
		t.Fatal(err)
	}
	if got := serveFatal(t, noStepUp, bank); !strings.Contains(got, "/bank.v1.BankService/Transfer requires step-up but no challenge service is configured (WithStepUp)") {
		t.Errorf("no step-up service: Serve failed with %q", got)
	}
	strict, err := interceptor.New(interceptor.WithTokenVerifier(is.Verifier(t)), interceptor.WithRequirePolicy())
	if err != nil {
		t.Fatal(err)
	}
	health := func(s grpc.ServiceRegistrar) { healthpb.RegisterHealthServer(s, healthserver.NewServer()) }
	if got := serveFatal(t, strict, health); !strings.Contains(got, "without a stepup policy: /grpc.health.v1.Health/Check") {
		t.Errorf("unannotated method: Serve failed with %q", got)
	}
	key, _ := challenge.GenerateKey("k")
	keys, _ := challenge.NewKeySet(key)
	stepUp, err := challenge.NewService(challenge.WithKeys(keys), challenge.WithTOTP(challenge.TOTPSecretsFunc(
		func(context.Context, string) (string, error) { return totpSecret, nil }), challenge.TOTPOptions{}))
	if err != nil {
		t.Fatal(err)
	}
	enforceable, err := interceptor.New(interceptor.WithTokenVerifier(is.Verifier(t)), interceptor.WithStepUp(stepUp))
	if err != nil {
		t.Fatal(err)
	}
	if got := serveFatal(t, enforceable, bank); got != "" {
		t.Errorf("enforceable Guard: Serve failed with %q", got)
	}
}
