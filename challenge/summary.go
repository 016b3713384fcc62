package challenge

import (
	"encoding/base64"
	"errors"
	"fmt"
	"math"
	"math/big"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"

	stepupv1 "github.com/stepupgrpc/stepup/proto/stepup/v1"
)

// RequestDigest returns the digest that binds a challenge to one request
// (docs/PROTOCOL.md §13.3): base64url (no padding) of SHA-256 over the
// UTF-8 method name, one zero byte, and the canonical encoding of msg
// (CanonicalRequest). Any client can compute it from its own request and
// compare it with the challenge's dig claim. It fails with a
// *RequestError when msg cannot be encoded canonically (an unknown field,
// say).
func RequestDigest(method string, msg proto.Message) (string, error) {
	b, err := CanonicalRequest(msg)
	if err != nil {
		return "", err
	}
	return DigestCanonical(method, b), nil
}

// Summary limits (docs/PROTOCOL.md §13.5): what a person can read on an
// approval screen, and a bound on the work an adversarial message causes.
const (
	maxSummaryValue = 128 // code points per label or value, "…" included
	maxSummaryItems = 32
	maxSummaryDepth = 8
)

// DisplayFields declares request fields shown in summaries beyond those
// marked with (stepup.v1.display) in their descriptors, keyed by the
// field's full name ("bank.v1.TransferRequest.amount_minor"): for an API
// whose .proto files cannot be annotated (the gateway's display
// configuration). A declared field is displayed exactly as if its
// descriptor carried the option. The server and its clients must use the
// same declarations, or every challenge is refused by the clients'
// summary check (CheckChallenge). Validate checks them against descriptors.
type DisplayFields map[protoreflect.FullName]*stepupv1.Display

// display returns how fd is displayed: its declaration here, else its
// (stepup.v1.display) option, else nil.
func (d DisplayFields) display(fd protoreflect.FieldDescriptor) *stepupv1.Display {
	if v, ok := d[fd.FullName()]; ok {
		return v
	}
	v, _ := proto.GetExtension(fd.Options(), stepupv1.E_Display).(*stepupv1.Display)
	return v
}

// Validate checks every declaration against files: the name is a field of
// a message there, the field does not also carry a different
// (stepup.v1.display) option, and a currency_field names a singular string
// field of the same message. It returns every problem found, joined.
func (d DisplayFields) Validate(files *protoregistry.Files) error {
	var errs []error
	for name, disp := range d {
		desc, err := files.FindDescriptorByName(name)
		fd, ok := desc.(protoreflect.FieldDescriptor)
		if err != nil || !ok || fd.IsExtension() {
			errs = append(errs, fmt.Errorf("display %s: not a field of any message of the descriptor sets", name))
			continue
		}
		if own, _ := proto.GetExtension(fd.Options(), stepupv1.E_Display).(*stepupv1.Display); own != nil && !proto.Equal(own, disp) {
			errs = append(errs, fmt.Errorf("display %s: the field already has a (stepup.v1.display) option that says otherwise", name))
		}
		if c := disp.GetCurrencyField(); c != "" {
			cf := fd.ContainingMessage().Fields().ByName(protoreflect.Name(c))
			if cf == nil || cf.Kind() != protoreflect.StringKind || cf.IsList() {
				errs = append(errs, fmt.Errorf("display %s: currency_field %q is not a string field of %s", name, c, fd.ContainingMessage().FullName()))
			}
		}
	}
	return errors.Join(errs...)
}

// Shows reports whether a request of type md can show any field in a
// summary: whether md, or a message type reachable from it within the
// summary's depth, has a displayed field. A bound step-up method whose
// request shows nothing asks the user to approve a request they cannot see.
func (d DisplayFields) Shows(md protoreflect.MessageDescriptor) bool {
	return len(d.Displayed(md)) > 0
}

