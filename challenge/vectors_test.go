package challenge_test

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"math"
	"os"
	"slices"
	"strings"
	"testing"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/descriptorpb"
	"google.golang.org/protobuf/types/dynamicpb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/stepupgrpc/stepup/challenge"
	requestv1 "github.com/stepupgrpc/stepup/challenge/internal/testproto/request/v1"
	stepupv1 "github.com/stepupgrpc/stepup/proto/stepup/v1"
)

// The vectors of docs/PROTOCOL.md §13: written by the cases below with
// -update, read back by TestRequestVectors (and by the JavaScript
// implementation's test, gateway/testdata/node-backend). The file is the
// golden record: a change of protobuf-go that changed a digest, an
// encoding or a summary fails here.
const vectorsFile = "../docs/examples/request-vectors.json"

var updateVectors = flag.Bool("update", false, "rewrite docs/examples/request-vectors.json from the cases")

type vectorFile struct {
	Comment     string           `json:"comment"`
	Descriptors json.RawMessage  `json:"descriptors"`
	Vectors     []requestVector  `json:"vectors"`
	Refusals    []requestRefusal `json:"refusals"`
}

type requestVector struct {
	Name         string                     `json:"name"`
	Covers       []string                   `json:"covers"`
	Method       string                     `json:"method"`
	Type         string                     `json:"type"`
	Display      map[string]json.RawMessage `json:"display,omitempty"`
	Message      json.RawMessage            `json:"message"` // null when the JSON mapping cannot say it
	Note         string                     `json:"note,omitempty"`
	Inputs       []wireInput                `json:"inputs,omitempty"`
	CanonicalHex string                     `json:"canonical_hex"`
	Digest       string                     `json:"digest"`
	Summary      []summaryItem              `json:"summary"`
	SummaryText  string                     `json:"summary_text"`
}

type wireInput struct {
	Note    string `json:"note"`
	WireHex string `json:"wire_hex"`
}

type summaryItem struct {
	Field string `json:"field"`
	Label string `json:"label"`
	Value string `json:"value"`
}

type requestRefusal struct {
	Name         string `json:"name"`
	Method       string `json:"method"`
	Type         string `json:"type"`
	WireHex      string `json:"wire_hex"`
	Reason       string `json:"reason"`
	RequestField string `json:"request_field"`
}

// vectorCase is one vector as written in Go: the message as protojson
// (proto field names), or built by a function when protojson cannot say it.
type vectorCase struct {
	name    string
	covers  []string
	method  string
	msg     proto.Message
	display challenge.DisplayFields
	inputs  []wireInput // other spellings of msg
}

const (
	svc    = "/request.v1.VectorService/"
	legacy = "/request.v1.LegacyService/Legacy"
)

