package bank_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"golang.org/x/net/http2/hpack"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	spb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"

	"github.com/stepupgrpc/stepup/challenge"
	"github.com/stepupgrpc/stepup/dpop"
	"github.com/stepupgrpc/stepup/interceptor"
	stepupv1 "github.com/stepupgrpc/stepup/proto/stepup/v1"
	"github.com/stepupgrpc/stepup/testing/testkit"
)

// exchangeIntro opens exchange.txt; %s is the instant of the run.
const exchangeIntro = `Stepup wire exchange: every value of the worked example in docs/PROTOCOL.md §12, unabridged.

Written by TestWorkedExample (examples/bank/worked_example_test.go) from a run
of the example bank, and compared with a new run by the same test: when what
the server or the client sends changes, the test fails until this file is
regenerated (go test ./examples/bank -run TestWorkedExample -update).

Setting: the client of subject "alice" (interceptor.Client) holds a P-256 DPoP
key and an access token bound to it. It calls bank.v1.BankService
(examples/bank/v1/bank.proto) at the authority bank.example over TLS. The
server is the example bank (examples/bank/bankserver) behind interceptor.Guard
with the Guard options of examples/bank/server; it requires DPoP nonces,
accepts three factors (TOTP, device key, and WebAuthn, which the example
server does not offer) and signs challenges and grants with its server key
"k1" (not shown). Subject "bob" appears at the end to show a lock-out.

The run is deterministic, so that this file can be compared byte for byte:
crypto/rand is seeded (testing/cryptotest.SetGlobalRandom), so keys, jti
values, nonces, challenge ids and signatures are the same on every run;
every component has a clock fixed at %s
(Unix %d), and the run is inside a testing/synctest bubble whose clock
stands still at that instant, for what reads the time itself (the iat of
answers and device evidence, the time of audit records). Two audit members
therefore differ from what a deployed server writes: "latency" is 0 (the
Guard measures it with its clock, which does not move) and "peer" is
"bufconn" (the connection is in memory, grpc test/bufconn).

Line prefixes:
  request  ...           the request headers: :method, :path, :authority, content-type, then the
                         metadata (also sent, not shown: :scheme https, te: trailers, user-agent)
  proof header/payload   the dpop value of that request, decoded
  request message        the request message of a unary call, decoded (protojson with the .proto field
                         names); not shown for a stream, whose message the client may not have sent yet
                         when a refusal at the stream's opening arrives
  response header ...    the response headers, sent before the first response message (:status 200 not shown)
  response message       a response message, decoded
  response trailer ...   the response trailers; a refusal is a trailers-only response, whose one header
                         block also carries :status 200 and content-type: application/grpc (not shown)
  google.rpc.Status      the grpc-status-details-bin trailer, decoded (protojson)
  google.rpc.ErrorInfo   the ErrorInfo detail of that trailer, in the list of refusals
  audit                  the audit record the server wrote (slog JSON handler)
  note                   what the client observed on a stream
Metadata is shown sorted by name; gRPC writes it in no fixed order.

Times are Unix seconds. Values are not edited; signatures verify with the
public keys printed at the top and in each header.

`

func (x *workedExample) printf(format string, args ...any) { fmt.Fprintf(&x.out, format, args...) }

// field writes a header field as name: value, or name: alone when the
// value is empty (no trailing space).
func (x *workedExample) field(prefix, name, value string) {
	if value == "" {
		x.printf("%s%s:\n", prefix, name)
		return
	}
	x.printf("%s%s: %s\n", prefix, name, value)
}

// header writes the introduction, the keys and the access token.
func (x *workedExample) header(issuer *testkit.Issuer, alice *dpop.Signer, token string) {
	x.printf(exchangeIntro, exampleTime.Format(time3339), exampleTime.Unix())
	var set struct{ Keys []json.RawMessage }
	if err := json.Unmarshal(issuer.PublicJWKS(), &set); err != nil || len(set.Keys) != 1 {
		x.t.Fatalf("the issuer's JWKS: %v", err)
	}
	x.printf("issuer public JWK (verifies the access tokens)  %s\n", x.compact(set.Keys[0]))
	x.printf("client DPoP public JWK (RFC 7638 members)      %s\n", alice.PublicJWK())
	x.printf("client jkt = BASE64URL(SHA-256(that JWK))      %s\n", alice.Thumbprint())
	x.printf("\n-------- access token (issued to alice, bound to the DPoP key by cnf.jkt) (%d bytes)\n", len(token))
	x.jws(token, "header  ", "payload ")
	ath := sha256.Sum256([]byte(token))
	x.printf("ath = BASE64URL(SHA-256(access token))  %s\n", base64.RawURLEncoding.EncodeToString(ath[:]))
}

