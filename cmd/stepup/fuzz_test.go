package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"io"
	"strings"
	"testing"
	"time"
	"unicode"
	"unicode/utf8"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	spb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	stepupv1 "github.com/stepupgrpc/stepup/proto/stepup/v1"
)

// FuzzInspect feeds arbitrary values to inspect's decoder: whatever is
// pasted, it reports and never panics, never prints an answer's TOTP code,
// and prints nothing a terminal would act on: its output is valid UTF-8
// whose only control byte is the line feed that ends each line.
func FuzzInspect(f *testing.F) {
	f.Add("eyJhbGciOiJFUzI1NiIsInR5cCI6ImRwb3Arand0In0.eyJpYXQiOjF9.c2ln")
	f.Add("eyJ0eXAiOiJzdGVwdXAtYW5zd2VyK2p3dCJ9.eyJjaGwiOiJhLmIuYyIsIm90cCI6IjEyMzQ1NiJ9.c2ln")
	f.Add("CBASC3N0ZXB1cDogbm8=")
	f.Add("a.b.c")
	f.Add("e30.e30.")
	// Terminal control sequences in a token's header, claim names and
	// values, cnf.jkt.
	f.Add(b64json(`{"alg":"ES256","typ":"at+jwt","kid":"\u001b[2J"}`) + "." +
		b64json(`{"sub":"\u0007","exp":1,"cnf":{"jkt":"\u001b[1A\u001b[2K"},"\u001b]0;t\u0007":"\u009b2J\u202e"}`) + ".c2ln")
	// ... and in a refusal's details: type URL, ErrorInfo, challenge.
	info, _ := anypb.New(&errdetails.ErrorInfo{Reason: "R\x1b[2J", Domain: "D\a", Metadata: map[string]string{"k\r": "v\n"}})
	ch, _ := anypb.New(&stepupv1.StepUpChallenge{Method: "/a.B/C\x1b[1A", SummaryText: "approve\u009b2K", AcrValues: []string{"\x7f"}})
	st, _ := proto.Marshal(&spb.Status{Code: 16, Message: "m\x1b", Details: []*anypb.Any{info, ch, {TypeUrl: "t/\x1b[2J", Value: []byte{1}}}})
	f.Add(base64.StdEncoding.EncodeToString(st))
	f.Fuzz(func(t *testing.T, v string) {
		var out bytes.Buffer
		in := &inspector{e: &env{stdin: strings.NewReader(""), stdout: &out, stderr: io.Discard, now: func() time.Time { return time.Unix(1_800_000_000, 0) }}}
		if err := in.inspect(context.Background(), v); err != nil {
			t.Fatal(err)
		}
		if strings.Contains(v, `"otp":"123456"`) && strings.Contains(out.String(), "123456") {
			t.Fatal("printed an answer's TOTP code")
		}
		if !utf8.Valid(out.Bytes()) {
			t.Fatalf("the output is not UTF-8: %q", out.String())
		}
		for _, r := range out.String() {
			if r != '\n' && !unicode.IsGraphic(r) {
				t.Fatalf("the output holds %U: %q", r, out.String())
			}
		}
	})
}

// b64json is base64url (no padding) of a JSON text.
func b64json(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }
