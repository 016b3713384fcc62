package browserkit

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"regexp"
	"time"
)

// Authenticator is a WebAuthn authenticator (webauthn.SoftAuthenticator):
// request options JSON in, assertion JSON out.
type Authenticator interface {
	GetAssertion(ctx context.Context, requestOptionsJSON []byte) ([]byte, error)
}

// ApproveOverHTTP does what the approver page's script does, without a
// browser: signs subject in at origin with the passkey of auth, finds the
// approval whose matching code is code, and approves it with a second
// assertion. It returns the amount_minor and to_iban the page showed for it
// (empty when it shows no such field).
func ApproveOverHTTP(ctx context.Context, origin string, auth Authenticator, subject, code string) (amount, to string, err error) {
	jar, err := cookiejar.New(nil)
	if err != nil {
		return "", "", err
	}
	c := &http.Client{Jar: jar, Timeout: 10 * time.Second}
	post := func(path, csrf string, body any) ([]byte, error) {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, err
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, origin+"/"+path, bytes.NewReader(b))
		if err != nil {
			return nil, err
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Origin", origin)
		req.Header.Set("Sec-Fetch-Site", "same-origin")
		if csrf != "" {
			req.Header.Set("X-CSRF-Token", csrf)
		}
		resp, err := c.Do(req)
		if err != nil {
			return nil, err
		}
		defer resp.Body.Close()
		out, err := io.ReadAll(resp.Body)
		if err != nil || resp.StatusCode >= 300 {
			return nil, fmt.Errorf("POST %s: %s %s %v", path, resp.Status, out, err)
		}
		return out, nil
	}
	opts, err := post("signin/begin", "", map[string]string{"subject": subject})
	if err != nil {
		return "", "", err
	}
	assertion, err := auth.GetAssertion(ctx, opts)
	if err != nil {
		return "", "", err
	}
	if _, err := post("signin/finish", "", json.RawMessage(assertion)); err != nil {
		return "", "", err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, origin+"/", nil)
	if err != nil {
		return "", "", err
	}
	resp, err := c.Do(req)
	if err != nil {
		return "", "", err
	}
	page, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return "", "", err
	}
	csrf := regexp.MustCompile(`name="stepup-csrf" content="([^"]+)"`).FindSubmatch(page)
	item := regexp.MustCompile(`<span class="code" data-id="([^"]+)">` + regexp.QuoteMeta(code) + `</span>`).FindSubmatch(page)
	if csrf == nil || item == nil {
		return "", "", fmt.Errorf("the page lists no approval with matching code %s", code)
	}
	id := string(item[1])
	if m := regexp.MustCompile(`data-field="amount_minor">([^<]*)<`).FindSubmatch(page); m != nil {
		amount = string(m[1])
	}
	if m := regexp.MustCompile(`data-field="to_iban">([^<]*)<`).FindSubmatch(page); m != nil {
		to = string(m[1])
	}
	if opts, err = post("approve/options", string(csrf[1]), map[string]string{"id": id}); err != nil {
		return "", "", err
	}
	if assertion, err = auth.GetAssertion(ctx, opts); err != nil {
		return "", "", err
	}
	if _, err := post("approve", string(csrf[1]), map[string]any{"id": id, "assertion": json.RawMessage(assertion)}); err != nil {
		return "", "", err
	}
	return amount, to, nil
}
