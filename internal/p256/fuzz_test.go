package p256

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"testing"
)

// FuzzVerify compares Verify with crypto/ecdsa for the keys of NIST's
// valid vectors (every other one with its table) and any digest and
// signature. The seeds are those
// vectors' own digests and signatures (all valid) and the boundary values
// of r and s; the fuzzer's mutations of them are what must be refused
// exactly when crypto/ecdsa refuses them.
func FuzzVerify(f *testing.F) {
	var (
		keys []*ecdsa.PublicKey
		prep []*PublicKey
	)
	n := fixed32(order.Bytes())
	for _, v := range loadVectors(f) {
		if !v.pass {
			continue
		}
		raw := append(append([]byte{4}, fixed32(v.qx)...), fixed32(v.qy)...)
		pub, err := ecdsa.ParseUncompressedPublicKey(elliptic.P256(), raw)
		if err != nil {
			f.Fatal(err)
		}
		k, err := NewPublicKey(pub)
		if err != nil {
			f.Fatal(err)
		}
		if len(keys)%2 == 1 {
			k.Precompute()
		}
		d := digest32(v.section, v.msg)
		sig := append(fixed32(v.r), fixed32(v.s)...)
		f.Add(uint8(len(keys)), d[:], sig)
		f.Add(uint8(len(keys)), d[:], append(append([]byte{}, n...), sig[32:]...))
		f.Add(uint8(len(keys)), d[:], append(append([]byte{}, sig[:32]...), n...))
		keys, prep = append(keys, pub), append(prep, k)
	}
	f.Fuzz(func(t *testing.T, key uint8, digest, sig []byte) {
		i := int(key) % len(keys)
		var d [32]byte
		copy(d[:], digest)
		got := prep[i].Verify(&d, sig)
		if std := stdVerify(keys[i], &d, sig); got != std {
			t.Fatalf("key %d, digest %x, signature %x: Verify %v, crypto/ecdsa %v", i, d, sig, got, std)
		}
	})
}
