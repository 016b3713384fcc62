package stepup_test

import (
	"os/exec"
	"strings"
	"testing"
)

// forbidden are the module paths the core must not link: each is code a
// reviewer of a service that does not use it would have to account for
// (docs/ARCHITECTURE.md, "The dependency budget").
var forbidden = []string{
	"github.com/go-webauthn/",
	"github.com/google/go-tpm",
	"github.com/fxamacker/cbor",
	"golang.org/x/oauth2",
	"go.opentelemetry.io/otel/sdk",
	"github.com/redis/go-redis",
	"github.com/prometheus/",
	"github.com/chromedp/",
}

// core are the packages every protected service links, and the smallest
// such service.
var core = []string{"dpop", "challenge", "interceptor", "examples/totponly"}

const module = "github.com/stepupgrpc/stepup"

// goList runs `go list args...` in the module and returns its output. It
// reads only the module cache, never the network.
func goList(t *testing.T, args ...string) string {
	t.Helper()
	gobin, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("the go command is needed to list packages: %v", err)
	}
	cmd := exec.Command(gobin, append([]string{"list"}, args...)...)
	cmd.Env = append(cmd.Environ(), "GOPROXY=off", "GOFLAGS=-mod=readonly")
	out, err := cmd.Output()
	if err != nil {
		if ee, ok := err.(*exec.ExitError); ok {
			t.Fatalf("go list %s: %v\n%s", strings.Join(args, " "), err, ee.Stderr)
		}
		t.Fatalf("go list %s: %v", strings.Join(args, " "), err)
	}
	return string(out)
}

// deps lists the non-standard packages pkg (a path inside the module)
// links, as `go list -deps` does: the build graph, without tests.
func deps(t *testing.T, pkg string) []string {
	t.Helper()
	return strings.Fields(goList(t, "-deps", "-f", "{{if not .Standard}}{{.ImportPath}}{{end}}", "./"+pkg))
}

// TestDependencyBudget fails when a core package links a dependency that
// only some users need (WebAuthn, TPM, CBOR, the OAuth2 client, the
// OpenTelemetry SDK, Redis, Prometheus, a browser driver): those belong in
// the packages a user wires when it uses them.
func TestDependencyBudget(t *testing.T) {
	for _, pkg := range core {
		t.Run(pkg, func(t *testing.T) {
			for _, d := range deps(t, pkg) {
				for _, f := range forbidden {
					if strings.HasPrefix(d, f) {
						t.Errorf("%s links %s, which the budget forbids (%s)", pkg, d, f)
					}
				}
			}
		})
	}
}
