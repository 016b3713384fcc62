package approval

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"embed"
	"encoding/base64"
	"encoding/json"
	"errors"
	"html/template"
	"io/fs"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"google.golang.org/grpc/codes"

	"github.com/stepupgrpc/stepup/challenge"
	approvalfactor "github.com/stepupgrpc/stepup/challenge/approval"
	"github.com/stepupgrpc/stepup/interceptor"
)

// Reason is the audit reason of the page's own refusals; the reasons of
// challenge (ReasonApprovalDecided, ReasonWebAuthnInvalid...) appear too.
type Reason = interceptor.Reason

// The page's own reasons (docs/AUDIT.md).
const (
	// ReasonCrossOrigin: a POST whose Origin is missing or is not Config.Origin,
	// or that the browser marks cross-site (Sec-Fetch-Site): refused 403.
	ReasonCrossOrigin Reason = "APPROVER_CROSS_ORIGIN"
	// ReasonCSRFInvalid: a POST of a signed-in page without the session's
	// CSRF token, or with another: refused 403.
	ReasonCSRFInvalid Reason = "APPROVER_CSRF_INVALID"
	// ReasonNotSignedIn: a POST that needs a session without a valid one
	// (none, forged, expired): refused 401.
	ReasonNotSignedIn Reason = "APPROVER_NOT_SIGNED_IN"
	// ReasonBadRequest: a body that is not what the endpoint reads (JSON
	// shape, size over 64 KiB): refused 400.
	ReasonBadRequest Reason = "APPROVER_BAD_REQUEST"
)

// Cookie names. Both are Secure, HttpOnly, SameSite=Strict and, as their
// __Host- prefix requires, host-only (no Domain) with Path "/": a browser
// takes them only from this host over a secure connection, so that a
// sibling subdomain cannot plant or overwrite them. They are sent to every
// path of the host: give the page a host of its own.
const (
	// SessionCookie holds the session token (challenge.SessionType) after
	// the passkey sign-in.
	SessionCookie = "__Host-stepup_approver"
	// SignInCookie holds the sign-in state between the ceremony's steps.
	SignInCookie = "__Host-stepup_signin"
)

// ContentSecurityPolicy is sent with every response: scripts, styles and
// requests only from the page itself, no inline script or style, no
// framing, forms posting only to the page.
const ContentSecurityPolicy = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; " +
	"img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"

// maxBody bounds a request body (a WebAuthn assertion is a few KiB).
const maxBody = 64 << 10

//go:embed page.html
var pageHTML string

//go:embed static
var staticFiles embed.FS

var pageTemplate = template.Must(template.New("page").Parse(pageHTML))

// Approvals is the approver side of the approval factor: what the page
// calls. The *approval.Factor of challenge/approval implements it (so
// does the deprecated *challenge.Service); see its methods for each.
type Approvals interface {
	PendingApprovals(ctx context.Context, subject string) ([]*approvalfactor.Approval, error)
	ApprovalRequestOptions(ctx context.Context, subject, id string) ([]byte, *approvalfactor.Approval, challenge.Reason, error)
	Approve(ctx context.Context, subject, id string, assertion []byte) (*approvalfactor.Approval, challenge.Reason, error)
	Deny(ctx context.Context, subject, id string) (*approvalfactor.Approval, challenge.Reason, error)
	BeginApproverSignIn(ctx context.Context, subject string) (state string, options []byte, reason challenge.Reason, err error)
	FinishApproverSignIn(ctx context.Context, state string, assertion []byte) (session, subject string, reason challenge.Reason, err error)
	CheckApproverSession(ctx context.Context, session string) (subject string, reason challenge.Reason, err error)
	EndApproverSession(ctx context.Context, session string) error
}

var (
	_ Approvals = (*approvalfactor.Factor)(nil)
	_ Approvals = (*challenge.Service)(nil)
)

