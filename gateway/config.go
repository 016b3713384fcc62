package gateway

import (
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"time"

	"github.com/stepupgrpc/stepup/auditlog"
	"github.com/stepupgrpc/stepup/interceptor"
	"github.com/stepupgrpc/stepup/internal/limited"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/descriptorpb"
	"sigs.k8s.io/yaml"

	"github.com/stepupgrpc/stepup/gateway/serverkit"
	stepupv1 "github.com/stepupgrpc/stepup/proto/stepup/v1"
)

// Defaults of the configuration.
const (
	DefaultListen        = "127.0.0.1:8443"
	DefaultShutdownGrace = 10 * time.Second
	// MaxConfigSize bounds the configuration file and each descriptor set.
	MaxConfigSize = 16 << 20
)

// ConfigError is a mistake in the configuration: the file, the field (in
// the file's own spelling, "backend.address" or
// `policies["/pkg.Service/Method"]`) and what is wrong. The gateway exits
// with it before it listens.
type ConfigError struct {
	// Path is the configuration file ("" for a configuration built in Go).
	Path string
	// Field is the field, "" for the file as a whole.
	Field string
	// Err is what is wrong.
	Err error
}

func (e *ConfigError) Error() string {
	var b strings.Builder
	if e.Path != "" {
		b.WriteString(e.Path)
		b.WriteString(": ")
	}
	if e.Field != "" {
		b.WriteString(e.Field)
		b.WriteString(": ")
	}
	b.WriteString(e.Err.Error())
	return b.String()
}

// Unwrap returns the cause.
func (e *ConfigError) Unwrap() error { return e.Err }

// LoadConfig reads a configuration file, YAML or JSON, in the protobuf JSON
// mapping of stepupv1.GatewayConfig. Unknown fields, unknown enum names and
// malformed values are errors naming the file. Relative paths inside the
// file are resolved against the file's directory. The result is not yet
// validated: New does that.
func LoadConfig(path string) (*stepupv1.GatewayConfig, error) {
	data, err := readLimited(path)
	if err != nil {
		return nil, &ConfigError{Path: path, Err: err}
	}
	js, err := yaml.YAMLToJSON(data)
	if err != nil {
		return nil, &ConfigError{Path: path, Err: fmt.Errorf("not valid YAML or JSON: %w", err)}
	}
	cfg := &stepupv1.GatewayConfig{}
	if err := protojson.Unmarshal(js, cfg); err != nil {
		return nil, &ConfigError{Path: path, Err: errors.New(cleanProtojson(err))}
	}
	resolvePaths(cfg, filepath.Dir(path))
	return cfg, nil
}

// cleanProtojson drops protojson's "proto: (line 1:23): " prefix, whose
// position is in the JSON the YAML became, not in the file.
func cleanProtojson(err error) string {
	msg := strings.TrimPrefix(err.Error(), "proto:")
	msg = strings.TrimSpace(msg)
	if strings.HasPrefix(msg, "(line ") {
		if i := strings.Index(msg, "): "); i >= 0 {
			msg = msg[i+3:]
		}
	}
	return msg
}

func readLimited(path string) ([]byte, error) { return limited.ReadFile(path, MaxConfigSize) }

// resolvePaths makes every file path of cfg relative to dir absolute.
func resolvePaths(cfg *stepupv1.GatewayConfig, dir string) {
	abs := func(p *string) {
		if *p != "" && !filepath.IsAbs(*p) {
			*p = filepath.Join(dir, *p)
		}
	}
	for i := range cfg.DescriptorSets {
		abs(&cfg.DescriptorSets[i])
	}
	if t := cfg.GetTls(); t != nil {
		abs(&t.CertFile)
		abs(&t.KeyFile)
		abs(&t.ClientCaFile)
	}
	if t := cfg.GetBackend().GetTls(); t != nil {
		abs(&t.CaFile)
		abs(&t.CertFile)
		abs(&t.KeyFile)
	}
	if t := cfg.GetToken(); t != nil {
		abs(&t.JwksFile)
	}
	if d := cfg.GetDpop(); d != nil {
		abs(&d.NonceKeyFile)
	}
	if s := cfg.GetStepUp(); s != nil {
		abs(&s.KeysFile)
		abs(&s.TotpSecretsFile)
		abs(&s.DeviceKeysFile)
	}
	if a := cfg.GetAssertion(); a != nil {
		abs(&a.KeyFile)
	}
	if a := cfg.GetAuditLog(); a != nil {
		abs(&a.Dir)
		abs(&a.KeyFile)
		abs(&a.CheckpointCopyFile)
	}
}

