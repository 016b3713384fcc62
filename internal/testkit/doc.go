// Package testkit holds helpers shared by the tests of this module: a
// settable clock, an access-token issuer and a DPoP verifier that demands
// nonces. It is for tests only; no library code imports it.
package testkit
