package main

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"slices"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.opentelemetry.io/otel/exporters/stdout/stdouttrace"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/reflection"

	"github.com/stepupgrpc/stepup/approval"
	"github.com/stepupgrpc/stepup/auditlog"
	"github.com/stepupgrpc/stepup/challenge"
	approvalfactor "github.com/stepupgrpc/stepup/challenge/approval"
	"github.com/stepupgrpc/stepup/challenge/webauthn"
	"github.com/stepupgrpc/stepup/dpop"
	"github.com/stepupgrpc/stepup/examples/bank/bankserver"
	bankv1 "github.com/stepupgrpc/stepup/examples/bank/v1"
	"github.com/stepupgrpc/stepup/gateway/serverkit"
	"github.com/stepupgrpc/stepup/interceptor"
	"github.com/stepupgrpc/stepup/metrics"
	stepupv1 "github.com/stepupgrpc/stepup/proto/stepup/v1"
)

const (
	// openingBalance is what every subject's account holds at start, in cents.
	openingBalance = 100_000
	// shutdownGrace is how long in-flight calls may take to finish on shutdown.
	shutdownGrace = 10 * time.Second
)

// serve builds every component from cfg, serves until ctx is done, then
// shuts down gracefully.
func serve(ctx context.Context, cfg *config, stdout, stderr io.Writer) error {
	log := slog.New(slog.NewJSONHandler(stderr, nil))

	tokens, err := tokenVerifier(ctx, cfg)
	if err != nil {
		return err
	}
	defer tokens.Close()

	reg := prometheus.NewRegistry()
	redisHook, err := metrics.RedisHook(reg)
	if err != nil {
		return err
	}
	store, closeStore, err := serverkit.NewRedisStore("--redis", cfg.redisURL, redisHook)
	if err != nil {
		return err
	}
	defer closeStore()

	proofs, nonces, err := serverkit.NewDPoPVerifier(serverkit.DPoP{
		Authorities: cfg.authorities, AuthoritiesName: "--authority",
		RequireNonce: cfg.requireNonce, NonceKey: serverkit.File{Name: "--nonce-key", Path: cfg.nonceKey},
	}, store)
	if err != nil {
		return err
	}
	var factorOpts []challenge.Option
	var passkeySubjects []string
	var approvals *approvalfactor.Factor // the approval factor, with --approval-listen
	if cfg.webauthnCreds != "" {
		creds, subs, err := loadPasskeys(cfg.webauthnCreds)
		if err != nil {
			return fmt.Errorf("--webauthn-credentials: %w", err)
		}
		rp, err := relyingParty(cfg.webauthnOrigin)
		if err != nil {
			return err
		}
		passkeySubjects = subs
		wa, err := webauthn.New(rp, creds)
		if err != nil {
			return fmt.Errorf("--webauthn-origin: %w", err)
		}
		factorOpts = append(factorOpts, challenge.WithFactor(wa))
		if cfg.approvalListen != "" {
			if approvals, err = wa.NewApproval(cfg.webauthnOrigin, nil, approvalfactor.Options{}); err != nil {
				return fmt.Errorf("--approval-listen: %w", err)
			}
			factorOpts = append(factorOpts, challenge.WithFactor(approvals))
		}
	}
	stepUp, subjects, err := serverkit.NewStepUp(serverkit.StepUpFiles{
		Keys:        serverkit.File{Name: "--stepup-keys", Path: cfg.stepUpKeys},
		TOTPSecrets: serverkit.File{Name: "--totp-secrets", Path: cfg.totpSecrets},
		DeviceKeys:  serverkit.File{Name: "--device-keys", Path: cfg.deviceKeys},
	}, store, log, factorOpts...)
	if err != nil {
		return err
	}
	subjects = slices.Compact(slices.Sorted(slices.Values(append(subjects, passkeySubjects...))))

	decisions, err := metrics.New(reg)
	if err != nil {
		return err
	}
	if ms, ok := proofs.ReplayStore().(*dpop.MemoryReplayStore); ok {
		if err := metrics.RegisterReplayStore(reg, ms, nil); err != nil {
			return err
		}
	}
	if ls, ok := proofs.ReplayStore().(metrics.LossReporter); ok {
		if err := metrics.RegisterStoreLosses(reg, ls); err != nil {
			return err
		}
	}
	sinks := []interceptor.AuditSink{interceptor.NewSlogSink(log), decisions}
	if cfg.auditDir != "" {
		trail, closeTrail, err := openTrail(cfg, log)
		if err != nil {
			return err
		}
		// Deferred first, run last: after the server stopped, so that its
		// last decisions are under the closing checkpoint.
		defer closeTrail()
		sinks = append(sinks, trail)
	}
	guardOpts := []interceptor.Option{
		interceptor.WithTokenVerifier(tokens),
		interceptor.WithDPoP(proofs),
		interceptor.WithStepUp(stepUp),
		interceptor.WithAuditSink(interceptor.Sinks(sinks...)),
		interceptor.WithRequirePolicy(),
		interceptor.WithLeeway(cfg.tokenLeeway),
		// Health and reflection (whose .proto cannot be annotated) need no
		// credentials; every other unannotated method is refused.
		interceptor.WithInsecureInfrastructure(),
	}
	if cfg.insecurePlaintext && len(cfg.authorities) == 0 {
		// Plaintext on loopback without --authority: htu names the
		// :authority each call was sent to, said explicitly.
		guardOpts = append(guardOpts, interceptor.WithInsecureRequestAuthority())
	}
	if cfg.traceStdout {
		exp, err := stdouttrace.New(stdouttrace.WithWriter(stdout))
		if err != nil {
			return err
		}
		tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
		defer func() { _ = tp.Shutdown(context.Background()) }()
		guardOpts = append(guardOpts, interceptor.WithTracerProvider(tp))
	}
	guard, err := interceptor.New(guardOpts...)
	if err != nil {
		return err
	}

	// The transport's limits (streams per connection, request metadata,
	// connection age and keepalive), then the Guard.
	serverOpts := append(interceptor.TransportLimits(),
		grpc.ChainUnaryInterceptor(guard.UnaryServerInterceptor()),
		grpc.ChainStreamInterceptor(guard.StreamServerInterceptor()),
	)
	// In plaintext mode no transport credentials are set at all, so calls
	// carry no AuthInfo and the Guard accepts http as well as https htu.
	var tlsConfig *tls.Config
	if !cfg.insecurePlaintext {
		cert, err := tls.LoadX509KeyPair(cfg.tlsCert, cfg.tlsKey)
		if err != nil {
			return fmt.Errorf("--tls-cert/--tls-key: %w", err)
		}
		tlsConfig = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
		serverOpts = append(serverOpts, grpc.Creds(credentials.NewTLS(tlsConfig)))
	}
	srv := grpc.NewServer(serverOpts...)

	bank := bankserver.New(nil)
	for _, sub := range subjects {
		bank.Open(sub, sub+"-checking", "EUR", openingBalance)
	}
	bank.Register(srv)
	healthSrv := health.NewServer()
	healthSrv.SetServingStatus(bankv1.BankService_ServiceDesc.ServiceName, healthpb.HealthCheckResponse_SERVING)
	healthpb.RegisterHealthServer(srv, healthSrv)
	reflection.Register(srv)

	// Refuse to start with a method that has no policy: it would be
	// refused on every call anyway, and a missing annotation is a bug.
	if err := guard.CheckCoverage(srv); err != nil {
		return err
	}

	lis, err := net.Listen("tcp", cfg.listen)
	if err != nil {
		return err
	}
	if cfg.insecurePlaintext {
		// The host was checked before listening; check what was bound too,
		// in case "localhost" resolved to something else.
		if tcp, ok := lis.Addr().(*net.TCPAddr); !ok || !tcp.IP.IsLoopback() {
			lis.Close()
			return fmt.Errorf("--insecure-plaintext refused: bound to %s, which is not a loopback address", lis.Addr())
		}
	}
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(lis) }()
	if cfg.adminListen != "" {
		admin, err := net.Listen("tcp", cfg.adminListen)
		if err != nil {
			srv.Stop()
			return fmt.Errorf("--admin-listen: %w", err)
		}
		mux := http.NewServeMux()
		mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
		adminSrv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
		go func() { _ = adminSrv.Serve(admin) }()
		defer adminSrv.Close()
		fmt.Fprintf(stdout, "metrics on http://%s/metrics\n", admin.Addr())
	}

	if cfg.approvalListen != "" {
		stop, err := serveApprover(cfg, approvals, interceptor.Sinks(sinks...), tlsConfig, stdout)
		if err != nil {
			srv.Stop()
			return err
		}
		defer stop()
	}

	log.Info("serving",
		slog.String("address", lis.Addr().String()),
		slog.Bool("tls", !cfg.insecurePlaintext),
		slog.Any("authorities", append([]string{}, cfg.authorities...)),
		slog.Bool("dpop_nonces", nonces),
		slog.Bool("shared_store", store != nil),
		slog.Any("factors", factorNames(stepUp.Factors())),
		slog.Any("accounts", accountNames(subjects)),
	)
	fmt.Fprintf(stdout, "listening on %s\n", lis.Addr())

	select {
	case err := <-serveErr:
		return err
	case <-ctx.Done():
	}
	log.Info("shutting down")
	healthSrv.Shutdown()
	stopped := make(chan struct{})
	go func() {
		srv.GracefulStop()
		close(stopped)
	}()
	select {
	case <-stopped:
	case <-time.After(shutdownGrace):
		log.Warn("calls still running after the grace period; closing them")
		srv.Stop()
		<-stopped
	}
	log.Info("stopped")
	return nil
}

