package gateway_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/stepupgrpc/stepup/challenge"
	bankv1 "github.com/stepupgrpc/stepup/examples/bank/v1"
	"github.com/stepupgrpc/stepup/interceptor"
	relayv1 "github.com/stepupgrpc/stepup/internal/testproto/relay/v1"
	stepupv1 "github.com/stepupgrpc/stepup/proto/stepup/v1"
	"github.com/stepupgrpc/stepup/testing/testkit"
)

func rec(num protowire.Number, typ protowire.Type, value []byte) []byte {
	return append(protowire.AppendTag(nil, num, typ), value...)
}

func varint(v uint64) []byte { return protowire.AppendVarint(nil, v) }

// padded is the varint of v in n bytes (a non-minimal spelling).
func padded(v uint64, n int) []byte {
	b := varint(v)
	for len(b) < n {
		b[len(b)-1] |= 0x80
		b = append(b, 0)
	}
	return b
}

func mustMarshal(t *testing.T, m proto.Message) []byte {
	t.Helper()
	b, err := proto.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestSpellingsThroughTheGateway sends step-up requests spelt in ways
// that parsers read differently (protobufjs reads a known field sent with
// another wire type as that field; Go as an unknown field) through the
// gateway to the Node backend, which checks that the bytes it receives
// have the digest of the gateway's assertion. Each is refused before any
// challenge, or the backend executes exactly what the challenge showed and
// the user approved.
func TestSpellingsThroughTheGateway(t *testing.T) {
	f, gw, _, served := startNodeWorld(t)

	approved := &bankv1.TransferRequest{FromAccountId: "alice-checking", AmountMinor: 12_500, Currency: "EUR",
		ToIban: "DE89370400440532013000", Reference: "rent"}
	wire := mustMarshal(t, approved)
	const shown = "approve BankService.Transfer: amount 125.00 EUR, to DE89370400440532013000, reference rent"

	for _, tc := range []struct {
		name  string
		wire  []byte
		field string
	}{
		{"amount_minor repeated as fixed64 (protobufjs debits 990.00)", append(slices.Clone(wire), rec(2, protowire.Fixed64Type, protowire.AppendFixed64(nil, 99_000))...), "#2"},
		{"amount_minor as a length-delimited record", append(slices.Clone(wire), rec(2, protowire.BytesType, protowire.AppendBytes(nil, varint(99_000)))...), "#2"},
		{"to_iban sent as a varint", append(slices.Clone(wire), rec(4, protowire.VarintType, varint(7))...), "#4"},
		{"an unknown field", append(slices.Clone(wire), rec(9, protowire.BytesType, protowire.AppendString(nil, "DE00"))...), "#9"},
	} {
		t.Run("refused: "+tc.name, func(t *testing.T) {
			mallory := newCaller(t, f, gw.addr, "alice", aliceTOTP, "bank bank:transfer")
			before := served()
			_, err := mallory.bank.Transfer(context.Background(), approved, grpc.ForceCodecV2(testkit.Spelling{Wire: tc.wire}))
			st := status.Convert(err)
			if st.Code() != codes.InvalidArgument {
				t.Fatalf("%v, want INVALID_ARGUMENT", err)
			}
			var info *errdetails.ErrorInfo
			for _, d := range st.Details() {
				if i, ok := d.(*errdetails.ErrorInfo); ok {
					info = i
				}
				if _, ok := d.(*stepupv1.StepUpChallenge); ok {
					t.Error("a challenge was issued for a request the gateway cannot read")
				}
			}
			if info.GetReason() != interceptor.WireInvalidRequest || info.GetMetadata()[interceptor.ErrorInfoRequestField] != tc.field {
				t.Errorf("ErrorInfo %v, want %s at %s", info, interceptor.WireInvalidRequest, tc.field)
			}
			ev, _ := lastFor(gw.audit, mTransfer)
			if ev.Reason != interceptor.Reason(challenge.ReasonRequestUnknownField) || ev.Decision != interceptor.DecisionDeny {
				t.Errorf("audit %s %s", ev.Decision, ev.Reason)
			}
			if mallory.answers != 0 || served() != before {
				t.Errorf("%d answers, %d calls served", mallory.answers, served()-before)
			}
		})
	}

	// Spellings every parser reads alike: the backend receives the
	// canonical bytes (it checks their digest against the assertion's) and
	// debits what the user approved.
	balance := int64(100_000)
	for _, tc := range []struct {
		name, subject, secret string
		wire                  []byte
	}{
		{"amount_minor sent twice, 990.00 first (the last counts)", "alice", aliceTOTP, append(rec(2, protowire.VarintType, varint(99_000)), wire...)},
		{"amount_minor as a six-byte varint", "bob", bobTOTP, slices.Concat(
			rec(1, protowire.BytesType, protowire.AppendString(nil, "bob-checking")), rec(2, protowire.VarintType, padded(12_500, 6)),
			rec(3, protowire.BytesType, protowire.AppendString(nil, "EUR")), rec(4, protowire.BytesType, protowire.AppendString(nil, approved.ToIban)),
			rec(5, protowire.BytesType, protowire.AppendString(nil, "rent")))},
	} {
		t.Run("executed as approved: "+tc.name, func(t *testing.T) {
			c := newCaller(t, f, gw.addr, tc.subject, tc.secret, "bank bank:transfer")
			want := proto.Clone(approved).(*bankv1.TransferRequest)
			want.FromAccountId = tc.subject + "-checking"
			resp, err := c.bank.Transfer(context.Background(), want, grpc.ForceCodecV2(testkit.Spelling{Wire: tc.wire}))
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(c.shown, []string{shown}) {
				t.Errorf("the user was shown %q, want %q", c.shown, shown)
			}
			if got := resp.GetBalanceAfter().GetAmountMinor(); got != balance-12_500 {
				t.Errorf("balance after %d, want %d: the backend executed another amount than the one approved", got, balance-12_500)
			}
			ev, _ := lastFor(gw.audit, mTransfer)
			if ev.Decision != interceptor.DecisionStepUpPassed {
				t.Errorf("audit %s %s", ev.Decision, ev.Reason)
			}
		})
	}

	t.Run("executed as approved: amounts unpacked, declared display fields", func(t *testing.T) {
		carol := newCaller(t, f, gw.addr, f.carol, aliceTOTP, "relay", interceptor.WithDisplayFields(declared(payDisplay())))
		req := &relayv1.PayRequest{Amounts: []int64{100, 200, 300}, Payee: "DE02", Currency: "EUR", Labels: map[string]string{"b": "2", "a": "1"}}
		unpacked := slices.Concat(rec(1, protowire.VarintType, varint(100)),
			rec(3, protowire.BytesType, protowire.AppendBytes(nil, slices.Concat(rec(1, protowire.BytesType, protowire.AppendString(nil, "b")), rec(2, protowire.BytesType, protowire.AppendString(nil, "2"))))),
			rec(1, protowire.VarintType, varint(200)), rec(2, protowire.BytesType, protowire.AppendString(nil, "DE02")),
			rec(1, protowire.VarintType, varint(300)), rec(4, protowire.BytesType, protowire.AppendString(nil, "EUR")),
			rec(3, protowire.BytesType, protowire.AppendBytes(nil, slices.Concat(rec(1, protowire.BytesType, protowire.AppendString(nil, "a")), rec(2, protowire.BytesType, protowire.AppendString(nil, "1"))))))
		resp, err := relayv1.NewRelayServiceClient(carol.conn).Pay(context.Background(), req, grpc.ForceCodecV2(testkit.Spelling{Wire: unpacked}))
		if err != nil {
			t.Fatal(err)
		}
		const want = `approve RelayService.Pay: amounts "100, 200, 300", to DE02, labels "a: 1, b: 2"`
		if !slices.Equal(carol.shown, []string{want}) {
			t.Errorf("shown %q, want %q", carol.shown, want)
		}
		if resp.GetTotal() != 600 || !slices.Equal(resp.GetAmounts(), req.Amounts) || resp.GetPayee() != "DE02" || len(resp.GetLabels()) != 2 {
			t.Errorf("the backend decoded %v", resp)
		}
	})

	t.Run("a client without the display declarations refuses, naming both renderings", func(t *testing.T) {
		dave := newCaller(t, f, gw.addr, "alice", aliceTOTP, "relay")
		_, err := relayv1.NewRelayServiceClient(dave.conn).Pay(context.Background(), &relayv1.PayRequest{Amounts: []int64{1}, Payee: "X"})
		var ce *challenge.CheckError
		if !errors.As(err, &ce) || ce.Mismatch != challenge.MismatchSummary {
			t.Fatalf("%v, want a summary mismatch", err)
		}
		for _, s := range []string{`approve RelayService.Pay: amounts 1, to X, labels \"\"`, `"approve RelayService.Pay"`, "display options (or display declarations) differ"} {
			if !strings.Contains(ce.Detail, s) {
				t.Errorf("detail %q lacks %q", ce.Detail, s)
			}
		}
		if dave.answers != 0 {
			t.Error("answered")
		}
	})
}

// declared turns a display configuration into a client's declarations.
func declared(m map[string]*stepupv1.Display) challenge.DisplayFields {
	d := challenge.DisplayFields{}
	for k, v := range m {
		d[protoreflect.FullName(k)] = v
	}
	return d
}
