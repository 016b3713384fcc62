package interceptor

import (
	"errors"
	"sync"
	"time"
)

// GrantStore keeps the step-up grants a Client earned, by server
// authority, for reuse within their max_age. The default is in memory, for
// the Client's lifetime; a store that persists grants lets a command-line
// client reuse one across runs. A grant is a bearer secret bound to the
// client's DPoP key: keep a persisted one as private as the key.
type GrantStore interface {
	// Grant returns the authority's grant, "" when there is none or it
	// expired by now.
	Grant(authority string, now time.Time) string
	// KeepGrant stores a grant until expires.
	KeepGrant(authority, grant string, expires time.Time)
	// ForgetGrants drops every grant.
	ForgetGrants()
}

// MemoryGrants is the default GrantStore: a map, safe for concurrent use.
type MemoryGrants struct {
	mu     sync.Mutex
	grants map[string]heldGrant
}

// Grant implements GrantStore.
func (m *MemoryGrants) Grant(authority string, now time.Time) string {
	m.mu.Lock()
	defer m.mu.Unlock()
	g, ok := m.grants[authority]
	if !ok {
		return ""
	}
	if !now.Before(g.expires) {
		delete(m.grants, authority)
		return ""
	}
	return g.value
}

// KeepGrant implements GrantStore.
func (m *MemoryGrants) KeepGrant(authority, grant string, expires time.Time) {
	m.mu.Lock()
	if m.grants == nil {
		m.grants = map[string]heldGrant{}
	}
	m.grants[authority] = heldGrant{value: grant, expires: expires}
	m.mu.Unlock()
}

// ForgetGrants implements GrantStore.
func (m *MemoryGrants) ForgetGrants() {
	m.mu.Lock()
	clear(m.grants)
	m.mu.Unlock()
}

// WithGrantStore sets where grants are kept (default: MemoryGrants).
func WithGrantStore(s GrantStore) ClientOption {
	return clientOptionFunc(func(c *Client) error {
		if s == nil {
			return errors.New("interceptor: WithGrantStore(nil)")
		}
		c.grants = s
		return nil
	})
}

type heldGrant struct {
	value   string
	expires time.Time
}