// tokenVerifier verifies access tokens with the issuer's keys from --jwks,
// --jwks-url or --discover; the keys of a URL are fetched again every
// --jwks-refresh, so the issuer rotates them without a restart.
func tokenVerifier(ctx context.Context, cfg *config) (*interceptor.JWTVerifier, error) {
	jc := interceptor.JWTConfig{Issuer: cfg.issuer, Audience: cfg.audience, Leeway: cfg.tokenLeeway}
	flag := "--jwks"
	switch {
	case cfg.jwks != "":
		jc.JWKSFile = cfg.jwks
	case cfg.discover:
		flag = "--discover"
		u, err := interceptor.DiscoverJWKS(ctx, cfg.issuer, nil)
		if err != nil {
			return nil, fmt.Errorf("--discover: %w", err)
		}
		jc.JWKSURL = u
	default:
		flag, jc.JWKSURL = "--jwks-url", cfg.jwksURL
	}
	if jc.JWKSURL != "" {
		jc.JWKSMinRefresh, jc.JWKSMaxRefresh = cfg.jwksRefresh, cfg.jwksRefresh
	}
	v, err := interceptor.NewJWTVerifier(jc)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", flag, err)
	}
	return v, nil
}

// serveApprover serves the approver page of the approval factor on
// --approval-listen: over TLS with the server's certificate, or in plain
// HTTP on a loopback address with --insecure-plaintext. The returned
// function stops it.
func serveApprover(cfg *config, approvals *approvalfactor.Factor, audit interceptor.AuditSink, tlsConfig *tls.Config, stdout io.Writer) (func(), error) {
	if tlsConfig == nil {
		if err := serverkit.CheckLoopback(cfg.approvalListen); err != nil {
			return nil, fmt.Errorf("--approval-listen: %w: without TLS the page is served on loopback only", err)
		}
	}
	page, err := approval.New(approval.Config{Approvals: approvals, Origin: cfg.webauthnOrigin, Audit: audit})
	if err != nil {
		return nil, fmt.Errorf("--approval-listen: %w", err)
	}
	lis, err := net.Listen("tcp", cfg.approvalListen)
	if err != nil {
		return nil, fmt.Errorf("--approval-listen: %w", err)
	}
	srv := &http.Server{Handler: page, ReadHeaderTimeout: 5 * time.Second}
	scheme := "http"
	if tlsConfig != nil {
		srv.TLSConfig, scheme = tlsConfig.Clone(), "https"
		go func() { _ = srv.ServeTLS(lis, "", "") }()
	} else {
		go func() { _ = srv.Serve(lis) }()
	}
	fmt.Fprintf(stdout, "approver page on %s://%s/ (origin %s)\n", scheme, lis.Addr(), cfg.webauthnOrigin)
	return func() { _ = srv.Close() }, nil
}