// check reports every structural mistake of cfg at once (the ones that
// need no file): each a *ConfigError.
func check(path string, cfg *stepupv1.GatewayConfig) error {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, &ConfigError{Path: path, Field: field, Err: fmt.Errorf(format, args...)})
	}
	if cfg.GetListen() == "" {
		cfg.Listen = DefaultListen
	}
	if _, _, err := net.SplitHostPort(cfg.GetListen()); err != nil {
		bad("listen", "%v", err)
	}
	switch {
	case cfg.GetInsecurePlaintext() && cfg.GetTls() != nil:
		bad("insecure_plaintext", "set together with tls; choose one")
	case cfg.GetInsecurePlaintext():
		if err := serverkit.CheckLoopback(cfg.GetListen()); err != nil {
			bad("insecure_plaintext", "%v: tokens and proofs would cross the network in clear text", err)
		}
	case cfg.GetTls().GetCertFile() == "" || cfg.GetTls().GetKeyFile() == "":
		bad("tls", "cert_file and key_file are required (or insecure_plaintext on a loopback address)")
	}
	b := cfg.GetBackend()
	switch {
	case b.GetAddress() == "":
		bad("backend.address", "required")
	default:
		if _, _, err := net.SplitHostPort(b.GetAddress()); err != nil {
			bad("backend.address", "%v", err)
		}
	}
	switch {
	case b.GetInsecurePlaintext() && b.GetTls() != nil:
		bad("backend.insecure_plaintext", "set together with backend.tls; choose one")
	case !b.GetInsecurePlaintext() && b.GetTls() == nil && b.GetAddress() != "":
		bad("backend.tls", "required (an empty object {} for the system's roots), or backend.insecure_plaintext")
	case (b.GetTls().GetCertFile() == "") != (b.GetTls().GetKeyFile() == ""):
		bad("backend.tls", "cert_file and key_file go together")
	}
	if len(cfg.GetDescriptorSets()) == 0 {
		bad("descriptor_sets", "at least one is required (buf build -o api.binpb)")
	}
	for name := range cfg.GetPolicies() {
		if cfg.GetPolicies()[name] == nil {
			bad(fmt.Sprintf("policies[%q]", name), "empty")
		}
	}
	for i, s := range cfg.GetInsecureOpenServices() {
		if s == "" || strings.Contains(s, "/") {
			bad(fmt.Sprintf("insecure_open_services[%d]", i), "%q is not a service name (pkg.Service)", s)
		}
	}
	if t := cfg.GetToken(); t != nil {
		if t.GetIssuer() == "" {
			bad("token.issuer", "required")
		}
		if t.GetAudience() == "" {
			bad("token.audience", "required")
		}
		if (t.GetJwksFile() == "") == (t.GetJwksUrl() == "") {
			bad("token", "exactly one of jwks_file and jwks_url")
		}
		if u := t.GetJwksUrl(); u != "" {
			if err := interceptor.CheckJWKSURL(u, t.GetInsecureHttpJwks()); err != nil {
				bad("token.jwks_url", "%v", err)
			}
		}
	}
	if addr := cfg.GetJwksListen(); addr != "" {
		if _, _, err := net.SplitHostPort(addr); err != nil {
			bad("jwks_listen", "%v", err)
		} else if cfg.GetInsecurePlaintext() {
			if err := serverkit.CheckLoopback(addr); err != nil {
				bad("jwks_listen", "%v: with insecure_plaintext the JWKS is served in plain HTTP, and whoever is on the path could replace the keys backends trust", err)
			}
		}
	}
	if !cfg.GetInsecurePlaintext() && len(cfg.GetDpop().GetAuthorities()) == 0 {
		bad("dpop.authorities", "required with TLS: the names clients address the gateway by (the host[:port] of htu); the client-chosen :authority is never trusted alone")
	}
	a := cfg.GetAssertion()
	switch {
	case a == nil:
		bad("assertion", "required: issuer and audience of the identity assertion the backend receives")
	default:
		if a.GetIssuer() == "" {
			bad("assertion.issuer", "required")
		}
		if a.GetAudience() == "" {
			bad("assertion.audience", "required")
		}
		if ttl := a.GetTtl(); ttl != nil {
			if d := ttl.AsDuration(); !ttl.IsValid() || d < time.Second || d > 10*time.Minute {
				bad("assertion.ttl", "%s is outside 1s..10m", d)
			}
		}
	}
	if g := cfg.GetShutdownGrace(); g != nil && (!g.IsValid() || g.AsDuration() < 0) {
		bad("shutdown_grace", "must be a non-negative duration")
	}
	if cfg.GetMaxMessageBytes() < 0 {
		bad("max_message_bytes", "must be positive")
	}
	if a := cfg.GetAuditLog(); a != nil {
		if a.GetDir() == "" {
			bad("audit_log.dir", "required")
		}
		if a.GetKeyFile() == "" {
			bad("audit_log.key_file", "required: the private JWK that signs the checkpoints (stepup keygen --alg Ed25519 --kid audit-1 --out audit.jwk)")
		}
		if d := a.GetCheckpointInterval(); d != nil && (!d.IsValid() || d.AsDuration() < 0) {
			bad("audit_log.checkpoint_interval", "must be a non-negative duration")
		}
		if n := a.GetMaxFileBytes(); n != 0 && n < auditlog.MinFileSize {
			bad("audit_log.max_file_bytes", "%d is below %d", n, auditlog.MinFileSize)
		}
	}
	for i, h := range cfg.GetStripHeaders() {
		if h == "" || h != strings.ToLower(h) || strings.HasPrefix(h, ":") {
			bad(fmt.Sprintf("strip_headers[%d]", i), "%q: metadata names are lower case, not pseudo-headers", h)
		}
	}
	return errors.Join(errs...)
}

