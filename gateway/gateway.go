// Package gateway is stepup-gateway: the Stepup Guard in front of a gRPC
// reverse proxy, so that a backend in any language, which knows nothing of
// Stepup, gets the same protection as a Go service that links the library.
//
// The gateway accepts every call, runs the Guard's unary or stream checks
// on it (token, DPoP proof, nonces, replay, step-up, audit, shadow mode),
// and forwards what is allowed to the backend as raw frames, without
// decoding or re-encoding a message: headers, trailers, status details,
// deadlines and cancellation are carried both ways. Policies come from the
// stepup annotations in the backend's descriptor sets and from the
// configuration file (stepupv1.GatewayConfig). The backend learns who
// called from an identity assertion signed by the gateway (package
// assertion), never from metadata a client sent.
//
// cmd/stepup-gateway runs it from a configuration file; docs/GATEWAY.md is
// the reference.
package gateway

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"net/http"
	"os"
	"runtime"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/reflection"
	reflectionv1 "google.golang.org/grpc/reflection/grpc_reflection_v1"
	reflectionv1alpha "google.golang.org/grpc/reflection/grpc_reflection_v1alpha"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/dynamicpb"

	"github.com/stepupgrpc/stepup/auditlog"
	"github.com/stepupgrpc/stepup/challenge"
	"github.com/stepupgrpc/stepup/dpop"
	"github.com/stepupgrpc/stepup/gateway/assertion"
	"github.com/stepupgrpc/stepup/gateway/serverkit"
	"github.com/stepupgrpc/stepup/interceptor"
	"github.com/stepupgrpc/stepup/internal/option"
	"github.com/stepupgrpc/stepup/metrics"
	stepupv1 "github.com/stepupgrpc/stepup/proto/stepup/v1"
)

// Gateway is one stepup-gateway process. Build it with New or Load, then
// Serve; Shutdown drains it.
type Gateway struct {
	path    string
	cfg     *stepupv1.GatewayConfig
	log     *slog.Logger
	sink    interceptor.AuditSink
	now     func() time.Time
	guard   *interceptor.Guard
	unary   grpc.UnaryServerInterceptor
	stream  grpc.StreamServerInterceptor
	files   *protoregistry.Files
	methods map[string]method
	strip   map[string]bool
	// policies: see Policies.
	policies PolicyTable
	// warnings: see Warnings.
	warnings []string
	signer   *assertion.Signer
	// assertions are reused for identical calls (see assertionCache).
	assertions *assertionCache
	backend    *grpc.ClientConn
	server     *grpc.Server
	health     *health.Server
	closers    []func()
	// registry holds the gateway's metrics (Metrics).
	registry *prometheus.Registry
	// jwksTLS is the TLS of ServeJWKS: the gateway's certificate; nil with
	// insecure_plaintext.
	jwksTLS *tls.Config
	// revocation: the Guard checks token and key revocations.
	revocation bool

	// mu guards jwksServers and closed.
	mu          sync.Mutex
	jwksServers []*http.Server
	closed      bool
	closeOnce   sync.Once
}

// method is what the descriptor sets say of one method.
type method struct {
	input                        protoreflect.MessageDescriptor
	clientStreams, serverStreams bool
}

// Load reads the configuration file at path (LoadConfig) and builds the
// gateway. Every error names the file and, where there is one, the field.
func Load(path string, opts ...Option) (*Gateway, error) {
	cfg, err := LoadConfig(path)
	if err != nil {
		return nil, err
	}
	return build(path, cfg, opts)
}

// New builds a gateway from a configuration: it checks it, reads the
// descriptor sets and key files, builds the Guard and checks that it can
// enforce every policy, and prepares (without dialling) the connection to
// the backend. Nothing listens until Serve.
func New(cfg *stepupv1.GatewayConfig, opts ...Option) (*Gateway, error) {
	return build("", cfg, opts)
}