const time3339 = "2006-01-02T15:04:05Z07:00"

// exchange writes one call attempt in full: request, response, audit.
func (x *workedExample) exchange(s *wireStream, title string) {
	x.printf("\n======== %s\n", title)
	method := x.method(s)
	for _, name := range []string{":method", ":path", ":authority"} {
		for _, v := range values(s.request, name) {
			x.printf("request  %s %s\n", name, v)
		}
	}
	for _, v := range values(s.request, "content-type") {
		x.field("request  ", "content-type", v)
	}
	for _, f := range metadataOf(s.request, ":scheme", "te", "user-agent", "content-type") {
		x.field("request  ", f.Name, f.Value)
	}
	for _, p := range values(s.request, interceptor.MetadataDPoP) {
		x.jws(p, "proof header  ", "proof payload ")
	}
	if !method.IsStreamingClient() && !method.IsStreamingServer() {
		// A stream's request message may or may not be on the wire
		// before a refusal at the stream's opening reaches the client.
		for _, m := range x.messages(s.requestData, method.Input()) {
			x.printf("request message %s\n", m)
		}
	}
	if !s.trailersOnly() {
		hdr := s.headers()
		x.status200(hdr)
		for _, v := range values(hdr, "content-type") {
			x.field("response header   ", "content-type", v)
		}
		for _, f := range metadataOf(hdr, "content-type") {
			x.field("response header   ", f.Name, f.Value)
		}
	}
	for _, m := range x.messages(s.responseData, method.Output()) {
		x.printf("response message %s\n", m)
	}
	tr := s.trailers()
	if s.trailersOnly() {
		x.status200(tr)
	}
	for _, name := range []string{"grpc-status", "grpc-message", "grpc-status-details-bin"} {
		for _, v := range values(tr, name) {
			x.field("response trailer  ", name, v)
		}
	}
	for _, f := range metadataOf(tr, "content-type", "grpc-status", "grpc-message", "grpc-status-details-bin") {
		x.field("response trailer  ", f.Name, f.Value)
	}
	if st := x.status(s); st != nil {
		x.printf("google.rpc.Status (grpc-status-details-bin, decoded):\n%s\n", x.indent(x.protoJSON(st)))
	}
	x.checkProofHash(s)
	x.printf("audit %s\n", x.auditOf[s])
}

// refusal writes a call of the list of refusals: its outcome, the
// ErrorInfo, the trailers other than grpc-*, and the audit record.
func (x *workedExample) refusal(s *wireStream, title string) {
	tr := s.trailers()
	code := -1
	if v := values(tr, "grpc-status"); len(v) == 1 {
		code, _ = strconv.Atoi(v[0])
	}
	var info *errdetails.ErrorInfo
	if st := x.status(s); st != nil {
		for _, d := range st.GetDetails() {
			if e := new(errdetails.ErrorInfo); d.MessageIs(e) && d.UnmarshalTo(e) == nil {
				info = e
			}
		}
	}
	line := fmt.Sprintf("\n== %s: %s (%d)", title, codes.Code(code), code)
	if info != nil {
		line += " " + info.GetReason()
	}
	x.printf("%s\n", line)
	x.checkProofHash(s)
	if info != nil {
		x.printf("google.rpc.ErrorInfo %s\n", x.protoJSON(info))
	}
	for _, f := range metadataOf(tr, "content-type", "grpc-status", "grpc-message", "grpc-status-details-bin") {
		x.field("response trailer  ", f.Name, f.Value)
	}
	x.printf("audit %s\n", x.auditOf[s])
}

// checkProofHash checks what PROTOCOL.md §7.1 says of a refusal's
// ErrorInfo: metadata proof_sha256 is BASE64URL(SHA-256(the dpop value))
// when the call had exactly one, and absent otherwise.
func (x *workedExample) checkProofHash(s *wireStream) {
	st := x.status(s)
	if st == nil {
		return
	}
	for _, d := range st.GetDetails() {
		info := new(errdetails.ErrorInfo)
		if !d.MessageIs(info) || d.UnmarshalTo(info) != nil || info.GetDomain() != interceptor.ErrorDomain {
			continue
		}
		got, ok := info.GetMetadata()[interceptor.ErrorInfoProofHash]
		proofs := values(s.request, interceptor.MetadataDPoP)
		switch {
		case len(proofs) == 1:
			h := sha256.Sum256([]byte(proofs[0]))
			if want := base64.RawURLEncoding.EncodeToString(h[:]); got != want {
				x.t.Errorf("%s refused (%s) with proof_sha256 %q, want %q", values(s.request, ":path"), info.GetReason(), got, want)
			}
		case ok:
			x.t.Errorf("%s with %d dpop values refused (%s) with proof_sha256 %q", values(s.request, ":path"), len(proofs), info.GetReason(), got)
		}
	}
}

