// Package webauthn is the WebAuthn factor of step-up (W3C WebAuthn Level
// 2/3): assertions by a subject's registered passkeys or security keys
// over the challenge, and the approver page's passkeys (Factor.Approver).
// It is a package of its own so that a service without WebAuthn does not
// link go-webauthn and what it brings (TPM attestation, CBOR): wire it
// with challenge.WithFactor, or With.
//
// SoftAuthenticator is a software authenticator for tests and demos.
package webauthn

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"slices"
	"strings"

	"github.com/go-webauthn/webauthn/protocol"
	gowebauthn "github.com/go-webauthn/webauthn/webauthn"
)

// Config is the relying party that WebAuthn assertions are checked
// against (W3C WebAuthn §5.1.4.1, §7.2 steps 13 and 15).
type Config struct {
	// RPID is the relying party id: a domain ("bank.example"), lower
	// case, without scheme or port. Assertions must be signed for it.
	// Required.
	RPID string
	// RPDisplayName is the relying party's name for people. Default RPID.
	RPDisplayName string
	// RPOrigins are the origins whose assertions are accepted, each
	// exactly as a browser serializes it: "https://bank.example" or
	// "https://bank.example:8443", no path, query or fragment. Each is
	// https, or http on localhost (a secure context too), and its host is
	// RPID or a subdomain of it. At least one is required.
	RPOrigins []string
}

// relyingParty checks cfg and builds the go-webauthn relying party from it.
func (cfg Config) relyingParty() (*gowebauthn.WebAuthn, error) {
	id := cfg.RPID
	if id == "" {
		return nil, errors.New("RPID is required")
	}
	if id != strings.ToLower(id) || strings.ContainsAny(id, "/:@?# ") || net.ParseIP(id) != nil ||
		strings.HasPrefix(id, ".") || strings.HasSuffix(id, ".") {
		return nil, fmt.Errorf("RPID %q must be a lower-case domain without scheme or port", id)
	}
	if len(cfg.RPOrigins) == 0 {
		return nil, errors.New("RPOrigins needs at least one origin")
	}
	for _, o := range cfg.RPOrigins {
		if err := checkOrigin(o, id); err != nil {
			return nil, err
		}
	}
	rp, err := gowebauthn.New(&gowebauthn.Config{
		RPID:          id,
		RPDisplayName: cmp.Or(cfg.RPDisplayName, id),
		RPOrigins:     slices.Clone(cfg.RPOrigins),
	})
	if err != nil {
		return nil, err
	}
	return rp, nil
}

// checkOrigin refuses an origin that no browser sends for rpID: one that
// is not in serialized form (HTML "ASCII serialization of an origin"), not
// a secure context, or whose host is outside rpID (WebAuthn §5.1.4.1).
func checkOrigin(origin, rpID string) error {
	u, err := url.Parse(origin)
	if err != nil || u.Host == "" || u.User != nil || u.Scheme+"://"+u.Host != origin || origin != strings.ToLower(origin) {
		return fmt.Errorf("RPOrigins: %q is not an origin (scheme://host[:port], lower case, nothing after)", origin)
	}
	host := u.Hostname()
	switch {
	case u.Scheme == "https":
	case u.Scheme == "http" && (host == "localhost" || strings.HasSuffix(host, ".localhost")):
	default:
		return fmt.Errorf("RPOrigins: %q must be https (http only on localhost)", origin)
	}
	if host != rpID && !strings.HasSuffix(host, "."+rpID) {
		return fmt.Errorf("RPOrigins: the host of %q is neither the RPID %q nor a subdomain of it", origin, rpID)
	}
	return nil
}

// Credential is the credential record a server keeps for a
// WebAuthn credential (W3C WebAuthn §4 "credential record"): what a
// registration ceremony produced, and what each successful assertion
// updates (SignCount, CloneWarning and the flags; WebAuthn §7.2 step 27).
// Persist every field.
//
// A registration ceremony run with go-webauthn yields its Credential
// type; its fields map one to one: ID, PublicKey, AttestationType,
// AttestationFormat, Transport (as strings), Flags (UserPresent,
// UserVerified, BackupEligible, BackupState) and Authenticator (AAGUID,
// SignCount, CloneWarning, Attachment).
type Credential struct {
	// ID is the credential id.
	ID []byte
	// PublicKey is the credential public key, a CBOR-encoded COSE_Key.
	PublicKey []byte
	// AttestationType is the attestation type of the registration
	// ("none", "basic_full", "attca", ...).
	AttestationType string
	// AttestationFormat is the attestation statement format of the
	// registration ("none", "packed", "fido-u2f", ...).
	AttestationFormat string
	// Transports are the authenticator's transports ("usb", "nfc", "ble",
	// "internal", "hybrid"), passed on to browsers in allowCredentials.
	Transports []string
	// UserPresent is the UP flag of the last ceremony.
	UserPresent bool
	// UserVerified records that the user was verified (the record's
	// uvInitialized): once true, it stays true.
	UserVerified bool
	// BackupEligible is the BE flag; an assertion that changes it is
	// refused.
	BackupEligible bool
	// BackupState is the BS flag of the last ceremony.
	BackupState bool
	// AAGUID identifies the authenticator model.
	AAGUID []byte
	// SignCount is the signature counter of the last accepted assertion.
	SignCount uint32
	// CloneWarning is set when an assertion's counter did not increase:
	// a possibly cloned authenticator (WebAuthn §6.1.1).
	CloneWarning bool
	// Attachment is the authenticator attachment ("platform",
	// "cross-platform") the browser reported.
	Attachment string
}

