// Package dpop implements OAuth 2.0 Demonstrating Proof of Possession
// (DPoP, RFC 9449) for any transport: a client [Signer] that makes proofs, a
// server [Verifier] that checks them, RFC 7638 JWK thumbprints ([Thumbprint],
// [ThumbprintOf]), the access-token hash ([ATH]), stateless server nonces
// ([Nonces], RFC 9449 §8), a replay store ([ReplayStore],
// [MemoryReplayStore]) and an HTTP client [Transport] that adds proofs to
// token and resource requests and answers a server's nonce demand.
//
// The package has no dependency on gRPC; the interceptor package maps
// [Request] onto gRPC metadata (htm is always "POST" and htu is
// "https://<authority>/<package.Service>/<Method>").
//
// # Verification order
//
// [Verifier.Verify] runs the cheap checks first, the signature next and the
// replay insert last (RFC 9449 §4.3, §11.1), so a proof refused for any reason
// never consumes its jti:
//
//  1. size limit (default 8 KiB);
//  2. compact JWS shape and strict base64url;
//  3. JOSE header: typ "dpop+jwt", alg in the allowlist, no crit, a public
//     jwk whose key type matches alg, RSA size, valid EC point;
//  4. claims: jti, htm, htu, iat present and well typed;
//  5. htm, htu (RFC 3986 §6 normalisation), iat window;
//  6. ath, expected key thumbprint (cnf.jkt), server nonce;
//  7. signature;
//  8. replay insert, keyed by thumbprint and jti.
//
// JSON is decoded by a small strict parser that refuses duplicate member
// names, invalid UTF-8 and nesting deeper than 16 levels, so that this
// package and any other JOSE library agree on what a proof says
// (RFC 8725 §3.4 on ambiguous inputs).
//
// Every refusal is an [*ProofError] carrying a stable [Reason] for audit logs;
// clients should be shown only a generic message.
package dpop