// challenge decodes the step-up challenge that refused s.
func (x *workedExample) challenge(s *wireStream) {
	st := x.status(s)
	var ch *stepupv1.StepUpChallenge
	for _, d := range st.GetDetails() {
		if c := new(stepupv1.StepUpChallenge); d.MessageIs(c) && d.UnmarshalTo(c) == nil {
			ch = c
		}
	}
	if ch == nil {
		x.t.Fatalf("%s was not refused with a challenge", values(s.request, ":path"))
	}
	jws := ch.GetChallenge()
	x.printf("\n-------- challenge (opaque to the client; decoded here for reference) (%d bytes)\n", len(jws))
	_, payload := x.jws(jws, "header  ", "payload ")
	if o := ch.GetWebauthnRequestOptions(); len(o) > 0 {
		x.printf("webauthn_request_options (bytes, UTF-8 JSON) %s\n", o)
	}
	var claims struct{ Dig string }
	if err := json.Unmarshal(payload, &claims); err != nil {
		x.t.Fatal(err)
	}
	if claims.Dig == "" {
		return
	}
	// The request is bound: show what its digest covers (§13.2, §13.3),
	// from the message on the wire.
	method := x.method(s)
	msgs := x.decode(s.requestData, method.Input())
	if len(msgs) != 1 {
		x.t.Fatalf("a bound challenge for %d request messages", len(msgs))
	}
	canonical, err := challenge.CanonicalRequest(msgs[0])
	if err != nil {
		x.t.Fatal(err)
	}
	full := "/" + string(method.Parent().FullName()) + "/" + string(method.Name())
	if dig := challenge.DigestCanonical(full, canonical); dig != claims.Dig {
		x.t.Errorf("the challenge's dig %s is not the digest of the request sent, %s", claims.Dig, dig)
	}
	x.printf("canonical request (§13.2), hex  %s\n", hex.EncodeToString(canonical))
	x.printf("dig = BASE64URL(SHA-256(\"%s\" || 0x00 || canonical request))  %s\n", full, claims.Dig)
}

// answer decodes the step-up answer s carries, and its factor evidence.
func (x *workedExample) answer(s *wireStream, factor string) {
	v := values(s.request, interceptor.MetadataStepUpAnswer)
	if len(v) != 1 {
		x.t.Fatalf("%d stepup-answer values in %v", len(v), s.request)
	}
	var p struct {
		WAN json.RawMessage `json:"wan"`
		Dev string          `json:"dev"`
	}
	if err := json.Unmarshal(x.segment(v[0], 1), &p); err != nil {
		x.t.Fatal(err)
	}
	if len(p.WAN) > 0 {
		x.printf("\n-------- WebAuthn assertion (PublicKeyCredential JSON)\n%s\n", p.WAN)
		var a struct {
			Response struct {
				ClientDataJSON string `json:"clientDataJSON"`
			} `json:"response"`
		}
		if err := json.Unmarshal(p.WAN, &a); err != nil {
			x.t.Fatal(err)
		}
		cd, err := base64.RawURLEncoding.DecodeString(a.Response.ClientDataJSON)
		if err != nil {
			x.t.Fatal(err)
		}
		x.printf("clientDataJSON (decoded) %s\n", cd)
	}
	if p.Dev != "" {
		x.printf("\n-------- device evidence (%d bytes)\n", len(p.Dev))
		x.jws(p.Dev, "header  ", "payload ")
	}
	x.printf("\n-------- answer (%s) (%d bytes)\n", factor, len(v[0]))
	x.jws(v[0], "header  ", "payload ")
}

// grant decodes the grant returned in the response headers of s.
func (x *workedExample) grant(s *wireStream) {
	v := values(s.headers(), interceptor.MetadataStepUpGrant)
	if len(v) != 1 {
		x.t.Fatalf("%d stepup-grant values", len(v))
	}
	x.printf("\n-------- grant (%d bytes)\n", len(v[0]))
	x.jws(v[0], "header  ", "payload ")
}

// jws writes a compact JWS, unless both labels are proof labels, then its
// decoded header and payload; it returns them.
func (x *workedExample) jws(token, headerLabel, payloadLabel string) (header, payload []byte) {
	if !strings.HasPrefix(headerLabel, "proof") {
		x.printf("%s\n", token)
	}
	header, payload = x.segment(token, 0), x.segment(token, 1)
	x.printf("%s%s\n%s%s\n", headerLabel, header, payloadLabel, payload)
	return header, payload
}

