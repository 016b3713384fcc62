package dpop

import (
	"strconv"
	"unicode/utf8"
)

// maxJSONDepth bounds the nesting of objects and arrays in a header or claims
// set. A DPoP header needs 2 levels (the jwk object) and claims need 1; the
// margin leaves room for step-up answers that embed small structures. The
// limit keeps recursion bounded whatever the input (RFC 8725 §3.4 asks
// verifiers to reject inputs that other parsers could read differently; the
// depth limit additionally bounds work and stack).
const maxJSONDepth = 16

// smallObject is how many member names of one object are compared linearly
// before switching to a map for duplicate detection, so that an object with
// thousands of members costs O(n), not O(n²).
const smallObject = 16

type jsonKind uint8

const (
	kindString jsonKind = iota + 1
	kindNumber
	kindObject
	kindArray
	kindBool
	kindNull
)

// jsonValue is one parsed value: its kind and its exact source text. Strings
// keep their quotes; escaped reports whether the string contains a backslash
// escape and so must be decoded with unescapeJSON.
type jsonValue struct {
	kind    jsonKind
	raw     string
	escaped bool
}

// str returns the decoded value of a string.
func (v jsonValue) str() string {
	inner := v.raw[1 : len(v.raw)-1]
	if !v.escaped {
		return inner
	}
	return unescapeJSON(inner)
}

// jsonError is the refusal for any syntax problem: one message, no echo of
// the input (which may be attacker-controlled and is never logged).
func jsonError(detail string) *Error { return newError(ReasonMalformed, detail) }

var (
	errJSONSyntax = jsonError("invalid JSON")
	errJSONDup    = jsonError("duplicate JSON member name")
	errJSONDeep   = jsonError("JSON nested too deep")
	errJSONObject = jsonError("JSON value is not an object")
)

// parseJSONObject checks that s is exactly one JSON object (RFC 8259, UTF-8,
// no duplicate member names at any level, at most maxJSONDepth levels) and
// calls visit, when not nil, for each top-level member in order. It never
// allocates for well-formed input without escapes, apart from what visit
// does.
func parseJSONObject(s string, visit func(key string, v jsonValue) *Error) *Error {
	p := jsonParser{s: s}
	p.ws()
	if p.i >= len(p.s) || p.s[p.i] != '{' {
		return errJSONObject
	}
	if err := p.object(1, visit); err != nil {
		return err
	}
	p.ws()
	if p.i != len(p.s) {
		return errJSONSyntax
	}
	return nil
}

type jsonParser struct {
	s string
	i int
}

func (p *jsonParser) ws() {
	for p.i < len(p.s) {
		switch p.s[p.i] {
		case ' ', '\t', '\n', '\r':
			p.i++
		default:
			return
		}
	}
}

// value parses one value at the current position; depth is the depth of the
// container that holds it.
func (p *jsonParser) value(depth int) (jsonValue, *Error) {
	p.ws()
	if p.i >= len(p.s) {
		return jsonValue{}, errJSONSyntax
	}
	start := p.i
	var v jsonValue
	switch c := p.s[p.i]; {
	case c == '"':
		esc, err := p.str()
		if err != nil {
			return v, err
		}
		v = jsonValue{kind: kindString, escaped: esc}
	case c == '{':
		if depth+1 > maxJSONDepth {
			return v, errJSONDeep
		}
		if err := p.object(depth+1, nil); err != nil {
			return v, err
		}
		v.kind = kindObject
	case c == '[':
		if depth+1 > maxJSONDepth {
			return v, errJSONDeep
		}
		if err := p.array(depth + 1); err != nil {
			return v, err
		}
		v.kind = kindArray
	case c == 't':
		if !p.literal("true") {
			return v, errJSONSyntax
		}
		v.kind = kindBool
	case c == 'f':
		if !p.literal("false") {
			return v, errJSONSyntax
		}
		v.kind = kindBool
	case c == 'n':
		if !p.literal("null") {
			return v, errJSONSyntax
		}
		v.kind = kindNull
	case c == '-' || (c >= '0' && c <= '9'):
		if !p.number() {
			return v, errJSONSyntax
		}
		v.kind = kindNumber
	default:
		return v, errJSONSyntax
	}
	v.raw = p.s[start:p.i]
	return v, nil
}