func build(path string, cfg *stepupv1.GatewayConfig, opts []Option) (_ *Gateway, err error) {
	o := options{log: slog.Default(), now: time.Now}
	optErr := option.Apply("gateway", "New", opts, func(opt Option) error { return opt.applyGateway(&o) })
	err = check(path, cfg)
	if optErr != nil {
		err = errors.Join(optErr, err)
	}
	if err != nil {
		return nil, err
	}
	if o.sink == nil {
		o.sink = interceptor.NewSlogSink(o.log)
	}
	g := &Gateway{path: path, cfg: cfg, log: o.log, sink: o.sink, now: o.now}
	defer func() {
		if err != nil {
			g.Close()
		}
	}()
	if g.files, err = loadDescriptorSets(path, cfg.GetDescriptorSets()); err != nil {
		return nil, err
	}
	g.methods = methodsOf(g.files)
	g.strip = map[string]bool{}
	for _, h := range cfg.GetStripHeaders() {
		g.strip[h] = true
	}
	if err := g.buildGuard(o); err != nil {
		return nil, err
	}
	if g.signer, err = g.buildSigner(); err != nil {
		return nil, err
	}
	g.assertions = newAssertionCache()
	if g.backend, err = g.dialBackend(); err != nil {
		return nil, err
	}
	if err := g.buildServer(); err != nil {
		return nil, err
	}
	return g, nil
}

// bad wraps err as a *ConfigError of field.
func (g *Gateway) bad(field string, err error) error {
	return &ConfigError{Path: g.path, Field: field, Err: err}
}

// buildGuard builds the stores, the verifiers and the Guard, and checks
// that it can enforce every policy of the descriptor sets.
func (g *Gateway) buildGuard(o options) error {
	cfg := g.cfg
	g.registry = prometheus.NewRegistry()
	decisions, err := metrics.New(g.registry, metrics.WithFiles(g.files))
	if err != nil {
		return err
	}
	sinks := []interceptor.AuditSink{g.sink, decisions}
	if a := cfg.GetAuditLog(); a != nil {
		trail, err := g.openTrail(a)
		if err != nil {
			return err
		}
		sinks = append(sinks, trail)
	}
	g.sink = interceptor.Sinks(sinks...)
	redisHook, err := metrics.RedisHook(g.registry)
	if err != nil {
		return err
	}
	store := o.store
	if store == nil {
		s, closeStore, err := serverkit.NewRedisStore("redis_url", cfg.GetRedisUrl(), redisHook)
		if err != nil {
			return g.bad("", err)
		}
		g.closers = append(g.closers, closeStore)
		store = s
	}
	proofs, _, err := serverkit.NewDPoPVerifier(serverkit.DPoP{
		Authorities: cfg.GetDpop().GetAuthorities(), AuthoritiesName: "dpop.authorities",
		RequireNonce: cfg.GetDpop().GetRequireNonce(),
		NonceKey:     serverkit.File{Name: "dpop.nonce_key_file", Path: cfg.GetDpop().GetNonceKeyFile()},
	}, store)
	if err != nil {
		return g.bad("", err)
	}
	if ms, ok := proofs.ReplayStore().(*dpop.MemoryReplayStore); ok {
		if err := metrics.RegisterReplayStore(g.registry, ms, nil); err != nil {
			return err
		}
	}
	if ls, ok := proofs.ReplayStore().(metrics.LossReporter); ok {
		if err := metrics.RegisterStoreLosses(g.registry, ls); err != nil {
			return err
		}
	}
	gopts := []interceptor.Option{
		interceptor.WithFiles(g.files),
		interceptor.WithRequirePolicy(),
		interceptor.WithDPoP(proofs),
		interceptor.WithAuditSink(g.sink),
	}
	if t := cfg.GetToken(); t != nil {
		v, err := interceptor.NewJWTVerifier(interceptor.JWTConfig{
			Issuer: t.GetIssuer(), Audience: t.GetAudience(),
			JWKSFile: t.GetJwksFile(), JWKSURL: t.GetJwksUrl(), InsecureHTTPJWKS: t.GetInsecureHttpJwks(),
			AllowUntypedJWT: t.GetAllowUntypedJwt(),
		})
		if err != nil {
			return g.bad("token", err)
		}
		g.closers = append(g.closers, v.Close)
		gopts = append(gopts, interceptor.WithTokenVerifier(v))
	}
	display, err := g.displayFields()
	if err != nil {
		return err
	}
	var stepUp *challenge.Service
	if s := cfg.GetStepUp(); s != nil {
		svc, _, err := serverkit.NewStepUp(serverkit.StepUpFiles{
			Keys:        serverkit.File{Name: "step_up.keys_file", Path: s.GetKeysFile()},
			TOTPSecrets: serverkit.File{Name: "step_up.totp_secrets_file", Path: s.GetTotpSecretsFile()},
			DeviceKeys:  serverkit.File{Name: "step_up.device_keys_file", Path: s.GetDeviceKeysFile()},
		}, store, g.log, challenge.WithDisplayFields(display))
		if err != nil {
			return g.bad("", err)
		}
		stepUp = svc
		gopts = append(gopts, interceptor.WithStepUp(svc))
	}
	// Revocations are written to the shared store by the operator's own
	// program (challenge.Revocations.RevokeTokens, RevokeKey): with one,
	// every call is checked against them unless
	// token.insecure_no_revocation says otherwise. An in-process store
	// holds none that anyone could write.
	if t := cfg.GetToken(); t != nil && store != nil && !t.GetInsecureNoRevocation() {
		var rev *challenge.Revocations
		if stepUp != nil {
			rev = stepUp.Revocations()
		} else if rev, err = challenge.NewRevocations(store, nil); err != nil {
			return err
		}
		gopts = append(gopts, interceptor.WithTokenRevocationFrom(rev))
		g.revocation = true
	}
	policyOpts := append(policyOptions(cfg), o.guardOpts...)
	guard, err := interceptor.New(append(gopts, policyOpts...)...)
	if err != nil {
		return g.policyErrors(err)
	}
	// The table of Policies, by the same resolution as the Guard's.
	if g.policies, err = policyTable(g.files, display, policyOpts); err != nil {
		return g.policyErrors(err)
	}
	report, err := guard.Coverage(g)
	if err != nil {
		return g.bad("", fmt.Errorf("a policy cannot be enforced with this configuration: %w", err))
	}
	if missing := report.Unprotected(); len(missing) > 0 {
		g.log.Warn("methods without a policy are refused (POLICY_MISSING); annotate them, or give them one in policies",
			slog.Any("methods", missing))
	}
	g.guard, g.unary, g.stream = guard, guard.UnaryServerInterceptor(), guard.StreamServerInterceptor()
	g.warnings = g.unseenRequests(display)
	for _, w := range g.warnings {
		g.log.Warn(w)
	}
	return nil
}

