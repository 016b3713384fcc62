package challenge

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"github.com/stepupgrpc/stepup/challenge/factor"
	"log/slog"
	"os"
	"strings"
	"sync"

	"github.com/stepupgrpc/stepup/internal/base64url"
	"github.com/stepupgrpc/stepup/internal/strictjson"
)

// MinSecretSize is the smallest accepted key secret, in bytes: the output
// size of SHA-256 (RFC 7518 §3.2 requires an HS256 key of at least 256 bits).
const MinSecretSize = 32

// maxKeyFileSize bounds LoadKeySet's input.
const maxKeyFileSize = 64 << 10

// Key is one server secret that signs and verifies challenges and grants.
// Secret must be at least MinSecretSize random bytes; ID names it in the kid
// header (1 to 64 characters from A-Z a-z 0-9 . _ -).
type Key struct {
	ID     string
	Secret []byte
}

// String names the key without its secret, so that a Key printed by
// mistake never leaks.
func (k Key) String() string { return "challenge.Key{ID: " + quoteID(k.ID) + ", Secret: <redacted>}" }

// GoString is String, for %#v.
func (k Key) GoString() string { return k.String() }

// LogValue is String, so that structured logs never carry the secret.
func (k Key) LogValue() slog.Value { return slog.StringValue(k.String()) }

// GenerateKey returns a Key with a fresh 32-byte secret from crypto/rand.
func GenerateKey(id string) (Key, error) {
	if err := validKeyID(id); err != nil {
		return Key{}, err
	}
	secret := make([]byte, MinSecretSize)
	if _, err := rand.Read(secret); err != nil {
		return Key{}, fmt.Errorf("challenge: generating a key: %w", err)
	}
	return Key{ID: id, Secret: secret}, nil
}

func quoteID(id string) string {
	if validKeyID(id) == nil {
		return `"` + id + `"`
	}
	return "<invalid>"
}

func validKeyID(id string) error {
	if id == "" || len(id) > 64 {
		return errors.New("challenge: key id must be 1 to 64 characters")
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return errors.New("challenge: key id may only use A-Z a-z 0-9 . _ -")
		}
	}
	return nil
}

// Token types (the JOSE typ header, RFC 8725 §3.11): each kind of token is
// accepted only where its type is expected, so one kind can never be
// passed off as another.
const (
	// ChallengeType is the typ of a server challenge (HS256).
	ChallengeType = "stepup-challenge+jwt"
	// GrantType is the typ of a server grant (HS256).
	GrantType = "stepup-grant+jwt"
	// AnswerType is the typ of a client answer, signed by the DPoP key.
	AnswerType = "stepup-answer+jwt"
	// DeviceType is the typ of device-key evidence, signed by the device
	// key.
	DeviceType = factor.DeviceType
	// SignInType is the typ of the approver page's sign-in state (HS256):
	// the WebAuthn ceremony's challenge, kept by the browser between its
	// two steps.
	SignInType = "stepup-signin+jwt"
	// SessionType is the typ of the approver page's session (HS256).
	SessionType = "stepup-approver+jwt"
)

// tokenTypes are the HS256 token types a KeySet derives MAC keys for.
var tokenTypes = [...]string{ChallengeType, GrantType, SignInType, SessionType}

// macKey is the key of one (secret, token type) pair.
type macKey struct {
	kid string
	typ string
	key []byte // HMAC-SHA256(secret, typ)
	hdr string // base64url of the canonical header {"alg":"HS256","kid":..,"typ":..}

	pool sync.Pool // of *macState, see macKey.state
}

// KeySet is the set of server keys: the current key signs, the current and
// previous keys verify, so that keys rotate without refusing tokens already
// issued. Every replica must load the same set. A KeySet is immutable and
// safe for concurrent use.
//
// Each token type gets its own MAC key, HMAC-SHA256(secret, typ), so that a
// token of one type can never verify as another even if a typ check were
// missed.
type KeySet struct {
	current  Key
	previous []Key
	// signing[t] is the current key's macKey for tokenTypes[t].
	signing [len(tokenTypes)]*macKey
	// byHeader maps a canonical header segment to its key: the fast path,
	// one map lookup and no JSON parsing for every token we issued.
	byHeader map[string]*macKey
	// byKid maps typ+"\x00"+kid to its key, for headers written otherwise.
	byKid map[string]*macKey
}

// NewKeySet returns a KeySet that signs with current and also verifies with
// previous. IDs must be distinct and secrets at least MinSecretSize bytes.
func NewKeySet(current Key, previous ...Key) (*KeySet, error) {
	ks := &KeySet{byHeader: map[string]*macKey{}, byKid: map[string]*macKey{}}
	seen := map[string]bool{}
	all := append([]Key{current}, previous...)
	for i, k := range all {
		if err := validKeyID(k.ID); err != nil {
			return nil, err
		}
		if len(k.Secret) < MinSecretSize {
			return nil, fmt.Errorf("challenge: key %q: secret must be at least %d bytes", k.ID, MinSecretSize)
		}
		if seen[k.ID] {
			return nil, fmt.Errorf("challenge: duplicate key id %q", k.ID)
		}
		seen[k.ID] = true
		k = Key{ID: k.ID, Secret: append([]byte(nil), k.Secret...)}
		if i == 0 {
			ks.current = k
		} else {
			ks.previous = append(ks.previous, k)
		}
		for t, typ := range tokenTypes {
			m := hmac.New(sha256.New, k.Secret)
			m.Write([]byte(typ))
			mk := &macKey{kid: k.ID, typ: typ, key: m.Sum(nil), hdr: headerSegment(k.ID, typ)}
			ks.byHeader[mk.hdr] = mk
			ks.byKid[typ+"\x00"+k.ID] = mk
			if i == 0 {
				ks.signing[t] = mk
			}
		}
	}
	return ks, nil
}

