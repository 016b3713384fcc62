package challenge

import (
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/stepupgrpc/stepup/internal/base64url"
	stepupv1 "github.com/stepupgrpc/stepup/proto/stepup/v1"
)

// RequestDigest returns the digest that binds a challenge to one request:
// base64url (no padding) of SHA-256 over the UTF-8 method name, one zero
// byte, and the deterministic protobuf encoding of msg. The zero byte keeps
// method and message apart. Only the server computes it, when issuing the
// challenge and when checking the answer, so the encoding need not match
// any other implementation's; equal digests mean equal messages.
func RequestDigest(method string, msg proto.Message) (string, error) {
	if msg == nil || !msg.ProtoReflect().IsValid() {
		return "", errors.New("challenge: RequestDigest: nil message")
	}
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(msg)
	if err != nil {
		return "", fmt.Errorf("challenge: RequestDigest: %w", err)
	}
	h := sha256.New()
	h.Write([]byte(method))
	h.Write([]byte{0})
	h.Write(b)
	return base64url.EncodeToString(h.Sum(nil)), nil
}

// Summary limits: what a person can read on an approval screen, and a bound
// on the work an adversarial message can cause.
const (
	maxSummaryValue = 128 // runes per value, "…" included
	maxSummaryItems = 32
	maxSummaryDepth = 8
)

// Summarize returns the fields of msg marked with (stepup.v1.display), in
// declaration order, walking nested messages (their fields are named
// "outer.inner", elements of repeated messages "items[0].inner"). Values
// are rendered for a person: strings as they are, numbers in decimal, enums
// by name, DISPLAY_FORMAT_AMOUNT_MINOR with the ISO 4217 decimals of the
// currency in currency_field ("120.00 EUR" for 12000 and "EUR"). Control,
// format (bidirectional overrides, zero-width) and line-separator characters
// and invalid UTF-8 become U+FFFD, so a value cannot disguise what it
// says; values longer than 128 characters end in "…". Fields with
// explicit presence (proto3 optional, oneof) are shown only when set;
// others always, zero values included, since that is what the request
// says. At most 32 items.
func Summarize(msg proto.Message) []*stepupv1.SummaryItem {
	if msg == nil || !msg.ProtoReflect().IsValid() {
		return nil
	}
	var items []*stepupv1.SummaryItem
	summarize(msg.ProtoReflect(), "", 0, &items)
	return items
}

func summarize(m protoreflect.Message, prefix string, depth int, items *[]*stepupv1.SummaryItem) {
	if depth > maxSummaryDepth {
		return
	}
	fields := m.Descriptor().Fields()
	for i := 0; i < fields.Len() && len(*items) < maxSummaryItems; i++ {
		fd := fields.Get(i)
		name := prefix + string(fd.Name())
		d, _ := proto.GetExtension(fd.Options(), stepupv1.E_Display).(*stepupv1.Display)
		if fd.HasPresence() && !m.Has(fd) {
			continue
		}
		if fd.Kind() == protoreflect.MessageKind || fd.Kind() == protoreflect.GroupKind {
			if d != nil && !fd.IsList() && !fd.IsMap() {
				if v, ok := wellKnown(m.Get(fd).Message()); ok {
					add(items, name, label(d, fd), v)
					continue
				}
			}
			switch {
			case fd.IsMap():
				if d != nil {
					add(items, name, label(d, fd), mapText(m.Get(fd).Map(), fd))
				}
			case fd.IsList():
				l := m.Get(fd).List()
				for j := 0; j < l.Len() && len(*items) < maxSummaryItems; j++ {
					summarize(l.Get(j).Message(), name+"["+strconv.Itoa(j)+"].", depth+1, items)
				}
			default:
				if m.Has(fd) {
					summarize(m.Get(fd).Message(), name+".", depth+1, items)
				}
			}
			continue
		}
		if d == nil {
			continue
		}
		var text string
		switch {
		case fd.IsMap():
			text = mapText(m.Get(fd).Map(), fd)
		case fd.IsList():
			l := m.Get(fd).List()
			parts := make([]string, 0, l.Len())
			for j := 0; j < l.Len() && j < maxSummaryValue; j++ {
				parts = append(parts, scalarText(l.Get(j), fd))
			}
			text = strings.Join(parts, ", ")
		case d.GetFormat() == stepupv1.DisplayFormat_DISPLAY_FORMAT_AMOUNT_MINOR:
			text = amountText(m, fd, d.GetCurrencyField())
		default:
			text = scalarText(m.Get(fd), fd)
		}
		add(items, name, label(d, fd), text)
	}
}