// unseenRequests names the bound step-up methods whose request shows no
// field in its challenge summary.
func (g *Gateway) unseenRequests(display challenge.DisplayFields) []string {
	var out []string
	for _, full := range sortedKeys(g.methods) {
		m := g.methods[full]
		p, err := g.guard.Policy(full)
		if err != nil || p.StepUp == nil || !p.StepUp.BindRequest || m.clientStreams || m.serverStreams {
			continue
		}
		if !display.Shows(m.input) {
			out = append(out, fmt.Sprintf("%s binds its request to the approval, but %s has no display field: "+
				"the user approves a request they cannot see (annotate it with (stepup.v1.display), or declare its fields in display)", full, m.input.FullName()))
		}
	}
	return out
}

// Warnings returns what the configuration allows but should not: bound
// step-up methods whose request shows the user nothing. stepup-gateway
// --check prints them; the gateway logs them at start.
func (g *Gateway) Warnings() []string { return slices.Clone(g.warnings) }

// displayFields reads the display configuration and checks it against the
// descriptor sets.
func (g *Gateway) displayFields() (challenge.DisplayFields, error) {
	d := challenge.DisplayFields{}
	for name, disp := range g.cfg.GetDisplay() {
		d[protoreflect.FullName(name)] = disp
	}
	if err := d.Validate(g.files); err != nil {
		return nil, g.bad("display", err)
	}
	return d, nil
}

