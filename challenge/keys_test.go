package challenge_test

import (
	"bytes"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stepupgrpc/stepup/challenge"
)

func TestKeySetFileRoundTrip(t *testing.T) {
	ks := newKeySet(t, newKey(t, "k2"), newKey(t, "k1"), newKey(t, "k0"))
	b, err := ks.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "keys.json")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	loaded, err := challenge.LoadKeySet(path)
	if err != nil {
		t.Fatal(err)
	}
	b2, _ := loaded.MarshalJSON()
	if !bytes.Equal(b, b2) {
		t.Fatalf("round trip changed the file:\n%s\n%s", b, b2)
	}
	if loaded.CurrentID() != "k2" || strings.Join(loaded.IDs(), ",") != "k2,k1,k0" {
		t.Fatalf("ids %v", loaded.IDs())
	}

	// Tokens of one KeySet verify with the other: replicas share the file.
	f := newFixture(t, withKeySet(ks))
	g := newFixture(t, withKeySet(loaded))
	g.clock.Set(f.clock.Now())
	call := f.call(bound, transfer(1, "EUR", "x"))
	ch := f.challengeFor(call)
	call.Answer = f.answer(f.client, ch, f.deviceEvidence(g.device, ch))
	call.Thumbprint = f.client.Thumbprint()
	out := g.check(call)
	if !out.Satisfied {
		t.Fatalf("a replica with the same key file refused: %s", out.Reason)
	}
}

func TestParseKeySetRefusals(t *testing.T) {
	secret := strings.Repeat("A", 43) // 32 zero bytes, base64url without padding
	tests := map[string]string{
		"not JSON":           `nope`,
		"no current":         `{"previous":[]}`,
		"unknown member":     `{"current":{"kid":"k1","secret":"` + secret + `"},"next":{}}`,
		"unknown key member": `{"current":{"kid":"k1","secret":"` + secret + `","alg":"HS256"}}`,
		"duplicate member":   `{"current":{"kid":"k1","secret":"` + secret + `"},"current":{"kid":"k2","secret":"` + secret + `"}}`,
		"duplicate kid":      `{"current":{"kid":"k1","secret":"` + secret + `"},"previous":[{"kid":"k1","secret":"` + secret + `"}]}`,
		"short secret":       `{"current":{"kid":"k1","secret":"AAAA"}}`,
		"padded secret":      `{"current":{"kid":"k1","secret":"` + secret + `="}}`,
		"standard base64":    `{"current":{"kid":"k1","secret":"` + strings.Repeat("+", 43) + `"}}`,
		"bad kid":            `{"current":{"kid":"k 1","secret":"` + secret + `"}}`,
		"empty kid":          `{"current":{"kid":"","secret":"` + secret + `"}}`,
		"missing secret":     `{"current":{"kid":"k1"}}`,
		"previous not array": `{"current":{"kid":"k1","secret":"` + secret + `"},"previous":{}}`,
		"trailing data":      `{"current":{"kid":"k1","secret":"` + secret + `"}} {}`,
	}
	for name, in := range tests {
		t.Run(name, func(t *testing.T) {
			if _, err := challenge.ParseKeySet([]byte(in)); err == nil {
				t.Fatal("accepted")
			} else if !strings.HasPrefix(err.Error(), "challenge: ") {
				t.Fatalf("error %q lacks the package prefix", err)
			}
		})
	}
	if _, err := challenge.ParseKeySet([]byte(`{"current":{"kid":"k1","secret":"` + secret + `"}}`)); err != nil {
		t.Fatal(err)
	}
	if _, err := challenge.LoadKeySet(filepath.Join(t.TempDir(), "missing.json")); err == nil {
		t.Fatal("missing file accepted")
	}
}

func TestKeysNeverPrintSecrets(t *testing.T) {
	k := challenge.Key{ID: "k1", Secret: []byte("0123456789abcdef0123456789abcdef")}
	ks := newKeySet(t, k)
	var logged strings.Builder
	slog.New(slog.NewJSONHandler(&logged, nil)).Info("keys", "key", k, "set", ks)
	for _, s := range []string{fmt.Sprint(k), fmt.Sprintf("%v %+v %#v", k, k, k), fmt.Sprint(ks), fmt.Sprintf("%#v", ks), logged.String()} {
		if strings.Contains(s, "0123456789") || strings.Contains(s, "MDEyMzQ1") {
			t.Fatalf("secret printed: %s", s)
		}
	}
	if _, err := challenge.NewKeySet(challenge.Key{ID: "k1", Secret: make([]byte, 31)}); err == nil {
		t.Fatal("short secret accepted")
	}
	if _, err := challenge.GenerateKey("bad id"); err == nil {
		t.Fatal("bad id accepted")
	}
}
