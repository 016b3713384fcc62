package challenge_test

import (
	"strings"
	"testing"
	"unicode/utf8"

	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/stepupgrpc/stepup/challenge"
	stepupv1 "github.com/stepupgrpc/stepup/proto/stepup/v1"
)

func TestSummarizeAmounts(t *testing.T) {
	tests := []struct {
		amount   int64
		currency string
		want     string
	}{
		{12000, "EUR", "120.00 EUR"},
		{5, "EUR", "0.05 EUR"},
		{0, "EUR", "0.00 EUR"},
		{-12345, "USD", "-123.45 USD"},
		{500, "JPY", "500 JPY"},
		{1234, "KWD", "1.234 KWD"},
		{12345, "CLF", "1.2345 CLF"},
		{12000, "XYZ", "12000 (minor units) XYZ"},
		{12000, "", "12000 (minor units)"},
		{-9223372036854775808, "EUR", "-92233720368547758.08 EUR"},
	}
	for _, tt := range tests {
		items := challenge.Summarize(transfer(tt.amount, tt.currency, "DE89"))
		if len(items) == 0 || items[0].GetLabel() != "amount" || items[0].GetField() != "amount_minor" {
			t.Fatalf("items %v", items)
		}
		if got := items[0].GetValue(); got != tt.want {
			t.Errorf("%d %q: %q, want %q", tt.amount, tt.currency, got, tt.want)
		}
	}
}

func TestSummarizeFieldsAndNesting(t *testing.T) {
	m := transfer(12000, "EUR", "DE89370400440532013000").ProtoReflect()
	fields := m.Descriptor().Fields()
	party := partyType.New()
	party.Set(party.Descriptor().Fields().ByName("name"), protoreflect.ValueOfString("ACME GmbH"))
	m.Set(fields.ByName("beneficiary"), protoreflect.ValueOfMessage(party))
	tags := m.Mutable(fields.ByName("tags")).List()
	tags.Append(protoreflect.ValueOfString("rent"))
	tags.Append(protoreflect.ValueOfString("monthly"))
	m.Set(fields.ByName("kind"), protoreflect.ValueOfEnum(1))
	m.Set(fields.ByName("internal_note"), protoreflect.ValueOfString("not shown"))

	items := challenge.Summarize(m.Interface())
	var got []string
	for _, it := range items {
		got = append(got, it.GetField()+"="+it.GetLabel()+":"+it.GetValue())
	}
	want := []string{
		"amount_minor=amount:120.00 EUR",
		"to_iban=to:DE89370400440532013000",
		"memo=memo:",
		"beneficiary.name=beneficiary:ACME GmbH",
		"tags=tags:rent, monthly",
		"kind=kind:KIND_INSTANT",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("items\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if got, want := challenge.SummaryText(transferRPC, items),
		`approve BankService.Transfer: amount 120.00 EUR, to DE89370400440532013000, memo "", beneficiary ACME GmbH, tags "rent, monthly", kind KIND_INSTANT`; got != want {
		t.Fatalf("text\n got %q\nwant %q", got, want)
	}
	if got := challenge.SummaryText(transferRPC, nil); got != "approve BankService.Transfer" {
		t.Fatalf("text %q", got)
	}
	if items := challenge.Summarize(wrapperspb.String("x")); len(items) != 0 {
		t.Fatalf("a message without display options: %v", items)
	}
	if items := challenge.Summarize(nil); items != nil {
		t.Fatal("nil message")
	}
}

// Values cannot disguise what they say: control and bidirectional
// formatting characters are replaced, and long values are cut.
func TestSummarizeSanitizes(t *testing.T) {
	tests := map[string]struct{ in, want string }{
		"newline":        {"a\nb", "a\ufffdb"},
		"escape":         {"\x1b[31mred", "\ufffd[31mred"},
		"bidi override":  {"DE89\u202eEVIL", "DE89\ufffdEVIL"},
		"zero width":     {"DE\u200b89", "DE\ufffd89"},
		"invalid utf-8":  {"a\xffb", "a\ufffdb"},
		"line separator": {"a\u2028b", "a\ufffdb"},
		"plain unicode":  {"Zürich 東京", "Zürich 東京"},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			items := challenge.Summarize(transfer(1, "EUR", tt.in))
			if got := items[1].GetValue(); got != tt.want {
				t.Fatalf("%q, want %q", got, tt.want)
			}
		})
	}
	long := strings.Repeat("é", 200)
	v := challenge.Summarize(transfer(1, "EUR", long))[1].GetValue()
	if utf8.RuneCountInString(v) != 128 || !strings.HasSuffix(v, "…") {
		t.Fatalf("truncated to %d runes: %q", utf8.RuneCountInString(v), v)
	}
	exact := strings.Repeat("x", 128)
	if v := challenge.Summarize(transfer(1, "EUR", exact))[1].GetValue(); v != exact {
		t.Fatalf("128 characters must not be cut: %q", v)
	}
}

func TestRequestDigest(t *testing.T) {
	a, err := challenge.RequestDigest(transferRPC, transfer(12000, "EUR", "DE89"))
	if err != nil {
		t.Fatal(err)
	}
	same, _ := challenge.RequestDigest(transferRPC, transfer(12000, "EUR", "DE89"))
	amount, _ := challenge.RequestDigest(transferRPC, transfer(12001, "EUR", "DE89"))
	memo, _ := challenge.RequestDigest(transferRPC, setField(transfer(12000, "EUR", "DE89"), "internal_note", "x"))
	method, _ := challenge.RequestDigest(addPayeeRPC, transfer(12000, "EUR", "DE89"))
	if a != same || a == amount || a == memo || a == method || len(a) != 43 {
		t.Fatalf("digests %s %s %s %s %s", a, same, amount, memo, method)
	}
	if _, err := challenge.RequestDigest(transferRPC, nil); err == nil {
		t.Fatal("nil message accepted")
	}
	var nilMsg *stepupv1.StepUpChallenge
	if _, err := challenge.RequestDigest(transferRPC, nilMsg); err == nil {
		t.Fatal("typed nil message accepted")
	}
}
