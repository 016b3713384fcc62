package webauthn

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"sync"

	"github.com/go-webauthn/webauthn/protocol"
	"github.com/go-webauthn/webauthn/protocol/webauthncbor"
	"github.com/go-webauthn/webauthn/protocol/webauthncose"
)

// SoftAuthenticator is a WebAuthn authenticator in software, for tests and
// demos. NOT FOR PRODUCTION: its keys live in process memory, so it proves
// nothing about a person or a device. It makes P-256 (ES256) credentials
// with "none" attestation, sets the user-present and user-verified flags,
// and keeps a signature counter per credential.
//
// It can be told to misbehave, to test that a server refuses: not to set
// the user-verified flag, to claim another origin, to sign for another RP
// ID, or to move its counter back (as a cloned authenticator would).
// Safe for concurrent use.
type SoftAuthenticator struct {
	mu     sync.Mutex
	rpID   string
	origin string
	creds  []*softCredential

	noUV       bool
	fakeOrigin string
	fakeRPID   string
}

type softCredential struct {
	id      []byte
	userID  []byte
	key     *ecdsa.PrivateKey
	counter uint32
}

// NewSoftAuthenticator returns an authenticator for the relying party rpID
// (for example "bank.example") as reached from origin (for example
// "https://bank.example").
func NewSoftAuthenticator(rpID, origin string) (*SoftAuthenticator, error) {
	if rpID == "" || origin == "" {
		return nil, errors.New("webauthn: NewSoftAuthenticator: empty RP ID or origin")
	}
	return &SoftAuthenticator{rpID: rpID, origin: origin}, nil
}

// RegisterCredential makes a new credential for the user handle userID
// and returns the credential record a server stores for the user
// (WebAuthn §4 "credential record"): id, COSE public key, "none"
// attestation, flags and a zero counter. It stands in for a registration
// ceremony.
func (a *SoftAuthenticator) RegisterCredential(userID []byte) (Credential, error) {
	if len(userID) == 0 || len(userID) > 64 {
		return Credential{}, errors.New("webauthn: SoftAuthenticator.RegisterCredential: the user handle must be 1 to 64 bytes")
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return Credential{}, fmt.Errorf("webauthn: SoftAuthenticator: %w", err)
	}
	id := make([]byte, 16)
	if _, err := rand.Read(id); err != nil {
		return Credential{}, fmt.Errorf("webauthn: SoftAuthenticator: %w", err)
	}
	cred, err := CredentialFromKey(id, &key.PublicKey)
	if err != nil {
		return Credential{}, err
	}
	a.mu.Lock()
	a.creds = append(a.creds, &softCredential{id: id, userID: bytes.Clone(userID), key: key})
	a.mu.Unlock()
	return cred, nil
}

// CredentialFromKey returns the credential record a server stores for a
// P-256 (ES256) credential id whose public key is pub, with "none"
// attestation and the user-present and user-verified flags: it stands in
// for a registration ceremony, for a key made elsewhere (a browser's
// virtual authenticator in tests, say).
func CredentialFromKey(id []byte, pub *ecdsa.PublicKey) (Credential, error) {
	if len(id) == 0 || pub == nil || pub.Curve != elliptic.P256() {
		return Credential{}, errors.New("webauthn: CredentialFromKey: an id and a P-256 public key are required")
	}
	ecdh, err := pub.ECDH()
	if err != nil {
		return Credential{}, fmt.Errorf("webauthn: CredentialFromKey: %w", err)
	}
	point := ecdh.Bytes() // 0x04 || X || Y
	cose, err := webauthncbor.Marshal(webauthncose.EC2PublicKeyData{
		PublicKeyData: webauthncose.PublicKeyData{
			KeyType:   int64(webauthncose.EllipticKey),
			Algorithm: int64(webauthncose.AlgES256),
		},
		Curve:  int64(webauthncose.P256),
		XCoord: point[1:33],
		YCoord: point[33:65],
	})
	if err != nil {
		return Credential{}, fmt.Errorf("webauthn: CredentialFromKey: %w", err)
	}
	return Credential{
		ID:                bytes.Clone(id),
		PublicKey:         cose,
		AttestationType:   "none",
		AttestationFormat: "none",
		UserPresent:       true,
		UserVerified:      true,
	}, nil
}

