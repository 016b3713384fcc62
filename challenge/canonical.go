package challenge

import (
	"cmp"
	"crypto/sha256"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/stepupgrpc/stepup/internal/base64url"
)

// MaxRequestDepth is the deepest nesting of messages a bound or summarised
// request may have: the request itself is depth 1. A deeper request is
// refused (ReasonRequestInvalid).
const MaxRequestDepth = 100

// RequestError is a request that a step-up check cannot read completely,
// and therefore refuses: it holds a field the server's descriptors do not
// declare (an unknown field, a field sent with another wire type than its
// declared type, an extension), a string that is not valid UTF-8, or
// messages nested deeper than MaxRequestDepth. What the server cannot read
// it can neither summarise for the user nor bind, and a handler or backend
// that reads it differently would execute something nobody approved
// (docs/PROTOCOL.md §13).
type RequestError struct {
	// Reason is ReasonRequestUnknownField or ReasonRequestInvalid.
	Reason Reason
	// Field is where in the request: field names joined by ".", "[i]" for
	// an element of a repeated field, "[key]" for a map entry, and "#n"
	// for an unknown field number n ("beneficiary.#7"). It names only what
	// the caller sent.
	Field string
	// Detail says what is wrong there.
	Detail string
}

// Error returns "challenge: request refused (<reason>) at <field>: <detail>".
func (e *RequestError) Error() string {
	return "challenge: request refused (" + string(e.Reason) + ") at " + e.Field + ": " + e.Detail
}

// CanonicalRequest returns the canonical encoding of msg (docs/PROTOCOL.md
// §13.2): a protobuf binary encoding with every choice fixed — fields in
// ascending number, minimal varints, repeated numeric fields packed, map
// entries by key with key and value always written, present fields only —
// so that two requests have the same encoding exactly when they are the
// same value, in any language and with any protobuf library. It is what the
// request digest hashes and what the gateway forwards. A request with an
// unknown field or extension at any depth, an invalid UTF-8 string, or
// nesting deeper than MaxRequestDepth is refused with a *RequestError.
func CanonicalRequest(msg proto.Message) ([]byte, error) {
	if msg == nil || !msg.ProtoReflect().IsValid() {
		return nil, &RequestError{Reason: ReasonRequestInvalid, Field: "(request)", Detail: "nil message"}
	}
	e := encoder{}
	b, err := e.message(nil, msg.ProtoReflect(), 1)
	if err != nil {
		return nil, err
	}
	return b, nil
}

// DigestCanonical returns the request digest (docs/PROTOCOL.md §13.3) of a
// request whose canonical encoding is canonical:
// BASE64URL(SHA-256(method || 0x00 || canonical)).
func DigestCanonical(method string, canonical []byte) string {
	h := sha256.New()
	h.Write([]byte(method))
	h.Write([]byte{0})
	h.Write(canonical)
	var sum [sha256.Size]byte
	return base64url.EncodeToString(h.Sum(sum[:0]))
}

// encoder writes canonical encodings; path holds the names of the fields
// it is inside, for RequestError.
type encoder struct {
	path []string
}

// fail returns the RequestError of the field at e.path, or of its
// unknown field last ("#7") when last is not empty.
func (e *encoder) fail(reason Reason, last, format string, args ...any) error {
	path := slices.Clip(e.path)
	if last != "" {
		path = append(path, last)
	}
	field := strings.Join(path, ".")
	if field == "" {
		field = "(request)"
	}
	return &RequestError{Reason: reason, Field: field, Detail: fmt.Sprintf(format, args...)}
}

// message appends the canonical encoding of m's fields (without a tag or
// length) to b.
func (e *encoder) message(b []byte, m protoreflect.Message, depth int) ([]byte, error) {
	if depth > MaxRequestDepth {
		return nil, e.fail(ReasonRequestInvalid, "", "messages nested deeper than %d", MaxRequestDepth)
	}
	if u := m.GetUnknown(); len(u) > 0 {
		num, typ, n := protowire.ConsumeTag(u)
		if n < 0 {
			return nil, e.fail(ReasonRequestUnknownField, "", "unknown fields")
		}
		return nil, e.fail(ReasonRequestUnknownField, "#"+strconv.Itoa(int(num)),
			"field %d (wire type %d) is not a field of %s with that wire type", num, typ, m.Descriptor().FullName())
	}
	md := m.Descriptor()
	if md.ExtensionRanges().Len() > 0 {
		var ext protoreflect.FieldDescriptor
		m.Range(func(fd protoreflect.FieldDescriptor, _ protoreflect.Value) bool {
			if fd.IsExtension() {
				ext = fd
				return false
			}
			return true
		})
		if ext != nil {
			return nil, e.fail(ReasonRequestUnknownField, "#"+strconv.Itoa(int(ext.Number())),
				"extension %s", ext.FullName())
		}
	}
	var err error
	for _, fd := range byNumber(md.Fields()) {
		if !m.Has(fd) {
			continue
		}
		e.path = append(e.path, string(fd.Name()))
		v := m.Get(fd)
		switch {
		case fd.IsMap():
			b, err = e.mapField(b, fd, v.Map(), depth)
		case fd.IsList():
			b, err = e.listField(b, fd, v.List(), depth)
		default:
			b, err = e.field(b, fd, v, depth)
		}
		if err != nil {
			return nil, err
		}
		e.path = e.path[:len(e.path)-1]
	}
	return b, nil
}