// Config configures the approver page.
type Config struct {
	// Approvals is the approval factor the page decides for: the
	// *approval.Factor of challenge/approval wired (challenge.WithFactor)
	// into a Service with the same keys and store as the Guards'.
	// Required, unless Service is set.
	Approvals Approvals
	// Service is the step-up service, built with the approval factor.
	//
	// Deprecated: set Approvals to the approval factor itself. Service is
	// used when Approvals is nil; it goes in the next release.
	Service *challenge.Service
	// Origin is the page's own origin, "https://approve.example.com" (a
	// port when not the default): a POST must come from it. It must be
	// the origin the Service's approver passkeys accept
	// (webauthn.Factor.Approver). Required.
	Origin string
	// BasePath is where the Handler is mounted, starting and ending with
	// "/". Default "/".
	BasePath string
	// Audit receives one event per step: sign-in, approval shown,
	// approved, denied, and each refusal. Default: none.
	Audit interceptor.AuditSink
}

// Handler is the approver page, an http.Handler to mount at
// Config.BasePath (on a TLS server: its cookies are Secure). Build it with
// New; it is safe for concurrent use and keeps no state of its own, so
// every replica sharing the Service's keys and store serves the same page.
type Handler struct {
	svc    Approvals
	origin string
	base   string
	audit  interceptor.AuditSink
	cross  *http.CrossOriginProtection
	static http.Handler
	routes map[string]func(w http.ResponseWriter, r *http.Request)
}

// New returns the approver page. Every configuration mistake is reported
// here.
func New(cfg Config) (*Handler, error) {
	approvals := cfg.Approvals
	if approvals == nil {
		if cfg.Service == nil {
			return nil, errors.New("approval: Config.Approvals is required")
		}
		if !cfg.Service.ApprovalEnabled() {
			return nil, errors.New("approval: the Service has no approval factor (challenge/approval)")
		}
		approvals = cfg.Service
	}
	u, err := url.Parse(cfg.Origin)
	if err != nil || u.Scheme == "" || u.Host == "" || u.Path != "" || u.RawQuery != "" || u.User != nil || u.Fragment != "" {
		return nil, errors.New(`approval: Config.Origin must be an origin, "https://host[:port]"`)
	}
	base := cfg.BasePath
	if base == "" {
		base = "/"
	}
	if !strings.HasPrefix(base, "/") || !strings.HasSuffix(base, "/") {
		return nil, errors.New(`approval: Config.BasePath must start and end with "/"`)
	}
	sub, err := fs.Sub(staticFiles, "static")
	if err != nil {
		return nil, err
	}
	h := &Handler{
		svc: approvals, origin: cfg.Origin, base: base, audit: cfg.Audit,
		cross:  http.NewCrossOriginProtection(),
		static: http.StripPrefix(base+"static/", http.FileServerFS(sub)),
	}
	if h.audit == nil {
		h.audit = interceptor.AuditFunc(func(context.Context, *interceptor.Event) {})
	}
	h.routes = map[string]func(http.ResponseWriter, *http.Request){
		"signin/begin":    h.signInBegin,
		"signin/finish":   h.signInFinish,
		"approve/options": h.approveOptions,
		"approve":         h.approve,
		"deny":            h.deny,
		"signout":         h.signOut,
	}
	return h, nil
}

// ServeHTTP serves the page (GET BasePath), its script and style (GET
// BasePath+"static/..."), and the POST endpoints of the sign-in and of
// the decisions.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	hd := w.Header()
	hd.Set("Content-Security-Policy", ContentSecurityPolicy)
	hd.Set("X-Content-Type-Options", "nosniff")
	hd.Set("X-Frame-Options", "DENY")
	// Not no-referrer: under it a browser sends "Origin: null" with a form
	// POST, which sameOrigin refuses.
	hd.Set("Referrer-Policy", "same-origin")
	hd.Set("Cache-Control", "no-store")
	rest, ok := strings.CutPrefix(r.URL.Path, h.base)
	if !ok {
		http.NotFound(w, r)
		return
	}
	switch {
	case r.Method == http.MethodGet && rest == "":
		h.page(w, r)
	case r.Method == http.MethodGet && strings.HasPrefix(rest, "static/"):
		h.static.ServeHTTP(w, r)
	case r.Method == http.MethodPost && h.routes[rest] != nil:
		if !h.sameOrigin(r) {
			h.refuse(w, r, "", nil, ReasonCrossOrigin, http.StatusForbidden)
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, maxBody)
		h.routes[rest](w, r)
	default:
		http.NotFound(w, r)
	}
}

