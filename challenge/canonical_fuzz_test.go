package challenge_test

import (
	"bytes"
	"encoding/hex"
	"testing"
	"unicode"
	"unicode/utf8"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/dynamicpb"

	"github.com/stepupgrpc/stepup/challenge"
	requestv1 "github.com/stepupgrpc/stepup/challenge/internal/testproto/request/v1"
)

// fuzzTypes are the request types FuzzCanonicalRequest decodes into.
var fuzzTypes = []protoreflect.MessageDescriptor{
	(&requestv1.TransferRequest{}).ProtoReflect().Descriptor(),
	(&requestv1.ScalarsRequest{}).ProtoReflect().Descriptor(),
	(&requestv1.CollectionsRequest{}).ProtoReflect().Descriptor(),
	(&requestv1.PresenceRequest{}).ProtoReflect().Descriptor(),
	(&requestv1.TimesRequest{}).ProtoReflect().Descriptor(),
	(&requestv1.NestRequest{}).ProtoReflect().Descriptor(),
	(&requestv1.LegacyRequest{}).ProtoReflect().Descriptor(),
}

// FuzzCanonicalRequest reads arbitrary bytes as a request, as the gateway
// does, and checks the canonical encoding's promises: it is refused with a
// *RequestError or encoded; the encoding reads back as a message whose
// encoding is the same bytes (one value, one encoding), is never longer
// than needed to say the same thing twice, and has the same summary; the
// summary's texts are valid UTF-8 of at most 128 code points with no code
// point of the replaced set. Seeds: the vectors' encodings and refusals
// (docs/examples/request-vectors.json) and testdata/fuzz.
func FuzzCanonicalRequest(f *testing.F) {
	vf, _ := readVectors(f)
	index := map[string]byte{}
	for i, d := range fuzzTypes {
		index[string(d.FullName())] = byte(i)
	}
	for _, v := range vf.Vectors {
		b, _ := hex.DecodeString(v.CanonicalHex)
		f.Add(index[v.Type], b)
		for _, in := range v.Inputs {
			b, _ := hex.DecodeString(in.WireHex)
			f.Add(index[v.Type], b)
		}
	}
	for _, r := range vf.Refusals {
		b, _ := hex.DecodeString(r.WireHex)
		f.Add(index[r.Type], b)
	}
	f.Fuzz(func(t *testing.T, which byte, wire []byte) {
		md := fuzzTypes[int(which)%len(fuzzTypes)]
		msg := dynamicpb.NewMessage(md)
		if proto.Unmarshal(wire, msg) != nil {
			return
		}
		canonical, err := challenge.CanonicalRequest(msg)
		if err != nil {
			if _, ok := err.(*challenge.RequestError); !ok {
				t.Fatalf("refused with %T %v, want a *RequestError", err, err)
			}
			return
		}
		again := dynamicpb.NewMessage(md)
		if err := proto.Unmarshal(canonical, again); err != nil {
			t.Fatalf("the canonical bytes do not decode: %v", err)
		}
		b, err := challenge.CanonicalRequest(again)
		if err != nil || !bytes.Equal(b, canonical) {
			t.Fatalf("canonical bytes read back encode as\n%x (%v), not\n%x", b, err, canonical)
		}
		items, itemsAgain := challenge.Summarize(msg), challenge.Summarize(again)
		if len(items) != len(itemsAgain) || len(items) > 32 {
			t.Fatalf("%d items, %d read back", len(items), len(itemsAgain))
		}
		for i, it := range items {
			if !proto.Equal(it, itemsAgain[i]) {
				t.Fatalf("item %d: %v, read back %v", i, it, itemsAgain[i])
			}
			for _, s := range []string{it.GetLabel(), it.GetValue()} {
				if !utf8.ValidString(s) || utf8.RuneCountInString(s) > 128 {
					t.Fatalf("text %q", s)
				}
				for _, r := range s {
					if unicode.In(r, unicode.Cc, unicode.Cf, unicode.Zl, unicode.Zp, unicode.Co, unicode.Cs) {
						t.Fatalf("text %q shows %U", s, r)
					}
				}
			}
		}
		if text := challenge.SummaryText("/request.v1.VectorService/Fuzz", items); !utf8.ValidString(text) {
			t.Fatalf("summary text %q", text)
		}
	})
}
