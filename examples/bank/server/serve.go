package main

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/tls"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"os"
	"slices"
	"time"

	"github.com/redis/go-redis/v9"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/reflection"
	"google.golang.org/protobuf/proto"

	"github.com/stepupgrpc/stepup/challenge"
	"github.com/stepupgrpc/stepup/challenge/redisstore"
	"github.com/stepupgrpc/stepup/dpop"
	"github.com/stepupgrpc/stepup/examples/bank/bankserver"
	bankv1 "github.com/stepupgrpc/stepup/examples/bank/v1"
	"github.com/stepupgrpc/stepup/interceptor"
	stepupv1 "github.com/stepupgrpc/stepup/proto/stepup/v1"
)

const (
	// openingBalance is what every subject's account holds at start, in cents.
	openingBalance = 100_000
	// shutdownGrace is how long in-flight calls may take to finish on shutdown.
	shutdownGrace = 10 * time.Second
)

// unauthenticatedServices are the infrastructure services whose .proto
// cannot be annotated: they are opted out explicitly, so that
// WithRequirePolicy still catches any other unannotated method.
var unauthenticatedServices = []string{
	healthpb.Health_ServiceDesc.ServiceName, // grpc.health.v1.Health
	"grpc.reflection.v1.ServerReflection",
	"grpc.reflection.v1alpha.ServerReflection",
}