// openTrail opens the tamper-evident audit trail of audit_log. Close
// closes it after the server stopped: its last decisions are under the
// closing checkpoint.
func (g *Gateway) openTrail(a *stepupv1.AuditLogConfig) (*auditlog.Sink, error) {
	key, err := auditlog.ReadSigningKey(a.GetKeyFile())
	if err != nil {
		return nil, g.bad("audit_log.key_file", err)
	}
	opts := []auditlog.Option{auditlog.WithLogger(g.log)}
	if a.GetReplica() != "" {
		opts = append(opts, auditlog.WithReplica(a.GetReplica()))
	}
	if n := a.GetCheckpointEvery(); n > 0 {
		opts = append(opts, auditlog.WithCheckpointEvery(int(n)))
	}
	if d := a.GetCheckpointInterval(); d != nil {
		opts = append(opts, auditlog.WithCheckpointInterval(d.AsDuration()))
	}
	if n := a.GetMaxFileBytes(); n > 0 {
		opts = append(opts, auditlog.WithMaxFileSize(int64(min(n, math.MaxInt64))))
	}
	var copies *os.File
	if p := a.GetCheckpointCopyFile(); p != "" {
		if copies, err = os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600); err != nil {
			return nil, g.bad("audit_log.checkpoint_copy_file", err)
		}
		opts = append(opts, auditlog.WithCheckpointCopy(copies))
	}
	trail, err := auditlog.Open(a.GetDir(), key, opts...)
	if err != nil {
		if copies != nil {
			copies.Close()
		}
		return nil, g.bad("audit_log", err)
	}
	g.log.Info("audit trail", slog.String("dir", a.GetDir()), slog.String("chain", trail.Chain()), slog.String("kid", key.ID))
	g.closers = append(g.closers, func() {
		if err := trail.Close(); err != nil {
			g.log.Error("closing the audit trail", slog.String("error", err.Error()))
		}
		if copies != nil {
			copies.Close()
		}
	})
	return trail, nil
}

// policyErrors turns the Guard's errors about configured policies into
// errors naming the configuration's fields.
func (g *Gateway) policyErrors(err error) error {
	var errs []error
	for _, e := range unjoin(err) {
		var unknown *interceptor.UnknownNameError
		var conflict *interceptor.PolicyConflictError
		switch {
		case errors.Is(e, interceptor.ErrNoTokenVerifier):
			errs = append(errs, g.bad("token", fmt.Errorf("required: %w", e)))
		case errors.As(e, &unknown):
			msg := fmt.Sprintf("no such %s in the descriptor sets", unknown.Kind)
			if unknown.Closest != "" {
				msg += fmt.Sprintf("; did you mean %q?", unknown.Closest)
			}
			errs = append(errs, g.bad(fmt.Sprintf("policies[%q]", unknown.Name), errors.New(msg)))
		case errors.As(e, &conflict) && conflict.Configured != "":
			errs = append(errs, g.bad(fmt.Sprintf("policies[%q]", conflict.Configured),
				fmt.Errorf("%s of %s is annotated in the descriptor sets (%s): %s", kindOf(conflict.Configured), conflict.Method, conflict.Field, conflict.Fix)))
		case errors.As(e, &conflict):
			errs = append(errs, g.bad("policies", conflict))
		default:
			errs = append(errs, g.bad("policies", e))
		}
	}
	return errors.Join(errs...)
}

func kindOf(name string) string {
	if strings.HasPrefix(name, "/") {
		return "the method"
	}
	return "the service"
}

// unjoin returns the errors an errors.Join holds, or err alone.
func unjoin(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var out []error
		for _, e := range j.Unwrap() {
			out = append(out, unjoin(e)...)
		}
		return out
	}
	return []error{err}
}

// buildSigner loads (or generates) the assertion key.
func (g *Gateway) buildSigner() (*assertion.Signer, error) {
	a := g.cfg.GetAssertion()
	var (
		key *ecdsa.PrivateKey
		kid string
	)
	if a.GetKeyFile() != "" {
		data, err := os.ReadFile(a.GetKeyFile())
		if err != nil {
			return nil, g.bad("assertion.key_file", err)
		}
		if key, kid, err = assertion.ParsePrivateJWK(data); err != nil {
			return nil, g.bad("assertion.key_file", err)
		}
	} else {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return nil, err
		}
		key, kid = k, "generated-"+time.Now().UTC().Format("20060102T150405")
		g.log.Warn("no assertion.key_file: generated an assertion key for this process; " +
			"backends must fetch this process's JWKS, and replicas do not share it")
	}
	s, err := assertion.NewSigner(assertion.SignerConfig{
		Key: key, KeyID: kid, Issuer: a.GetIssuer(), Audience: a.GetAudience(),
		TTL: a.GetTtl().AsDuration(), Clock: g.now,
	})
	if err != nil {
		return nil, g.bad("assertion", err)
	}
	return s, nil
}

