// Package challenge implements step-up authentication (RFC 9470 semantics,
// in band): a server challenges a call that needs a recent second factor,
// the client answers on a retry of the same call, and a successful answer
// may earn a grant that later calls present instead.
//
// It does not depend on gRPC; the interceptor package maps it onto
// metadata ("stepup-answer", "stepup-grant") and error details
// (stepup.v1.StepUpChallenge). The wire formats are specified byte for byte
// in docs/STEPUP.md.
//
// # Server
//
// Build one Service with NewService (keys, a store shared by replicas, the
// factors, each of its own package and wired with WithFactor:
// challenge/totp, challenge/devicekey, challenge/webauthn) and call
// Service.Check for every call whose method has a step-up requirement. Check tries, in
// order:
//
//  1. the access token's acr and auth_time (RFC 9470 §3), for a reusable
//     requirement;
//  2. a grant: an HS256 token bound to the subject and the DPoP key,
//     checked without any store access except its revocation;
//  3. an answer: a JWS signed by the caller's DPoP key that embeds a server
//     challenge (HS256, bound to subject, DPoP key, method and, when the
//     requirement says so, the request digest) and the factor evidence;
//  4. otherwise a fresh challenge, or Locked after too many wrong answers.
//
// Challenges and grants are stateless: any replica with the same KeySet
// verifies them. The state that must be shared (single use of challenges
// and TOTP time steps, attempt counters, revocations) sits behind Store.
//
// Every refusal has a stable Reason for audit logs; clients should only be
// told that a step-up is required.
//
// # Client
//
// A Responder turns a challenge into Evidence (TOTPResponder,
// DeviceKeyResponder, WebAuthnResponder, FirstAllowed), and Answer signs it
// with the DPoP key into the value of the "stepup-answer" metadata.
// The WebAuthn factor (and its software authenticator for tests and
// demos) is the package challenge/webauthn, so that a service without
// WebAuthn does not link go-webauthn.
package challenge
