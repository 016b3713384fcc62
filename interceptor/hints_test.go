package interceptor_test

import (
	"context"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/reflect/protoregistry"

	"github.com/stepupgrpc/stepup/challenge"
	"github.com/stepupgrpc/stepup/interceptor"
)

// TestHintsTellForgersNothing: a token signed by an attacker's key is
// refused with the same hint whether its iss and aud are the server's or
// not, so probing claims against forged signatures learns nothing of the
// configuration; claim hints need a token the issuer signed.
func TestHintsTellForgersNothing(t *testing.T) {
	e := newEnv(t, envOpts{})
	attacker := atkAttackerKey(t)
	right := atkTokenClaims(e)
	wrong := atkTokenClaims(e)
	wrong["iss"], wrong["aud"] = "https://guess.example", "https://guess.example/api"
	var seen []string
	for _, claims := range []map[string]any{right, wrong} {
		tok := atkSignToken(t, atkTokenHeader(), claims, attacker)
		err := atkDo(atkWithToken(e, tok).ctx(t, mPlain), e, mPlain)
		assertRefused(t, e, err, atkToken(interceptor.ReasonTokenBadSignature))
		seen = append(seen, status.Convert(err).Message())
	}
	if seen[0] != seen[1] {
		t.Errorf("forged tokens with and without the server's iss/aud are told apart:\n%s\n%s", seen[0], seen[1])
	}
	// The issuer's own key with a wrong aud: the hint says what to change.
	wrongAud := atkTokenClaims(e)
	wrongAud["aud"] = "https://other.example"
	err := atkDo(atkWithToken(e, atkSignToken(t, atkTokenHeader(), wrongAud, e.issuer.PrivateKey())).ctx(t, mPlain), e, mPlain)
	assertRefused(t, e, err, atkToken(interceptor.ReasonTokenWrongAudience))
	if h, _ := interceptor.HintFromError(err); h.Code != "token_audience" || h.FixSide != "token_issuer" {
		t.Errorf("wrong audience: hint %+v", h)
	}
}

// TestHintsDoNotEnumerateSubjects: a wrong TOTP code from alice (who has
// a secret) and any code from carol (who has none) are refused with one
// hint and one message: the hint does not tell who is enrolled.
func TestHintsDoNotEnumerateSubjects(t *testing.T) {
	e := newEnv(t, envOpts{})
	var told []string
	for _, p := range []*atkPrincipal{atkAlice(e), atkAs(e, tokenOpts{Subject: "carol"})} {
		ch := atkChallenge(t, e, p, mGranted)
		err := atkDo(p.ctx(t, mGranted, "stepup-answer", atkTOTPAnswer(t, e, p, ch, atkWrongCode(t, e))), e, mGranted)
		assertRefused(t, e, err, atkStepUp(challenge.ReasonTOTPInvalid))
		h, _ := interceptor.HintFromError(err)
		if h.Code != "stepup_refused" {
			t.Errorf("hint %+v", h)
		}
		told = append(told, status.Convert(err).Message())
	}
	if told[0] != told[1] {
		t.Errorf("an enrolled and an unknown subject are told apart:\n%s\n%s", told[0], told[1])
	}
}

// TestHintOfAnOwnTokenVerifier: a reason of the server's own TokenVerifier
// (not one of the documented reasons) is refused as an invalid token
// (UNAUTHENTICATED, INVALID_TOKEN) with the documented token_refused hint,
// never one that blames the server's configuration, whatever its name: a
// name that starts like the module's own reasons (DPOP_, STEPUP_) does not
// change how it is refused.
func TestHintOfAnOwnTokenVerifier(t *testing.T) {
	doc, err := documentedHints()
	if err != nil {
		t.Fatal(err)
	}
	want, ok := doc.byCode["token_refused"]
	if !ok {
		t.Fatal("docs/PROTOCOL.md §7.4 has no token_refused row")
	}
	for _, reason := range []interceptor.Reason{
		"TOKEN_INACTIVE", // introspection: active false
		"DPOP_BINDING_UNKNOWN",
		"STEPUP_SESSION_GONE",
	} {
		g, err := interceptor.New(interceptor.WithFiles(new(protoregistry.Files)),
			interceptor.WithTokenVerifier(interceptor.TokenVerifierFunc(func(context.Context, string) (*interceptor.Token, error) {
				return nil, &interceptor.TokenError{Reason: reason}
			})),
			interceptor.WithAuditSink(interceptor.AuditFunc(func(context.Context, *interceptor.Event) {})))
		if err != nil {
			t.Fatal(err)
		}
		ctx := metadata.NewIncomingContext(context.Background(), metadata.Pairs("authorization", "DPoP opaque-token"))
		_, err = g.UnaryServerInterceptor()(ctx, nil, &grpc.UnaryServerInfo{FullMethod: "/stepup.docs.v1.Probe/Call"},
			func(context.Context, any) (any, error) { t.Error("the handler ran"); return nil, nil })
		if code, wire := status.Code(err), interceptor.ReasonFromError(err); code != codes.Unauthenticated || wire != interceptor.WireInvalidToken {
			t.Errorf("%s: refused with %s/%s, want Unauthenticated/%s", reason, code, wire, interceptor.WireInvalidToken)
		}
		if got, _ := interceptor.HintFromError(err); got != want {
			t.Errorf("%s: hint %+v, want %+v (%v)", reason, got, want, err)
		}
	}
}
