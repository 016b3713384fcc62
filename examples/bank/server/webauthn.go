package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/url"
	"slices"

	"github.com/stepupgrpc/stepup/challenge/webauthn"
	"github.com/stepupgrpc/stepup/cmd/cli"
	"github.com/stepupgrpc/stepup/internal/base64url"
)

// passkeyFile is one passkey of --webauthn-credentials: what a WebAuthn
// registration returns (the attested credential data), base64url.
type passkeyFile struct {
	ID        string `json:"id"`
	PublicKey string `json:"public_key"`
}

// loadPasskeys reads --webauthn-credentials: {"subject": [passkeyFile]}.
// Each subject's user handle (the user.id of its registration) is the
// subject's UTF-8 bytes.
func loadPasskeys(path string) (*webauthn.MemoryCredentials, []string, error) {
	data, err := cli.ReadFile(path, 1<<20)
	if err != nil {
		return nil, nil, err
	}
	var bySubject map[string][]passkeyFile
	if err := json.Unmarshal(data, &bySubject); err != nil {
		return nil, nil, fmt.Errorf("%s: %w", path, err)
	}
	store := webauthn.NewMemoryCredentials()
	for _, subject := range slices.Sorted(maps.Keys(bySubject)) {
		keys := bySubject[subject]
		if subject == "" || len(keys) == 0 {
			return nil, nil, fmt.Errorf("%s: subject %q has no passkey", path, subject)
		}
		for i, k := range keys {
			id, err1 := base64url.DecodeString(k.ID)
			pub, err2 := base64url.DecodeString(k.PublicKey)
			if err := errors.Join(err1, err2); err != nil || len(id) == 0 || len(pub) == 0 {
				return nil, nil, fmt.Errorf("%s: %s[%d]: id and public_key must be base64url (no padding): %v", path, subject, i, err)
			}
			store.AddCredential(subject, []byte(subject), webauthn.Credential{ID: id, PublicKey: pub})
		}
	}
	return store, slices.Sorted(maps.Keys(bySubject)), nil
}

// relyingParty is the WebAuthn relying party of --webauthn-origin: its host
// is the RP ID.
func relyingParty(origin string) (webauthn.Config, error) {
	u, err := url.Parse(origin)
	if err != nil || u.Hostname() == "" {
		return webauthn.Config{}, fmt.Errorf("--webauthn-origin %q is not an origin", origin)
	}
	return webauthn.Config{RPID: u.Hostname(), RPDisplayName: "Example bank", RPOrigins: []string{origin}}, nil
}
