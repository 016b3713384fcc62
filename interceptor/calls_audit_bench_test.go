package interceptor_test

import (
	"crypto/ed25519"
	"crypto/rand"
	"log/slog"
	"os"
	"path/filepath"
	"testing"

	"google.golang.org/grpc"

	"github.com/stepupgrpc/stepup/auditlog"
	"github.com/stepupgrpc/stepup/interceptor"
)

// sinkGuard serves the benchmark handlers behind a Guard with env e's
// token verifier, DPoP verifier and step-up service (its caches shared
// with e's Guard) that audits to sink, and returns the server's address.
func sinkGuard(b *testing.B, e *env, sink interceptor.AuditSink) string {
	b.Helper()
	g, err := interceptor.New(interceptor.WithTokenVerifier(e.jwt), interceptor.WithDPoP(e.verifer), interceptor.WithStepUp(e.stepUp),
		interceptor.WithAuditSink(sink))
	if err != nil {
		b.Fatal(err)
	}
	return serveBench(b, grpc.UnaryInterceptor(g.UnaryServerInterceptor()))
}

// auditTarget returns c's call to a Guard that writes its events to disk,
// in the benchmark's temporary directory: with sink "slog", the slog sink
// with slog's JSON handler on a file (what the example server writes on
// stderr); with "auditlog", the tamper-evident trail with its default
// checkpoints (every 1000 records or minute, Ed25519).
func auditTarget(b *testing.B, e *env, tok, sink string) callTarget {
	b.Helper()
	dir := b.TempDir()
	var s interceptor.AuditSink
	switch sink {
	case "slog":
		f, err := os.Create(filepath.Join(dir, "audit.json"))
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { f.Close() })
		s = interceptor.NewSlogSink(slog.New(slog.NewJSONHandler(f, nil)))
	case "auditlog":
		_, priv, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			b.Fatal(err)
		}
		trail, err := auditlog.Open(dir, auditlog.SigningKey{ID: "bench-1", Signer: priv}, auditlog.WithLogger(slog.New(slog.DiscardHandler)))
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { _ = trail.Close() })
		s = trail
	}
	return callTarget{Addr: sinkGuard(b, e, s), Method: mPlain, Scheme: "dpop", Tokens: []string{tok}}
}