// dialBackend prepares the client connection to the backend (grpc.NewClient
// does not connect until the first call).
func (g *Gateway) dialBackend() (*grpc.ClientConn, error) {
	b := g.cfg.GetBackend()
	var creds credentials.TransportCredentials
	if b.GetInsecurePlaintext() {
		creds = insecure.NewCredentials()
	} else {
		conf, err := backendTLS(b.GetTls())
		if err != nil {
			return nil, g.bad("backend.tls", err)
		}
		creds = credentials.NewTLS(conf)
	}
	maxMsg := g.maxMessage()
	opts := []grpc.DialOption{
		grpc.WithTransportCredentials(creds), grpc.WithSharedWriteBuffer(true),
		grpc.WithDefaultCallOptions(grpc.ForceCodecV2(rawCodec{}),
			grpc.MaxCallRecvMsgSize(maxMsg), grpc.MaxCallSendMsgSize(maxMsg)),
	}
	if a := b.GetAuthority(); a != "" {
		opts = append(opts, grpc.WithAuthority(a))
	}
	conn, err := grpc.NewClient("passthrough:///"+b.GetAddress(), opts...)
	if err != nil {
		return nil, g.bad("backend.address", err)
	}
	return conn, nil
}

// backendTLS is the TLS configuration to the backend: its CA (or the
// system's roots), an optional client certificate for mTLS.
func backendTLS(t *stepupv1.BackendTLS) (*tls.Config, error) {
	conf := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: t.GetServerName()}
	if t.GetCaFile() != "" {
		pool, err := loadPool("ca_file", t.GetCaFile())
		if err != nil {
			return nil, err
		}
		conf.RootCAs = pool
	}
	if t.GetCertFile() != "" {
		cert, err := tls.LoadX509KeyPair(t.GetCertFile(), t.GetKeyFile())
		if err != nil {
			return nil, err
		}
		conf.Certificates = []tls.Certificate{cert}
	}
	return conf, nil
}

// serverTLS is the gateway's own TLS, with client certificates required
// when client_ca_file is set.
func serverTLS(t *stepupv1.ServerTLS) (*tls.Config, error) {
	cert, err := tls.LoadX509KeyPair(t.GetCertFile(), t.GetKeyFile())
	if err != nil {
		return nil, err
	}
	conf := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	if t.GetClientCaFile() != "" {
		pool, err := loadPool("client_ca_file", t.GetClientCaFile())
		if err != nil {
			return nil, err
		}
		conf.ClientCAs, conf.ClientAuth = pool, tls.RequireAndVerifyClientCert
	}
	return conf, nil
}

// loadPool reads a PEM CA bundle; field names it in errors.
func loadPool(field, path string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("%s %s holds no PEM certificate", field, path)
	}
	return pool, nil
}

// buildServer builds the gRPC server: every call goes to the proxy handler,
// except the gateway's own health service and, when configured, reflection
// answered from the descriptor sets. The transport's limits are
// interceptor.TransportLimits: streams per connection, request metadata,
// connection age, idleness and keepalive, handshake time.
func (g *Gateway) buildServer() error {
	opts := append(interceptor.TransportLimits(),
		grpc.UnknownServiceHandler(g.proxy),
		grpc.ForceServerCodecV2(serverCodec{proto: encoding.GetCodecV2("proto")}),
		grpc.MaxRecvMsgSize(g.maxMessage()), grpc.MaxSendMsgSize(g.maxMessage()),
		grpc.NumStreamWorkers(uint32(runtime.GOMAXPROCS(0))), grpc.SharedWriteBuffer(true),
	)
	if !g.cfg.GetInsecurePlaintext() {
		conf, err := serverTLS(g.cfg.GetTls())
		if err != nil {
			return g.bad("tls", err)
		}
		opts = append(opts, grpc.Creds(credentials.NewTLS(conf)))
		// The JWKS is public: its clients (backends) need the gateway's
		// certificate, not one of their own.
		g.jwksTLS = &tls.Config{Certificates: conf.Certificates, MinVersion: tls.VersionTLS12}
	}
	g.server = grpc.NewServer(opts...)
	g.health = health.NewServer()
	healthpb.RegisterHealthServer(g.server, g.health)
	if g.cfg.GetReflection() {
		ro := reflection.ServerOptions{Services: g, DescriptorResolver: g.files, ExtensionResolver: extensionsOf(g.files)}
		reflectionv1.RegisterServerReflectionServer(g.server, reflection.NewServerV1(ro))
		reflectionv1alpha.RegisterServerReflectionServer(g.server, reflection.NewServer(ro))
	}
	return nil
}

