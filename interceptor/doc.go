// Package interceptor enforces Stepup policies on gRPC servers and signs
// calls on gRPC clients.
//
// # Server
//
// Build one Guard with New and register its UnaryServerInterceptor and
// StreamServerInterceptor. For every call the Guard resolves the method's policy from
// the (stepup.v1.policy) and (stepup.v1.default_policy) options of the
// compiled descriptors (once per method, then from a read-only table), then
// checks, cheapest first:
//
//  1. the credential metadata: exactly one authorization value, at most one
//     dpop, stepup-answer and stepup-grant value, each within its size limit;
//  2. the access token, through a TokenVerifier (NewJWTVerifier for RFC 9068
//     JWTs), cached by SHA-256 until it expires; exp and nbf are checked on
//     every call, and the method's max_token_age;
//  3. the binding: a DPoP-bound token (cnf.jkt) is never accepted as Bearer,
//     a bearer token only where the policy says insecure_allow_bearer;
//  4. the DPoP proof (package dpop): typ, algorithm, public jwk, htm POST,
//     htu = scheme://authority/pkg.Service/Method, iat window, ath, the key
//     thumbprint equal to cnf.jkt, the nonce when required, the signature,
//     and last the jti replay insert; then, under WithTokenRevocationFrom,
//     whether the token's subject or its key was revoked;
//  5. the scopes;
//  6. step-up (package challenge): the token's acr and auth_time, a grant,
//     or an answer to a server-signed challenge; otherwise a new challenge.
//
// A refusal carries a message and a google.rpc.ErrorInfo with a stable wire
// reason and a hint of what to change on which side (HintFromError; the
// same fixed text for every cause of a class, never a configured value),
// a www-authenticate trailer in RFC 9449 / RFC 9470 syntax and,
// for step-up, a stepup.v1.StepUpChallenge detail. Every decision produces
// exactly one audit Event with the precise Reason. Handlers read the verified
// caller with IdentityFromContext.
//
// Streams are checked when they open, with the same checks and events;
// step-up on a stream cannot bind to a request (no message has arrived yet),
// so bind_request on a streaming method is a configuration error.
//
// # Client
//
// NewClient returns a Client whose DialOptions attach "authorization: DPoP
// <token>" and a fresh proof for the exact method to every call, refuse to
// send them without transport security unless WithInsecureLocalTransport,
// retry once with the server's nonce on USE_DPOP_NONCE, answer step-up
// challenges through a challenge.Responder and retry once, and keep grants
// for reuse. The server never runs the handler of a refused call, so a
// retried call cannot execute twice. Tokens come from a TokenSource;
// the package oauth2token takes them from golang.org/x/oauth2 (token requests
// signed by dpop.Transport), and a RefreshableTokenSource is asked for a
// fresh one when the Guard refuses a token.
//
// The wire protocol is specified in docs/PROTOCOL.md; reasons and the event
// schema in docs/AUDIT.md.
package interceptor
