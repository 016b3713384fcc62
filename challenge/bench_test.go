package challenge_test

import (
	"context"
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/stepupgrpc/stepup/challenge"
	"github.com/stepupgrpc/stepup/dpop"
	stepupv1 "github.com/stepupgrpc/stepup/proto/stepup/v1"
)

// How to read the benchmarks
//
// BenchmarkVerifyGrant is Service.Check for a call presenting a valid grant:
// MAC, claims, and the revocation lookup in a MemoryStore holding other
// subjects' revocations. A call presenting a grant must cost at most 1.10
// times a DPoP-only call, so this must stay within a few microseconds.
// BenchmarkDPoPOnlyCall (a fresh ES256 proof verified with every check and
// the replay insert, as the interceptor runs it) and BenchmarkDPoPGrantCall
// (the same, then Check with the grant) measure that ratio directly; compare
// them within one run.
//
// BenchmarkIssueChallenge is Check for a call with nothing presented: a
// fresh bound challenge with its summary and WebAuthn request options.

// grantFixture returns a fixture and a call that presents a valid grant.
func grantFixture(b testing.TB) (*fixture, challenge.Call) {
	f := newFixture(b)
	ctx := context.Background()
	call := f.call(reusable, nil)
	out, err := f.svc.Check(ctx, call)
	if err != nil {
		b.Fatal(err)
	}
	code, err := challenge.TOTPCode(totpSecret, f.clock.Now())
	if err != nil {
		b.Fatal(err)
	}
	call.Answer, err = challenge.Answer(f.client, out.Challenge, &challenge.Evidence{Factor: stepupv1.Factor_FACTOR_TOTP, TOTP: code})
	if err != nil {
		b.Fatal(err)
	}
	out, err = f.svc.Check(ctx, call)
	if err != nil || out.Grant == "" {
		b.Fatal(err, out)
	}
	call.Answer, call.Grant = "", out.Grant
	for i := range 1000 {
		if err := f.store.SetMax(ctx, "rev:user"+strconv.Itoa(i), 1, f.clock.Now().Add(time.Hour)); err != nil {
			b.Fatal(err)
		}
	}
	return f, call
}

// TestGrantCheckAllocs: once a grant has been verified, a call presenting
// it again costs two allocations in Check (the outcome and the
// revocation key): its claims come from the verified-grant cache, not from
// base64 and JSON again.
func TestGrantCheckAllocs(t *testing.T) {
	f, call := grantFixture(t)
	ctx := context.Background()
	check := func() {
		out, err := f.svc.Check(ctx, call)
		if err != nil || !out.Satisfied {
			t.Fatal(err, out)
		}
	}
	check()
	if a := testing.AllocsPerRun(100, check); a > 2 {
		t.Errorf("Check with a verified grant: %v allocations, want at most 2", a)
	}
}

func BenchmarkVerifyGrant(b *testing.B) {
	f, call := grantFixture(b)
	ctx := context.Background()
	runtime.GC()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		out, err := f.svc.Check(ctx, call)
		if err != nil || !out.Satisfied {
			b.Fatal(err, out)
		}
	}
}

const (
	benchAuthority = "bank.example"
	benchToken     = "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJl"
)

// dpopCall prepares b.N fresh proofs and a verifier, as the interceptor
// runs them for every call.
func dpopCall(b *testing.B, f *fixture) (*dpop.Verifier, []dpop.Request) {
	store, err := dpop.NewMemoryReplayStore(b.N+1024, f.clock.Now)
	if err != nil {
		b.Fatal(err)
	}
	v, err := dpop.NewVerifier(dpop.WithAuthorities(benchAuthority), dpop.WithClock(f.clock.Now), dpop.WithReplayStore(store))
	if err != nil {
		b.Fatal(err)
	}
	signer, err := dpop.NewSigner(f.clientKey, dpop.WithClock(f.clock.Now))
	if err != nil {
		b.Fatal(err)
	}
	reqs := make([]dpop.Request, b.N+1)
	for i := range reqs {
		p, err := signer.Proof("POST", "https://"+benchAuthority+addPayeeRPC, benchToken)
		if err != nil {
			b.Fatal(err)
		}
		reqs[i] = dpop.Request{Proof: p, Method: "POST", Path: addPayeeRPC, AccessToken: benchToken, ExpectedJKT: signer.Thumbprint()}
	}
	// Warm the verifier's key cache, as a returning client would.
	if _, err := v.Verify(context.Background(), reqs[b.N]); err != nil {
		b.Fatal(err)
	}
	return v, reqs[:b.N]
}

func BenchmarkDPoPOnlyCall(b *testing.B) {
	f := newFixture(b)
	v, reqs := dpopCall(b, f)
	ctx := context.Background()
	runtime.GC()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := v.Verify(ctx, reqs[i]); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDPoPGrantCall(b *testing.B) {
	f, call := grantFixture(b)
	call.Method = addPayeeRPC
	v, reqs := dpopCall(b, f)
	ctx := context.Background()
	runtime.GC()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		p, err := v.Verify(ctx, reqs[i])
		if err != nil {
			b.Fatal(err)
		}
		call.Thumbprint = p.Thumbprint
		if out, err := f.svc.Check(ctx, call); err != nil || !out.Satisfied {
			b.Fatal(err, out)
		}
	}
}

func BenchmarkIssueChallenge(b *testing.B) {
	f := newFixture(b)
	call := f.call(bound, payment(12000, "EUR", "DE89370400440532013000"))
	ctx := context.Background()
	runtime.GC()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		out, err := f.svc.Check(ctx, call)
		if err != nil || out.Challenge == nil {
			b.Fatal(err, out)
		}
	}
}