// sameOrigin reports whether a POST comes from the page itself: the
// browser's Sec-Fetch-Site (http.CrossOriginProtection), and an Origin
// header, required, equal to Config.Origin.
func (h *Handler) sameOrigin(r *http.Request) bool {
	if h.cross.Check(r) != nil {
		return false
	}
	o := r.Header.Get("Origin")
	return o != "" && subtle.ConstantTimeCompare([]byte(o), []byte(h.origin)) == 1
}

// csrfToken is the session's CSRF token: base64url SHA-256 of
// "stepup-csrf-v1." + the session token. The page embeds it; another site
// can neither read the page nor the HttpOnly cookie it derives from.
func csrfToken(session string) string {
	s := sha256.Sum256([]byte("stepup-csrf-v1." + session))
	return base64.RawURLEncoding.EncodeToString(s[:])
}

// session returns the session token and its subject. A request without
// one gets ReasonNotSignedIn; one whose session is not valid, the
// Service's reason (ended by a sign-out, revoked, forged, expired). err is
// a store failure: refuse (fail closed).
func (h *Handler) session(r *http.Request) (token, subject string, reason Reason, err error) {
	c, err := r.Cookie(SessionCookie)
	if err != nil {
		return "", "", ReasonNotSignedIn, nil
	}
	sub, why, err := h.svc.CheckApproverSession(r.Context(), c.Value)
	switch {
	case err != nil:
		return "", "", "", err
	case why == challenge.ReasonApproverSessionInvalid:
		return "", "", ReasonNotSignedIn, nil
	case why != "":
		return "", "", Reason(why), nil
	}
	return c.Value, sub, "", nil
}

// signedIn checks the session and the CSRF token (the X-CSRF-Token header,
// or the csrf form field), refusing the request when either is missing or
// wrong. It returns the subject.
func (h *Handler) signedIn(w http.ResponseWriter, r *http.Request) (string, bool) {
	token, sub, reason, err := h.session(r)
	if err != nil {
		h.fail(w, r, "", nil, err)
		return "", false
	}
	if reason != "" {
		h.refuse(w, r, "", nil, reason, http.StatusUnauthorized)
		return "", false
	}
	got := r.Header.Get("X-CSRF-Token")
	if got == "" {
		got = r.PostFormValue("csrf")
	}
	if want := csrfToken(token); got == "" || subtle.ConstantTimeCompare([]byte(got), []byte(want)) != 1 {
		h.refuse(w, r, sub, nil, ReasonCSRFInvalid, http.StatusForbidden)
		return "", false
	}
	return sub, true
}

func (h *Handler) setCookie(w http.ResponseWriter, name, value string, maxAge int) {
	http.SetCookie(w, &http.Cookie{
		Name: name, Value: value, Path: "/", MaxAge: maxAge, // Path "/": the __Host- prefix requires it
		Secure: true, HttpOnly: true, SameSite: http.SameSiteStrictMode,
	})
}

type pageData struct {
	Base, CSRF, Subject string
	Approvals           []*approvalfactor.Approval
}

func (h *Handler) page(w http.ResponseWriter, r *http.Request) {
	token, sub, reason, err := h.session(r)
	switch {
	case err != nil:
		h.fail(w, r, "", nil, err)
		return
	case reason != "" && reason != ReasonNotSignedIn:
		// A session that was signed out or revoked: someone uses a copy
		// of its token, or the browser kept the cookie. Audited, and the
		// page asks for a sign-in.
		h.event(r, interceptor.DecisionDeny, reason, codes.Unauthenticated, "", nil, "")
		h.setCookie(w, SessionCookie, "", -1)
	}
	d := pageData{Base: h.base, Subject: sub}
	if sub != "" {
		d.CSRF = csrfToken(token)
		list, err := h.svc.PendingApprovals(r.Context(), sub)
		if err != nil {
			h.fail(w, r, sub, nil, err)
			return
		}
		d.Approvals = list
		for _, a := range list {
			h.event(r, interceptor.DecisionApprovalShown, interceptor.ReasonAllowed, codes.OK, sub, a, "")
		}
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	_ = pageTemplate.Execute(w, d)
}

// readJSON decodes a small JSON body into v, refusing unknown members.
func (h *Handler) readJSON(w http.ResponseWriter, r *http.Request, sub string, v any) bool {
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		h.refuse(w, r, sub, nil, ReasonBadRequest, http.StatusBadRequest)
		return false
	}
	return true
}

