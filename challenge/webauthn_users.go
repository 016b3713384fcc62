package challenge

import (
	"bytes"
	"context"
	"slices"
	"sync"

	"github.com/go-webauthn/webauthn/webauthn"
)

// MemoryWebAuthnCredentials is an in-memory WebAuthnStore: subjects, their
// WebAuthn user handles and credential records. It suits tests, demos and
// servers that load credentials from a file at start; a production
// deployment keeps them in its user database. It also implements the
// deprecated WebAuthnCredentials. Safe for concurrent use.
type MemoryWebAuthnCredentials struct {
	mu    sync.Mutex
	users map[string]*memoryWebAuthnUser
}

type memoryWebAuthnUser struct {
	handle []byte
	creds  []WebAuthnCredential
}

// NewMemoryWebAuthnCredentials returns an empty credential database.
func NewMemoryWebAuthnCredentials() *MemoryWebAuthnCredentials {
	return &MemoryWebAuthnCredentials{users: map[string]*memoryWebAuthnUser{}}
}

// AddCredential registers a credential for subject, whose WebAuthn user
// handle is userHandle (the handle given to the authenticator at
// registration).
func (m *MemoryWebAuthnCredentials) AddCredential(subject string, userHandle []byte, cred WebAuthnCredential) {
	m.mu.Lock()
	defer m.mu.Unlock()
	u, ok := m.users[subject]
	if !ok {
		u = &memoryWebAuthnUser{handle: bytes.Clone(userHandle)}
		m.users[subject] = u
	}
	u.creds = append(u.creds, cred)
}

// Add registers a credential for subject, as AddCredential does; the
// fields of WebAuthnCredential are kept.
//
// Deprecated: use AddCredential.
func (m *MemoryWebAuthnCredentials) Add(subject string, userHandle []byte, cred webauthn.Credential) {
	m.AddCredential(subject, userHandle, fromLibraryCredential(cred))
}

// WebAuthnUserCredentials implements WebAuthnStore: it returns subject's
// user handle and a copy of their credentials, or ErrUnknownSubject.
func (m *MemoryWebAuthnCredentials) WebAuthnUserCredentials(_ context.Context, subject string) ([]byte, []WebAuthnCredential, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	u, ok := m.users[subject]
	if !ok {
		return nil, nil, ErrUnknownSubject
	}
	return bytes.Clone(u.handle), slices.Clone(u.creds), nil
}

// UpdateWebAuthnCredential implements WebAuthnStore: it replaces the
// record of subject's credential with cred's ID, or returns
// ErrUnknownSubject.
func (m *MemoryWebAuthnCredentials) UpdateWebAuthnCredential(_ context.Context, subject string, cred WebAuthnCredential) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	u, ok := m.users[subject]
	if !ok {
		return ErrUnknownSubject
	}
	for i := range u.creds {
		if bytes.Equal(u.creds[i].ID, cred.ID) {
			u.creds[i] = cred
			return nil
		}
	}
	return ErrUnknownSubject
}

// WebAuthnUser returns a copy of subject's user and credentials, or
// ErrUnknownSubject.
//
// Deprecated: use WebAuthnUserCredentials.
func (m *MemoryWebAuthnCredentials) WebAuthnUser(ctx context.Context, subject string) (webauthn.User, error) {
	return storeUsers{m}.WebAuthnUser(ctx, subject)
}

// UpdateCredential stores the credential's new sign counter and flags.
//
// Deprecated: use UpdateWebAuthnCredential.
func (m *MemoryWebAuthnCredentials) UpdateCredential(ctx context.Context, subject string, cred *webauthn.Credential) error {
	return storeUsers{m}.UpdateCredential(ctx, subject, cred)
}

// SignCount returns the stored sign counter of subject's first credential.
func (m *MemoryWebAuthnCredentials) SignCount(subject string) uint32 {
	m.mu.Lock()
	defer m.mu.Unlock()
	if u, ok := m.users[subject]; ok && len(u.creds) > 0 {
		return u.creds[0].SignCount
	}
	return 0
}
