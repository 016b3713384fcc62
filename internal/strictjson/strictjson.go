// Package strictjson reads JSON objects the way a JOSE verifier must: it
// accepts exactly what RFC 8259 allows and refuses whatever two conforming
// parsers could read differently (RFC 8725 §3.4): duplicate member names at
// any level (also when spelled with escapes), invalid UTF-8, unpaired UTF-16
// surrogates, control characters in strings and nesting deeper than
// [MaxDepth] levels.
//
// [ParseObject] reads substrings of its input without reflection and keeps
// the exact source text of every value ([Value.Raw]), so that an embedded
// object can be passed on unchanged. Apart from what its callback does, it
// does not allocate for well-formed input without escaped member names and
// with at most 16 members per object; duplicate detection stays linear in
// the size of the input for larger objects.
//
// Errors never echo the input, which may be attacker-controlled: a caller
// maps the four sentinel errors to its own refusal reasons.
package strictjson

import (
	"errors"
	"unicode/utf8"
)

// MaxDepth bounds the nesting of objects and arrays: the top-level object is
// at depth 1. The limit keeps recursion, stack and work bounded whatever the
// input; JOSE headers and claims need 2 levels and embedded structures such
// as a WebAuthn assertion 4.
const MaxDepth = 16

// smallObject is how many member names of one object are compared linearly
// before switching to a map for duplicate detection, so that an object with
// thousands of members costs O(n), not O(n²).
const smallObject = 16

// The errors of ParseObject. They carry no part of the input.
var (
	// ErrSyntax: not RFC 8259 JSON, or a string that is not valid UTF-8,
	// holds a control character, a bad escape or an unpaired surrogate.
	ErrSyntax = errors.New("invalid JSON")
	// ErrDuplicate: an object, at any level, names a member twice.
	ErrDuplicate = errors.New("duplicate JSON member name")
	// ErrTooDeep: objects and arrays nested more than MaxDepth levels.
	ErrTooDeep = errors.New("JSON nested too deep")
	// ErrNotObject: the input is not a JSON object.
	ErrNotObject = errors.New("JSON value is not an object")
)

// ParseObject checks that s is exactly one JSON object, optionally
// surrounded by white space, with no duplicate member names at any level
// and at most MaxDepth levels, and calls visit, when not nil, for each
// top-level member in order. Nested members are checked but not visited;
// parse a nested object's [Value.Raw] again to read them.
//
// It returns ErrNotObject, ErrSyntax, ErrDuplicate or ErrTooDeep, or the
// first error visit returns, which stops the parse. Members before a syntax
// error further on may already have been visited.
func ParseObject(s string, visit func(name string, v Value) error) error {
	p := parser{s: s}
	p.ws()
	if p.i >= len(p.s) || p.s[p.i] != '{' {
		return ErrNotObject
	}
	if err := p.object(1, visit); err != nil {
		return err
	}
	p.ws()
	if p.i != len(p.s) {
		return ErrSyntax
	}
	return nil
}

type parser struct {
	s string
	i int
}

func (p *parser) ws() {
	for p.i < len(p.s) {
		switch p.s[p.i] {
		case ' ', '\t', '\n', '\r':
			p.i++
		default:
			return
		}
	}
}

// open consumes the '{' or '[' at the current position and reports whether
// the container is empty, in which case its closing byte is consumed too.
func (p *parser) open(closing byte) (empty bool) {
	p.i++
	p.ws()
	if p.i < len(p.s) && p.s[p.i] == closing {
		p.i++
		return true
	}
	return false
}

// next consumes what follows a member or an element: a ',' (more reports
// true) or the container's closing byte (more reports false).
func (p *parser) next(closing byte) (more bool, _ error) {
	p.ws()
	if p.i < len(p.s) {
		switch p.s[p.i] {
		case ',':
			p.i++
			return true, nil
		case closing:
			p.i++
			return false, nil
		}
	}
	return false, ErrSyntax
}

