package interceptor_test

import (
	"context"
	"errors"
	"io"
	"runtime"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/stepupgrpc/stepup/challenge"
	"github.com/stepupgrpc/stepup/interceptor"
	policytestv1 "github.com/stepupgrpc/stepup/interceptor/internal/testproto/policytest/v1"
	stepupv1 "github.com/stepupgrpc/stepup/proto/stepup/v1"
)

// A responder that fails (a closed prompt) must not turn the refusal into
// something that reads as the end of a stream, and must keep its code and
// challenge.
func TestResponderErrorKeepsTheRefusal(t *testing.T) {
	e := newEnv(t, envOpts{})
	closed := challenge.TOTPResponder(func(context.Context, *stepupv1.StepUpChallenge) (string, error) {
		return "", io.EOF
	})
	c := e.client(e.boundToken(tokenOpts{}), interceptor.WithResponder(closed))
	_, err := c.Sensitive(context.Background(), transferRequest(100))
	if status.Code(err) != codes.Unauthenticated || errors.Is(err, io.EOF) || !strings.Contains(err.Error(), "EOF") {
		t.Fatalf("unary = %v", err)
	}
	if interceptor.ChallengeFromError(err) == nil || interceptor.ReasonFromError(err) != interceptor.WireInsufficientUserAuthentication {
		t.Fatalf("the refusal lost its details: %v", err)
	}
	s, err := c.Watch(context.Background(), &policytestv1.PlainRequest{})
	if err != nil {
		t.Fatal(err)
	}
	_, err = s.Recv()
	if err == nil || errors.Is(err, io.EOF) || status.Code(err) != codes.Unauthenticated {
		t.Fatalf("stream Recv = %v, want the refusal, not the end of the stream", err)
	}
}

// A server with grpc's insecure credentials is plaintext: an http htu is
// accepted there (local testing), as on a server without credentials.
func TestInsecureCredentialsServerIsPlaintext(t *testing.T) {
	e := newEnv(t, envOpts{})
	srv := grpc.NewServer(grpc.Creds(insecure.NewCredentials()), grpc.UnaryInterceptor(e.guard.UnaryServerInterceptor()))
	policytestv1.RegisterGuardedServiceServer(srv, e.server)
	e.serve(srv, true)
	tok := e.boundToken(tokenOpts{})
	proof, err := e.signer.Proof("POST", "http://api.example"+mPlain, tok)
	if err != nil {
		t.Fatal(err)
	}
	ctx := withCreds(context.Background(), "authorization", "DPoP "+tok, "dpop", proof)
	if _, err := e.raw().Plain(ctx, &policytestv1.PlainRequest{}); err != nil {
		t.Fatalf("http htu over plaintext: %v", err)
	}
}

// A bidirectional stream whose server answers only after the first client
// message: receiving in one goroutine must not block sending in another.
// Whether the receiver is already blocked when the sender sends depends on
// scheduling, so the exchange is repeated.
func TestBidiSendWhileReceiving(t *testing.T) {
	e := newEnv(t, envOpts{})
	c := e.client(e.boundToken(tokenOpts{}))
	for i := 0; i < 20; i++ {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		s, err := c.Chat(ctx)
		if err != nil {
			t.Fatal(err)
		}
		got := make(chan string, 1)
		started := make(chan struct{})
		go func() {
			close(started)
			r, err := s.Recv()
			if err != nil {
				got <- "error: " + err.Error()
				return
			}
			got <- r.GetText()
		}()
		<-started
		runtime.Gosched()
		if err := s.Send(&policytestv1.PlainRequest{Text: "ping"}); err != nil {
			t.Fatal(err)
		}
		_ = s.CloseSend()
		text := <-got
		cancel()
		if !strings.HasSuffix(text, " ping") {
			t.Fatalf("exchange %d received %q", i, text)
		}
	}
}
