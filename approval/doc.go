// Package approval is the approver page of the out-of-band approval factor
// (FACTOR_APPROVAL): an http.Handler, built from net/http and html/template
// with a small WebAuthn script of its own, that a user opens on a second,
// trusted device. They sign in with their passkey, see their pending
// approvals with the exact summary of each call ("amount 1,250.00 EUR, to
// DE89...") and its matching code, and approve one with a passkey
// assertion whose challenge derives from the approval id and the summary's
// digest (so the signature covers the transaction), or deny it.
//
// The page keeps nothing in memory: sessions and sign-in states are tokens
// signed with the challenge.Service's keys, and approvals and ended
// sessions live in its store. Mount it on any replica that shares the
// Guards' keys and store; the waiting call may be retried on any other.
// Signing out ends the session on every replica, not only in the browser.
//
// Defences: a strict Content-Security-Policy (no inline script or style,
// no framing), __Host- cookies (Secure, host-only, Path "/"), HttpOnly and
// SameSite=Strict, and on every POST the browser's Sec-Fetch-Site, an
// Origin equal to Config.Origin and, once signed in, the session's CSRF
// token. The sign-in answers alike whether or not a subject has approver
// passkeys. docs/APPROVAL.md has the flow and the threat model.
package approval