// byNumber returns the fields in ascending number: as declared when they
// are declared in that order (the usual case: no allocation), sorted
// otherwise.
func byNumber(fields protoreflect.FieldDescriptors) []protoreflect.FieldDescriptor {
	out := make([]protoreflect.FieldDescriptor, fields.Len())
	sorted := true
	for i := range out {
		out[i] = fields.Get(i)
		if i > 0 && out[i].Number() < out[i-1].Number() {
			sorted = false
		}
	}
	if !sorted {
		slices.SortFunc(out, func(a, b protoreflect.FieldDescriptor) int { return cmp.Compare(a.Number(), b.Number()) })
	}
	return out
}

// field appends one record of a singular field (or of one element of a
// repeated string, bytes, message or group field).
func (e *encoder) field(b []byte, fd protoreflect.FieldDescriptor, v protoreflect.Value, depth int) ([]byte, error) {
	switch fd.Kind() {
	case protoreflect.MessageKind:
		b = protowire.AppendTag(b, fd.Number(), protowire.BytesType)
		return e.nested(b, v.Message(), depth)
	case protoreflect.GroupKind:
		b = protowire.AppendTag(b, fd.Number(), protowire.StartGroupType)
		b, err := e.message(b, v.Message(), depth+1)
		if err != nil {
			return nil, err
		}
		return protowire.AppendTag(b, fd.Number(), protowire.EndGroupType), nil
	case protoreflect.StringKind:
		if !utf8.ValidString(v.String()) {
			return nil, e.fail(ReasonRequestInvalid, "", "a string that is not valid UTF-8")
		}
		b = protowire.AppendTag(b, fd.Number(), protowire.BytesType)
		return protowire.AppendString(b, v.String()), nil
	case protoreflect.BytesKind:
		b = protowire.AppendTag(b, fd.Number(), protowire.BytesType)
		return protowire.AppendBytes(b, v.Bytes()), nil
	case protoreflect.EnumKind:
		if err := e.closedEnum(fd, v); err != nil {
			return nil, err
		}
	}
	b = protowire.AppendTag(b, fd.Number(), wireType(fd.Kind()))
	return appendScalar(b, fd.Kind(), v), nil
}

// nested appends the length and canonical encoding of a message value.
func (e *encoder) nested(b []byte, m protoreflect.Message, depth int) ([]byte, error) {
	start := len(b)
	b, err := e.message(b, m, depth+1)
	if err != nil {
		return nil, err
	}
	return insertLength(b, start), nil
}

// insertLength inserts before b[start:] the varint of its length.
func insertLength(b []byte, start int) []byte {
	n := len(b) - start
	k := protowire.SizeVarint(uint64(n))
	b = append(b, make([]byte, k)...)
	copy(b[start+k:], b[start:start+n])
	protowire.AppendVarint(b[start:start], uint64(n))
	return b
}

// listField appends a repeated field: numeric kinds as one packed record,
// the others one record per element.
func (e *encoder) listField(b []byte, fd protoreflect.FieldDescriptor, l protoreflect.List, depth int) ([]byte, error) {
	switch fd.Kind() {
	case protoreflect.StringKind, protoreflect.BytesKind, protoreflect.MessageKind, protoreflect.GroupKind:
		var err error
		for i := range l.Len() {
			e.path[len(e.path)-1] = string(fd.Name()) + "[" + strconv.Itoa(i) + "]"
			if b, err = e.field(b, fd, l.Get(i), depth); err != nil {
				return nil, err
			}
		}
		return b, nil
	}
	b = protowire.AppendTag(b, fd.Number(), protowire.BytesType)
	start := len(b)
	for i := range l.Len() {
		if fd.Kind() == protoreflect.EnumKind {
			if err := e.closedEnum(fd, l.Get(i)); err != nil {
				return nil, err
			}
		}
		b = appendScalar(b, fd.Kind(), l.Get(i))
	}
	return insertLength(b, start), nil
}

// closedEnum refuses a number that a closed (proto2) enum does not
// declare: other languages' parsers keep it as an unknown field, and the
// field as unset; protobuf-go keeps it as the field's value.
func (e *encoder) closedEnum(fd protoreflect.FieldDescriptor, v protoreflect.Value) error {
	if ed := fd.Enum(); ed.IsClosed() && ed.Values().ByNumber(v.Enum()) == nil {
		return e.fail(ReasonRequestUnknownField, "", "%d is not a value of the closed enum %s", v.Enum(), ed.FullName())
	}
	return nil
}

