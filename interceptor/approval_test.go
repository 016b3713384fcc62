package interceptor_test

import (
	"context"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/stepupgrpc/stepup/challenge"
	approvalfactor "github.com/stepupgrpc/stepup/challenge/approval"
	"github.com/stepupgrpc/stepup/challenge/webauthn"
	"github.com/stepupgrpc/stepup/interceptor"
	policytestv1 "github.com/stepupgrpc/stepup/interceptor/internal/testproto/policytest/v1"
	stepupv1 "github.com/stepupgrpc/stepup/proto/stepup/v1"
)

// newApprovalEnv returns an env whose step-up service has the approval
// factor, and alice's software authenticator for the approver's passkey.
func newApprovalEnv(t testing.TB) (*env, *webauthn.SoftAuthenticator) {
	t.Helper()
	e, authn, _ := newWebAuthnEnv(t, approvalfactor.Options{Poll: 100 * time.Millisecond})
	return e, authn
}

// approveAll approves each of alice's pending approvals, as her second
// device would, and returns how many.
func approveAll(t testing.TB, e *env, authn *webauthn.SoftAuthenticator, deny bool) int {
	t.Helper()
	ctx := context.Background()
	pending, err := e.approvals.PendingApprovals(ctx, "alice")
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range pending {
		var reason challenge.Reason
		if deny {
			_, reason, err = e.approvals.Deny(ctx, "alice", a.ID)
		} else {
			opts, _, r, oerr := e.stepUp.ApprovalRequestOptions(ctx, "alice", a.ID)
			if oerr != nil || r != "" {
				t.Fatalf("options: %s %v", r, oerr)
			}
			assertion, aerr := authn.GetAssertion(ctx, opts)
			if aerr != nil {
				t.Fatal(aerr)
			}
			_, reason, err = e.approvals.Approve(ctx, "alice", a.ID, assertion)
		}
		if err != nil || reason != "" {
			t.Fatalf("decide: %s %v", reason, err)
		}
	}
	return len(pending)
}

// TestApprovalWait: the client answers with an approval, waits while the
// Guard says it is pending (UNAVAILABLE with RetryInfo), and completes
// once the user approves on the second device; a denial ends the wait.
func TestApprovalWait(t *testing.T) {
	for _, deny := range []bool{false, true} {
		e, authn := newApprovalEnv(t)
		shown := make(chan string, 1)
		client := policytestv1.NewApprovalServiceClient(e.conn(e.signing(e.boundToken(tokenOpts{}), interceptor.WithResponder(challenge.ApprovalResponder(
			func(_ context.Context, _ *stepupv1.StepUpChallenge, code string) error {
				shown <- code
				return nil
			})))...))
		done := make(chan error, 1)
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			_, err := client.OutOfBand(ctx, &policytestv1.SensitiveRequest{AmountMinor: 12_000, Currency: "EUR", ToIban: "DE89370400440532013000"})
			done <- err
		}()
		<-shown
		// The client is waiting: the Guard has refused at least one retry
		// as pending before the user decides.
		for e.audit.last(t).Decision != interceptor.DecisionApprovalPending {
			time.Sleep(10 * time.Millisecond)
		}
		if n := approveAll(t, e, authn, deny); n != 1 {
			t.Fatalf("%d pending approvals, want 1", n)
		}
		err := <-done
		switch {
		case !deny && err != nil:
			t.Fatalf("approved call: %v", err)
		case !deny && e.server.handled("OutOfBand") != 1:
			t.Fatalf("the handler ran %d times", e.server.handled("OutOfBand"))
		case deny && (status.Code(err) != codes.PermissionDenied || interceptor.ReasonFromError(err) != interceptor.WireApprovalDenied):
			t.Fatalf("denied call: %v", err)
		case deny && e.server.handled("OutOfBand") != 0:
			t.Fatal("the handler of a denied call ran")
		}
		// The denied approval is refused for good (challenge.StateFinal):
		// audited as a failed step-up with its precise reason.
		if ev := e.audit.last(t); deny && (ev.Decision != interceptor.DecisionStepUpFailed || ev.Reason != interceptor.Reason(challenge.ReasonApprovalDenied)) {
			t.Fatalf("denied call audited as %s / %s, want %s / %s", ev.Decision, ev.Reason, interceptor.DecisionStepUpFailed, challenge.ReasonApprovalDenied)
		}
	}
}

// TestApprovalPendingStatus: what a client without the responder sees
// when it retries with an undecided approval: UNAVAILABLE, APPROVAL_PENDING,
// a RetryInfo, the proof hash of its call, and no challenge.
func TestApprovalPendingStatus(t *testing.T) {
	e, _ := newApprovalEnv(t)
	client := policytestv1.NewApprovalServiceClient(e.conn(e.signing(e.boundToken(tokenOpts{}))...))
	req := &policytestv1.SensitiveRequest{AmountMinor: 5_00, Currency: "EUR", ToIban: "DE89370400440532013000"}
	_, err := client.OutOfBand(context.Background(), req)
	ch := interceptor.ChallengeFromError(err)
	if ch.GetApprovalId() == "" || ch.GetMatchingCode() == "" {
		t.Fatalf("challenge without an approval: %v", err)
	}
	answer, err := challenge.Answer(e.signer, ch, &challenge.Evidence{Factor: stepupv1.Factor_FACTOR_APPROVAL, Approval: ch.GetApprovalId()})
	if err != nil {
		t.Fatal(err)
	}
	_, err = client.OutOfBand(withCreds(context.Background(), interceptor.MetadataStepUpAnswer, answer), req)
	st := status.Convert(err)
	if st.Code() != codes.Unavailable || interceptor.ReasonFromError(err) != interceptor.WireApprovalPending || interceptor.ChallengeFromError(err) != nil {
		t.Fatalf("pending: %v", err)
	}
	var retry *errdetails.RetryInfo
	for _, d := range st.Details() {
		if r, ok := d.(*errdetails.RetryInfo); ok {
			retry = r
		}
	}
	if retry.GetRetryDelay().AsDuration() != 100*time.Millisecond {
		t.Fatalf("retry info %v", retry)
	}
	ev := e.audit.last(t)
	if ev.Decision != interceptor.DecisionApprovalPending || ev.Reason != interceptor.Reason(challenge.ReasonApprovalPending) ||
		ev.SummaryDigest != challenge.SummaryDigest(ch.GetSummaryText()) || ev.ChallengeID != ch.GetApprovalId() {
		t.Fatalf("audit: %+v", ev)
	}
}
