// Package testkit holds helpers shared by the tests of this module: a
// settable clock, an access-token issuer, a DPoP verifier that demands
// nonces, and private redis-server processes that a test starts, kills
// and restarts by their PID. It is for tests only; no library code imports it.
package testkit