// GetAssertion implements Authenticator: it parses the request options,
// picks a credential from allowCredentials that it holds for the options'
// RP ID, and returns the PublicKeyCredential JSON of a signed assertion
// (WebAuthn §6.3.3).
func (a *SoftAuthenticator) GetAssertion(ctx context.Context, requestOptionsJSON []byte) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var opts protocol.PublicKeyCredentialRequestOptions
	if err := json.Unmarshal(requestOptionsJSON, &opts); err != nil {
		return nil, fmt.Errorf("webauthn: SoftAuthenticator: request options: %w", err)
	}
	if len(opts.Challenge) == 0 {
		return nil, errors.New("webauthn: SoftAuthenticator: request options without a challenge")
	}
	if opts.RelyingPartyID != "" && opts.RelyingPartyID != a.rpID {
		return nil, errors.New("webauthn: SoftAuthenticator: no credential for this RP ID")
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	var cred *softCredential
	for _, c := range a.creds {
		if len(opts.AllowedCredentials) == 0 {
			cred = c
			break
		}
		for _, d := range opts.AllowedCredentials {
			if bytes.Equal(d.CredentialID, c.id) {
				cred = c
				break
			}
		}
		if cred != nil {
			break
		}
	}
	if cred == nil {
		return nil, errors.New("webauthn: SoftAuthenticator: no allowed credential")
	}

	origin, rpID := a.origin, a.rpID
	if a.fakeOrigin != "" {
		origin = a.fakeOrigin
	}
	if a.fakeRPID != "" {
		rpID = a.fakeRPID
	}
	clientData, err := json.Marshal(map[string]any{
		"type":        "webauthn.get",
		"challenge":   protocol.URLEncodedBase64(opts.Challenge).String(),
		"origin":      origin,
		"crossOrigin": false,
	})
	if err != nil {
		return nil, fmt.Errorf("webauthn: SoftAuthenticator: %w", err)
	}
	cred.counter++
	flags := protocol.FlagUserPresent
	if !a.noUV {
		flags |= protocol.FlagUserVerified
	}
	rpHash := sha256.Sum256([]byte(rpID))
	authData := make([]byte, 0, 37)
	authData = append(authData, rpHash[:]...)
	authData = append(authData, byte(flags))
	authData = binary.BigEndian.AppendUint32(authData, cred.counter)

	cdHash := sha256.Sum256(clientData)
	digest := sha256.Sum256(append(bytes.Clone(authData), cdHash[:]...))
	sig, err := ecdsa.SignASN1(rand.Reader, cred.key, digest[:])
	if err != nil {
		return nil, fmt.Errorf("webauthn: SoftAuthenticator: %w", err)
	}
	id := protocol.URLEncodedBase64(cred.id)
	return json.Marshal(map[string]any{
		"id":    id.String(),
		"rawId": id,
		"type":  "public-key",
		"response": map[string]any{
			"clientDataJSON":    protocol.URLEncodedBase64(clientData),
			"authenticatorData": protocol.URLEncodedBase64(authData),
			"signature":         protocol.URLEncodedBase64(sig),
			"userHandle":        protocol.URLEncodedBase64(cred.userID),
		},
		"clientExtensionResults": map[string]any{},
	})
}

// SetUserVerified sets whether assertions carry the user-verified (UV)
// flag; true by default. false makes a server that requires user
// verification refuse.
func (a *SoftAuthenticator) SetUserVerified(uv bool) {
	a.mu.Lock()
	a.noUV = !uv
	a.mu.Unlock()
}

// SetOrigin makes assertions claim another origin in their client data;
// "" restores the real one.
func (a *SoftAuthenticator) SetOrigin(origin string) {
	a.mu.Lock()
	a.fakeOrigin = origin
	a.mu.Unlock()
}

// SetRPID makes assertions sign for another RP ID (rpIdHash); "" restores
// the real one.
func (a *SoftAuthenticator) SetRPID(rpID string) {
	a.mu.Lock()
	a.fakeRPID = rpID
	a.mu.Unlock()
}

// SetCounter sets the signature counter of every credential; the next
// assertion uses counter+1. Setting it below a value already used is what a
// cloned authenticator looks like.
func (a *SoftAuthenticator) SetCounter(counter uint32) {
	a.mu.Lock()
	for _, c := range a.creds {
		c.counter = counter
	}
	a.mu.Unlock()
}