// vectorCases are the vectors, by field kind.
func vectorCases(t *testing.T) []vectorCase {
	t.Helper()
	pj := func(m proto.Message, s string) proto.Message {
		t.Helper()
		if err := protojson.Unmarshal([]byte(s), m); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
		return m
	}
	transfer := func(s string) proto.Message { return pj(&requestv1.TransferRequest{}, s) }
	scalars := func(s string) proto.Message { return pj(&requestv1.ScalarsRequest{}, s) }
	colls := func(s string) proto.Message { return pj(&requestv1.CollectionsRequest{}, s) }
	pres := func(s string) proto.Message { return pj(&requestv1.PresenceRequest{}, s) }
	plain := func(s string) proto.Message { return pj(&requestv1.PlainRequest{}, s) }
	leg := func(s string) proto.Message { return pj(&requestv1.LegacyRequest{}, s) }

	tr := transfer(`{"amount_minor":"12500","currency":"EUR","to_iban":"DE89370400440532013000","reference":"rent","idempotency_key":"k-1"}`)
	chain := &requestv1.Node{Label: "n0"}
	for n, i := chain, 1; i < 12; i++ {
		n.Next = &requestv1.Node{Label: fmt.Sprintf("n%d", i)}
		n = n.Next
	}
	many := &requestv1.CollectionsRequest{}
	for i := range 40 {
		many.Parties = append(many.Parties, &requestv1.Party{Name: fmt.Sprintf("p%d", i)})
	}
	long := strings.Repeat("é", 127) + "ab"
	return []vectorCase{
		{name: "transfer", covers: []string{"string", "int64", "amount", "currency"}, method: svc + "Transfer", msg: tr,
			inputs: []wireInput{
				{"fields in reverse order", hexOf(revFields(t, tr))},
				{"amount_minor as a non-minimal varint, then again as the value that counts (last wins)",
					hexOf(cat(field(1, protowire.VarintType, nonMinimal(7, 3)), marshal(t, tr)))},
			}},
		{name: "transfer-empty", covers: []string{"implicit-zero", "empty", "quote"}, method: svc + "Transfer", msg: transfer(`{}`)},
		{name: "transfer-unknown-currency", covers: []string{"amount", "unknown-currency"}, method: svc + "Transfer",
			msg: transfer(`{"amount_minor":"12000","currency":"XYZ","to_iban":"DE89"}`)},
		{name: "transfer-lowercase-currency", covers: []string{"amount", "lower-case-currency", "negative"}, method: svc + "Transfer",
			msg: transfer(`{"amount_minor":"-5","currency":"eur","to_iban":"DE89"}`)},
		{name: "transfer-no-currency-jpy-kwd", covers: []string{"amount"}, method: svc + "Transfer",
			msg: transfer(`{"amount_minor":"5","to_iban":"x"}`)},
		{name: "transfer-hostile-text", covers: []string{"quote", "escape", "control", "bidi", "zero-width", "unicode"}, method: svc + "Transfer",
			msg: transfer(`{"amount_minor":"100","currency":"KWD","to_iban":"DE89, amount 1.00 EUR","reference":"say \"hi\" \\ \u202eoll\u200bé\u0007\n end "}`)},
		{name: "transfer-long-values", covers: []string{"long", "truncate", "unicode"}, method: svc + "Transfer",
			msg: transfer(`{"amount_minor":"9223372036854775807","currency":"CLF","to_iban":"` + long + `","reference":"` + strings.Repeat("x", 128) + `"}`)},
		{name: "scalars-zero", covers: []string{"implicit-zero", "out-of-order-declaration"}, method: svc + "Scalars", msg: scalars(`{}`)},
		{name: "scalars-all", covers: []string{"int32", "int64", "uint32", "uint64", "sint32", "sint64", "fixed32", "fixed64", "sfixed32", "sfixed64", "float", "double", "bool", "string", "bytes", "enum", "amount", "out-of-order-declaration"},
			method: svc + "Scalars",
			msg: scalars(`{"last":"z","i32":-1,"i64":"-9223372036854775808","u32":4294967295,"u64":"18446744073709551615","s32":-2147483648,"s64":"-1",
				"fx32":1,"fx64":"18446744073709551615","sfx32":-2,"sfx64":"-3","flt":0.1,"dbl":1e21,"flag":true,"text":"é ü 𝄞","blob":"AAH/",
				"color":"COLOR_CRIMSON","amount":"-12345","currency":"BHD","odd_amount":2.5}`)},
		{name: "scalars-floats", covers: []string{"float", "double", "negative-zero"}, method: svc + "Scalars",
			msg: &requestv1.ScalarsRequest{Flt: float32(math.Copysign(0, -1)), Dbl: 1.5e-7, OddAmount: 123456789012345680000}},
		{name: "scalars-nan-inf", covers: []string{"float", "double", "nan", "infinity"}, method: svc + "Scalars",
			msg: &requestv1.ScalarsRequest{Flt: float32(math.Inf(-1)), Dbl: math.NaN(), OddAmount: math.Inf(1), I32: 300},
			inputs: []wireInput{{"a NaN with another payload is the same value", hexOf(cat(
				field(1, protowire.VarintType, protowire.AppendVarint(nil, 300)),
				field(11, protowire.Fixed32Type, protowire.AppendFixed32(nil, math.Float32bits(float32(math.Inf(-1))))),
				field(12, protowire.Fixed64Type, protowire.AppendFixed64(nil, 0x7ff0000000000001)),
				field(19, protowire.Fixed64Type, protowire.AppendFixed64(nil, math.Float64bits(math.Inf(1))))))}}},
		{name: "scalars-small-floats", covers: []string{"float", "double", "exponent"}, method: svc + "Scalars",
			msg: &requestv1.ScalarsRequest{Flt: math.MaxFloat32, Dbl: 5e-324, OddAmount: 0.000001, Amount: 1, Currency: "JPY"}},
		{name: "scalars-float-tie", covers: []string{"float", "float-tie"}, method: svc + "Scalars",
			// 2⁻¹² is halfway between 2.4414062e-4 and 2.4414063e-4: the
			// even one is shown.
			msg: &requestv1.ScalarsRequest{Flt: 0.000244140625, Dbl: 0.000244140625}},
		{name: "scalars-enum-unknown-number", covers: []string{"enum", "open-enum"}, method: svc + "Scalars",
			msg: &requestv1.ScalarsRequest{Color: 42, Amount: 500, Currency: "JPY", Flt: 16777216, Dbl: -0.1}},
		{name: "collections", covers: []string{"repeated", "packed", "map", "map-order", "enum", "bytes", "bool", "nested"}, method: svc + "Collections",
			msg: colls(`{"nums":[3,-1,0,300],"tags":["b","a",""],"dbls":[0.5,-2],"colors":["COLOR_GREEN","COLOR_RED",7],
				"flags":[true,false],"blobs":["","/w=="],"deltas":["-1","1"],"parties":[{"name":"A","iban":"X1"},{},{"id":"9"}],
				"labels":{"b":"2","a":"1","":"0","ab":"3","é":"4","Z":"5"},"codes":{"-1":"minus","10":"ten","2":"two"},
				"by_flag":{"true":{"name":"T"},"false":{}},"counts":{"18446744073709551615":"1","0":"-1"},"bins":{"-2":"AQ==","1":""},
				"colors_by_id":{"5":"COLOR_UNSPECIFIED","-5":"COLOR_RED"},"fixeds":["1","2"],"flts":[1.1,-0]}`),
			inputs: []wireInput{{"nums unpacked, then more of them packed; map entries in another order, one with its value omitted, one with a record that is neither key nor value", hexOf(collectionsSpelling(t))}}},
		{name: "collections-amounts", covers: []string{"repeated", "amount"}, method: svc + "Collections",
			msg: &requestv1.CollectionsRequest{Amounts: []int64{12500, -5, 0}, Currency: "EUR"}},
		{name: "collections-many-items", covers: []string{"repeated-message", "item-limit"}, method: svc + "Collections", msg: many},
		{name: "collections-long-list", covers: []string{"repeated", "truncate"}, method: svc + "Collections",
			msg: &requestv1.CollectionsRequest{Nums: slices.Repeat([]int32{123456789}, 30), Labels: map[string]string{strings.Repeat("k", 140): "v"}}},
		{name: "presence-unset", covers: []string{"explicit-presence", "implicit-zero"}, method: svc + "Presence", msg: pres(`{}`)},
		{name: "presence-zero-values", covers: []string{"explicit-presence", "oneof", "negative-zero"}, method: svc + "Presence",
			msg: &requestv1.PresenceRequest{OptI64: proto.Int64(0), OptText: proto.String(""), Party: &requestv1.Party{},
				Target: &requestv1.PresenceRequest_ZeroChoice{}, Dbl: math.Copysign(0, -1), OptFlag: proto.Bool(false)}},
		{name: "presence-oneof-message", covers: []string{"oneof", "nested"}, method: svc + "Presence",
			msg: pres(`{"account":{"name":"ACME","iban":"DE02"},"plain":"-7","opt_text":"x:y"}`)},
		{name: "presence-oneof-string", covers: []string{"oneof"}, method: svc + "Presence", msg: pres(`{"iban":"DE02","party":{"id":"1"}}`)},
		{name: "times", covers: []string{"timestamp", "duration", "well-known"}, method: svc + "Times",
			msg: &requestv1.TimesRequest{When: &timestamppb.Timestamp{Seconds: 1796639400, Nanos: 250000000}, Within: durationpb.New(-1500 * 1e6),
				Created: &timestamppb.Timestamp{Seconds: 1796639400},
				History: []*timestamppb.Timestamp{{Seconds: 1}}}},
		{name: "times-out-of-range", covers: []string{"timestamp", "duration", "invalid-well-known"}, method: svc + "Times",
			msg: &requestv1.TimesRequest{When: &timestamppb.Timestamp{Seconds: 253402300800}, Within: &durationpb.Duration{Seconds: 1, Nanos: -1}}},
		{name: "times-edges", covers: []string{"timestamp", "duration"}, method: svc + "Times",
			msg: &requestv1.TimesRequest{When: &timestamppb.Timestamp{Seconds: -62135596800}, Within: &durationpb.Duration{}}},
		{name: "nest-deep", covers: []string{"nested", "depth-limit"}, method: svc + "Nest",
			msg: &requestv1.NestRequest{Root: chain, Payee: &requestv1.Party{Name: "Bob", Iban: "GB33BUKB20201555555555"}, Ignored: &requestv1.Party{Name: "shown as a walked field"}}},
		{name: "plain", covers: []string{"no-display", "map", "repeated"}, method: svc + "Plain",
			msg: plain(`{"id":"1","note":"n","values":[1,2,3],"weights":{"b":2,"a":1}}`)},
		{name: "display-declared", covers: []string{"display-declarations"}, method: svc + "Plain",
			msg: plain(`{"id":"42","note":"via config","weights":{"x":1}}`),
			display: challenge.DisplayFields{
				"request.v1.PlainRequest.note":    &stepupv1.Display{Label: "note"},
				"request.v1.PlainRequest.id":      &stepupv1.Display{},
				"request.v1.PlainRequest.weights": &stepupv1.Display{Label: "weights"},
			}},
		{name: "legacy-proto2", covers: []string{"proto2", "explicit-presence", "default-value", "unpacked", "group", "closed-enum", "float"}, method: legacy,
			msg:    leg(`{"count":7,"values":[1,2],"packed_values":[-1],"level":"LEVEL_LOW","item":{"label":"thing","quantity":0},"ratio":0.25}`),
			inputs: []wireInput{{"values unpacked, as proto2 declares them", hexOf(legacySpelling(t))}}},
		{name: "legacy-unset", covers: []string{"proto2", "default-value"}, method: legacy, msg: leg(`{}`)},
		{name: "legacy-amount-currency-unset", covers: []string{"proto2", "amount", "default-value"}, method: legacy,
			msg: &requestv1.LegacyRequest{Price: proto.Int64(1999)}},
		{name: "legacy-amount-currency-set", covers: []string{"proto2", "amount"}, method: legacy,
			msg: &requestv1.LegacyRequest{Price: proto.Int64(1999), Currency: proto.String("EUR")}},
	}
}