// serve builds every component from cfg, serves until ctx is done, then
// shuts down gracefully.
func serve(ctx context.Context, cfg *config, stdout, stderr io.Writer) error {
	log := slog.New(slog.NewJSONHandler(stderr, nil))

	tokens, err := interceptor.NewJWTVerifier(interceptor.JWTConfig{
		Issuer: cfg.issuer, Audience: cfg.audience, JWKSFile: cfg.jwks,
	})
	if err != nil {
		return fmt.Errorf("--jwks: %w", err)
	}
	defer tokens.Close()

	store, closeStore, err := newSharedStore(cfg)
	if err != nil {
		return err
	}
	defer closeStore()

	proofs, nonces, err := newDPoPVerifier(cfg, store)
	if err != nil {
		return err
	}
	stepUp, subjects, err := newStepUp(cfg, store, log)
	if err != nil {
		return err
	}

	guardOpts := []interceptor.Option{
		interceptor.WithTokenVerifier(tokens),
		interceptor.WithDPoP(proofs),
		interceptor.WithStepUp(stepUp),
		interceptor.WithAuditSink(interceptor.NewSlogSink(log)),
		interceptor.WithRequirePolicy(),
	}
	for _, name := range unauthenticatedServices {
		guardOpts = append(guardOpts, interceptor.WithPolicy(name, &stepupv1.Policy{InsecureNoAuthentication: proto.Bool(true)}))
	}
	guard, err := interceptor.New(guardOpts...)
	if err != nil {
		return err
	}

	serverOpts := []grpc.ServerOption{
		grpc.ChainUnaryInterceptor(guard.UnaryServer()),
		grpc.ChainStreamInterceptor(guard.StreamServer()),
	}
	// In plaintext mode no transport credentials are set at all, so calls
	// carry no AuthInfo and the Guard accepts http as well as https htu.
	if !cfg.insecurePlaintext {
		cert, err := tls.LoadX509KeyPair(cfg.tlsCert, cfg.tlsKey)
		if err != nil {
			return fmt.Errorf("--tls-cert/--tls-key: %w", err)
		}
		serverOpts = append(serverOpts, grpc.Creds(credentials.NewTLS(&tls.Config{
			Certificates: []tls.Certificate{cert},
			MinVersion:   tls.VersionTLS12,
		})))
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

// newSharedStore connects to --redis, the store that replicas share. Without
// --redis it returns a nil store, and the DPoP verifier and the step-up
// service keep their in-process defaults. The returned func closes the
// client; call it once the server has stopped.
func newSharedStore(cfg *config) (challenge.Store, func(), error) {
	if cfg.redisURL == "" {
		return nil, func() {}, nil
	}
	opt, err := redis.ParseURL(cfg.redisURL)
	if err != nil {
		return nil, nil, fmt.Errorf("--redis: %w", err)
	}
	// Lets the store's per-operation timeout (250 ms) interrupt a call to
	// a Redis that hangs; redisstore.New refuses a client without it.
	opt.ContextTimeoutEnabled = true
	client := redis.NewClient(opt)
	store, err := redisstore.New(client)
	if err != nil {
		_ = client.Close()
		return nil, nil, fmt.Errorf("--redis: %w", err)
	}
	return store, func() { _ = client.Close() }, nil
}

// newDPoPVerifier builds the proof verifier from the --authority and
// --require-nonce flags, with the shared store when there is one.
func newDPoPVerifier(cfg *config, store challenge.Store) (*dpop.Verifier, bool, error) {
	var opts []dpop.VerifierOption
	if store != nil {
		opts = append(opts, dpop.WithReplayStore(store))
	}
	if len(cfg.authorities) > 0 {
		opts = append(opts, dpop.WithAuthorities(cfg.authorities...))
	}
	if cfg.nonceKey != "" {
		cfg.requireNonce = true
	}
	if cfg.requireNonce {
		key := make([]byte, 32)
		if cfg.nonceKey != "" {
			k, err := os.ReadFile(cfg.nonceKey)
			if err != nil {
				return nil, false, fmt.Errorf("--nonce-key: %w", err)
			}
			key = k
		} else if _, err := rand.Read(key); err != nil {
			return nil, false, err
		}
		n, err := dpop.NewNonces(key, 0, nil)
		if err != nil {
			return nil, false, fmt.Errorf("--nonce-key: %w", err)
		}
		opts = append(opts, dpop.WithNonces(n))
	}
	v, err := dpop.NewVerifier(opts...)
	if err != nil {
		return nil, false, fmt.Errorf("--authority: %w", err)
	}
	return v, cfg.requireNonce, nil
}

// newStepUp builds the step-up service from the factor files and the key
// set, and returns the sorted subjects that have a factor enrolled.
func newStepUp(cfg *config, store challenge.Store, log *slog.Logger) (*challenge.Service, []string, error) {
	var keys *challenge.KeySet
	if cfg.stepUpKeys != "" {
		k, err := challenge.LoadKeySet(cfg.stepUpKeys)
		if err != nil {
			return nil, nil, fmt.Errorf("--stepup-keys: %w", err)
		}
		keys = k
	} else {
		k, err := challenge.GenerateKey("generated")
		if err != nil {
			return nil, nil, err
		}
		if keys, err = challenge.NewKeySet(k); err != nil {
			return nil, nil, err
		}
		log.Warn("no --stepup-keys: generated a step-up key for this process; " +
			"challenges and grants will not survive a restart or work across replicas")
	}
	opts := []challenge.Option{challenge.WithKeys(keys)}
	if store != nil {
		opts = append(opts, challenge.WithStore(store))
	}
	subjects := map[string]bool{}
	if cfg.totpSecrets != "" {
		secrets, err := loadTOTPSecrets(cfg.totpSecrets)
		if err != nil {
			return nil, nil, fmt.Errorf("--totp-secrets: %w", err)
		}
		for sub := range secrets {
			subjects[sub] = true
		}
		opts = append(opts, challenge.WithTOTP(challenge.TOTPSecretsFunc(func(_ context.Context, sub string) (string, error) {
			if s, ok := secrets[sub]; ok {
				return s, nil
			}
			return "", challenge.ErrUnknownSubject
		}), challenge.TOTPOptions{}))
	}
	if cfg.deviceKeys != "" {
		devices, err := loadDeviceKeys(cfg.deviceKeys)
		if err != nil {
			return nil, nil, fmt.Errorf("--device-keys: %w", err)
		}
		for sub := range devices {
			subjects[sub] = true
		}
		opts = append(opts, challenge.WithDeviceKeys(challenge.DeviceKeysFunc(func(_ context.Context, sub string) ([]crypto.PublicKey, error) {
			if k, ok := devices[sub]; ok {
				return k, nil
			}
			return nil, challenge.ErrUnknownSubject
		})))
	}
	svc, err := challenge.NewService(opts...)
	if err != nil {
		return nil, nil, err
	}
	return svc, slices.Sorted(maps.Keys(subjects)), nil
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
