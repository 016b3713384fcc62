package challenge_test

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/descriptorpb"
	"google.golang.org/protobuf/types/dynamicpb"

	"github.com/stepupgrpc/stepup/challenge"
	"github.com/stepupgrpc/stepup/challenge/approval"
	"github.com/stepupgrpc/stepup/challenge/webauthn"
	"github.com/stepupgrpc/stepup/dpop"
	stepupv1 "github.com/stepupgrpc/stepup/proto/stepup/v1"
	"github.com/stepupgrpc/stepup/testing/testkit"
)

// start is the fake clock's initial time.
var start = time.Date(2026, 3, 2, 9, 30, 0, 0, time.UTC)

// newClock returns a settable clock at start: tests move time, they never
// sleep.
func newClock() *testkit.Clock { return testkit.NewClock(start) }

const (
	subject      = "alice"
	transferRPC  = "/bank.v1.BankService/Transfer"
	addPayeeRPC  = "/bank.v1.BankService/AddPayee"
	totpSecret   = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"
	rpID         = "bank.example"
	rpOrigin     = "https://bank.example"
	evilOrigin   = "https://bank.example.evil"
	webauthnUser = "user-handle-alice"
)

// fixture is a server with every factor and a client with a DPoP key, a
// registered device key and a registered software authenticator.
type fixture struct {
	t         testing.TB
	clock     *testkit.Clock
	clientKey *ecdsa.PrivateKey
	keys      *challenge.KeySet
	store     *challenge.MemoryStore
	svc       *challenge.Service
	approvals *approval.Factor // the approval factor, withApproval
	client    *dpop.Signer     // alice's DPoP key
	attacker  *dpop.Signer     // someone else's DPoP key
	device    crypto.Signer
	authn     *webauthn.SoftAuthenticator
	creds     *webauthn.MemoryCredentials
}

type fixtureOption func(*fixtureConfig)

type fixtureConfig struct {
	keys    *challenge.KeySet
	totp    challenge.TOTPOptions
	secret  string
	options []challenge.Option
	// approval, when set, enables the approval factor with the WebAuthn
	// factor's approver passkeys at approverOrigin (approvers, or the
	// factor's credentials when nil).
	approval  *approval.Options
	approvers webauthn.Store
}

func withApproval(approvers webauthn.Store, o approval.Options) fixtureOption {
	return func(c *fixtureConfig) { c.approval, c.approvers = &o, approvers }
}

func withKeySet(k *challenge.KeySet) fixtureOption {
	return func(c *fixtureConfig) { c.keys = k }
}

func withTOTPOptions(secret string, o challenge.TOTPOptions) fixtureOption {
	return func(c *fixtureConfig) { c.secret, c.totp = secret, o }
}

func withOptions(o ...challenge.Option) fixtureOption {
	return func(c *fixtureConfig) { c.options = append(c.options, o...) }
}