// refusalCases are requests the server reads as holding something it does
// not declare: refused (docs/PROTOCOL.md §13.6).
func refusalCases(t *testing.T) []requestRefusal {
	tr := marshal(t, &requestv1.TransferRequest{AmountMinor: 12500, Currency: "EUR", ToIban: "DE89"})
	party := marshal(t, &requestv1.Party{Name: "A"})
	unknown := string(challenge.ReasonRequestUnknownField)
	invalid := string(challenge.ReasonRequestInvalid)
	// The request is depth 1, root 2, root.next 3, …: the 99th next is at
	// depth 101.
	node := field(1, protowire.BytesType, protowire.AppendString(nil, "n"))
	for range 99 {
		node = field(2, protowire.BytesType, protowire.AppendBytes(nil, node))
	}
	return []requestRefusal{
		{Name: "amount repeated as fixed64 (a parser that ignores wire types reads 990.00)", Method: svc + "Transfer", Type: "request.v1.TransferRequest",
			WireHex: hexOf(cat(tr, field(1, protowire.Fixed64Type, protowire.AppendFixed64(nil, 99000)))), Reason: unknown, RequestField: "#1"},
		{Name: "an unknown field number", Method: svc + "Transfer", Type: "request.v1.TransferRequest",
			WireHex: hexOf(cat(tr, field(7, protowire.VarintType, protowire.AppendVarint(nil, 1)))), Reason: unknown, RequestField: "#7"},
		{Name: "a string sent as a varint", Method: svc + "Transfer", Type: "request.v1.TransferRequest",
			WireHex: hexOf(cat(tr, field(3, protowire.VarintType, protowire.AppendVarint(nil, 5)))), Reason: unknown, RequestField: "#3"},
		{Name: "a nested message hides an unknown field", Method: svc + "Nest", Type: "request.v1.NestRequest",
			WireHex: hexOf(field(2, protowire.BytesType, protowire.AppendBytes(nil, cat(party, field(9, protowire.BytesType, protowire.AppendString(nil, "DE00")))))),
			Reason:  unknown, RequestField: "payee.#9"},
		{Name: "an unknown field in the third element of a repeated message", Method: svc + "Collections", Type: "request.v1.CollectionsRequest",
			WireHex: hexOf(cat(field(8, protowire.BytesType, protowire.AppendBytes(nil, party)), field(8, protowire.BytesType, protowire.AppendBytes(nil, party)),
				field(8, protowire.BytesType, protowire.AppendBytes(nil, field(4, protowire.Fixed32Type, protowire.AppendFixed32(nil, 1)))))),
			Reason: unknown, RequestField: "parties[2].#4"},
		{Name: "an unknown field in a map value", Method: svc + "Collections", Type: "request.v1.CollectionsRequest",
			WireHex: hexOf(field(11, protowire.BytesType, protowire.AppendBytes(nil, cat(field(1, protowire.VarintType, []byte{1}),
				field(2, protowire.BytesType, protowire.AppendBytes(nil, field(5, protowire.VarintType, []byte{0}))))))),
			Reason: unknown, RequestField: "by_flag[true].#5"},
		{Name: "an unknown field in a map value under a string key", Method: svc + "Collections", Type: "request.v1.CollectionsRequest",
			WireHex: hexOf(field(19, protowire.BytesType, protowire.AppendBytes(nil, cat(field(1, protowire.BytesType, protowire.AppendString(nil, `a"b`)),
				field(2, protowire.BytesType, protowire.AppendBytes(nil, field(6, protowire.VarintType, []byte{1}))))))),
			Reason: unknown, RequestField: `parties_by_name["a\"b"].#6`},
		{Name: "a closed enum's undeclared number", Method: legacy, Type: "request.v1.LegacyRequest",
			WireHex: hexOf(field(5, protowire.VarintType, protowire.AppendVarint(nil, 9))), Reason: unknown, RequestField: "level"},
		{Name: "an extension", Method: legacy, Type: "request.v1.LegacyRequest",
			WireHex: hexOf(field(100, protowire.BytesType, protowire.AppendString(nil, "x"))), Reason: unknown, RequestField: "#100"},
		{Name: "a proto2 string that is not UTF-8", Method: legacy, Type: "request.v1.LegacyRequest",
			WireHex: hexOf(field(2, protowire.BytesType, protowire.AppendBytes(nil, []byte{0xff, 'a'}))), Reason: invalid, RequestField: "name"},
		{Name: "messages nested 101 deep", Method: svc + "Nest", Type: "request.v1.NestRequest",
			WireHex: hexOf(field(1, protowire.BytesType, protowire.AppendBytes(nil, node))),
			Reason:  invalid, RequestField: "root" + strings.Repeat(".next", 99)},
	}
}