func writeJSON(w http.ResponseWriter, b []byte) {
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(b)
}

func (h *Handler) signInBegin(w http.ResponseWriter, r *http.Request) {
	var in struct {
		Subject string `json:"subject"`
	}
	if !h.readJSON(w, r, "", &in) {
		return
	}
	state, opts, reason, err := h.svc.BeginApproverSignIn(r.Context(), in.Subject)
	if err != nil {
		h.fail(w, r, in.Subject, nil, err)
		return
	}
	if reason != "" {
		h.refuse(w, r, in.Subject, nil, Reason(reason), http.StatusForbidden)
		return
	}
	h.setCookie(w, SignInCookie, state, int(challenge.MaxChallengeTTL/time.Second))
	writeJSON(w, opts)
}

func (h *Handler) signInFinish(w http.ResponseWriter, r *http.Request) {
	var assertion json.RawMessage
	if !h.readJSON(w, r, "", &assertion) {
		return
	}
	c, err := r.Cookie(SignInCookie)
	if err != nil {
		h.refuse(w, r, "", nil, Reason(challenge.ReasonSignInInvalid), http.StatusForbidden)
		return
	}
	session, sub, reason, err := h.svc.FinishApproverSignIn(r.Context(), c.Value, assertion)
	if err != nil {
		h.fail(w, r, "", nil, err)
		return
	}
	h.setCookie(w, SignInCookie, "", -1)
	if reason != "" {
		h.refuse(w, r, sub, nil, Reason(reason), http.StatusForbidden)
		return
	}
	h.setCookie(w, SessionCookie, session, 0)
	h.event(r, interceptor.DecisionApproverSignIn, interceptor.ReasonAllowed, codes.OK, sub, nil, "")
	w.WriteHeader(http.StatusNoContent)
}

type approvalRequest struct {
	ID        string          `json:"id"`
	Assertion json.RawMessage `json:"assertion,omitempty"`
}

// onApproval runs one decision endpoint for the signed-in subject: it reads
// the approval id (JSON, or the id form field when form is set), calls
// step, and answers its refusal or failure; ok reports that step succeeded
// and the caller writes the answer.
func (h *Handler) onApproval(w http.ResponseWriter, r *http.Request, form bool,
	step func(ctx context.Context, sub string, in approvalRequest) (*approvalfactor.Approval, challenge.Reason, error)) (*approvalfactor.Approval, string, bool) {
	sub, ok := h.signedIn(w, r)
	if !ok {
		return nil, "", false
	}
	var in approvalRequest
	if form {
		in.ID = r.PostFormValue("id")
	} else if !h.readJSON(w, r, sub, &in) {
		return nil, "", false
	}
	a, reason, err := step(r.Context(), sub, in)
	switch {
	case err != nil:
		h.fail(w, r, sub, a, err)
		return nil, "", false
	case reason != "":
		h.refuse(w, r, sub, a, Reason(reason), refusalStatus(reason))
		return nil, "", false
	}
	return a, sub, true
}

func (h *Handler) approveOptions(w http.ResponseWriter, r *http.Request) {
	var opts []byte
	if _, _, ok := h.onApproval(w, r, false, func(ctx context.Context, sub string, in approvalRequest) (*approvalfactor.Approval, challenge.Reason, error) {
		o, a, reason, err := h.svc.ApprovalRequestOptions(ctx, sub, in.ID)
		opts = o
		return a, reason, err
	}); ok {
		writeJSON(w, opts)
	}
}