// LoadDescriptorSets reads FileDescriptorSet files (buf build -o) into one
// registry, as the gateway does with descriptor_sets. The stepup options in
// them are parsed as the extensions they are.
func LoadDescriptorSets(paths ...string) (*protoregistry.Files, error) {
	return loadDescriptorSets("", paths)
}

// loadDescriptorSets reads FileDescriptorSet files into one registry; path
// is the configuration file, for errors.
func loadDescriptorSets(path string, paths []string) (*protoregistry.Files, error) {
	all := &descriptorpb.FileDescriptorSet{}
	seen := map[string]bool{}
	for i, p := range paths {
		field := fmt.Sprintf("descriptor_sets[%d]", i)
		data, err := readLimited(p)
		if err != nil {
			return nil, &ConfigError{Path: path, Field: field, Err: err}
		}
		set := &descriptorpb.FileDescriptorSet{}
		if err := proto.Unmarshal(data, set); err != nil {
			return nil, &ConfigError{Path: path, Field: field, Err: fmt.Errorf("%s is not a FileDescriptorSet (buf build -o FILE.binpb): %w", p, err)}
		}
		if len(set.GetFile()) == 0 {
			return nil, &ConfigError{Path: path, Field: field, Err: fmt.Errorf("%s holds no file", p)}
		}
		for _, f := range set.GetFile() {
			if !seen[f.GetName()] {
				seen[f.GetName()] = true
				all.File = append(all.File, f)
			}
		}
	}
	files, err := protodesc.NewFiles(all)
	if err != nil {
		return nil, &ConfigError{Path: path, Field: "descriptor_sets", Err: fmt.Errorf("%w (build them with their imports: buf build includes them; protoc needs --include_imports)", err)}
	}
	return files, nil
}

// DescriptorSet returns what `buf build -o` writes for files: a
// FileDescriptorSet of each with its imports, dependencies first. A Go
// program that embeds the gateway builds its descriptor_sets file from its
// own registry with it.
func DescriptorSet(files ...protoreflect.FileDescriptor) ([]byte, error) {
	set := &descriptorpb.FileDescriptorSet{}
	seen := map[string]bool{}
	var add func(fd protoreflect.FileDescriptor)
	add = func(fd protoreflect.FileDescriptor) {
		if seen[fd.Path()] {
			return
		}
		seen[fd.Path()] = true
		for i := 0; i < fd.Imports().Len(); i++ {
			add(fd.Imports().Get(i).FileDescriptor)
		}
		set.File = append(set.File, protodesc.ToFileDescriptorProto(fd))
	}
	for _, fd := range files {
		add(fd)
	}
	return proto.Marshal(set)
}