// openTrail opens the tamper-evident audit trail of --audit-dir, signed
// with --audit-key, its checkpoints also copied to --audit-checkpoint-copy.
// The returned function closes it: the closing checkpoint, then the copy.
func openTrail(cfg *config, log *slog.Logger) (*auditlog.Sink, func(), error) {
	key, err := auditlog.ReadSigningKey(cfg.auditKey)
	if err != nil {
		return nil, nil, fmt.Errorf("--audit-key: %w", err)
	}
	opts := []auditlog.Option{auditlog.WithLogger(log)}
	var copies *os.File
	if cfg.auditCopy != "" {
		if copies, err = os.OpenFile(cfg.auditCopy, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600); err != nil {
			return nil, nil, fmt.Errorf("--audit-checkpoint-copy: %w", err)
		}
		opts = append(opts, auditlog.WithCheckpointCopy(copies))
	}
	trail, err := auditlog.Open(cfg.auditDir, key, opts...)
	if err != nil {
		if copies != nil {
			copies.Close()
		}
		return nil, nil, fmt.Errorf("--audit-dir: %w", err)
	}
	log.Info("audit trail", slog.String("dir", cfg.auditDir), slog.String("chain", trail.Chain()), slog.String("kid", key.ID))
	return trail, func() {
		if err := trail.Close(); err != nil {
			log.Error("closing the audit trail", slog.String("error", err.Error()))
		}
		if copies != nil {
			copies.Close()
		}
	}, nil
}

func factorNames(fs []stepupv1.Factor) []string {
	names := make([]string, len(fs))
	for i, f := range fs {
		names[i] = challenge.FactorName(f)
	}
	return names
}

func accountNames(subjects []string) []string {
	names := make([]string, len(subjects))
	for i, s := range subjects {
		names[i] = s + "-checking"
	}
	return names
}