func (h *Handler) approve(w http.ResponseWriter, r *http.Request) {
	a, sub, ok := h.onApproval(w, r, false, func(ctx context.Context, sub string, in approvalRequest) (*approvalfactor.Approval, challenge.Reason, error) {
		return h.svc.Approve(ctx, sub, in.ID, in.Assertion)
	})
	if ok {
		h.event(r, interceptor.DecisionApprovalApproved, interceptor.ReasonAllowed, codes.OK, sub, a, "")
		w.WriteHeader(http.StatusNoContent)
	}
}

func (h *Handler) deny(w http.ResponseWriter, r *http.Request) {
	a, sub, ok := h.onApproval(w, r, true, func(ctx context.Context, sub string, in approvalRequest) (*approvalfactor.Approval, challenge.Reason, error) {
		return h.svc.Deny(ctx, sub, in.ID)
	})
	if ok {
		h.event(r, interceptor.DecisionApprovalDenied, interceptor.ReasonAllowed, codes.OK, sub, a, "")
		http.Redirect(w, r, h.base, http.StatusSeeOther)
	}
}

// signOut ends the session on the server (every copy of its token is
// refused from now on, on every replica) and clears the cookie.
func (h *Handler) signOut(w http.ResponseWriter, r *http.Request) {
	sub, ok := h.signedIn(w, r)
	if !ok {
		return
	}
	c, _ := r.Cookie(SessionCookie) // signedIn found it
	h.setCookie(w, SessionCookie, "", -1)
	if err := h.svc.EndApproverSession(r.Context(), c.Value); err != nil {
		h.fail(w, r, sub, nil, err)
		return
	}
	h.event(r, interceptor.DecisionApproverSignOut, interceptor.ReasonAllowed, codes.OK, sub, nil, "")
	http.Redirect(w, r, h.base, http.StatusSeeOther)
}

// refusalStatus is the HTTP status of a challenge reason on the page.
func refusalStatus(r challenge.Reason) int {
	switch r {
	case challenge.ReasonApprovalUnknown:
		return http.StatusNotFound
	case challenge.ReasonApprovalDecided:
		return http.StatusConflict
	case challenge.ReasonApprovalExpired:
		return http.StatusGone
	}
	return http.StatusForbidden
}

// refuse audits a refusal (decision deny, with the reason) and answers
// with a generic text.
func (h *Handler) refuse(w http.ResponseWriter, r *http.Request, sub string, a *approvalfactor.Approval, reason Reason, status int) {
	code := codes.PermissionDenied
	if status == http.StatusUnauthorized {
		code = codes.Unauthenticated
	}
	h.event(r, interceptor.DecisionDeny, reason, code, sub, a, "")
	http.Error(w, http.StatusText(status), status)
}

// fail answers a store or lookup failure: refused, fail closed.
func (h *Handler) fail(w http.ResponseWriter, r *http.Request, sub string, a *approvalfactor.Approval, err error) {
	reason := interceptor.ReasonInternal
	if challenge.ReasonOf(err) == challenge.ReasonStoreUnavailable {
		reason = interceptor.ReasonStepUpUnavailable
	}
	h.event(r, interceptor.DecisionDeny, reason, codes.Unavailable, sub, a, err.Error())
	http.Error(w, http.StatusText(http.StatusServiceUnavailable), http.StatusServiceUnavailable)
}

// event emits one audit event of the page: the approval's method, id
// (ChallengeID) and summary digest, never the summary itself.
func (h *Handler) event(r *http.Request, d interceptor.Decision, reason Reason, code codes.Code, sub string, a *approvalfactor.Approval, detail string) {
	ev := &interceptor.Event{Time: time.Now(), Decision: d, Reason: reason, Code: code, Subject: sub, Detail: detail, Peer: peer(r), UserAgent: r.UserAgent()}
	if a != nil {
		ev.Method, ev.ChallengeID, ev.SummaryDigest = a.Method, a.ID, a.SummaryDigest
	}
	h.audit.Audit(r.Context(), ev)
}

func peer(r *http.Request) string {
	if _, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
		return r.RemoteAddr
	}
	return ""
}
