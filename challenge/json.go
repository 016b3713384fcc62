package challenge

import (
	"strconv"

	"github.com/stepupgrpc/stepup/internal/strictjson"
)

// jsonWriter builds a flat JSON object member by member, in a fixed order,
// so that tokens are byte-for-byte reproducible. Tokens and answers are read
// back with the strict parser of internal/strictjson. Strings are written
// with strictjson.AppendString; callers only pass valid UTF-8 (checked at
// the API boundary), invalid bytes would become U+FFFD.
type jsonWriter struct{ b []byte }

// name starts a member: the separator and the quoted name with its colon.
func (w *jsonWriter) name(name string) {
	if len(w.b) == 0 {
		w.b = append(w.b, '{')
	} else {
		w.b = append(w.b, ',')
	}
	w.b = strictjson.AppendString(w.b, name)
	w.b = append(w.b, ':')
}

func (w *jsonWriter) str(name, v string) {
	w.name(name)
	w.b = strictjson.AppendString(w.b, v)
}

func (w *jsonWriter) int(name string, v int64) {
	w.name(name)
	w.b = strconv.AppendInt(w.b, v, 10)
}

func (w *jsonWriter) strs(name string, v []string) {
	w.name(name)
	w.b = append(w.b, '[')
	for i, s := range v {
		if i > 0 {
			w.b = append(w.b, ',')
		}
		w.b = strictjson.AppendString(w.b, s)
	}
	w.b = append(w.b, ']')
}

// raw writes v, a JSON value, as it is.
func (w *jsonWriter) raw(name string, v []byte) {
	w.name(name)
	w.b = append(w.b, v...)
}

func (w *jsonWriter) bytes() []byte {
	if len(w.b) == 0 {
		return []byte("{}")
	}
	return append(w.b, '}')
}