// serverCodec passes the proxied frames through and encodes the messages of
// the gateway's own services (health, reflection) with the proto codec.
type serverCodec struct{ proto encoding.CodecV2 }

func (c serverCodec) Marshal(v any) (mem.BufferSlice, error) {
	if f, ok := v.(*frame); ok {
		return rawCodec{}.Marshal(f)
	}
	return c.proto.Marshal(v)
}

func (c serverCodec) Unmarshal(data mem.BufferSlice, v any) error {
	if f, ok := v.(*frame); ok {
		return rawCodec{}.Unmarshal(data, f)
	}
	return c.proto.Unmarshal(data, v)
}

func (serverCodec) Name() string { return "proto" }

// GetServiceInfo lists the services of the descriptor sets (what reflection
// lists, and what the coverage check covers).
func (g *Gateway) GetServiceInfo() map[string]grpc.ServiceInfo {
	out := map[string]grpc.ServiceInfo{}
	g.files.RangeFiles(func(fd protoreflect.FileDescriptor) bool {
		for i := 0; i < fd.Services().Len(); i++ {
			sd := fd.Services().Get(i)
			info := grpc.ServiceInfo{Metadata: fd.Path()}
			for j := 0; j < sd.Methods().Len(); j++ {
				md := sd.Methods().Get(j)
				info.Methods = append(info.Methods, grpc.MethodInfo{
					Name: string(md.Name()), IsClientStream: md.IsStreamingClient(), IsServerStream: md.IsStreamingServer(),
				})
			}
			out[string(sd.FullName())] = info
		}
		return true
	})
	return out
}

// extensionsOf registers every extension the descriptor sets declare, for
// reflection's extension queries.
func extensionsOf(files *protoregistry.Files) *protoregistry.Types {
	types := &protoregistry.Types{}
	var add func(xs protoreflect.ExtensionDescriptors)
	var addMessages func(ms protoreflect.MessageDescriptors)
	add = func(xs protoreflect.ExtensionDescriptors) {
		for i := 0; i < xs.Len(); i++ {
			_ = types.RegisterExtension(dynamicpb.NewExtensionType(xs.Get(i)))
		}
	}
	addMessages = func(ms protoreflect.MessageDescriptors) {
		for i := 0; i < ms.Len(); i++ {
			add(ms.Get(i).Extensions())
			addMessages(ms.Get(i).Messages())
		}
	}
	files.RangeFiles(func(fd protoreflect.FileDescriptor) bool {
		add(fd.Extensions())
		addMessages(fd.Messages())
		return true
	})
	return types
}

// methodsOf indexes every method of files by full method name.
func methodsOf(files *protoregistry.Files) map[string]method {
	out := map[string]method{}
	files.RangeFiles(func(fd protoreflect.FileDescriptor) bool {
		for i := 0; i < fd.Services().Len(); i++ {
			sd := fd.Services().Get(i)
			for j := 0; j < sd.Methods().Len(); j++ {
				md := sd.Methods().Get(j)
				out["/"+string(sd.FullName())+"/"+string(md.Name())] = method{
					input: md.Input(), clientStreams: md.IsStreamingClient(), serverStreams: md.IsStreamingServer(),
				}
			}
		}
		return true
	})
	return out
}

// Metrics is the gateway's Prometheus registry: the Guard's decisions and
// the gateway's own events (package metrics), the replay store and Redis.
// metrics_listen serves it at /metrics.
func (g *Gateway) Metrics() prometheus.Gatherer { return g.registry }

// Guard returns the gateway's Guard (for Coverage reports).
func (g *Gateway) Guard() *interceptor.Guard { return g.guard }

// JWKS returns the JWK Set document of the identity assertions' public key
// (what JWKSHandler serves, and what assertion.VerifierConfig.JWKS takes).
func (g *Gateway) JWKS() []byte { return g.signer.JWKS() }