// Displayed returns the fields a summary of a request of type md can show,
// in declaration order, named as summary items name them ("amount_minor",
// "payee.iban", repeated messages as "items[].sku"): the fields marked
// with (stepup.v1.display) or declared in d, within the summary's depth.
// At most 32 names (a summary's limit), nil when md shows nothing.
func (d DisplayFields) Displayed(md protoreflect.MessageDescriptor) []string {
	// Each message type is listed once per depth; a type that contains
	// itself is cut at the summary's depth, as a summary is.
	memo := map[protoreflect.FullName]map[int][]string{}
	var list func(md protoreflect.MessageDescriptor, depth int) []string
	list = func(md protoreflect.MessageDescriptor, depth int) []string {
		if depth > maxSummaryDepth {
			return nil
		}
		if got, ok := memo[md.FullName()][depth]; ok {
			return got
		}
		var out []string
		fields := md.Fields()
		for i := 0; i < fields.Len() && len(out) < maxSummaryItems; i++ {
			fd := fields.Get(i)
			name := string(fd.Name())
			switch {
			case d.display(fd) != nil && (fd.Message() == nil || fd.IsMap() || wellKnownTime(fd.Message().FullName())):
				out = append(out, name)
			case fd.Message() != nil && !fd.IsMap():
				if fd.IsList() {
					name += "[]"
				}
				for _, inner := range list(fd.Message(), depth+1) {
					if len(out) < maxSummaryItems {
						out = append(out, name+"."+inner)
					}
				}
			}
		}
		if memo[md.FullName()] == nil {
			memo[md.FullName()] = map[int][]string{}
		}
		memo[md.FullName()][depth] = out
		return out
	}
	return list(md, 0)
}

func wellKnownTime(name protoreflect.FullName) bool {
	return name == "google.protobuf.Timestamp" || name == "google.protobuf.Duration"
}

// Summarize returns the summary items of msg (docs/PROTOCOL.md §13.5): the
// fields marked with (stepup.v1.display), in declaration order, walking
// nested messages (their fields are named "outer.inner", elements of
// repeated messages "items[0].inner"), rendered for a person: strings as
// they are, numbers in decimal, enums by name, bytes in base64,
// DISPLAY_FORMAT_AMOUNT_MINOR with the ISO 4217 decimals of the currency
// in currency_field ("120.00 EUR" for 12000 and "EUR"). Control, format
// (bidirectional overrides, zero-width) and line-separator characters
// become U+FFFD, so a value cannot disguise what it says; values longer
// than 128 characters end in "…". Fields with explicit presence (proto3
// optional, oneof, messages) are shown only when set; others always, zero
// values included, since that is what the request says. At most 32 items.
func Summarize(msg proto.Message) []*stepupv1.SummaryItem {
	return DisplayFields(nil).Summarize(msg)
}

// Summarize is the package's Summarize with the fields d declares
// displayed too.
func (d DisplayFields) Summarize(msg proto.Message) []*stepupv1.SummaryItem {
	if msg == nil || !msg.ProtoReflect().IsValid() {
		return nil
	}
	s := summarizer{display: d}
	s.walk(msg.ProtoReflect(), "", 0)
	return s.items
}

type summarizer struct {
	display DisplayFields
	items   []*stepupv1.SummaryItem
}

func (s *summarizer) full() bool { return len(s.items) >= maxSummaryItems }

