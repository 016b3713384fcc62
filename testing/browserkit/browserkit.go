// Package browserkit drives a headless Chromium for the approver page's
// tests and the demo: it starts the browser, gives it a WebAuthn virtual
// authenticator holding a passkey (DevTools protocol, WebAuthn domain),
// signs in to the page and finds an approval by its matching code.
package browserkit

import (
	"context"
	"crypto/ecdsa"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"time"

	"github.com/chromedp/cdproto/webauthn"
	"github.com/chromedp/chromedp"
)

// Chromium returns the browser to run: $STEPUP_CHROMIUM when set (false
// when it is not an executable, so that STEPUP_CHROMIUM=none runs without
// one), else chromium (or chromium-browser) on PATH; false when there is
// none.
func Chromium() (string, bool) {
	if p := os.Getenv("STEPUP_CHROMIUM"); p != "" {
		p, err := exec.LookPath(p)
		return p, err == nil
	}
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p, true
		}
	}
	return "", false
}

// Browser is one headless Chromium with one tab.
type Browser struct {
	ctx    context.Context
	cancel func()
}

// Start runs the browser at path, headless, without a sandbox (CI runs as
// root), and opens its tab.
func Start(path string) (*Browser, error) {
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path), chromedp.NoSandbox, chromedp.WindowSize(900, 700), chromedp.Flag("disable-gpu", true))
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelTab := chromedp.NewContext(actx)
	b := &Browser{ctx: ctx, cancel: func() { cancelTab(); cancelAlloc() }}
	// The first call starts the browser: no timeout on its context (see
	// chromedp.Run).
	if _, err := chromedp.Call(ctx, webauthn.Enable, webauthn.EnableParams{}); err != nil {
		b.Close()
		return nil, fmt.Errorf("browserkit: chromium did not start: %w", err)
	}
	return b, nil
}

// Context is the tab's chromedp context.
func (b *Browser) Context() context.Context { return b.ctx }

// Close stops the browser.
func (b *Browser) Close() { b.cancel() }

// AddPasskey gives the tab a virtual platform authenticator (user
// verification on, presence simulated) holding a resident P-256 credential
// for rpID.
func (b *Browser) AddPasskey(rpID string, userHandle, credentialID []byte, key *ecdsa.PrivateKey) error {
	pkcs8, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return err
	}
	res, err := chromedp.Call(b.ctx, webauthn.AddVirtualAuthenticator, webauthn.AddVirtualAuthenticatorParams{
		Options: &webauthn.VirtualAuthenticatorOptions{
			Protocol: webauthn.AuthenticatorProtocolCtap2, Transport: webauthn.AuthenticatorTransportInternal,
			HasResidentKey: true, HasUserVerification: true, IsUserVerified: true, AutomaticPresenceSimulation: true,
			// cdproto always sends generateCmtgKeyOnNextOperation with a
			// credential, which Chromium refuses unless the authenticator
			// supports the extension.
			HasCmtgKey: true,
		},
	})
	if err != nil {
		return fmt.Errorf("browserkit: virtual authenticator: %w", err)
	}
	_, err = chromedp.Call(b.ctx, webauthn.AddCredential, webauthn.AddCredentialParams{
		AuthenticatorID: res.AuthenticatorID,
		Credential: &webauthn.Credential{
			CredentialID: credentialID, IsResidentCredential: true, RpID: rpID,
			PrivateKey: pkcs8, UserHandle: userHandle, SignCount: 1,
		},
	})
	if err != nil {
		return fmt.Errorf("browserkit: passkey: %w", err)
	}
	return nil
}

// Do runs steps, each run bounded by timeout.
func (b *Browser) Do(timeout time.Duration, steps ...chromedp.Action[chromedp.Void]) error {
	ctx, cancel := context.WithTimeout(b.ctx, timeout)
	defer cancel()
	return chromedp.Do(ctx, steps...)
}

// Text returns the visible text of the first element at the CSS selector.
func (b *Browser) Text(sel string) (string, error) {
	ctx, cancel := context.WithTimeout(b.ctx, 20*time.Second)
	defer cancel()
	return chromedp.Run(ctx, chromedp.Text(chromedp.CSS(sel)))
}

// SignIn opens the approver page at pageURL and signs in as subject with
// the passkey.
func (b *Browser) SignIn(pageURL, subject string) error {
	err := b.Do(20*time.Second,
		chromedp.Navigate(pageURL),
		chromedp.WaitVisible(chromedp.CSS("#signin input[name=subject]")),
		chromedp.SendKeys(chromedp.CSS("#signin input[name=subject]"), subject),
		chromedp.Click(chromedp.CSS("#signin-button")),
		chromedp.WaitVisible(chromedp.CSS("form[action$='signout']")),
	)
	if err != nil {
		return fmt.Errorf("browserkit: sign in: %w", err)
	}
	return nil
}

// FindApproval reloads the page until it lists the approval with the
// matching code, and returns the CSS selector of its section. It gives up
// after about ten seconds.
func (b *Browser) FindApproval(pageURL, code string) (string, error) {
	find := `(() => { const s = [...document.querySelectorAll("span.code")].find(e => e.textContent === ` +
		strconv.Quote(code) + `); return s ? s.dataset.id : ""; })()`
	for range 100 {
		if err := b.Do(20*time.Second, chromedp.Navigate(pageURL), chromedp.WaitVisible(chromedp.CSS("h1"))); err != nil {
			return "", fmt.Errorf("browserkit: load the page: %w", err)
		}
		id, err := chromedp.Run(b.ctx, chromedp.Evaluate[string](find))
		if err != nil {
			return "", err
		}
		if id != "" {
			return `section[id="approval-` + id + `"]`, nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return "", errors.New("browserkit: no approval with matching code " + code + " appeared on the page")
}

// Approve clicks the Approve button of the approval at sel (the passkey
// signs) and waits until the page removes it.
func (b *Browser) Approve(sel string) error {
	if err := b.Do(20*time.Second, chromedp.Click(chromedp.CSS(sel+" button.approve")), chromedp.WaitNotPresent(chromedp.CSS(sel))); err != nil {
		return fmt.Errorf("browserkit: approve: %w", err)
	}
	return nil
}

// Deny clicks the Deny button of the approval at sel and waits until the
// page no longer lists it.
func (b *Browser) Deny(sel string) error {
	if err := b.Do(20*time.Second, chromedp.Click(chromedp.CSS(sel+" button.deny")), chromedp.WaitVisible(chromedp.CSS("h1")),
		chromedp.WaitNotPresent(chromedp.CSS(sel))); err != nil {
		return fmt.Errorf("browserkit: deny: %w", err)
	}
	return nil
}