// JWKSHandler serves the assertion JWKS (mount it at
// /.well-known/jwks.json; jwks_listen does so).
func (g *Gateway) JWKSHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		w.Header().Set("Content-Type", "application/jwk-set+json")
		w.Header().Set("Cache-Control", "max-age=300")
		_, _ = w.Write(g.signer.JWKS())
	})
}

// ServeJWKS serves the assertion JWKS (JWKSHandler, at
// /.well-known/jwks.json) on lis until Shutdown or Close, over TLS with the
// gateway's certificate (tls.cert_file), or in plain HTTP when the gateway
// is insecure_plaintext (jwks_listen is then a loopback address): the keys
// decide which assertions a backend trusts, so they are not served in clear
// text on a network. jwks_listen serves it (cmd/stepup-gateway). A backend
// that can read a file should prefer the JWKS as a file.
func (g *Gateway) ServeJWKS(lis net.Listener) error {
	mux := http.NewServeMux()
	mux.Handle("/.well-known/jwks.json", g.JWKSHandler())
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second, ErrorLog: slog.NewLogLogger(g.log.Handler(), slog.LevelDebug)}
	g.mu.Lock()
	if g.closed {
		g.mu.Unlock()
		lis.Close()
		return errors.New("gateway: ServeJWKS after Close")
	}
	g.jwksServers = append(g.jwksServers, srv)
	g.mu.Unlock()
	var err error
	if g.jwksTLS != nil {
		srv.TLSConfig = g.jwksTLS.Clone()
		err = srv.ServeTLS(lis, "", "")
	} else {
		err = srv.Serve(lis)
	}
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// Serve serves gRPC on lis until Shutdown or Close. The gateway's health
// reports SERVING from the start.
func (g *Gateway) Serve(lis net.Listener) error {
	g.health.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
	g.log.Info("serving",
		slog.String("address", lis.Addr().String()),
		slog.Bool("tls", !g.cfg.GetInsecurePlaintext()),
		slog.String("backend", g.cfg.GetBackend().GetAddress()),
		slog.Int("methods", len(g.methods)),
		slog.Bool("token_revocation", g.revocation),
	)
	err := g.server.Serve(lis)
	if errors.Is(err, grpc.ErrServerStopped) {
		return nil
	}
	return err
}

// Shutdown stops accepting calls, reports NOT_SERVING, and waits for the
// calls and streams in flight to finish until ctx is done; then it cancels
// them. It closes the backend connection and the stores last.
func (g *Gateway) Shutdown(ctx context.Context) {
	g.health.Shutdown()
	done := make(chan struct{})
	go func() {
		g.server.GracefulStop()
		close(done)
	}()
	select {
	case <-done:
	case <-ctx.Done():
		g.log.Warn("calls still running after the grace period; cancelling them")
		g.server.Stop()
		<-done
	}
	for _, srv := range g.stopJWKS() {
		_ = srv.Shutdown(ctx)
	}
	g.Close()
}

// stopJWKS marks the gateway closed for ServeJWKS and returns its servers.
func (g *Gateway) stopJWKS() []*http.Server {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.closed = true
	return slices.Clone(g.jwksServers)
}

// ShutdownGrace is the configured drain time of Shutdown.
func (g *Gateway) ShutdownGrace() time.Duration {
	if d := g.cfg.GetShutdownGrace(); d != nil {
		return d.AsDuration()
	}
	return DefaultShutdownGrace
}

// Close stops the server at once and releases the backend connection and
// the stores.
func (g *Gateway) Close() {
	g.closeOnce.Do(func() {
		for _, srv := range g.stopJWKS() {
			_ = srv.Close()
		}
		if g.server != nil {
			g.server.Stop()
		}
		if g.backend != nil {
			_ = g.backend.Close()
		}
		for _, c := range slices.Backward(g.closers) {
			c()
		}
	})
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// DefaultMaxMessage is the largest message forwarded when
// max_message_bytes is not set.
const DefaultMaxMessage = 16 << 20

func (g *Gateway) maxMessage() int {
	if n := g.cfg.GetMaxMessageBytes(); n > 0 {
		return int(n)
	}
	return DefaultMaxMessage
}

// Config returns the configuration, with its defaults filled in.
func (g *Gateway) Config() *stepupv1.GatewayConfig { return g.cfg }
