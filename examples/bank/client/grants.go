package main

import (
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/stepupgrpc/stepup/cmd/cli"
)

// fileGrants is an interceptor.GrantStore in a JSON file (mode 0600), so
// that a grant earned by one run of the client (add-payee after a TOTP
// answer) is reused by the next within its max_age, instead of prompting
// again. The grant is bound to the DPoP key: the file is as private as the
// key file next to it.
type fileGrants struct {
	path string
	mu   sync.Mutex
}

type storedGrant struct {
	Grant   string    `json:"grant"`
	Expires time.Time `json:"expires"`
}

func (f *fileGrants) load() map[string]storedGrant {
	m := map[string]storedGrant{}
	data, err := cli.ReadFile(f.path, cli.MaxKeyFile)
	if err == nil {
		_ = json.Unmarshal(data, &m) // a damaged file is as good as none
	}
	return m
}

func (f *fileGrants) save(m map[string]storedGrant) {
	data, err := json.Marshal(m)
	if err != nil {
		return
	}
	tmp, err := os.CreateTemp(filepath.Dir(f.path), ".grants-*")
	if err != nil {
		return
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return
	}
	if tmp.Close() == nil {
		_ = os.Rename(tmp.Name(), f.path)
	}
}

// Grant implements interceptor.GrantStore.
func (f *fileGrants) Grant(authority string, now time.Time) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	g, ok := f.load()[authority]
	if !ok || !now.Before(g.Expires) {
		return ""
	}
	return g.Grant
}

// KeepGrant implements interceptor.GrantStore.
func (f *fileGrants) KeepGrant(authority, grant string, expires time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	m := f.load()
	for a, g := range m {
		if !time.Now().Before(g.Expires) {
			delete(m, a)
		}
	}
	m[authority] = storedGrant{Grant: grant, Expires: expires}
	f.save(m)
}

// ForgetGrants implements interceptor.GrantStore.
func (f *fileGrants) ForgetGrants() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := os.Remove(f.path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return
	}
}