// walk adds the items of m's fields, in declaration order.
func (s *summarizer) walk(m protoreflect.Message, prefix string, depth int) {
	if depth > maxSummaryDepth {
		return
	}
	fields := m.Descriptor().Fields()
	for i := 0; i < fields.Len() && !s.full(); i++ {
		fd := fields.Get(i)
		if fd.HasPresence() && !m.Has(fd) {
			continue
		}
		name := prefix + string(fd.Name())
		d := s.display.display(fd)
		message := fd.Kind() == protoreflect.MessageKind || fd.Kind() == protoreflect.GroupKind
		switch {
		case fd.IsMap():
			if d != nil {
				s.add(name, d, fd, mapText(m.Get(fd).Map(), fd))
			}
		case message && fd.IsList():
			l := m.Get(fd).List()
			for j := 0; j < l.Len() && !s.full(); j++ {
				s.walk(l.Get(j).Message(), name+"["+strconv.Itoa(j)+"].", depth+1)
			}
		case message:
			if d != nil {
				if v, ok := wellKnownText(m.Get(fd).Message()); ok {
					s.add(name, d, fd, v)
					continue
				}
			}
			s.walk(m.Get(fd).Message(), name+".", depth+1)
		case d == nil:
		case fd.IsList():
			l := m.Get(fd).List()
			var t limitedText
			for j := 0; j < l.Len() && !t.done(); j++ {
				if j > 0 {
					t.add(", ")
				}
				t.add(valueText(m, fd, d, l.Get(j)))
			}
			s.add(name, d, fd, t.String())
		default:
			s.add(name, d, fd, valueText(m, fd, d, m.Get(fd)))
		}
	}
}

func (s *summarizer) add(field string, d *stepupv1.Display, fd protoreflect.FieldDescriptor, value string) {
	label := d.GetLabel()
	if label == "" {
		label = string(fd.Name())
	}
	s.items = append(s.items, &stepupv1.SummaryItem{Field: field, Label: clean(label), Value: clean(value)})
}

// limitedText joins parts until it is longer than any summary value can
// show (clean cuts it): an adversarial list or map costs no more.
type limitedText struct {
	b     strings.Builder
	runes int
}

func (t *limitedText) add(s string) {
	if t.done() {
		return
	}
	t.b.WriteString(s)
	t.runes += utf8.RuneCountInString(s)
}

func (t *limitedText) done() bool     { return t.runes > maxSummaryValue }
func (t *limitedText) String() string { return t.b.String() }

// clean replaces the code points of the replaced set (docs/PROTOCOL.md
// §13.5.3) with U+FFFD and cuts the text to 128 code points, the last
// being "…" when it was longer.
func clean(s string) string {
	var b strings.Builder
	n := 0
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		i += size
		if n == maxSummaryValue-1 && i < len(s) {
			b.WriteRune('…')
			return b.String()
		}
		if r == utf8.RuneError && size == 1 || unicode.Is(replaced, r) {
			r = utf8.RuneError
		}
		b.WriteRune(r)
		n++
	}
	return b.String()
}

// replaced is the set of code points a summary never shows (docs/PROTOCOL.md
// §13.5.3): general categories Cc, Cf, Zl, Zp, Co and Cs of Unicode 15.0.0,
// written out so that neither a Go release with newer Unicode tables nor
// another language's tables change what a summary says.
var replaced = &unicode.RangeTable{
	R16: []unicode.Range16{
		{Lo: 0x0000, Hi: 0x001f, Stride: 1},
		{Lo: 0x007f, Hi: 0x009f, Stride: 1},
		{Lo: 0x00ad, Hi: 0x00ad, Stride: 1},
		{Lo: 0x0600, Hi: 0x0605, Stride: 1},
		{Lo: 0x061c, Hi: 0x061c, Stride: 1},
		{Lo: 0x06dd, Hi: 0x06dd, Stride: 1},
		{Lo: 0x070f, Hi: 0x070f, Stride: 1},
		{Lo: 0x0890, Hi: 0x0891, Stride: 1},
		{Lo: 0x08e2, Hi: 0x08e2, Stride: 1},
		{Lo: 0x180e, Hi: 0x180e, Stride: 1},
		{Lo: 0x200b, Hi: 0x200f, Stride: 1},
		{Lo: 0x2028, Hi: 0x202e, Stride: 1},
		{Lo: 0x2060, Hi: 0x2064, Stride: 1},
		{Lo: 0x2066, Hi: 0x206f, Stride: 1},
		{Lo: 0xd800, Hi: 0xf8ff, Stride: 1},
		{Lo: 0xfeff, Hi: 0xfeff, Stride: 1},
		{Lo: 0xfff9, Hi: 0xfffb, Stride: 1},
	},
	R32: []unicode.Range32{
		{Lo: 0x110bd, Hi: 0x110bd, Stride: 1},
		{Lo: 0x110cd, Hi: 0x110cd, Stride: 1},
		{Lo: 0x13430, Hi: 0x1343f, Stride: 1},
		{Lo: 0x1bca0, Hi: 0x1bca3, Stride: 1},
		{Lo: 0x1d173, Hi: 0x1d17a, Stride: 1},
		{Lo: 0xe0001, Hi: 0xe0001, Stride: 1},
		{Lo: 0xe0020, Hi: 0xe007f, Stride: 1},
		{Lo: 0xf0000, Hi: 0xffffd, Stride: 1},
		{Lo: 0x100000, Hi: 0x10fffd, Stride: 1},
	},
}

