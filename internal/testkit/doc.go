// Package testkit holds helpers shared by the tests of this module: a
// settable clock and an access-token issuer. It is for tests only; no
// library code imports it.
package testkit