func label(d *stepupv1.Display, fd protoreflect.FieldDescriptor) string {
	if l := d.GetLabel(); l != "" {
		return l
	}
	return string(fd.Name())
}

func add(items *[]*stepupv1.SummaryItem, field, label, value string) {
	*items = append(*items, &stepupv1.SummaryItem{
		Field: field,
		Label: sanitize(label),
		Value: sanitize(value),
	})
}

// sanitize replaces characters that could change how the rest of the text
// is read, and truncates to maxSummaryValue runes.
func sanitize(s string) string {
	var b strings.Builder
	n := 0
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		i += size
		if n == maxSummaryValue-1 && i < len(s) {
			b.WriteRune('…')
			return b.String()
		}
		if (r == utf8.RuneError && size == 1) || unicode.IsControl(r) ||
			unicode.In(r, unicode.Cf, unicode.Zl, unicode.Zp, unicode.Co, unicode.Cs) {
			r = utf8.RuneError
		}
		b.WriteRune(r)
		n++
	}
	return b.String()
}

func scalarText(v protoreflect.Value, fd protoreflect.FieldDescriptor) string {
	switch fd.Kind() {
	case protoreflect.StringKind:
		return v.String()
	case protoreflect.BoolKind:
		return strconv.FormatBool(v.Bool())
	case protoreflect.EnumKind:
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
		return strconv.FormatFloat(v.Float(), 'g', -1, 32)
	case protoreflect.DoubleKind:
		return strconv.FormatFloat(v.Float(), 'g', -1, 64)
	case protoreflect.BytesKind:
		return base64.StdEncoding.EncodeToString(v.Bytes())
	}
	return ""
}

func mapText(m protoreflect.Map, fd protoreflect.FieldDescriptor) string {
	var parts []string
	m.Range(func(k protoreflect.MapKey, v protoreflect.Value) bool {
		val := "…"
		if fd.MapValue().Kind() != protoreflect.MessageKind {
			val = scalarText(v, fd.MapValue())
		}
		parts = append(parts, scalarText(k.Value(), fd.MapKey())+": "+val)
		return len(parts) < maxSummaryValue
	})
	sort.Strings(parts)
	return strings.Join(parts, ", ")
}

// wellKnown renders google.protobuf.Timestamp (RFC 3339, UTC) and Duration.
func wellKnown(m protoreflect.Message) (string, bool) {
	fields := m.Descriptor().Fields()
	switch m.Descriptor().FullName() {
	case "google.protobuf.Timestamp":
		sec, nsec := m.Get(fields.ByNumber(1)).Int(), m.Get(fields.ByNumber(2)).Int()
		return time.Unix(sec, nsec).UTC().Format(time.RFC3339Nano), true
	case "google.protobuf.Duration":
		sec, nsec := m.Get(fields.ByNumber(1)).Int(), m.Get(fields.ByNumber(2)).Int()
		if sec > 1<<33 || sec < -(1<<33) {
			return strconv.FormatInt(sec, 10) + "s", true
		}
		return (time.Duration(sec)*time.Second + time.Duration(nsec)).String(), true
	}
	return "", false
}