func (p *jsonParser) literal(lit string) bool {
	if len(p.s)-p.i < len(lit) || p.s[p.i:p.i+len(lit)] != lit {
		return false
	}
	p.i += len(lit)
	return true
}

// object parses an object starting at '{'. Duplicate names are refused at
// every level: two parsers that keep the first or the last duplicate would
// otherwise read different claims from the same signed bytes.
func (p *jsonParser) object(depth int, visit func(string, jsonValue) *Error) *Error {
	p.i++ // '{'
	var small [smallObject]string
	names := small[:0]
	var many map[string]struct{}
	p.ws()
	if p.i < len(p.s) && p.s[p.i] == '}' {
		p.i++
		return nil
	}
	for {
		p.ws()
		if p.i >= len(p.s) || p.s[p.i] != '"' {
			return errJSONSyntax
		}
		start := p.i
		esc, err := p.str()
		if err != nil {
			return err
		}
		name := p.s[start+1 : p.i-1]
		if esc {
			name = unescapeJSON(name)
		}
		if many != nil {
			if _, dup := many[name]; dup {
				return errJSONDup
			}
			many[name] = struct{}{}
		} else {
			for _, n := range names {
				if n == name {
					return errJSONDup
				}
			}
			if len(names) < cap(names) {
				names = append(names, name)
			} else {
				many = make(map[string]struct{}, 2*smallObject)
				for _, n := range names {
					many[n] = struct{}{}
				}
				many[name] = struct{}{}
			}
		}
		p.ws()
		if p.i >= len(p.s) || p.s[p.i] != ':' {
			return errJSONSyntax
		}
		p.i++
		v, err := p.value(depth)
		if err != nil {
			return err
		}
		if visit != nil {
			if err := visit(name, v); err != nil {
				return err
			}
		}
		p.ws()
		if p.i >= len(p.s) {
			return errJSONSyntax
		}
		switch p.s[p.i] {
		case ',':
			p.i++
		case '}':
			p.i++
			return nil
		default:
			return errJSONSyntax
		}
	}
}

func (p *jsonParser) array(depth int) *Error {
	p.i++ // '['
	p.ws()
	if p.i < len(p.s) && p.s[p.i] == ']' {
		p.i++
		return nil
	}
	for {
		if _, err := p.value(depth); err != nil {
			return err
		}
		p.ws()
		if p.i >= len(p.s) {
			return errJSONSyntax
		}
		switch p.s[p.i] {
		case ',':
			p.i++
		case ']':
			p.i++
			return nil
		default:
			return errJSONSyntax
		}
	}
}

// str parses a string starting at '"' and reports whether it has escapes.
// It refuses control characters, invalid UTF-8, bad escapes and unpaired
// UTF-16 surrogates, so that every accepted string has one meaning.
func (p *jsonParser) str() (escaped bool, _ *Error) {
	p.i++ // opening quote
	for p.i < len(p.s) {
		c := p.s[p.i]
		if plainJSON[c] {
			p.i++
			continue
		}
		switch {
		case c == '"':
			p.i++
			return escaped, nil
		case c == '\\':
			escaped = true
			if p.i+1 >= len(p.s) {
				return false, errJSONSyntax
			}
			switch p.s[p.i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				p.i += 2
			case 'u':
				r, ok := hex4(p.s, p.i+2)
				if !ok {
					return false, errJSONSyntax
				}
				p.i += 6
				switch {
				case r >= 0xD800 && r < 0xDC00:
					// A high surrogate must be followed by a low one.
					if p.i+1 >= len(p.s) || p.s[p.i] != '\\' || p.s[p.i+1] != 'u' {
						return false, errJSONSyntax
					}
					r2, ok := hex4(p.s, p.i+2)
					if !ok || r2 < 0xDC00 || r2 > 0xDFFF {
						return false, errJSONSyntax
					}
					p.i += 6
				case r >= 0xDC00 && r <= 0xDFFF:
					return false, errJSONSyntax
				}
			default:
				return false, errJSONSyntax
			}
		case c < 0x20:
			return false, errJSONSyntax
		case c < utf8.RuneSelf:
			p.i++
		default:
			r, size := utf8.DecodeRuneInString(p.s[p.i:])
			if r == utf8.RuneError && size <= 1 {
				return false, errJSONSyntax
			}
			p.i += size
		}
	}
	return false, errJSONSyntax
}

