package strictjson

import (
	"iter"
	"strconv"
)

// Kind is the JSON type of a [Value].
type Kind uint8

// The kinds of JSON values. The zero Kind is no value.
const (
	String Kind = iota + 1
	Number
	Object
	Array
	Bool
	Null
)

// Value is one value read by [ParseObject]: its kind and its exact, already
// validated source text. The zero Value has no kind and no text.
type Value struct {
	kind    Kind
	raw     string
	escaped bool // a String holding a backslash escape
}

// Kind returns the JSON type of v.
func (v Value) Kind() Kind { return v.kind }

// Raw returns the exact source text of v: a string with its quotes and
// escapes, a number as written, an object or array with its inner white
// space. The text of an Object can be given to ParseObject again.
func (v Value) Raw() string { return v.raw }

// Str returns the decoded value of a String, or false when v is not one.
// It allocates only when the string holds escapes.
func (v Value) Str() (string, bool) {
	if v.kind != String {
		return "", false
	}
	if v.escaped {
		return unescape(v.raw), true
	}
	return v.raw[1 : len(v.raw)-1], true
}

// Int returns the value of a Number written as an integer in ±2^53, or
// false for anything else. Fractions, exponents and larger magnitudes are
// refused: every integer it accepts is one that any JSON implementation
// represents exactly.
func (v Value) Int() (int64, bool) {
	if v.kind != Number {
		return 0, false
	}
	n, err := strconv.ParseInt(v.raw, 10, 64)
	if err != nil || n > 1<<53 || n < -(1<<53) {
		return 0, false
	}
	return n, true
}

// Strings returns the decoded elements of an Array of Strings (a non-nil,
// empty slice for []), or false when v is not an array or has an element
// that is not a string.
func (v Value) Strings() ([]string, bool) {
	if v.kind != Array {
		return nil, false
	}
	out := []string{}
	for e := range v.Elements() {
		s, ok := e.Str()
		if !ok {
			return nil, false
		}
		out = append(out, s)
	}
	return out, true
}

// Elements yields the elements of an Array in order, and nothing when v is
// not an array. The elements were validated with v, so iterating cannot
// fail.
func (v Value) Elements() iter.Seq[Value] {
	return func(yield func(Value) bool) {
		if v.kind != Array {
			return
		}
		p := parser{s: v.raw}
		if p.open(']') {
			return
		}
		for {
			// Depth 1: the array was within MaxDepth where it was read,
			// so nothing inside it can reach the limit from here.
			e, err := p.value(1)
			if err != nil || !yield(e) {
				return
			}
			if more, _ := p.next(']'); !more {
				return
			}
		}
	}
}