// segment decodes the i-th base64url segment of a compact JWS.
func (x *workedExample) segment(token string, i int) []byte {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		x.t.Fatalf("not a compact JWS: %.40s…", token)
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[i])
	if err != nil {
		x.t.Fatal(err)
	}
	return b
}

// method returns the method of a stream, from its :path.
func (x *workedExample) method(s *wireStream) protoreflect.MethodDescriptor {
	path := values(s.request, ":path")
	if len(path) != 1 {
		x.t.Fatalf("a stream with %d :path values", len(path))
	}
	svc, name, ok := strings.Cut(strings.TrimPrefix(path[0], "/"), "/")
	if !ok {
		x.t.Fatalf(":path %s", path[0])
	}
	d, err := protoregistry.GlobalFiles.FindDescriptorByName(protoreflect.FullName(svc))
	if err != nil {
		x.t.Fatal(err)
	}
	m := d.(protoreflect.ServiceDescriptor).Methods().ByName(protoreflect.Name(name))
	if m == nil {
		x.t.Fatalf("no method %s", path[0])
	}
	return m
}

// decode splits DATA into gRPC messages (1 flag byte, 4 length bytes,
// the message) and decodes each as md.
func (x *workedExample) decode(data []byte, md protoreflect.MessageDescriptor) []proto.Message {
	mt, err := protoregistry.GlobalTypes.FindMessageByName(md.FullName())
	if err != nil {
		x.t.Fatal(err)
	}
	var out []proto.Message
	for len(data) > 0 {
		if len(data) < 5 || data[0] != 0 {
			x.t.Fatalf("not an uncompressed gRPC message: % x", data[:min(len(data), 5)])
		}
		n := int(binary.BigEndian.Uint32(data[1:5]))
		if len(data) < 5+n {
			x.t.Fatalf("a gRPC message cut short")
		}
		m := mt.New().Interface()
		if err := proto.Unmarshal(data[5:5+n], m); err != nil {
			x.t.Fatal(err)
		}
		out = append(out, m)
		data = data[5+n:]
	}
	return out
}

// messages decodes data as messages of type md, as protojson with the
// .proto field names.
func (x *workedExample) messages(data []byte, md protoreflect.MessageDescriptor) []string {
	var out []string
	for _, m := range x.decode(data, md) {
		b, err := protojson.MarshalOptions{UseProtoNames: true}.Marshal(m)
		if err != nil {
			x.t.Fatal(err)
		}
		out = append(out, x.compact(b))
	}
	return out
}

// status decodes the grpc-status-details-bin trailer of s, or returns nil.
func (x *workedExample) status(s *wireStream) *spb.Status {
	v := values(s.trailers(), "grpc-status-details-bin")
	if len(v) == 0 {
		return nil
	}
	b, err := base64.RawStdEncoding.DecodeString(strings.TrimRight(v[0], "="))
	if err != nil {
		x.t.Fatal(err)
	}
	st := new(spb.Status)
	if err := proto.Unmarshal(b, st); err != nil {
		x.t.Fatal(err)
	}
	return st
}

// protoJSON is m as protojson on one line. protojson varies its spacing
// on purpose; compact JSON does not.
func (x *workedExample) protoJSON(m proto.Message) string {
	b, err := protojson.Marshal(m)
	if err != nil {
		x.t.Fatal(err)
	}
	return x.compact(b)
}

func (x *workedExample) compact(b []byte) string {
	var buf bytes.Buffer
	if err := json.Compact(&buf, b); err != nil {
		x.t.Fatal(err)
	}
	return buf.String()
}

func (x *workedExample) indent(s string) string {
	var buf bytes.Buffer
	if err := json.Indent(&buf, []byte(s), "", "  "); err != nil {
		x.t.Fatal(err)
	}
	return buf.String()
}

// status200 checks the :status of a response's first header block.
func (x *workedExample) status200(fields []hpack.HeaderField) {
	if v := values(fields, ":status"); len(v) != 1 || v[0] != "200" {
		x.t.Errorf(":status %v, want 200", v)
	}
}

// values returns the values of a header field, in order.
func values(fields []hpack.HeaderField, name string) []string {
	var out []string
	for _, f := range fields {
		if f.Name == name {
			out = append(out, f.Value)
		}
	}
	return out
}

// metadataOf returns the fields that are not pseudo-headers or skipped,
// sorted by name (values of one name keep their order).
func metadataOf(fields []hpack.HeaderField, skip ...string) []hpack.HeaderField {
	var out []hpack.HeaderField
	for _, f := range fields {
		if !strings.HasPrefix(f.Name, ":") && !slices.Contains(skip, f.Name) {
			out = append(out, f)
		}
	}
	slices.SortStableFunc(out, func(a, b hpack.HeaderField) int { return strings.Compare(a.Name, b.Name) })
	return out
}