func scalarText(v protoreflect.Value, fd protoreflect.FieldDescriptor) string {
	switch fd.Kind() {
	case protoreflect.StringKind:
		return v.String()
	case protoreflect.BoolKind:
		return strconv.FormatBool(v.Bool())
	case protoreflect.EnumKind:
		// The first value declared with the number (aliases share one).
		if ev := fd.Enum().Values().ByNumber(v.Enum()); ev != nil {
			return string(ev.Name())
		}
		return strconv.Itoa(int(v.Enum()))
	case protoreflect.Int32Kind, protoreflect.Sint32Kind, protoreflect.Sfixed32Kind,
		protoreflect.Int64Kind, protoreflect.Sint64Kind, protoreflect.Sfixed64Kind:
		return strconv.FormatInt(v.Int(), 10)
	case protoreflect.Uint32Kind, protoreflect.Fixed32Kind, protoreflect.Uint64Kind, protoreflect.Fixed64Kind:
		return strconv.FormatUint(v.Uint(), 10)
	case protoreflect.FloatKind:
		return floatText(v.Float(), 32)
	case protoreflect.DoubleKind:
		return floatText(v.Float(), 64)
	case protoreflect.BytesKind:
		return base64.StdEncoding.EncodeToString(v.Bytes())
	}
	return ""
}

// floatText writes a float (bits 32) or double (64) as docs/PROTOCOL.md
// §13.5.1 says: the shortest decimal that reads back as the same value,
// laid out as ECMAScript's Number::toString lays it out (JavaScript's
// String(x) for a double, but "-0" for negative zero).
func floatText(f float64, bits int) string {
	switch {
	case math.IsNaN(f):
		return "NaN"
	case math.IsInf(f, 1):
		return "Infinity"
	case math.IsInf(f, -1):
		return "-Infinity"
	case f == 0 && math.Signbit(f):
		return "-0"
	case f == 0:
		return "0"
	}
	sign := ""
	if f < 0 {
		sign, f = "-", -f
	}
	digits, n := shortestDigits(f, bits) // the value is 0.digits × 10^n
	k := len(digits)
	switch {
	case k <= n && n <= 21:
		return sign + digits + strings.Repeat("0", n-k)
	case 0 < n && n <= 21:
		return sign + digits[:n] + "." + digits[n:]
	case -6 < n && n <= 0:
		return sign + "0." + strings.Repeat("0", -n) + digits
	}
	out := digits[:1]
	if k > 1 {
		out += "." + digits[1:]
	}
	if n-1 < 0 {
		return sign + out + "e-" + strconv.Itoa(1-n)
	}
	return sign + out + "e+" + strconv.Itoa(n-1)
}