// number parses an RFC 8259 number.
func (p *jsonParser) number() bool {
	s, i := p.s, p.i
	if i < len(s) && s[i] == '-' {
		i++
	}
	switch {
	case i < len(s) && s[i] == '0':
		i++
	case i < len(s) && s[i] >= '1' && s[i] <= '9':
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
		}
	default:
		return false
	}
	if i < len(s) && s[i] == '.' {
		i++
		d := i
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
		}
		if i == d {
			return false
		}
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		i++
		if i < len(s) && (s[i] == '+' || s[i] == '-') {
			i++
		}
		d := i
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
		}
		if i == d {
			return false
		}
	}
	p.i = i
	return true
}

// plainJSON marks the bytes a JSON string may hold as they are: printable
// ASCII other than '"' and '\\'. Everything else takes the slow path.
var plainJSON = func() (t [256]bool) {
	for c := 0x20; c < 0x7F; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

func hex4(s string, i int) (rune, bool) {
	if i+4 > len(s) {
		return 0, false
	}
	var r rune
	for _, c := range []byte(s[i : i+4]) {
		switch {
		case c >= '0' && c <= '9':
			c -= '0'
		case c >= 'a' && c <= 'f':
			c = c - 'a' + 10
		case c >= 'A' && c <= 'F':
			c = c - 'A' + 10
		default:
			return 0, false
		}
		r = r<<4 | rune(c)
	}
	return r, true
}

// unescapeJSON decodes the escapes of a string body already validated by
// jsonParser.str.
func unescapeJSON(s string) string {
	b := make([]byte, 0, len(s))
	for i := 0; i < len(s); {
		c := s[i]
		if c != '\\' {
			b = append(b, c)
			i++
			continue
		}
		switch s[i+1] {
		case 'b':
			b = append(b, '\b')
		case 'f':
			b = append(b, '\f')
		case 'n':
			b = append(b, '\n')
		case 'r':
			b = append(b, '\r')
		case 't':
			b = append(b, '\t')
		case 'u':
			r, _ := hex4(s, i+2)
			if r >= 0xD800 && r < 0xDC00 {
				r2, _ := hex4(s, i+8)
				r = 0x10000 + (r-0xD800)<<10 + (r2 - 0xDC00)
				i += 6
			}
			b = utf8.AppendRune(b, r)
			i += 6
			continue
		default: // '"', '\\', '/'
			b = append(b, s[i+1])
		}
		i += 2
	}
	return string(b)
}

// appendJSONString appends s as a JSON string. Invalid UTF-8 is replaced by
// U+FFFD, as encoding/json does.
func appendJSONString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '"' || c == '\\':
				b = append(b, '\\', c)
			case c < 0x20:
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xF])
			default:
				b = append(b, c)
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, "\ufffd"...)
		} else {
			b = append(b, s[i:i+size]...)
		}
		i += size
	}
	return append(b, '"')
}

// parseNumericDate converts a JSON number (RFC 7519 NumericDate, seconds
// since the epoch, possibly fractional) to seconds and nanoseconds. Values
// far outside any plausible date are clamped; the iat window refuses them.
func parseNumericDate(raw string) (sec, nsec int64, ok bool) {
	const limit = 1 << 40 // about year 36812: clamps absurd values
	if len(raw) > 0 && len(raw) <= 12 {
		var n int64
		digits := true
		for i := 0; i < len(raw); i++ {
			c := raw[i]
			if c < '0' || c > '9' {
				digits = false
				break
			}
			n = n*10 + int64(c-'0')
		}
		if digits {
			return n, 0, true
		}
	}
	f, err := strconv.ParseFloat(raw, 64)
	if err != nil {
		if ne, isNum := err.(*strconv.NumError); isNum && ne.Err == strconv.ErrRange {
			// ±Inf or an underflow to zero: clamp by sign of the input.
			if len(raw) > 0 && raw[0] == '-' {
				return -limit, 0, true
			}
			if f == 0 {
				return 0, 0, true
			}
			return limit, 0, true
		}
		return 0, 0, false
	}
	switch {
	case f > limit:
		return limit, 0, true
	case f < -limit:
		return -limit, 0, true
	}
	sec = int64(f)
	frac := f - float64(sec)
	if frac < 0 {
		sec--
		frac++
	}
	return sec, int64(frac * 1e9), true
}