// headerSegment is the base64url of the canonical header this package
// writes.
func headerSegment(kid, typ string) string {
	return base64url.EncodeToString([]byte(`{"alg":"HS256","kid":"` + kid + `","typ":"` + typ + `"}`))
}

func (k *KeySet) signer(typ string) *macKey {
	for t, name := range tokenTypes {
		if name == typ {
			return k.signing[t]
		}
	}
	panic("challenge: no signing key for " + typ)
}

// CurrentID returns the id of the signing key.
func (k *KeySet) CurrentID() string { return k.current.ID }

// IDs returns the ids of every key, current first.
func (k *KeySet) IDs() []string {
	ids := []string{k.current.ID}
	for _, p := range k.previous {
		ids = append(ids, p.ID)
	}
	return ids
}

// String lists the key ids, never the secrets.
func (k *KeySet) String() string {
	return "challenge.KeySet{current: " + k.current.ID + ", previous: [" + strings.Join(k.IDs()[1:], " ") + "]}"
}

// GoString is String, for %#v.
func (k *KeySet) GoString() string { return k.String() }

// LogValue is String: a logger resolves it before any JSON encoding, so a
// KeySet logged by mistake never goes through MarshalJSON.
func (k *KeySet) LogValue() slog.Value { return slog.StringValue(k.String()) }

// keyFile is the JSON form of a KeySet:
//
//	{"current":{"kid":"k2","secret":"<base64url>"},"previous":[{"kid":"k1","secret":"<base64url>"}]}
type keyFile struct {
	Current  keyJSON
	Previous []keyJSON
}

type keyJSON struct{ Kid, Secret string }

// MarshalJSON writes the key file format that LoadKeySet reads. The output
// contains the secrets: write it only to a file readable by the server, and
// never encode a KeySet as part of anything else.
func (k *KeySet) MarshalJSON() ([]byte, error) {
	var w jsonWriter
	w.raw("current", keyObject(k.current))
	if len(k.previous) > 0 {
		b := []byte{'['}
		for i, p := range k.previous {
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, keyObject(p)...)
		}
		w.raw("previous", append(b, ']'))
	}
	return w.bytes(), nil
}

func keyObject(k Key) []byte {
	var w jsonWriter
	w.str("kid", k.ID)
	w.str("secret", base64url.EncodeToString(k.Secret))
	return w.bytes()
}

// LoadKeySet reads a key file:
//
//	{"current":{"kid":"k2","secret":"<base64url>"},"previous":[{"kid":"k1","secret":"<base64url>"}]}
//
// Secrets are base64url without padding (RFC 4648 §5). Unknown members,
// duplicate members and padding are refused, so that a typo never silently
// drops a key. To rotate: generate a new key, move the current one to
// previous, write the file to every replica; remove the previous key once
// every token it signed has expired (challenges: minutes; grants: their
// max age).
func LoadKeySet(path string) (*KeySet, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("challenge: reading key file: %w", err)
	}
	ks, err := ParseKeySet(data)
	if err != nil {
		return nil, fmt.Errorf("%w (in %s)", err, path)
	}
	return ks, nil
}

// ParseKeySet parses the key file format described at LoadKeySet.
func ParseKeySet(data []byte) (*KeySet, error) {
	if len(data) > maxKeyFileSize {
		return nil, errors.New("challenge: key file over 64 KiB")
	}
	var f keyFile
	var haveCurrent bool
	err := strictjson.ParseObject(string(data), func(name string, v strictjson.Value) error {
		switch name {
		case "current":
			k, err := parseKeyJSON(v)
			if err != nil {
				return err
			}
			f.Current, haveCurrent = k, true
		case "previous":
			if v.Kind() != strictjson.Array {
				return errors.New(`"previous" must be an array`)
			}
			for e := range v.Elements() {
				k, err := parseKeyJSON(e)
				if err != nil {
					return err
				}
				f.Previous = append(f.Previous, k)
			}
		default:
			return fmt.Errorf("unknown member %q", name)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("challenge: key file: %w", err)
	}
	if !haveCurrent {
		return nil, errors.New(`challenge: key file: no "current" key`)
	}
	decode := func(k keyJSON) (Key, error) {
		s, err := base64url.DecodeString(k.Secret)
		if err != nil {
			return Key{}, fmt.Errorf("challenge: key file: key %s: secret is not base64url without padding", quoteID(k.Kid))
		}
		return Key{ID: k.Kid, Secret: s}, nil
	}
	cur, err := decode(f.Current)
	if err != nil {
		return nil, err
	}
	var prev []Key
	for _, p := range f.Previous {
		k, err := decode(p)
		if err != nil {
			return nil, err
		}
		prev = append(prev, k)
	}
	return NewKeySet(cur, prev...)
}

func parseKeyJSON(v strictjson.Value) (keyJSON, error) {
	var k keyJSON
	if v.Kind() != strictjson.Object {
		return k, errors.New("a key must be an object")
	}
	var haveKid, haveSecret bool
	err := strictjson.ParseObject(v.Raw(), func(name string, m strictjson.Value) error {
		s, ok := m.Str()
		if !ok {
			return fmt.Errorf("%q must be a string", name)
		}
		switch name {
		case "kid":
			k.Kid, haveKid = s, true
		case "secret":
			k.Secret, haveSecret = s, true
		default:
			return fmt.Errorf("unknown member %q in a key", name)
		}
		return nil
	})
	if err != nil {
		return k, err
	}
	if !haveKid || !haveSecret {
		return k, errors.New(`a key needs "kid" and "secret"`)
	}
	return k, nil
}