// mapField appends one record per entry, ordered by key (mapKeyOrder),
// each entry with its key (1) and value (2) always written.
func (e *encoder) mapField(b []byte, fd protoreflect.FieldDescriptor, m protoreflect.Map, depth int) ([]byte, error) {
	kd, vd := fd.MapKey(), fd.MapValue()
	for _, k := range sortedKeys(m, kd.Kind()) {
		e.path[len(e.path)-1] = string(fd.Name()) + "[" + keyText(k, kd) + "]"
		b = protowire.AppendTag(b, fd.Number(), protowire.BytesType)
		start := len(b)
		var err error
		if b, err = e.field(b, kd, k.Value(), depth+1); err != nil {
			return nil, err
		}
		if b, err = e.field(b, vd, m.Get(k), depth+1); err != nil {
			return nil, err
		}
		b = insertLength(b, start)
	}
	return b, nil
}

// keyText names a map key in a RequestError's field (docs/PROTOCOL.md
// §13.6): a string between double quotes, other keys as their text.
func keyText(k protoreflect.MapKey, kd protoreflect.FieldDescriptor) string {
	if kd.Kind() == protoreflect.StringKind {
		return quote(k.String())
	}
	return scalarText(k.Value(), kd)
}

// sortedKeys returns m's keys in canonical order: false before true,
// integers by value (signed kinds as signed), strings by their UTF-8 bytes.
func sortedKeys(m protoreflect.Map, kind protoreflect.Kind) []protoreflect.MapKey {
	keys := make([]protoreflect.MapKey, 0, m.Len())
	m.Range(func(k protoreflect.MapKey, _ protoreflect.Value) bool {
		keys = append(keys, k)
		return true
	})
	slices.SortFunc(keys, func(a, b protoreflect.MapKey) int { return compareKeys(a, b, kind) })
	return keys
}

func compareKeys(a, b protoreflect.MapKey, kind protoreflect.Kind) int {
	switch kind {
	case protoreflect.BoolKind:
		return cmp.Compare(b2i(a.Bool()), b2i(b.Bool()))
	case protoreflect.StringKind:
		// Go compares strings by their bytes, unsigned.
		return strings.Compare(a.String(), b.String())
	case protoreflect.Uint32Kind, protoreflect.Fixed32Kind, protoreflect.Uint64Kind, protoreflect.Fixed64Kind:
		return cmp.Compare(a.Uint(), b.Uint())
	}
	return cmp.Compare(a.Int(), b.Int())
}

func b2i(v bool) int {
	if v {
		return 1
	}
	return 0
}

// The bit patterns every NaN is written as: platforms and languages do not
// all keep a NaN's payload (converting a float to a double quiets a
// signalling NaN on most CPUs; JavaScript may change any NaN's bits), so
// the canonical encoding keeps none.
const (
	canonicalNaN32 uint32 = 0x7fc00000
	canonicalNaN64 uint64 = 0x7ff8000000000000
)

// wireType is the wire type of a scalar kind's unpacked record.
func wireType(k protoreflect.Kind) protowire.Type {
	switch k {
	case protoreflect.Fixed32Kind, protoreflect.Sfixed32Kind, protoreflect.FloatKind:
		return protowire.Fixed32Type
	case protoreflect.Fixed64Kind, protoreflect.Sfixed64Kind, protoreflect.DoubleKind:
		return protowire.Fixed64Type
	}
	return protowire.VarintType
}

// appendScalar appends a numeric value without its tag.
func appendScalar(b []byte, k protoreflect.Kind, v protoreflect.Value) []byte {
	switch k {
	case protoreflect.BoolKind:
		return protowire.AppendVarint(b, protowire.EncodeBool(v.Bool()))
	case protoreflect.EnumKind:
		return protowire.AppendVarint(b, uint64(int64(v.Enum())))
	case protoreflect.Int32Kind, protoreflect.Int64Kind:
		// A negative int32 is sign-extended to 64 bits: ten bytes.
		return protowire.AppendVarint(b, uint64(v.Int()))
	case protoreflect.Uint32Kind, protoreflect.Uint64Kind:
		return protowire.AppendVarint(b, v.Uint())
	case protoreflect.Sint32Kind, protoreflect.Sint64Kind:
		return protowire.AppendVarint(b, protowire.EncodeZigZag(v.Int()))
	case protoreflect.Fixed32Kind:
		return protowire.AppendFixed32(b, uint32(v.Uint()))
	case protoreflect.Sfixed32Kind:
		return protowire.AppendFixed32(b, uint32(int32(v.Int())))
	case protoreflect.FloatKind:
		f := float32(v.Float())
		if f != f { // every NaN is written as the one quiet NaN
			return protowire.AppendFixed32(b, canonicalNaN32)
		}
		return protowire.AppendFixed32(b, math.Float32bits(f))
	case protoreflect.Fixed64Kind:
		return protowire.AppendFixed64(b, v.Uint())
	case protoreflect.Sfixed64Kind:
		return protowire.AppendFixed64(b, uint64(v.Int()))
	case protoreflect.DoubleKind:
		if f := v.Float(); f != f {
			return protowire.AppendFixed64(b, canonicalNaN64)
		}
		return protowire.AppendFixed64(b, math.Float64bits(v.Float()))
	}
	panic("challenge: not a scalar kind: " + k.String())
}
