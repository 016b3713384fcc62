package interceptor_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/stepupgrpc/stepup/challenge"
	"github.com/stepupgrpc/stepup/challenge/webauthn"
	"github.com/stepupgrpc/stepup/interceptor"
	policytestv1 "github.com/stepupgrpc/stepup/interceptor/internal/testproto/policytest/v1"
	stepupv1 "github.com/stepupgrpc/stepup/proto/stepup/v1"
)

const (
	guarded = "/policytest.v1.GuardedService/"
	stepup  = "/policytest.v1.StepUpService/"
	unguard = "/policytest.v1.UnguardedService/"
)

// policyGuard builds a Guard able to enforce every test policy: a token
// verifier that refuses everything, and a step-up service.
func policyGuard(t testing.TB, opts ...interceptor.Option) (*interceptor.Guard, error) {
	t.Helper()
	key, err := challenge.GenerateKey("k")
	if err != nil {
		t.Fatal(err)
	}
	keys, err := challenge.NewKeySet(key)
	if err != nil {
		t.Fatal(err)
	}
	rp := webauthn.Config{RPID: "api.example", RPDisplayName: "API", RPOrigins: []string{"https://api.example"}}
	svc, err := challenge.NewService(challenge.WithKeys(keys), challenge.WithTOTP(challenge.TOTPSecretsFunc(
		func(context.Context, string) (string, error) { return "", challenge.ErrUnknownSubject }), challenge.TOTPOptions{}),
		webauthn.With(rp, webauthn.NewMemoryCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	refuse := interceptor.TokenVerifierFunc(func(context.Context, string) (*interceptor.Token, error) {
		return nil, &interceptor.TokenError{Reason: interceptor.ReasonTokenBadSignature}
	})
	// No call reaches these Guards over TLS: CheckCoverage needs no authorities.
	return interceptor.New(append([]interceptor.Option{interceptor.WithTokenVerifier(refuse), interceptor.WithStepUp(svc),
		interceptor.WithInsecureRequestAuthority()}, opts...)...)
}

func TestResolvePolicy(t *testing.T) {
	g, err := policyGuard(t)
	if err != nil {
		t.Fatal(err)
	}
	f := func(fs ...stepupv1.Factor) []stepupv1.Factor { return fs }
	tests := []struct {
		method string
		want   interceptor.EffectivePolicy
	}{
		{guarded + "Plain", interceptor.EffectivePolicy{Source: interceptor.SourceService, Scopes: []string{"guarded"}, MaxTokenAge: time.Hour}},
		{guarded + "Sensitive", interceptor.EffectivePolicy{
			Source: interceptor.SourceMerged, Scopes: []string{"guarded", "guarded:write"}, MaxTokenAge: 5 * time.Minute,
			StepUp: &challenge.Requirement{ACRValues: []string{"urn:example:mfa"}, Factors: f(stepupv1.Factor_FACTOR_TOTP, stepupv1.Factor_FACTOR_DEVICE_KEY), BindRequest: true},
		}},
		{guarded + "Reusable", interceptor.EffectivePolicy{
			Source: interceptor.SourceMerged, Scopes: []string{"guarded"}, MaxTokenAge: time.Hour,
			Shadow: true, StepUp: &challenge.Requirement{MaxAge: 5 * time.Minute},
		}},
		{guarded + "Granted", interceptor.EffectivePolicy{Source: interceptor.SourceMerged, Scopes: []string{"guarded"}, MaxTokenAge: time.Hour, StepUp: &challenge.Requirement{MaxAge: 5 * time.Minute}}},
		{guarded + "Health", interceptor.EffectivePolicy{Source: interceptor.SourceMerged, NoAuthentication: true}},
		{guarded + "Watch", interceptor.EffectivePolicy{Source: interceptor.SourceMerged, Scopes: []string{"guarded"}, MaxTokenAge: time.Hour, StepUp: &challenge.Requirement{MaxAge: time.Minute}}},
		{guarded + "Upload", interceptor.EffectivePolicy{Source: interceptor.SourceService, Scopes: []string{"guarded"}, MaxTokenAge: time.Hour}},
		{guarded + "Chat", interceptor.EffectivePolicy{Source: interceptor.SourceService, Scopes: []string{"guarded"}, MaxTokenAge: time.Hour}},
		{stepup + "Approve", interceptor.EffectivePolicy{Source: interceptor.SourceService, StepUp: &challenge.Requirement{Factors: f(stepupv1.Factor_FACTOR_WEBAUTHN), MaxAge: 2 * time.Minute}}},
		{stepup + "Read", interceptor.EffectivePolicy{Source: interceptor.SourceMerged}},
		{unguard + "Forgotten", interceptor.EffectivePolicy{Source: interceptor.SourceNone}},
		{unguard + "Annotated", interceptor.EffectivePolicy{Source: interceptor.SourceMethod}},
		{"/no.such.Service/Method", interceptor.EffectivePolicy{Source: interceptor.SourceNone}},
	}
	for _, tt := range tests {
		t.Run(tt.method, func(t *testing.T) {
			got, err := g.Policy(tt.method)
			if err != nil {
				t.Fatal(err)
			}
			tt.want.FullMethod = tt.method
			assertPolicy(t, got, &tt.want)
		})
	}
}

func assertPolicy(t *testing.T, got, want *interceptor.EffectivePolicy) {
	t.Helper()
	if got.FullMethod != want.FullMethod || got.Source != want.Source || got.NoAuthentication != want.NoAuthentication ||
		got.AllowBearer != want.AllowBearer || got.MaxTokenAge != want.MaxTokenAge || got.Shadow != want.Shadow ||
		!slices.Equal(got.Scopes, want.Scopes) {
		t.Errorf("policy = %+v\nwant     %+v", *got, *want)
	}
	switch {
	case (got.StepUp == nil) != (want.StepUp == nil):
		t.Errorf("step-up = %+v, want %+v", got.StepUp, want.StepUp)
	case got.StepUp != nil:
		g, w := got.StepUp, want.StepUp
		if !slices.Equal(g.ACRValues, w.ACRValues) || !slices.Equal(g.Factors, w.Factors) || g.MaxAge != w.MaxAge || g.BindRequest != w.BindRequest {
			t.Errorf("step-up = %+v, want %+v", *g, *w)
		}
	}
}

func TestPolicyInputDescriptor(t *testing.T) {
	g, err := policyGuard(t)
	if err != nil {
		t.Fatal(err)
	}
	p, err := g.Policy(guarded + "Sensitive")
	if err != nil {
		t.Fatal(err)
	}
	if p.Input == nil || p.Input.FullName() != "policytest.v1.SensitiveRequest" {
		t.Fatalf("input descriptor = %v", p.Input)
	}
}

func registerAll(s *grpc.Server) {
	policytestv1.RegisterGuardedServiceServer(s, policytestv1.UnimplementedGuardedServiceServer{})
	policytestv1.RegisterStepUpServiceServer(s, policytestv1.UnimplementedStepUpServiceServer{})
	policytestv1.RegisterUnguardedServiceServer(s, policytestv1.UnimplementedUnguardedServiceServer{})
}

func TestCoverageReportsUnannotatedMethod(t *testing.T) {
	g, err := policyGuard(t)
	if err != nil {
		t.Fatal(err)
	}
	s := grpc.NewServer()
	registerAll(s)
	report, err := g.Coverage(s)
	if err != nil {
		t.Fatal(err)
	}
	if len(report) != 12 {
		t.Fatalf("report has %d methods, want 12:\n%s", len(report), report)
	}
	if got := report.Unprotected(); !slices.Equal(got, []string{unguard + "Forgotten"}) {
		t.Fatalf("unprotected = %v", got)
	}
	text := strings.Join(strings.Fields(report.String()), " ")
	for _, want := range []string{
		"/policytest.v1.GuardedService/Sensitive method+service dpop max-token-age=5m0s scopes=guarded,guarded:write step-up(acr=urn:example:mfa factors=totp,device_key max-age=0s bound)",
		"/policytest.v1.UnguardedService/Forgotten none dpop",
		"/policytest.v1.GuardedService/Reusable method+service dpop max-token-age=1h0m0s scopes=guarded step-up(max-age=5m0s) shadow",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("report lacks %q:\n%s", want, report)
		}
	}
	err = g.CheckCoverage(s)
	if err == nil || !strings.Contains(err.Error(), unguard+"Forgotten") || strings.Contains(err.Error(), "Annotated") {
		t.Fatalf("CheckCoverage = %v, want the unannotated method named", err)
	}
}

func TestCoverageReportsUnenforceablePolicies(t *testing.T) {
	key, _ := challenge.GenerateKey("k")
	keys, _ := challenge.NewKeySet(key)
	totpOnly, err := challenge.NewService(challenge.WithKeys(keys), challenge.WithTOTP(challenge.TOTPSecretsFunc(
		func(context.Context, string) (string, error) { return "", challenge.ErrUnknownSubject }), challenge.TOTPOptions{}))
	if err != nil {
		t.Fatal(err)
	}
	s := grpc.NewServer()
	registerAll(s)
	// No token verifier while annotated methods need tokens: New refuses.
	if _, err := interceptor.New(); err == nil || !strings.Contains(err.Error(), "no TokenVerifier is configured") {
		t.Fatalf("New without a TokenVerifier = %v", err)
	}
	refuse := interceptor.WithTokenVerifier(interceptor.TokenVerifierFunc(
		func(context.Context, string) (*interceptor.Token, error) { return nil, errors.New("no") }))
	// A token verifier, no step-up service.
	g, err := interceptor.New(refuse)
	if err != nil {
		t.Fatal(err)
	}
	if err := g.CheckCoverage(s); err == nil || !strings.Contains(err.Error(), guarded+"Sensitive requires step-up but no challenge service") {
		t.Fatalf("CheckCoverage = %v", err)
	}
	// TOTP only: Approve (WebAuthn only) cannot be enforced.
	g, err = interceptor.New(refuse, interceptor.WithStepUp(totpOnly))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := g.Coverage(s); err == nil || !strings.Contains(err.Error(), stepup+"Approve allows step-up factors [FACTOR_WEBAUTHN]") {
		t.Fatalf("Coverage = %v", err)
	}
}

func TestConfiguredPolicyCoversService(t *testing.T) {
	// UnguardedService without its one annotation: a service whose .proto
	// cannot be annotated.
	files := interceptor.WithFiles(reannotated(t, map[string]*stepupv1.Policy{unguard + "Annotated": nil}))
	g, err := policyGuard(t, files, interceptor.WithPolicy("policytest.v1.UnguardedService", &stepupv1.Policy{Scopes: []string{"x"}}),
		interceptor.WithPolicy(unguard+"Annotated", &stepupv1.Policy{InsecureNoAuthentication: proto.Bool(true)}))
	if err != nil {
		t.Fatal(err)
	}
	s := grpc.NewServer()
	policytestv1.RegisterUnguardedServiceServer(s, policytestv1.UnimplementedUnguardedServiceServer{})
	if err := g.CheckCoverage(s); err != nil {
		t.Fatal(err)
	}
	p, _ := g.Policy(unguard + "Forgotten")
	assertPolicy(t, p, &interceptor.EffectivePolicy{FullMethod: unguard + "Forgotten", Source: interceptor.SourceConfigured, Scopes: []string{"x"}})
	p, _ = g.Policy(unguard + "Annotated")
	assertPolicy(t, p, &interceptor.EffectivePolicy{FullMethod: unguard + "Annotated", Source: interceptor.SourceConfigured, NoAuthentication: true})
}

func TestWithPolicyRefusesBadNames(t *testing.T) {
	for _, name := range []string{"", "/", "/svc", "svc/Method", "/svc/"} {
		if _, err := policyGuard(t, interceptor.WithPolicy(name, &stepupv1.Policy{})); err == nil {
			t.Errorf("WithPolicy(%q) accepted", name)
		}
	}
	if _, err := policyGuard(t, interceptor.WithPolicy("a.B", nil)); err == nil {
		t.Error("nil policy accepted")
	}
}

func TestInvalidPolicyFailsAtConstruction(t *testing.T) {
	tests := map[string]*stepupv1.Policy{
		"negative max_token_age":         {MaxTokenAge: durationpb.New(-time.Second)},
		"negative step-up max_age":       {StepUp: &stepupv1.StepUp{MaxAge: durationpb.New(-time.Second)}},
		"unspecified factor":             {StepUp: &stepupv1.StepUp{Factors: []stepupv1.Factor{stepupv1.Factor_FACTOR_UNSPECIFIED}}},
		"unknown factor":                 {StepUp: &stepupv1.StepUp{Factors: []stepupv1.Factor{42}}},
		"scope with a space":             {Scopes: []string{"a b"}},
		"no authentication with step-up": {InsecureNoAuthentication: proto.Bool(true), StepUp: &stepupv1.StepUp{}},
	}
	for name, p := range tests {
		t.Run(name, func(t *testing.T) {
			_, err := policyGuard(t, interceptor.WithFiles(oneMethodFiles(t, nil, p)))
			if err == nil || !strings.Contains(err.Error(), "/invalid.v1.Svc/M") {
				t.Fatalf("New = %v, want an error naming the method", err)
			}
		})
	}
}

func TestPolicyLookupAllocatesNothing(t *testing.T) {
	g, err := policyGuard(t)
	if err != nil {
		t.Fatal(err)
	}
	method := guarded + "Sensitive"
	if allocs := testing.AllocsPerRun(1000, func() { _, _ = g.Policy(method) }); allocs != 0 {
		t.Fatalf("lookup allocates %v times", allocs)
	}
}

func BenchmarkPolicyLookup(b *testing.B) {
	g, err := policyGuard(b)
	if err != nil {
		b.Fatal(err)
	}
	method := guarded + "Sensitive"
	b.ReportAllocs()
	for b.Loop() {
		if _, err := g.Policy(method); err != nil {
			b.Fatal(err)
		}
	}
}
