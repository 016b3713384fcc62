// Package bank is the example bank protected by Stepup: the annotated API
// (v1/bank.proto), the in-memory service (bankserver), and three commands
// to try it end to end — a server (server), a client that signs DPoP proofs
// and answers step-up challenges (client), and a development token issuer
// (issuer). README.md in this directory walks through a session; the
// package itself holds only the end-to-end test that drives the three
// binaries.
package bank