// value parses one value at the current position; depth is the depth of the
// container that holds it.
func (p *parser) value(depth int) (Value, error) {
	p.ws()
	if p.i >= len(p.s) {
		return Value{}, ErrSyntax
	}
	start := p.i
	var v Value
	switch c := p.s[p.i]; {
	case c == '"':
		esc, err := p.str()
		if err != nil {
			return v, err
		}
		v = Value{kind: String, escaped: esc}
	case c == '{' || c == '[':
		if depth+1 > MaxDepth {
			return v, ErrTooDeep
		}
		var err error
		if c == '{' {
			v.kind, err = Object, p.object(depth+1, nil)
		} else {
			v.kind, err = Array, p.array(depth+1)
		}
		if err != nil {
			return Value{}, err
		}
	case c == 't':
		if !p.literal("true") {
			return v, ErrSyntax
		}
		v.kind = Bool
	case c == 'f':
		if !p.literal("false") {
			return v, ErrSyntax
		}
		v.kind = Bool
	case c == 'n':
		if !p.literal("null") {
			return v, ErrSyntax
		}
		v.kind = Null
	case c == '-' || (c >= '0' && c <= '9'):
		if !p.number() {
			return v, ErrSyntax
		}
		v.kind = Number
	default:
		return v, ErrSyntax
	}
	v.raw = p.s[start:p.i]
	return v, nil
}

func (p *parser) literal(lit string) bool {
	if len(p.s)-p.i < len(lit) || p.s[p.i:p.i+len(lit)] != lit {
		return false
	}
	p.i += len(lit)
	return true
}