// shortestDigits returns the digits d₁…d_k and exponent n of the shortest
// decimal 0.d₁…d_k × 10^n that reads back as f (positive, finite) in its
// format, and of those the closest to f, the even one of two equally close
// (docs/PROTOCOL.md §13.5.1). strconv finds the shortest length; at a tie
// it may take the odd neighbour (it does for the float 2⁻¹²), so the two
// neighbours of its answer are weighed exactly.
func shortestDigits(f float64, bits int) (string, int) {
	s := strconv.FormatFloat(f, 'e', -1, bits) // d[.ddd]e±dd
	mant, exp, _ := strings.Cut(s, "e")
	digits := strings.Replace(mant, ".", "", 1)
	e, _ := strconv.Atoi(exp)
	k, n := len(digits), e+1
	best, _ := new(big.Int).SetString(digits, 10)
	exact := new(big.Rat).SetFloat64(f)
	dist := func(c *big.Int) *big.Rat { // |c × 10^(n−k) − f|
		v := new(big.Rat).SetInt(c)
		p := new(big.Rat).SetInt(new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(abs(n-k))), nil))
		if n-k >= 0 {
			v.Mul(v, p)
		} else {
			v.Quo(v, p)
		}
		return v.Abs(v.Sub(v, exact))
	}
	bestDist := dist(best)
	for _, delta := range []int64{-1, 1} {
		c := new(big.Int).Add(best, big.NewInt(delta))
		text := c.String()
		if len(text) != k { // another length: not a candidate
			continue
		}
		back, err := strconv.ParseFloat(text+"e"+strconv.Itoa(n-k), bits)
		if err != nil || back != f {
			continue
		}
		switch d := dist(c); d.Cmp(bestDist) {
		case -1:
			best, bestDist = c, d
		case 0:
			if c.Bit(0) == 0 {
				best, bestDist = c, d
			}
		}
	}
	return best.String(), n
}

func abs(v int) int {
	if v < 0 {
		return -v
	}
	return v
}

// mapText renders a map's entries in canonical key order, "key: value",
// joined by ", "; a message value is shown as "…".
func mapText(m protoreflect.Map, fd protoreflect.FieldDescriptor) string {
	kd, vd := fd.MapKey(), fd.MapValue()
	var t limitedText
	for i, k := range sortedKeys(m, kd.Kind()) {
		if t.done() {
			break
		}
		if i > 0 {
			t.add(", ")
		}
		val := "…"
		if vd.Kind() != protoreflect.MessageKind && vd.Kind() != protoreflect.GroupKind {
			val = scalarText(m.Get(k), vd)
		}
		t.add(scalarText(k.Value(), kd) + ": " + val)
	}
	return t.String()
}

// The valid ranges of google.protobuf.Timestamp and Duration.
const (
	minTimestamp   = -62135596800 // 0001-01-01T00:00:00Z
	maxTimestamp   = 253402300799 // 9999-12-31T23:59:59Z
	maxDurationSec = 315576000000 // 10 000 years
)

// wellKnownText renders google.protobuf.Timestamp (RFC 3339, UTC) and
// Duration (seconds with a fraction, "1.5s"), or says ok false for other
// messages.
func wellKnownText(m protoreflect.Message) (text string, ok bool) {
	fields := m.Descriptor().Fields()
	switch m.Descriptor().FullName() {
	case "google.protobuf.Timestamp":
		sec, nsec := m.Get(fields.ByNumber(1)).Int(), m.Get(fields.ByNumber(2)).Int()
		if sec < minTimestamp || sec > maxTimestamp || nsec < 0 || nsec > 999_999_999 {
			return fmt.Sprintf("timestamp(%d, %d)", sec, nsec), true
		}
		return time.Unix(sec, 0).UTC().Format("2006-01-02T15:04:05") + fraction(nsec) + "Z", true
	case "google.protobuf.Duration":
		sec, nsec := m.Get(fields.ByNumber(1)).Int(), m.Get(fields.ByNumber(2)).Int()
		if sec < -maxDurationSec || sec > maxDurationSec || nsec < -999_999_999 || nsec > 999_999_999 ||
			sec < 0 && nsec > 0 || sec > 0 && nsec < 0 {
			return fmt.Sprintf("duration(%d, %d)", sec, nsec), true
		}
		sign := ""
		if sec < 0 || nsec < 0 {
			sign, sec, nsec = "-", -sec, -nsec
		}
		return sign + strconv.FormatInt(sec, 10) + fraction(nsec) + "s", true
	}
	return "", false
}

