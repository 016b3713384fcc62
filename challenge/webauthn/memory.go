package webauthn

import (
	"bytes"
	"context"
	"slices"
	"sync"

	"github.com/stepupgrpc/stepup/challenge"
)

// MemoryCredentials is an in-memory Store: subjects, their
// WebAuthn user handles and credential records. It suits tests, demos and
// servers that load credentials from a file at start; a production
// deployment keeps them in its user database. Safe for concurrent use.
type MemoryCredentials struct {
	mu    sync.Mutex
	users map[string]*memoryWebAuthnUser
}

type memoryWebAuthnUser struct {
	handle []byte
	creds  []Credential
}

// NewMemoryCredentials returns an empty credential database.
func NewMemoryCredentials() *MemoryCredentials {
	return &MemoryCredentials{users: map[string]*memoryWebAuthnUser{}}
}

// AddCredential registers a credential for subject, whose WebAuthn user
// handle is userHandle (the handle given to the authenticator at
// registration).
func (m *MemoryCredentials) AddCredential(subject string, userHandle []byte, cred Credential) {
	m.mu.Lock()
	defer m.mu.Unlock()
	u, ok := m.users[subject]
	if !ok {
		u = &memoryWebAuthnUser{handle: bytes.Clone(userHandle)}
		m.users[subject] = u
	}
	u.creds = append(u.creds, cred)
}

// WebAuthnUserCredentials implements Store: it returns subject's
// user handle and a copy of their credentials, or challenge.ErrUnknownSubject.
func (m *MemoryCredentials) WebAuthnUserCredentials(_ context.Context, subject string) ([]byte, []Credential, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	u, ok := m.users[subject]
	if !ok {
		return nil, nil, challenge.ErrUnknownSubject
	}
	return bytes.Clone(u.handle), slices.Clone(u.creds), nil
}

// UpdateWebAuthnCredential implements Store: it replaces the
// record of subject's credential with cred's ID, or returns
// challenge.ErrUnknownSubject.
func (m *MemoryCredentials) UpdateWebAuthnCredential(_ context.Context, subject string, cred Credential) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	u, ok := m.users[subject]
	if !ok {
		return challenge.ErrUnknownSubject
	}
	for i := range u.creds {
		if bytes.Equal(u.creds[i].ID, cred.ID) {
			u.creds[i] = cred
			return nil
		}
	}
	return challenge.ErrUnknownSubject
}

// SignCount returns the stored sign counter of subject's first credential.
func (m *MemoryCredentials) SignCount(subject string) uint32 {
	m.mu.Lock()
	defer m.mu.Unlock()
	if u, ok := m.users[subject]; ok && len(u.creds) > 0 {
		return u.creds[0].SignCount
	}
	return 0
}