func field(num protowire.Number, typ protowire.Type, value []byte) []byte {
	return append(protowire.AppendTag(nil, num, typ), value...)
}

func cat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

func hexOf(b []byte) string { return hex.EncodeToString(b) }

// nonMinimal is the varint of v padded to n bytes.
func nonMinimal(v uint64, n int) []byte {
	b := protowire.AppendVarint(nil, v)
	for len(b) < n {
		b[len(b)-1] |= 0x80
		b = append(b, 0)
	}
	return b
}

func marshal(t *testing.T, m proto.Message) []byte {
	t.Helper()
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// revFields is m's encoding with its top-level records in reverse order.
func revFields(t *testing.T, m proto.Message) []byte {
	b := marshal(t, m)
	var recs [][]byte
	for len(b) > 0 {
		_, _, n := protowire.ConsumeField(b)
		recs = append(recs, b[:n])
		b = b[n:]
	}
	slices.Reverse(recs)
	return cat(recs...)
}

// collectionsSpelling is another encoding of the "collections" vector's
// message: nums unpacked and packed, map entries out of order, an entry
// without its value (zero), records interleaved.
func collectionsSpelling(t *testing.T) []byte {
	entry := func(k, v []byte) []byte { return protowire.AppendBytes(nil, cat(k, v)) }
	str := func(num protowire.Number, s string) []byte {
		return field(num, protowire.BytesType, protowire.AppendString(nil, s))
	}
	vint := func(num protowire.Number, v uint64) []byte {
		return field(num, protowire.VarintType, protowire.AppendVarint(nil, v))
	}
	m := &requestv1.CollectionsRequest{}
	if err := protojson.Unmarshal([]byte(`{"tags":["b","a",""],"dbls":[0.5,-2],"colors":["COLOR_GREEN","COLOR_RED",7],
		"flags":[true,false],"blobs":["","/w=="],"deltas":["-1","1"],"parties":[{"name":"A","iban":"X1"},{},{"id":"9"}],
		"codes":{"-1":"minus","10":"ten","2":"two"},
		"by_flag":{"true":{"name":"T"},"false":{}},"counts":{"18446744073709551615":"1","0":"-1"},"bins":{"-2":"AQ==","1":""},
		"colors_by_id":{"5":"COLOR_UNSPECIFIED","-5":"COLOR_RED"},"fixeds":["1","2"],"flts":[1.1,-0]}`), m); err != nil {
		t.Fatal(err)
	}
	packed := cat(protowire.AppendVarint(nil, uint64(0)), protowire.AppendVarint(nil, 300))
	labels := [][2]string{{"Z", "5"}, {"é", "4"}, {"ab", "3"}, {"", "0"}, {"a", "1"}}
	var out [][]byte
	out = append(out, vint(1, 3))
	for _, kv := range labels {
		out = append(out, field(9, protowire.BytesType, entry(str(1, kv[0]), str(2, kv[1]))))
	}
	out = append(out, vint(1, uint64(math.MaxUint64))) // -1 as an int32: ten bytes
	// An entry's records other than its key and value are ignored.
	out = append(out, field(9, protowire.BytesType, entry(str(1, "b"), cat(vint(3, 1), str(2, "2")))))
	out = append(out, marshal(t, m))
	out = append(out, field(1, protowire.BytesType, protowire.AppendBytes(nil, packed)))
	return cat(out...)
}

// legacySpelling encodes the "legacy-proto2" vector's message with values
// unpacked (proto2's default).
func legacySpelling(t *testing.T) []byte {
	m := &requestv1.LegacyRequest{}
	if err := protojson.Unmarshal([]byte(`{"count":7,"packed_values":[-1],"level":"LEVEL_LOW","item":{"label":"thing","quantity":0},"ratio":0.25}`), m); err != nil {
		t.Fatal(err)
	}
	return cat(field(3, protowire.VarintType, []byte{1}), marshal(t, m), field(3, protowire.VarintType, []byte{2}))
}

// vectorFiles are the descriptors the vectors use, in dependency order.
var vectorFiles = []protoreflect.FileDescriptor{
	timestamppb.File_google_protobuf_timestamp_proto,
	durationpb.File_google_protobuf_duration_proto,
	requestv1.File_request_v1_request_proto,
	requestv1.File_request_v1_legacy_proto,
}

var vectorJSON = protojson.MarshalOptions{UseProtoNames: true}

func writeVectors(t *testing.T) {
	set := &descriptorpb.FileDescriptorSet{}
	for _, f := range vectorFiles {
		set.File = append(set.File, protodesc.ToFileDescriptorProto(f))
	}
	desc, err := vectorJSON.Marshal(set)
	if err != nil {
		t.Fatal(err)
	}
	out := vectorFile{
		Comment: "Vectors of the canonical request encoding, the request digest and the summary: docs/PROTOCOL.md §13. " +
			"descriptors is a google.protobuf.FileDescriptorSet in the protobuf JSON mapping (proto field names); " +
			"each vector's message is in the protobuf JSON mapping of its type; inputs are other encodings a server reads as that message; " +
			"refusals are encodings a server refuses on a step-up method. In the messages, a proto2 group field is keyed by its group's type name (Item), " +
			"as the protobuf JSON mapping writes it, and -0 is the JSON number -0 (a negative zero: keep its sign when reading). Written by `go test ./challenge -run TestRequestVectors -update`.",
		Descriptors: json.RawMessage(desc),
	}
	for _, c := range vectorCases(t) {
		js, err := vectorJSON.Marshal(c.msg)
		note := ""
		if err != nil {
			// An out-of-range Timestamp or Duration has no JSON mapping:
			// the canonical bytes are the message.
			js, note = json.RawMessage("null"), "no JSON mapping ("+err.Error()+"): read the message from canonical_hex"
		}
		canonical, err := challenge.CanonicalRequest(c.msg)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		v := requestVector{
			Name: c.name, Covers: c.covers, Method: c.method, Type: string(c.msg.ProtoReflect().Descriptor().FullName()),
			Message: js, Note: note, Inputs: c.inputs, CanonicalHex: hexOf(canonical), Digest: challenge.DigestCanonical(c.method, canonical),
		}
		for name, d := range c.display {
			b, err := vectorJSON.Marshal(d)
			if err != nil {
				t.Fatal(err)
			}
			if v.Display == nil {
				v.Display = map[string]json.RawMessage{}
			}
			v.Display[string(name)] = b
		}
		items := c.display.Summarize(c.msg)
		v.Summary = []summaryItem{}
		for _, it := range items {
			v.Summary = append(v.Summary, summaryItem{Field: it.GetField(), Label: it.GetLabel(), Value: it.GetValue()})
		}
		v.SummaryText = challenge.SummaryText(c.method, items)
		out.Vectors = append(out.Vectors, v)
	}
	out.Refusals = refusalCases(t)
	b, err := json.MarshalIndent(out, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(vectorsFile, append(b, '\n'), 0o644); err != nil {
		t.Fatal(err)
	}
}

// readVectors reads the vectors file and builds its descriptors, resolving
// the stepup options (and descriptor.proto) from the linked registry.
func readVectors(t testing.TB) (*vectorFile, *protoregistry.Files) {
	t.Helper()
	raw, err := os.ReadFile(vectorsFile)
	if err != nil {
		t.Fatal(err)
	}
	var vf vectorFile
	if err := json.Unmarshal(raw, &vf); err != nil {
		t.Fatal(err)
	}
	set := &descriptorpb.FileDescriptorSet{}
	if err := protojson.Unmarshal(vf.Descriptors, set); err != nil {
		t.Fatalf("descriptors: %v", err)
	}
	files := new(protoregistry.Files)
	for _, fdp := range set.GetFile() {
		fd, err := protodesc.NewFile(fdp, resolvers{files, protoregistry.GlobalFiles})
		if err != nil {
			t.Fatalf("descriptor %s: %v", fdp.GetName(), err)
		}
		if err := files.RegisterFile(fd); err != nil {
			t.Fatal(err)
		}
	}
	return &vf, files
}

// resolvers finds a file in the first registry that has it.
type resolvers []*protoregistry.Files

func (r resolvers) FindFileByPath(p string) (protoreflect.FileDescriptor, error) {
	for _, f := range r {
		if fd, err := f.FindFileByPath(p); err == nil {
			return fd, nil
		}
	}
	return nil, protoregistry.NotFound
}

func (r resolvers) FindDescriptorByName(n protoreflect.FullName) (protoreflect.Descriptor, error) {
	for _, f := range r {
		if d, err := f.FindDescriptorByName(n); err == nil {
			return d, nil
		}
	}
	return nil, protoregistry.NotFound
}

func newDynamic(t testing.TB, files *protoregistry.Files, name string) *dynamicpb.Message {
	t.Helper()
	d, err := files.FindDescriptorByName(protoreflect.FullName(name))
	if err != nil {
		t.Fatalf("type %s: %v", name, err)
	}
	return dynamicpb.NewMessage(d.(protoreflect.MessageDescriptor))
}

// TestRequestVectors checks docs/examples/request-vectors.json against the
// implementation, with messages built only from the file's own
// descriptors (dynamic messages, as the gateway builds them): the
// canonical bytes, the digest, the summary items and text of each vector;
// every other encoding of a vector read back and encoded again gives the
// same canonical bytes; every refusal is refused with its reason and
// field. With -update it first rewrites the file from the cases.
func TestRequestVectors(t *testing.T) {
	if *updateVectors {
		writeVectors(t)
	}
	vf, files := readVectors(t)
	if len(vf.Vectors) < 32 || len(vf.Refusals) < 11 {
		t.Errorf("%d vectors and %d refusals, want at least 32 and 11", len(vf.Vectors), len(vf.Refusals))
	}
	covered := map[string]bool{}
	for _, v := range vf.Vectors {
		t.Run(v.Name, func(t *testing.T) {
			for _, c := range v.Covers {
				covered[c] = true
			}
			msg := newDynamic(t, files, v.Type)
			if string(v.Message) == "null" {
				b, err := hex.DecodeString(v.CanonicalHex)
				if err == nil {
					err = proto.Unmarshal(b, msg)
				}
				if err != nil {
					t.Fatalf("canonical_hex: %v", err)
				}
			} else if err := (protojson.UnmarshalOptions{Resolver: dynamicpb.NewTypes(files)}).Unmarshal(v.Message, msg); err != nil {
				t.Fatalf("message: %v", err)
			}
			display := challenge.DisplayFields{}
			for name, raw := range v.Display {
				d := &stepupv1.Display{}
				if err := protojson.Unmarshal(raw, d); err != nil {
					t.Fatal(err)
				}
				display[protoreflect.FullName(name)] = d
			}
			if err := display.Validate(files); err != nil {
				t.Fatal(err)
			}
			canonical, err := challenge.CanonicalRequest(msg)
			if err != nil {
				t.Fatal(err)
			}
			if got := hexOf(canonical); got != v.CanonicalHex {
				t.Errorf("canonical\n got %s\nwant %s", got, v.CanonicalHex)
			}
			if got, err := challenge.RequestDigest(v.Method, msg); err != nil || got != v.Digest {
				t.Errorf("digest %s (%v), want %s", got, err, v.Digest)
			}
			items := display.Summarize(msg)
			var got []summaryItem
			for _, it := range items {
				got = append(got, summaryItem{it.GetField(), it.GetLabel(), it.GetValue()})
			}
			if !slices.Equal(got, v.Summary) {
				t.Errorf("summary\n got %q\nwant %q", got, v.Summary)
			}
			if text := challenge.SummaryText(v.Method, items); text != v.SummaryText {
				t.Errorf("summary text\n got %q\nwant %q", text, v.SummaryText)
			}
			// The canonical bytes read back are the same message, and are
			// their own canonical encoding.
			again := newDynamic(t, files, v.Type)
			if err := proto.Unmarshal(canonical, again); err != nil {
				t.Fatal(err)
			}
			if b, err := challenge.CanonicalRequest(again); err != nil || !bytes.Equal(b, canonical) {
				t.Errorf("canonical bytes read back encode as %x (%v)", b, err)
			}
			for _, in := range v.Inputs {
				wire, err := hex.DecodeString(in.WireHex)
				if err != nil {
					t.Fatal(err)
				}
				other := newDynamic(t, files, v.Type)
				if err := proto.Unmarshal(wire, other); err != nil {
					t.Fatalf("input %q: %v", in.Note, err)
				}
				if b, err := challenge.CanonicalRequest(other); err != nil || !bytes.Equal(b, canonical) {
					t.Errorf("input %q: canonical %x (%v), want the vector's", in.Note, b, err)
				}
				if bytes.Equal(wire, canonical) {
					t.Errorf("input %q is the canonical encoding itself: it shows nothing", in.Note)
				}
			}
		})
	}
	for _, kind := range []string{"map", "repeated", "enum", "bytes", "bool", "nested", "oneof", "unicode", "long",
		"unknown-currency", "float", "double", "timestamp", "duration", "group", "explicit-presence", "display-declarations"} {
		if !covered[kind] {
			t.Errorf("no vector covers %s", kind)
		}
	}
	for _, r := range vf.Refusals {
		t.Run("refused/"+r.Name, func(t *testing.T) {
			wire, err := hex.DecodeString(r.WireHex)
			if err != nil {
				t.Fatal(err)
			}
			msg := newDynamic(t, files, r.Type)
			if err := (proto.UnmarshalOptions{RecursionLimit: 10_000}).Unmarshal(wire, msg); err != nil {
				t.Fatalf("decode: %v", err)
			}
			_, err = challenge.CanonicalRequest(msg)
			var re *challenge.RequestError
			if !errors.As(err, &re) {
				t.Fatalf("CanonicalRequest: %v, want a *RequestError", err)
			}
			if string(re.Reason) != r.Reason || re.Field != r.RequestField {
				t.Errorf("refused as %s at %q, want %s at %q (%v)", re.Reason, re.Field, r.Reason, r.RequestField, err)
			}
			if _, err := challenge.RequestDigest(r.Method, msg); err == nil {
				t.Error("RequestDigest digested it")
			}
		})
	}
}
