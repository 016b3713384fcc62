// Command stepup-gateway protects any gRPC backend, in any language, with
// Stepup: DPoP-bound tokens on every call and step-up on the methods that
// need it, enforced in front of the backend, which receives a signed
// identity assertion instead of the caller's credentials.
//
//	stepup-gateway --config gateway.yaml
//	stepup-gateway --config gateway.yaml --check   # validate, print the policy table, exit
//
// docs/GATEWAY.md is the reference of the configuration file.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/stepupgrpc/stepup/cmd/cli"
	"github.com/stepupgrpc/stepup/gateway"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

const usage = `usage: stepup-gateway --config FILE [--check [--json]]

Serves gRPC on the configuration's listen address: every call is checked by
the Stepup Guard (access token, DPoP proof, step-up) and, when allowed,
forwarded to the backend with a signed identity assertion (stepup-identity).
A bad configuration is reported with the file and the field, and the process
exits 1 before it listens. SIGINT or SIGTERM drain the calls in flight for
shutdown_grace, then stop.

flags:
`

// run is main without the process: it returns the exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("stepup-gateway", flag.ContinueOnError)
	fs.SetOutput(stderr)
	config := fs.String("config", "", "the configuration `file` (YAML or JSON), required")
	checkOnly := fs.Bool("check", false, "validate the configuration (files, keys, policies), print the effective policy of every method, and exit")
	asJSON := fs.Bool("json", false, "with --check, print the policy table as JSON (as stepup policies --json)")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), usage)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if *config == "" || fs.NArg() > 0 {
		fs.Usage()
		return 2
	}
	log := slog.New(slog.NewJSONHandler(stderr, nil))
	gw, err := gateway.Load(*config, gateway.WithLogger(log))
	if err != nil {
		fmt.Fprintln(stderr, "stepup-gateway:", err)
		return 1
	}
	defer gw.Close()
	if *checkOnly {
		// The table stepup policies --config prints for the same file.
		if err := cli.WritePolicies(stdout, gw.Policies(), *asJSON); err != nil {
			fmt.Fprintln(stderr, "stepup-gateway:", err)
			return 1
		}
		for _, w := range gw.Warnings() {
			fmt.Fprintln(stderr, "warning:", cli.Printable(w))
		}
		fmt.Fprintln(stderr, "configuration ok:", *config)
		return 0
	}
	if err := serve(ctx, gw, log, stdout); err != nil {
		fmt.Fprintln(stderr, "stepup-gateway:", err)
		return 1
	}
	return 0
}

// serve listens on the gRPC and JWKS addresses and serves until ctx ends.
func serve(ctx context.Context, gw *gateway.Gateway, log *slog.Logger, stdout io.Writer) error {
	cfg := gw.Config()
	lis, err := net.Listen("tcp", cfg.GetListen())
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	if addr := cfg.GetJwksListen(); addr != "" {
		jl, err := net.Listen("tcp", addr)
		if err != nil {
			lis.Close()
			return fmt.Errorf("jwks_listen: %w", err)
		}
		// Over TLS with the gateway's certificate; plain HTTP only with
		// insecure_plaintext, on loopback (the configuration says so).
		go func() {
			if err := gw.ServeJWKS(jl); err != nil {
				log.Error("jwks_listen", slog.Any("error", err))
			}
		}()
		scheme := "https"
		if cfg.GetInsecurePlaintext() {
			scheme = "http"
		}
		fmt.Fprintf(stdout, "jwks on %s://%s/.well-known/jwks.json\n", scheme, jl.Addr())
	}
	if addr := cfg.GetMetricsListen(); addr != "" {
		ml, err := net.Listen("tcp", addr)
		if err != nil {
			lis.Close()
			return fmt.Errorf("metrics_listen: %w", err)
		}
		mux := http.NewServeMux()
		mux.Handle("/metrics", promhttp.HandlerFor(gw.Metrics(), promhttp.HandlerOpts{}))
		msrv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
		go func() { _ = msrv.Serve(ml) }()
		defer msrv.Close()
		fmt.Fprintf(stdout, "metrics on http://%s/metrics\n", ml.Addr())
	}
	served := make(chan error, 1)
	go func() { served <- gw.Serve(lis) }()
	fmt.Fprintf(stdout, "listening on %s\n", lis.Addr())
	select {
	case err := <-served:
		return err
	case <-ctx.Done():
	}
	log.Info("shutting down", slog.Duration("grace", gw.ShutdownGrace()))
	sctx, cancel := context.WithTimeout(context.Background(), gw.ShutdownGrace())
	defer cancel()
	gw.Shutdown(sctx) // the JWKS server too
	log.Info("stopped")
	return <-served
}