func newKey(t testing.TB, id string) challenge.Key {
	t.Helper()
	k, err := challenge.GenerateKey(id)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func newKeySet(t testing.TB, current challenge.Key, previous ...challenge.Key) *challenge.KeySet {
	t.Helper()
	ks, err := challenge.NewKeySet(current, previous...)
	if err != nil {
		t.Fatal(err)
	}
	return ks
}

func newSigner(t testing.TB) *dpop.Signer {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	s, err := dpop.NewSigner(k)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func newFixture(t testing.TB, opts ...fixtureOption) *fixture {
	t.Helper()
	cfg := fixtureConfig{secret: totpSecret}
	for _, o := range opts {
		o(&cfg)
	}
	f := &fixture{t: t, clock: newClock(), creds: webauthn.NewMemoryCredentials()}
	if cfg.keys == nil {
		cfg.keys = newKeySet(t, newKey(t, "k1"))
	}
	f.keys = cfg.keys
	var err error
	if f.store, err = challenge.NewMemoryStore(10_000, f.clock.Now); err != nil {
		t.Fatal(err)
	}
	if f.clientKey, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader); err != nil {
		t.Fatal(err)
	}
	if f.client, err = dpop.NewSigner(f.clientKey); err != nil {
		t.Fatal(err)
	}
	f.attacker = newSigner(t)
	_, dev, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	f.device = dev
	if f.authn, err = webauthn.NewSoftAuthenticator(rpID, rpOrigin); err != nil {
		t.Fatal(err)
	}
	cred, err := f.authn.RegisterCredential([]byte(webauthnUser))
	if err != nil {
		t.Fatal(err)
	}
	f.creds.AddCredential(subject, []byte(webauthnUser), cred)
	wa := newWebAuthn(t, f.creds)
	secrets := challenge.TOTPSecretsFunc(func(_ context.Context, sub string) (string, error) {
		if sub != subject {
			return "", challenge.ErrUnknownSubject
		}
		return cfg.secret, nil
	})
	devices := challenge.DeviceKeysFunc(func(_ context.Context, sub string) ([]crypto.PublicKey, error) {
		if sub != subject {
			return nil, challenge.ErrUnknownSubject
		}
		return []crypto.PublicKey{dev.Public()}, nil
	})
	options := []challenge.Option{
		challenge.WithKeys(f.keys),
		challenge.WithStore(f.store),
		challenge.WithClock(f.clock.Now),
		challenge.WithTOTP(secrets, cfg.totp),
		challenge.WithDeviceKeys(devices),
		challenge.WithFactor(wa),
	}
	if cfg.approval != nil {
		if f.approvals, err = wa.NewApproval(approverOrigin, cfg.approvers, *cfg.approval); err != nil {
			t.Fatal(err)
		}
		options = append(options, challenge.WithFactor(f.approvals))
	}
	if f.svc, err = challenge.NewService(append(options, cfg.options...)...); err != nil {
		t.Fatal(err)
	}
	return f
}

// Requirements used across the tests.
var (
	bound    = &challenge.Requirement{BindRequest: true}
	reusable = &challenge.Requirement{MaxAge: 5 * time.Minute}
)

// call is alice's call on her own connection.
func (f *fixture) call(req *challenge.Requirement, msg proto.Message) challenge.Call {
	return challenge.Call{
		Subject:     subject,
		Thumbprint:  f.client.Thumbprint(),
		Method:      transferRPC,
		Requirement: req,
		Request:     msg,
	}
}

func (f *fixture) check(call challenge.Call) *challenge.Outcome {
	f.t.Helper()
	out, err := f.svc.Check(context.Background(), call)
	if err != nil {
		f.t.Fatalf("Check: %v", err)
	}
	return out
}

// challengeFor runs a call without credentials and returns its challenge.
func (f *fixture) challengeFor(call challenge.Call) *stepupv1.StepUpChallenge {
	f.t.Helper()
	call.Answer, call.Grant = "", ""
	out := f.check(call)
	if out.Satisfied || out.Challenge == nil || out.Reason != challenge.ReasonRequired {
		f.t.Fatalf("want a challenge, got %+v", out)
	}
	return out.Challenge
}

func (f *fixture) answer(s *dpop.Signer, ch *stepupv1.StepUpChallenge, ev *challenge.Evidence) string {
	f.t.Helper()
	a, err := challenge.Answer(s, ch, ev)
	if err != nil {
		f.t.Fatalf("Answer: %v", err)
	}
	return a
}

func (f *fixture) totp() *challenge.Evidence {
	f.t.Helper()
	code, err := challenge.TOTPCode(totpSecret, f.clock.Now())
	if err != nil {
		f.t.Fatal(err)
	}
	return &challenge.Evidence{Factor: stepupv1.Factor_FACTOR_TOTP, TOTP: code}
}

func (f *fixture) deviceEvidence(key crypto.Signer, ch *stepupv1.StepUpChallenge) *challenge.Evidence {
	f.t.Helper()
	r, err := challenge.DeviceKeyResponder(key)
	if err != nil {
		f.t.Fatal(err)
	}
	ev, err := r.Respond(context.Background(), ch)
	if err != nil {
		f.t.Fatal(err)
	}
	return ev
}

func (f *fixture) webauthnEvidence(ch *stepupv1.StepUpChallenge) *challenge.Evidence {
	f.t.Helper()
	ev, err := challenge.WebAuthnResponder(f.authn).Respond(context.Background(), ch)
	if err != nil {
		f.t.Fatal(err)
	}
	return ev
}

// expectReason checks that out is a refusal with the given reason.
func expectReason(t *testing.T, out *challenge.Outcome, want challenge.Reason) {
	t.Helper()
	if out.Satisfied {
		t.Fatalf("satisfied; want refusal %s", want)
	}
	if out.Reason != want {
		t.Fatalf("reason %s, want %s", out.Reason, want)
	}
}

// The request messages: a descriptor built here, so that the tests do not
// depend on any other package's protos.
//
//	message Transfer {
//	  int64 amount_minor = 1 [(stepup.v1.display) = {label: "amount", format: DISPLAY_FORMAT_AMOUNT_MINOR, currency_field: "currency"}];
//	  string currency = 2;
//	  string to_iban = 3 [(stepup.v1.display) = {label: "to"}];
//	  string memo = 4 [(stepup.v1.display) = {}];
//	  Party beneficiary = 5;
//	  repeated string tags = 6 [(stepup.v1.display) = {label: "tags"}];
//	  Kind kind = 7 [(stepup.v1.display) = {label: "kind"}];
//	  string internal_note = 8;
//	}
//	message Party { string name = 1 [(stepup.v1.display) = {label: "beneficiary"}]; }
//	enum Kind { KIND_UNSPECIFIED = 0; KIND_INSTANT = 1; }
//	message Payment {
//	  int64 amount_minor = 1 [(stepup.v1.display) = {label: "amount", format: DISPLAY_FORMAT_AMOUNT_MINOR, currency_field: "currency"}];
//	  string currency = 2;
//	  string to_iban = 3 [(stepup.v1.display) = {label: "to"}];
//	}
var transferType, partyType, paymentType = buildTypes()

func buildTypes() (protoreflect.MessageType, protoreflect.MessageType, protoreflect.MessageType) {
	display := func(d *stepupv1.Display) *descriptorpb.FieldOptions {
		o := &descriptorpb.FieldOptions{}
		proto.SetExtension(o, stepupv1.E_Display, d)
		return o
	}
	field := func(name string, n int32, typ descriptorpb.FieldDescriptorProto_Type, opts *descriptorpb.FieldOptions) *descriptorpb.FieldDescriptorProto {
		return &descriptorpb.FieldDescriptorProto{
			Name:     proto.String(name),
			Number:   proto.Int32(n),
			Type:     typ.Enum(),
			Label:    descriptorpb.FieldDescriptorProto_LABEL_OPTIONAL.Enum(),
			JsonName: proto.String(name),
			Options:  opts,
		}
	}
	party := field("beneficiary", 5, descriptorpb.FieldDescriptorProto_TYPE_MESSAGE, nil)
	party.TypeName = proto.String(".stepup.test.Party")
	tags := field("tags", 6, descriptorpb.FieldDescriptorProto_TYPE_STRING, display(&stepupv1.Display{Label: "tags"}))
	tags.Label = descriptorpb.FieldDescriptorProto_LABEL_REPEATED.Enum()
	kind := field("kind", 7, descriptorpb.FieldDescriptorProto_TYPE_ENUM, display(&stepupv1.Display{Label: "kind"}))
	kind.TypeName = proto.String(".stepup.test.Kind")
	fdp := &descriptorpb.FileDescriptorProto{
		Name:       proto.String("stepup/test/transfer.proto"),
		Package:    proto.String("stepup.test"),
		Syntax:     proto.String("proto3"),
		Dependency: []string{"stepup/v1/options.proto"},
		MessageType: []*descriptorpb.DescriptorProto{{
			Name: proto.String("Transfer"),
			Field: []*descriptorpb.FieldDescriptorProto{
				field("amount_minor", 1, descriptorpb.FieldDescriptorProto_TYPE_INT64, display(&stepupv1.Display{
					Label: "amount", Format: stepupv1.DisplayFormat_DISPLAY_FORMAT_AMOUNT_MINOR, CurrencyField: "currency",
				})),
				field("currency", 2, descriptorpb.FieldDescriptorProto_TYPE_STRING, nil),
				field("to_iban", 3, descriptorpb.FieldDescriptorProto_TYPE_STRING, display(&stepupv1.Display{Label: "to"})),
				field("memo", 4, descriptorpb.FieldDescriptorProto_TYPE_STRING, display(&stepupv1.Display{})),
				party,
				tags,
				kind,
				field("internal_note", 8, descriptorpb.FieldDescriptorProto_TYPE_STRING, nil),
			},
		}, {
			Name: proto.String("Payment"),
			Field: []*descriptorpb.FieldDescriptorProto{
				field("amount_minor", 1, descriptorpb.FieldDescriptorProto_TYPE_INT64, display(&stepupv1.Display{
					Label: "amount", Format: stepupv1.DisplayFormat_DISPLAY_FORMAT_AMOUNT_MINOR, CurrencyField: "currency",
				})),
				field("currency", 2, descriptorpb.FieldDescriptorProto_TYPE_STRING, nil),
				field("to_iban", 3, descriptorpb.FieldDescriptorProto_TYPE_STRING, display(&stepupv1.Display{Label: "to"})),
			},
		}, {
			Name: proto.String("Party"),
			Field: []*descriptorpb.FieldDescriptorProto{
				field("name", 1, descriptorpb.FieldDescriptorProto_TYPE_STRING, display(&stepupv1.Display{Label: "beneficiary"})),
			},
		}},
		EnumType: []*descriptorpb.EnumDescriptorProto{{
			Name: proto.String("Kind"),
			Value: []*descriptorpb.EnumValueDescriptorProto{
				{Name: proto.String("KIND_UNSPECIFIED"), Number: proto.Int32(0)},
				{Name: proto.String("KIND_INSTANT"), Number: proto.Int32(1)},
			},
		}},
	}
	fd, err := protodesc.NewFile(fdp, protoregistry.GlobalFiles)
	if err != nil {
		panic(err)
	}
	return dynamicpb.NewMessageType(fd.Messages().ByName("Transfer")),
		dynamicpb.NewMessageType(fd.Messages().ByName("Party")),
		dynamicpb.NewMessageType(fd.Messages().ByName("Payment"))
}

// payment returns a Payment request, the message of the examples.
func payment(amount int64, currency, iban string) proto.Message {
	m := paymentType.New()
	fields := m.Descriptor().Fields()
	m.Set(fields.ByName("amount_minor"), protoreflect.ValueOfInt64(amount))
	m.Set(fields.ByName("currency"), protoreflect.ValueOfString(currency))
	m.Set(fields.ByName("to_iban"), protoreflect.ValueOfString(iban))
	return m.Interface()
}

// transfer returns a Transfer request.
func transfer(amount int64, currency, iban string) proto.Message {
	m := transferType.New()
	fields := m.Descriptor().Fields()
	m.Set(fields.ByName("amount_minor"), protoreflect.ValueOfInt64(amount))
	m.Set(fields.ByName("currency"), protoreflect.ValueOfString(currency))
	m.Set(fields.ByName("to_iban"), protoreflect.ValueOfString(iban))
	return m.Interface()
}

// setField sets a string field of a message built by transfer.
func setField(msg proto.Message, name, value string) proto.Message {
	m := msg.ProtoReflect()
	m.Set(m.Descriptor().Fields().ByName(protoreflect.Name(name)), protoreflect.ValueOfString(value))
	return msg
}