// amountText renders an integer amount in minor units with its currency's
// ISO 4217 decimals: 12000 and "EUR" give "120.00 EUR", 500 and "JPY" give
// "500 JPY". With no known currency the amount is shown as minor units,
// never guessed: "12000 (minor units) XYZ".
func amountText(m protoreflect.Message, fd protoreflect.FieldDescriptor, currencyField string) string {
	var digits string
	neg := false
	switch fd.Kind() {
	case protoreflect.Int32Kind, protoreflect.Sint32Kind, protoreflect.Sfixed32Kind,
		protoreflect.Int64Kind, protoreflect.Sint64Kind, protoreflect.Sfixed64Kind:
		v := m.Get(fd).Int()
		neg = v < 0
		digits = strconv.FormatUint(absInt(v), 10)
	case protoreflect.Uint32Kind, protoreflect.Fixed32Kind, protoreflect.Uint64Kind, protoreflect.Fixed64Kind:
		digits = strconv.FormatUint(m.Get(fd).Uint(), 10)
	default:
		return scalarText(m.Get(fd), fd)
	}
	code := ""
	if cf := m.Descriptor().Fields().ByName(protoreflect.Name(currencyField)); cf != nil && cf.Kind() == protoreflect.StringKind && !cf.IsList() {
		code = m.Get(cf).String()
	}
	sign := ""
	if neg {
		sign = "-"
	}
	dec, known := currencyDecimals[code]
	if !known {
		if code == "" {
			return sign + digits + " (minor units)"
		}
		return sign + digits + " (minor units) " + code
	}
	if dec > 0 {
		if len(digits) <= dec {
			digits = strings.Repeat("0", dec-len(digits)+1) + digits
		}
		digits = digits[:len(digits)-dec] + "." + digits[len(digits)-dec:]
	}
	return sign + digits + " " + code
}

func absInt(v int64) uint64 {
	if v < 0 {
		return uint64(-(v + 1)) + 1
	}
	return uint64(v)
}

// SummaryText renders a one-line approval prompt:
// "approve BankService.Transfer: amount 120.00 EUR, to DE89370400440532013000".
// The method is shown as Service.Method without its package; labels and
// values are sanitized as in Summarize, whatever their origin.
func SummaryText(method string, items []*stepupv1.SummaryItem) string {
	var b strings.Builder
	b.WriteString("approve ")
	b.WriteString(sanitize(shortMethod(method)))
	for i, it := range items {
		if i == 0 {
			b.WriteString(": ")
		} else {
			b.WriteString(", ")
		}
		b.WriteString(sanitize(it.GetLabel()))
		b.WriteByte(' ')
		b.WriteString(displayValue(sanitize(it.GetValue())))
	}
	return b.String()
}

// displayValue quotes a value that could read as more than one item of the
// summary text (a ", amount 1.00 EUR" inside an IBAN field), that is empty
// (shown, not hidden: it is part of what is approved), or that has
// surrounding spaces. Other values are shown as they are.
func displayValue(v string) string {
	if v == "" || v != strings.TrimSpace(v) || strings.ContainsAny(v, ",:\"\\") {
		return strconv.Quote(v)
	}
	return v
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
// unit (number of decimals). Codes without a minor unit (gold, SDR, test
// codes) are absent and shown as minor units.
var currencyDecimals = func() map[string]int {
	m := map[string]int{}
	two := "AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BMD BND BOB BOV BRL BSD BTN BWP BYN BZD " +
		"CAD CDF CHE CHF CHW CNY COP COU CRC CUC CUP CVE CZK DKK DOP DZD EGP ERN ETB EUR FJD FKP GBP GEL GHS GIP GMD " +
		"GTQ GYD HKD HNL HTG HUF IDR ILS INR IRR JMD KES KGS KHR KPW KYD KZT LAK LBP LKR LRD LSL MAD MDL MGA MKD " +
		"MMK MNT MOP MRU MUR MVR MWK MXN MXV MYR MZN NAD NGN NIO NOK NPR NZD PAB PEN PGK PHP PKR PLN QAR RON RSD RUB " +
		"SAR SBD SCR SDG SEK SGD SHP SLE SLL SOS SRD SSP STN SVC SYP SZL THB TJS TMT TOP TRY TTD TWD TZS UAH USD USN " +
		"UYU UZS VED VES WST XCD XCG YER ZAR ZMW ZWG ZWL"
	for _, c := range strings.Fields(two) {
		m[c] = 2
	}
	for _, c := range strings.Fields("BIF CLP DJF GNF ISK JPY KMF KRW PYG RWF UGX UYI VND VUV XAF XOF XPF") {
		m[c] = 0
	}
	for _, c := range strings.Fields("BHD IQD JOD KWD LYD OMR TND") {
		m[c] = 3
	}
	for _, c := range strings.Fields("CLF UYW") {
		m[c] = 4
	}
	return m
}()