// Store is the WebAuthn credential database. MemoryCredentials
// implements it.
type Store interface {
	// WebAuthnUserCredentials returns the subject's WebAuthn user handle
	// (the user.id given to the authenticator at registration) and
	// credential records, or challenge.ErrUnknownSubject.
	WebAuthnUserCredentials(ctx context.Context, subject string) (userHandle []byte, creds []Credential, err error)
	// UpdateWebAuthnCredential persists a credential record, found by
	// its ID, after a successful assertion: its new signature counter and
	// flags (WebAuthn §7.2 step 27).
	UpdateWebAuthnCredential(ctx context.Context, subject string, cred Credential) error
}

// storeUsers shows a Store to go-webauthn.
type storeUsers struct{ store Store }

func (s storeUsers) user(ctx context.Context, subject string) (gowebauthn.User, error) {
	handle, creds, err := s.store.WebAuthnUserCredentials(ctx, subject)
	if err != nil {
		return nil, err
	}
	u := &webAuthnUser{handle: handle, name: subject}
	for _, c := range creds {
		u.creds = append(u.creds, toLibraryCredential(c))
	}
	return u, nil
}

func (s storeUsers) update(ctx context.Context, subject string, cred *gowebauthn.Credential) error {
	return s.store.UpdateWebAuthnCredential(ctx, subject, fromLibraryCredential(*cred))
}

// webAuthnUser implements go-webauthn's User.
type webAuthnUser struct {
	handle []byte
	name   string
	creds  []gowebauthn.Credential
}

func (u *webAuthnUser) WebAuthnID() []byte                           { return u.handle }
func (u *webAuthnUser) WebAuthnName() string                         { return u.name }
func (u *webAuthnUser) WebAuthnDisplayName() string                  { return u.name }
func (u *webAuthnUser) WebAuthnCredentials() []gowebauthn.Credential { return u.creds }

// toLibraryCredential and fromLibraryCredential map a credential record
// between our type and go-webauthn's; every field of Credential
// survives both ways.
func toLibraryCredential(c Credential) gowebauthn.Credential {
	var flags protocol.AuthenticatorFlags
	for _, f := range []struct {
		set  bool
		flag protocol.AuthenticatorFlags
	}{
		{c.UserPresent, protocol.FlagUserPresent},
		{c.UserVerified, protocol.FlagUserVerified},
		{c.BackupEligible, protocol.FlagBackupEligible},
		{c.BackupState, protocol.FlagBackupState},
	} {
		if f.set {
			flags |= f.flag
		}
	}
	var transports []protocol.AuthenticatorTransport
	for _, t := range c.Transports {
		transports = append(transports, protocol.AuthenticatorTransport(t))
	}
	return gowebauthn.Credential{
		ID:                bytes.Clone(c.ID),
		PublicKey:         bytes.Clone(c.PublicKey),
		AttestationType:   c.AttestationType,
		AttestationFormat: c.AttestationFormat,
		Transport:         transports,
		Flags:             gowebauthn.NewCredentialFlags(flags),
		Authenticator: gowebauthn.Authenticator{
			AAGUID:       bytes.Clone(c.AAGUID),
			SignCount:    c.SignCount,
			CloneWarning: c.CloneWarning,
			Attachment:   protocol.AuthenticatorAttachment(c.Attachment),
		},
	}
}

func fromLibraryCredential(c gowebauthn.Credential) Credential {
	var transports []string
	for _, t := range c.Transport {
		transports = append(transports, string(t))
	}
	return Credential{
		ID:                bytes.Clone(c.ID),
		PublicKey:         bytes.Clone(c.PublicKey),
		AttestationType:   c.AttestationType,
		AttestationFormat: c.AttestationFormat,
		Transports:        transports,
		UserPresent:       c.Flags.UserPresent,
		UserVerified:      c.Flags.UserVerified,
		BackupEligible:    c.Flags.BackupEligible,
		BackupState:       c.Flags.BackupState,
		AAGUID:            bytes.Clone(c.Authenticator.AAGUID),
		SignCount:         c.Authenticator.SignCount,
		CloneWarning:      c.Authenticator.CloneWarning,
		Attachment:        string(c.Authenticator.Attachment),
	}
}