// fraction is "" for 0 nanoseconds, else "." and the nine digits of nsec
// without their trailing zeros.
func fraction(nsec int64) string {
	if nsec == 0 {
		return ""
	}
	return "." + strings.TrimRight(fmt.Sprintf("%09d", nsec), "0")
}

// valueText is the text of one value of a displayed scalar field of m: an
// amount when the field has the amount format and an integer kind, its
// scalar text otherwise.
func valueText(m protoreflect.Message, fd protoreflect.FieldDescriptor, d *stepupv1.Display, v protoreflect.Value) string {
	if d.GetFormat() == stepupv1.DisplayFormat_DISPLAY_FORMAT_AMOUNT_MINOR {
		if text, ok := amountText(m, fd, v, d.GetCurrencyField()); ok {
			return text
		}
	}
	return scalarText(v, fd)
}

// amountText renders an integer amount in minor units with its currency's
// ISO 4217 decimals: 12000 and "EUR" give "120.00 EUR", 500 and "JPY" give
// "500 JPY". With no known currency the amount is shown as minor units,
// never guessed: "12000 (minor units) XYZ".
func amountText(m protoreflect.Message, fd protoreflect.FieldDescriptor, v protoreflect.Value, currencyField string) (string, bool) {
	var digits string
	neg := false
	switch fd.Kind() {
	case protoreflect.Int32Kind, protoreflect.Sint32Kind, protoreflect.Sfixed32Kind,
		protoreflect.Int64Kind, protoreflect.Sint64Kind, protoreflect.Sfixed64Kind:
		neg = v.Int() < 0
		digits = strconv.FormatUint(absInt(v.Int()), 10)
	case protoreflect.Uint32Kind, protoreflect.Fixed32Kind, protoreflect.Uint64Kind, protoreflect.Fixed64Kind:
		digits = strconv.FormatUint(v.Uint(), 10)
	default:
		return "", false
	}
	code := ""
	// The currency field's value when it is present: an unset field with
	// explicit presence is the empty string, never its default.
	if cf := m.Descriptor().Fields().ByName(protoreflect.Name(currencyField)); cf != nil && cf.Kind() == protoreflect.StringKind && !cf.IsList() &&
		(!cf.HasPresence() || m.Has(cf)) {
		code = m.Get(cf).String()
	}
	sign := ""
	if neg {
		sign = "-"
	}
	dec, known := currencyDecimals[code]
	if !known {
		if code == "" {
			return sign + digits + " (minor units)", true
		}
		return sign + digits + " (minor units) " + code, true
	}
	if dec > 0 {
		if len(digits) <= dec {
			digits = strings.Repeat("0", dec-len(digits)+1) + digits
		}
		digits = digits[:len(digits)-dec] + "." + digits[len(digits)-dec:]
	}
	return sign + digits + " " + code, true
}

func absInt(v int64) uint64 {
	if v < 0 {
		return uint64(-(v + 1)) + 1
	}
	return uint64(v)
}

// SummaryText renders the one-line approval prompt of docs/PROTOCOL.md
// §13.5: "approve BankService.Transfer: amount 120.00 EUR, to
// DE89370400440532013000". The method is shown as Service.Method without
// its package; labels and values are cleaned as in Summarize, whatever
// their origin, and a value that could read as more than itself is quoted.
func SummaryText(method string, items []*stepupv1.SummaryItem) string {
	var b strings.Builder
	b.WriteString("approve ")
	b.WriteString(clean(shortMethod(method)))
	for i, it := range items {
		if i == 0 {
			b.WriteString(": ")
		} else {
			b.WriteString(", ")
		}
		b.WriteString(clean(it.GetLabel()))
		b.WriteByte(' ')
		b.WriteString(displayValue(clean(it.GetValue())))
	}
	return b.String()
}