// object parses an object starting at '{'. Duplicate names are refused at
// every level: two parsers that keep the first or the last duplicate would
// otherwise read different claims from the same signed bytes (RFC 7515 §5.2
// step 4).
func (p *parser) object(depth int, visit func(string, Value) error) error {
	if p.open('}') {
		return nil
	}
	var small [smallObject]string
	names := small[:0]
	var many map[string]struct{}
	for {
		p.ws()
		if p.i >= len(p.s) || p.s[p.i] != '"' {
			return ErrSyntax
		}
		start := p.i
		esc, err := p.str()
		if err != nil {
			return err
		}
		var name string
		if esc {
			name = unescape(p.s[start:p.i])
		} else {
			name = p.s[start+1 : p.i-1]
		}
		if many != nil {
			if _, dup := many[name]; dup {
				return ErrDuplicate
			}
			many[name] = struct{}{}
		} else {
			for _, n := range names {
				if n == name {
					return ErrDuplicate
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
			return ErrSyntax
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
		if more, err := p.next('}'); !more {
			return err
		}
	}
}

// array parses an array starting at '['.
func (p *parser) array(depth int) error {
	if p.open(']') {
		return nil
	}
	for {
		if _, err := p.value(depth); err != nil {
			return err
		}
		if more, err := p.next(']'); !more {
			return err
		}
	}
}

// str parses a string starting at '"' and reports whether it has escapes.
// It refuses control characters, invalid UTF-8, bad escapes and unpaired
// UTF-16 surrogates, so that every accepted string has exactly one meaning.
func (p *parser) str() (escaped bool, _ error) {
	p.i++ // opening quote
	for p.i < len(p.s) {
		c := p.s[p.i]
		if plain[c] {
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
				return false, ErrSyntax
			}
			switch p.s[p.i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				p.i += 2
			case 'u':
				r, ok := hex4(p.s, p.i+2)
				if !ok {
					return false, ErrSyntax
				}
				p.i += 6
				switch {
				case r >= 0xD800 && r < 0xDC00:
					// A high surrogate must be followed by a low one.
					if p.i+1 >= len(p.s) || p.s[p.i] != '\\' || p.s[p.i+1] != 'u' {
						return false, ErrSyntax
					}
					r2, ok := hex4(p.s, p.i+2)
					if !ok || r2 < 0xDC00 || r2 > 0xDFFF {
						return false, ErrSyntax
					}
					p.i += 6
				case r >= 0xDC00 && r <= 0xDFFF:
					return false, ErrSyntax
				}
			default:
				return false, ErrSyntax
			}
		case c < 0x20:
			return false, ErrSyntax
		case c < utf8.RuneSelf:
			p.i++
		default:
			r, size := utf8.DecodeRuneInString(p.s[p.i:])
			if r == utf8.RuneError && size <= 1 {
				return false, ErrSyntax
			}
			p.i += size
		}
	}
	return false, ErrSyntax
}

// number parses an RFC 8259 number.
func (p *parser) number() bool {
	s, i := p.s, p.i
	if i < len(s) && s[i] == '-' {
		i++
	}
	switch {
	case i < len(s) && s[i] == '0':
		i++
	case i < len(s) && s[i] >= '1' && s[i] <= '9':
		i = digits(s, i+1)
	default:
		return false
	}
	if i < len(s) && s[i] == '.' {
		d := digits(s, i+1)
		if d == i+1 {
			return false
		}
		i = d
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		i++
		if i < len(s) && (s[i] == '+' || s[i] == '-') {
			i++
		}
		d := digits(s, i)
		if d == i {
			return false
		}
		i = d
	}
	p.i = i
	return true
}

// digits returns the index after the ASCII digits that start at i.
func digits(s string, i int) int {
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		i++
	}
	return i
}

// plain marks the bytes a JSON string may hold as they are: printable ASCII
// other than '"' and '\\'. Everything else takes the slow path of str.
var plain = func() (t [256]bool) {
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

// unescape decodes a string, quotes included, already validated by
// parser.str.
func unescape(quoted string) string {
	s := quoted[1 : len(quoted)-1]
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

// AppendString appends s to b as a JSON string: '"' and '\\' escaped with a
// backslash, control characters as \u00XX, everything else as is. Invalid
// UTF-8 is replaced by U+FFFD, as encoding/json does, so the result is
// always accepted by ParseObject.
func AppendString(b []byte, s string) []byte { return appendString(b, s, false) }

// AppendCanonicalString appends s to b as RFC 8785 (JCS) §3.2.2.2
// serialises a string: '"' and '\\' escaped with a backslash, U+0008,
// U+0009, U+000A, U+000C and U+000D as \b, \t, \n, \f and \r, the other
// control characters as \u00xx (lower-case hex), everything else as is.
// Invalid UTF-8 is replaced by U+FFFD first, so the result is well-formed.
func AppendCanonicalString(b []byte, s string) []byte { return appendString(b, s, true) }

func appendString(b []byte, s string, short bool) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	// Runs of bytes that need no escape are copied whole.
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch {
			case c == '"' || c == '\\':
				b = append(b, '\\', c)
			case short && shortEscape[c] != 0:
				b = append(b, '\\', shortEscape[c])
			default:
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, "\ufffd"...)
			i++
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

// shortEscape holds the one-letter escapes of JCS for control characters.
var shortEscape = [0x20]byte{'\b': 'b', '\t': 't', '\n': 'n', '\f': 'f', '\r': 'r'}

// ErrMembers is ReadMembers' error for a missing or ill-typed member.
var ErrMembers = errors.New("missing or ill-typed claim")

// ReadMembers reads the JSON object b (a JWS payload's claims) with
// ParseObject. member reads one member: it returns the bit that marks the
// member as seen (0 for an optional or unknown one) and false when the
// value is ill-typed or out of range (ErrMembers). Unknown members are
// ignored by returning 0, true. The object is refused (ErrMembers) unless
// every bit of required was seen.
func ReadMembers(b []byte, required uint16, member func(name string, v Value) (bit uint16, ok bool)) error {
	var seen uint16
	err := ParseObject(string(b), func(name string, v Value) error {
		bit, ok := member(name, v)
		if !ok {
			return ErrMembers
		}
		seen |= bit
		return nil
	})
	if err != nil {
		return err
	}
	if seen&required != required {
		return ErrMembers
	}
	return nil
}
