package challenge_test

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lestrrat-go/jwx/v3/jwk"

	"github.com/stepupgrpc/stepup/challenge"
	"github.com/stepupgrpc/stepup/dpop"
)

type equaler interface{ Equal(crypto.PublicKey) bool }

func pemOf(t testing.TB, typ string, der []byte, err error) []byte {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
}

func jwkOf(t testing.TB, key any) []byte {
	t.Helper()
	k, err := jwk.Import(key)
	if err != nil {
		t.Fatal(err)
	}
	out, err := json.Marshal(k)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestKeyFiles: every format a key is kept in loads to the same key, and
// what a key file must not be is refused with a reason that says why.
func TestKeyFiles(t *testing.T) {
	p256, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	p521, _ := ecdsa.GenerateKey(elliptic.P521(), rand.Reader)
	_, ed, _ := ed25519.GenerateKey(rand.Reader)
	rsa2048, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	rsa1024, err := rsa.GenerateKey(rand.Reader, 1024) //nolint:gosec // the weak key the loader must refuse
	if err != nil {
		t.Fatal(err)
	}
	pkcs8 := func(k any) []byte {
		der, err := x509.MarshalPKCS8PrivateKey(k)
		return pemOf(t, "PRIVATE KEY", der, err)
	}
	pkix := func(k any) []byte { der, err := x509.MarshalPKIXPublicKey(k); return pemOf(t, "PUBLIC KEY", der, err) }
	sec1 := func(k *ecdsa.PrivateKey) []byte {
		der, err := x509.MarshalECPrivateKey(k)
		return pemOf(t, "EC PRIVATE KEY", der, err)
	}

	for _, tc := range []struct {
		name string
		data []byte
		want crypto.PublicKey
	}{
		{"P-256 JWK", jwkOf(t, p256), p256.Public()},
		{"P-384 JWK", jwkOf(t, p384), p384.Public()},
		{"Ed25519 JWK", jwkOf(t, ed), ed.Public()},
		{"RSA JWK", jwkOf(t, rsa2048), rsa2048.Public()},
		{"P-256 PKCS #8", pkcs8(p256), p256.Public()},
		{"Ed25519 PKCS #8", pkcs8(ed), ed.Public()},
		{"P-256 SEC 1", sec1(p256), p256.Public()},
		{"RSA PKCS #1", pemOf(t, "RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(rsa2048), nil), rsa2048.Public()},
		{"surrounding blank lines", append(append([]byte("\n\n"), pkcs8(p256)...), '\n'), p256.Public()},
	} {
		t.Run("private/"+tc.name, func(t *testing.T) {
			k, err := challenge.ParsePrivateKey(tc.data)
			if err != nil {
				t.Fatal(err)
			}
			if !k.Public().(equaler).Equal(tc.want) {
				t.Fatal("another key")
			}
			if _, err := challenge.ParsePublicKey(tc.data); err == nil || !strings.Contains(err.Error(), "public key only") {
				t.Fatalf("a private key read as public: %v", err)
			}
		})
	}
	for _, tc := range []struct {
		name string
		data []byte
		want crypto.PublicKey
	}{
		{"P-256 JWK", jwkOf(t, p256.Public()), p256.Public()},
		{"Ed25519 JWK", jwkOf(t, ed.Public()), ed.Public()},
		{"P-384 PKIX", pkix(p384.Public()), p384.Public()},
		{"Ed25519 PKIX", pkix(ed.Public()), ed.Public()},
		{"RSA PKIX", pkix(rsa2048.Public()), rsa2048.Public()},
	} {
		t.Run("public/"+tc.name, func(t *testing.T) {
			k, err := challenge.ParsePublicKey(tc.data)
			if err != nil {
				t.Fatal(err)
			}
			if !tc.want.(equaler).Equal(k) {
				t.Fatal("another key")
			}
			if _, err := challenge.ParsePrivateKey(tc.data); err == nil || !strings.Contains(err.Error(), "not a private key") {
				t.Fatalf("a public key read as private: %v", err)
			}
		})
	}

	cert := pemOf(t, "CERTIFICATE", []byte{0x30, 0}, nil)
	encrypted := pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Headers: map[string]string{"Proc-Type": "4,ENCRYPTED", "DEK-Info": "AES-256-CBC,00"}, Bytes: []byte{1}})
	for _, tc := range []struct {
		name string
		data []byte
		want string
	}{
		{"empty", []byte("  \n"), "empty"},
		{"garbage", []byte("alice"), "neither a JWK nor a PEM block"},
		{"broken JWK", []byte(`{"kty":"EC"`), "not a JWK"},
		{"a JWK Set", []byte(`{"keys":[` + string(jwkOf(t, p256)) + `]}`), "not a JWK"},
		{"two PEM blocks", append(pkcs8(p256), pkcs8(p384)...), "data after the PRIVATE KEY block"},
		{"a certificate", cert, `"CERTIFICATE" block, not a key`},
		{"legacy encrypted PEM", encrypted, "encrypted PEM block"},
		{"encrypted PKCS #8", pemOf(t, "ENCRYPTED PRIVATE KEY", []byte{1}, nil), "encrypted PKCS #8"},
		{"corrupt DER", pemOf(t, "PRIVATE KEY", []byte{1, 2, 3}, nil), "PRIVATE KEY:"},
		{"P-521", pkcs8(p521), "unsupported EC curve"},
		{"RSA 1024", pkcs8(rsa1024), "1024 bits, under 2048"},
	} {
		t.Run("refused/"+tc.name, func(t *testing.T) {
			if _, err := challenge.ParsePrivateKey(tc.data); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err %v, want %q", err, tc.want)
			}
		})
	}
	if _, err := challenge.ParsePublicKey(pkix(rsa1024.Public())); err == nil || !strings.Contains(err.Error(), "under 2048") {
		t.Fatalf("a 1024-bit public key: %v", err)
	}

	// The files: the loaders name the path in their errors.
	dir := t.TempDir()
	priv, pub := filepath.Join(dir, "device.pem"), filepath.Join(dir, "device.pub")
	if err := os.WriteFile(priv, sec1(p256), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(pub, pkix(p256.Public()), 0o600); err != nil {
		t.Fatal(err)
	}
	if k, err := challenge.LoadPrivateKey(priv); err != nil || !k.Public().(equaler).Equal(p256.Public()) {
		t.Fatalf("LoadPrivateKey: %v", err)
	}
	if k, err := challenge.LoadPublicKey(pub); err != nil || !p256.Public().(equaler).Equal(k) {
		t.Fatalf("LoadPublicKey: %v", err)
	}
	if _, err := challenge.LoadPublicKey(priv); err == nil || !strings.Contains(err.Error(), priv) {
		t.Fatalf("LoadPublicKey of a private key: %v", err)
	}
}

// FuzzParseKeyFile: whatever a key file holds, the parsers never panic,
// and a key they return is one the factor accepts.
func FuzzParseKeyFile(f *testing.F) {
	p256, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	der, err := x509.MarshalPKCS8PrivateKey(p256)
	f.Add(pemOf(f, "PRIVATE KEY", der, err))
	f.Add(jwkOf(f, p256))
	f.Add(jwkOf(f, p256.Public()))
	f.Add([]byte("-----BEGIN PUBLIC KEY-----\nMA==\n-----END PUBLIC KEY-----\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		if k, err := challenge.ParsePrivateKey(data); err == nil {
			if _, err := challenge.DeviceKeyResponder(k); err != nil {
				t.Fatalf("a parsed private key the responder refuses: %v", err)
			}
		}
		_, _ = challenge.ParsePublicKey(data)
	})
}

// A device's key from its file: the private key signs device-key answers
// on the device, the public key is what the server registers. (The key is
// RFC 8037's Ed25519 example; its thumbprint is RFC 8037 §A.3's.)
func ExampleParsePrivateKey() {
	key, err := challenge.ParsePrivateKey([]byte(`{"kty":"OKP","crv":"Ed25519",
		"d":"nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A",
		"x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}`))
	if err != nil {
		panic(err)
	}
	if _, err := challenge.DeviceKeyResponder(key); err != nil { // on the device
		panic(err)
	}
	devices := challenge.DeviceKeysMap(map[string][]crypto.PublicKey{"alice": {key.Public()}}) // on the server
	_ = challenge.WithDeviceKeys(devices)
	jkt, _ := dpop.ThumbprintOf(key.Public())
	fmt.Println(jkt)
	// Output: kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k
}
