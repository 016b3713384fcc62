package challenge

import (
	"bytes"
	"context"
	"sync"

	"github.com/go-webauthn/webauthn/webauthn"
)

// MemoryWebAuthnCredentials is an in-memory WebAuthnCredentials: subjects,
// their WebAuthn user handles and credential records. It suits tests, demos
// and servers that load credentials from a file at start; a production
// deployment keeps them in its user database. Safe for concurrent use.
type MemoryWebAuthnCredentials struct {
	mu    sync.Mutex
	users map[string]*memoryWebAuthnUser
}

// memoryWebAuthnUser implements webauthn.User.
type memoryWebAuthnUser struct {
	handle []byte
	name   string
	creds  []webauthn.Credential
}

func (u *memoryWebAuthnUser) WebAuthnID() []byte                         { return u.handle }
func (u *memoryWebAuthnUser) WebAuthnName() string                       { return u.name }
func (u *memoryWebAuthnUser) WebAuthnDisplayName() string                { return u.name }
func (u *memoryWebAuthnUser) WebAuthnCredentials() []webauthn.Credential { return u.creds }

// NewMemoryWebAuthnCredentials returns an empty credential database.
func NewMemoryWebAuthnCredentials() *MemoryWebAuthnCredentials {
	return &MemoryWebAuthnCredentials{users: map[string]*memoryWebAuthnUser{}}
}

// Add registers a credential for subject, whose WebAuthn user handle is
// userHandle (the handle given to the authenticator at registration).
func (m *MemoryWebAuthnCredentials) Add(subject string, userHandle []byte, cred webauthn.Credential) {
	m.mu.Lock()
	defer m.mu.Unlock()
	u, ok := m.users[subject]
	if !ok {
		u = &memoryWebAuthnUser{handle: bytes.Clone(userHandle), name: subject}
		m.users[subject] = u
	}
	u.creds = append(u.creds, cred)
}

// WebAuthnUser returns a copy of subject's user and credentials, or
// ErrUnknownSubject.
func (m *MemoryWebAuthnCredentials) WebAuthnUser(_ context.Context, subject string) (webauthn.User, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	u, ok := m.users[subject]
	if !ok {
		return nil, ErrUnknownSubject
	}
	return &memoryWebAuthnUser{handle: u.handle, name: u.name, creds: append([]webauthn.Credential(nil), u.creds...)}, nil
}

// UpdateCredential stores the credential's new sign counter and flags.
func (m *MemoryWebAuthnCredentials) UpdateCredential(_ context.Context, subject string, cred *webauthn.Credential) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	u, ok := m.users[subject]
	if !ok {
		return ErrUnknownSubject
	}
	for i := range u.creds {
		if bytes.Equal(u.creds[i].ID, cred.ID) {
			u.creds[i] = *cred
			return nil
		}
	}
	return ErrUnknownSubject
}

// SignCount returns the stored sign counter of subject's first credential.
func (m *MemoryWebAuthnCredentials) SignCount(subject string) uint32 {
	m.mu.Lock()
	defer m.mu.Unlock()
	if u, ok := m.users[subject]; ok && len(u.creds) > 0 {
		return u.creds[0].Authenticator.SignCount
	}
	return 0
}