// displayValue quotes a value that could read as more than one item of the
// summary text (a ", amount 1.00 EUR" inside an IBAN field), that is empty
// (shown, not hidden: it is part of what is approved), or that begins or
// ends with a space: between double quotes, with every backslash and
// double quote preceded by a backslash. Other values are shown as they are.
func displayValue(v string) string {
	if v != "" && !startsOrEndsWithSpace(v) && !strings.ContainsAny(v, ",:\"\\") {
		return v
	}
	return quote(v)
}

// quote writes v between double quotes, with a backslash before every
// backslash and double quote.
func quote(v string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range v {
		if r == '"' || r == '\\' {
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	b.WriteByte('"')
	return b.String()
}

func startsOrEndsWithSpace(v string) bool {
	first, _ := utf8.DecodeRuneInString(v)
	last, _ := utf8.DecodeLastRuneInString(v)
	return unicode.Is(spaces, first) || unicode.Is(spaces, last)
}

// spaces are the space separators (general category Zs) of Unicode 15.0.0;
// the other white space characters are in the replaced set.
var spaces = &unicode.RangeTable{
	R16: []unicode.Range16{
		{Lo: 0x0020, Hi: 0x0020, Stride: 1},
		{Lo: 0x00a0, Hi: 0x00a0, Stride: 1},
		{Lo: 0x1680, Hi: 0x1680, Stride: 1},
		{Lo: 0x2000, Hi: 0x200a, Stride: 1},
		{Lo: 0x202f, Hi: 0x202f, Stride: 1},
		{Lo: 0x205f, Hi: 0x205f, Stride: 1},
		{Lo: 0x3000, Hi: 0x3000, Stride: 1},
	},
}

func shortMethod(method string) string {
	svc, meth, ok := strings.Cut(strings.TrimPrefix(method, "/"), "/")
	if !ok {
		return method
	}
	if i := strings.LastIndexByte(svc, '.'); i >= 0 {
		svc = svc[i+1:]
	}
	return svc + "." + meth
}

// currencyDecimals maps the active ISO 4217 currency codes to their minor
// unit (number of decimals), as listed in docs/PROTOCOL.md §13.5.2. Codes
// without a minor unit (gold, SDR, test codes) are absent and shown as
// minor units. Matching is exact: "eur" is not a known code.
var currencyDecimals = func() map[string]int {
	m := map[string]int{}
	for dec, codes := range currencyCodes {
		for _, c := range strings.Fields(codes) {
			m[c] = dec
		}
	}
	return m
}()

// currencyCodes lists the codes of currencyDecimals by number of decimals.
var currencyCodes = [...]string{
	0: "BIF CLP DJF GNF ISK JPY KMF KRW PYG RWF UGX UYI VND VUV XAF XOF XPF",
	2: "AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BMD BND BOB BOV BRL BSD BTN BWP BYN BZD " +
		"CAD CDF CHE CHF CHW CNY COP COU CRC CUC CUP CVE CZK DKK DOP DZD EGP ERN ETB EUR FJD FKP GBP GEL GHS GIP GMD " +
		"GTQ GYD HKD HNL HTG HUF IDR ILS INR IRR JMD KES KGS KHR KPW KYD KZT LAK LBP LKR LRD LSL MAD MDL MGA MKD " +
		"MMK MNT MOP MRU MUR MVR MWK MXN MXV MYR MZN NAD NGN NIO NOK NPR NZD PAB PEN PGK PHP PKR PLN QAR RON RSD RUB " +
		"SAR SBD SCR SDG SEK SGD SHP SLE SLL SOS SRD SSP STN SVC SYP SZL THB TJS TMT TOP TRY TTD TWD TZS UAH USD USN " +
		"UYU UZS VED VES WST XCD XCG YER ZAR ZMW ZWG ZWL",
	3: "BHD IQD JOD KWD LYD OMR TND",
	4: "CLF UYW",
}
