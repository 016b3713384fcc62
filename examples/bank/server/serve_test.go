package main

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/http2"

	"github.com/stepupgrpc/stepup/interceptor"
	"github.com/stepupgrpc/stepup/testing/testkit"
)

// lockedBuffer is a bytes.Buffer that serve writes to while the test reads.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestServeTransportLimits: the bank server has the transport limits of
// interceptor.TransportLimits. A client that ignores what the server
// advertises and sends a call with 1 MiB of garbage metadata is refused by
// the transport, before the Guard (no audit record); 1 KiB of garbage and
// no credentials reaches the Guard (TOKEN_MISSING), the control. Before,
// the server read up to 16 MiB of metadata per call (grpc-go's default).
func TestServeTransportLimits(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	addr, _, stderr := startServer(t, "--listen", "127.0.0.1:0", "--insecure-plaintext",
		"--issuer", "https://issuer.example", "--audience", "https://bank.example",
		"--jwks", write("jwks.json", string(testkit.NewIssuer(t).PublicJWKS())),
		"--totp-secrets", write("totp.json", `{"alice": "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"}`),
	)

	const method = "/bank.v1.BankService/GetBalance"
	small, err := testkit.RawCall(addr, testkit.RawRequest(t, method, 1<<10))
	if err != nil {
		t.Fatal(err)
	}
	if small.Outcome != "grpc-status 16" || !strings.Contains(stderr.String(), `"reason":"TOKEN_MISSING"`) {
		t.Fatalf("1 KiB of metadata: %s; log %s", small.Outcome, stderr.String())
	}
	if small.Settings[http2.SettingMaxHeaderListSize] != interceptor.DefaultMaxHeaderListSize ||
		small.Settings[http2.SettingMaxConcurrentStreams] != interceptor.DefaultMaxConcurrentStreams {
		t.Errorf("the server advertises %v", small.Settings)
	}
	audited := strings.Count(stderr.String(), "stepup.audit")
	big, err := testkit.RawCall(addr, testkit.RawRequest(t, method, 1<<20))
	if err != nil {
		t.Fatal(err)
	}
	if strings.HasPrefix(big.Outcome, "grpc-status") || strings.Count(stderr.String(), "stepup.audit") != audited {
		t.Fatalf("1 MiB of metadata: %s; want the transport to refuse it before the Guard; log %s", big.Outcome, stderr.String())
	}
}

// startServer runs serve with the command line args until the test ends
// and returns the address it listens on and its output.
func startServer(t *testing.T, args ...string) (string, *lockedBuffer, *lockedBuffer) {
	t.Helper()
	cfg, err := parseFlags(args, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	stdout, stderr := &lockedBuffer{}, &lockedBuffer{}
	done := make(chan error, 1)
	go func() { done <- serve(ctx, cfg, stdout, stderr) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		for _, l := range strings.Split(stdout.String(), "\n") {
			if a, ok := strings.CutPrefix(l, "listening on "); ok {
				return strings.TrimSpace(a), stdout, stderr
			}
		}
		select {
		case err := <-done:
			done <- nil // for the clean-up
			t.Fatalf("the server stopped: %v\n%s", err, stderr.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("the server did not start: %s", stderr.String())
		}
	}
}
