package dpop

import (
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/stepupgrpc/stepup/internal/option"
)

// VerifierOption configures a Verifier. Options report their mistakes from
// NewVerifier, every one of them joined with errors.Join, before anything
// is built.
type VerifierOption interface {
	applyVerifier(*verifierConfig) error
}

// verifierOptionFunc is a VerifierOption that only configures a Verifier.
type verifierOptionFunc func(*verifierConfig) error

func (f verifierOptionFunc) applyVerifier(c *verifierConfig) error { return f(c) }

// SignerOption configures a Signer. Options report their mistakes from
// NewSigner, every one of them joined with errors.Join. WithClock is both a
// SignerOption and a VerifierOption (ClockOption).
type SignerOption interface {
	applySigner(*signerConfig) error
}

// signerOptionFunc is a SignerOption that only configures a Signer.
type signerOptionFunc func(*signerConfig) error

func (f signerOptionFunc) applySigner(c *signerConfig) error { return f(c) }

// ClockOption is the option WithClock returns: it sets the time source of a
// Verifier (NewVerifier) and of a Signer (NewSigner), so a test clock is
// given the same way to each. It is a VerifierOption and a SignerOption.
type ClockOption interface {
	VerifierOption
	SignerOption
}

// clockOption is the ClockOption; a nil now is reported by NewVerifier and
// NewSigner.
type clockOption struct{ option.Clock }

func (o clockOption) applyVerifier(c *verifierConfig) error { return o.Set(&c.now) }

func (o clockOption) applySigner(c *signerConfig) error { return o.Set(&c.now) }

type signerConfig struct {
	alg         algorithm // 0: inferred from the key
	algName     string
	now         func() time.Time
	ed25519Name bool
}

type verifierConfig struct {
	authorities  []authority
	algs         algorithm
	past, future time.Duration
	now          func() time.Time
	store        ReplayStore
	nonces       *Nonces
	minRSABits   int
	maxSize      int
	keyCacheSize int
	keyTables    int
	keyTablesSet bool
}

// WithAlgorithm chooses the JWS algorithm instead of the one inferred from
// the key. It must suit the key: "RS256" or "PS256" for RSA, "EdDSA" or
// "Ed25519" for Ed25519, "ES256" for P-256, "ES384" for P-384. Default (and
// with ""): the algorithm NewSigner infers from the key.
func WithAlgorithm(alg string) SignerOption {
	return signerOptionFunc(func(c *signerConfig) error {
		a := algorithmByName(alg)
		if a == 0 && alg != "" {
			return errors.New("dpop: WithAlgorithm: unsupported algorithm " + strconv.Quote(alg))
		}
		c.alg, c.algName = a, alg
		return nil
	})
}

// WithEd25519Name makes an Ed25519 signer use the fully-specified algorithm
// name "Ed25519" (RFC 9864) in the alg header instead of "EdDSA". Servers
// using this package accept both; older servers may know only "EdDSA".
// Default: "EdDSA".
func WithEd25519Name() SignerOption {
	return signerOptionFunc(func(c *signerConfig) error {
		c.ed25519Name = true
		return nil
	})
}

// WithAuthorities sets the htu authorities the server answers for, such as
// "api.example.com" or "api.example.com:8443". A name without port accepts
// the default port of the htu's scheme. Hosts are compared
// case-insensitively. Default: none, and then the htu authority must equal
// Request.Authority.
//
// The authority to list is the one clients put in their proofs' htu, which
// a client takes from the HTTP/2 :authority of its call, not necessarily
// from the address it dials. grpc-go sends the ServerName of its TLS
// configuration, without a port, when one is set
// (credentials.NewTLS(&tls.Config{ServerName: "api.example.com"}) dialling
// "10.0.0.7:8443" sends "api.example.com"), else the dial target's
// host:port as written ("localhost:8443"), else what grpc.WithAuthority
// sets. List every name clients use: a refusal's audit detail names the
// authority the proof carried and the configured ones (docs/DPOP.md).
func WithAuthorities(authorities ...string) VerifierOption {
	return verifierOptionFunc(func(c *verifierConfig) error {
		var errs []error
		for _, a := range authorities {
			auth, ok := parseConfiguredAuthority(a)
			if !ok {
				errs = append(errs, errors.New("dpop: WithAuthorities: invalid authority "+strconv.Quote(a)))
				continue
			}
			c.authorities = append(c.authorities, auth)
		}
		return errors.Join(errs...)
	})
}

// WithAlgorithms restricts the accepted algorithms to a subset of
// DefaultAlgorithms (ES256, ES384, EdDSA, Ed25519, PS256, RS256). Any other
// name, or an empty list, is refused by NewVerifier. Default:
// DefaultAlgorithms.
func WithAlgorithms(algs ...string) VerifierOption {
	return verifierOptionFunc(func(c *verifierConfig) error {
		set, unknown := algorithmSet(algs)
		switch {
		case unknown != "":
			return errors.New("dpop: WithAlgorithms: algorithm " + strconv.Quote(unknown) + " is not allowed for proofs")
		case set == 0:
			return errors.New("dpop: WithAlgorithms: empty algorithm list")
		}
		c.algs = set
		return nil
	})
}

// WithIATWindow sets how old (past, in (0, 1h]) and how far in the future
// (future, in [0, 5m]) iat may be. Defaults: DefaultIATPast (60s) and
// DefaultIATFuture (5s). Verifiers that share a replay store must use the
// same window; with a future window over 5s, give the Redis store of
// package redisstore the same (its WithFutureWindow), so that a proof dated
// that far ahead and recorded just before Redis lost its data is refused.
func WithIATWindow(past, future time.Duration) VerifierOption {
	return verifierOptionFunc(func(c *verifierConfig) error {
		var errs []error
		if past <= 0 || past > time.Hour {
			errs = append(errs, fmt.Errorf("dpop: WithIATWindow(%s, %s): iat past window must be in (0, 1h]", past, future))
		}
		if future < 0 || future > 5*time.Minute {
			errs = append(errs, fmt.Errorf("dpop: WithIATWindow(%s, %s): iat future window must be in [0, 5m]", past, future))
		}
		c.past, c.future = past, future
		return errors.Join(errs...)
	})
}

// WithClock sets the time source of a Verifier (iat window, replay store
// expiry) and of a Signer (iat): the same option serves NewVerifier and
// NewSigner. Default time.Now; a nil clock is a mistake NewVerifier and
// NewSigner report.
func WithClock(now func() time.Time) ClockOption {
	return clockOption{option.Clock{Pkg: "dpop", Now: now}}
}

// WithReplayStore sets the replay store, for example one shared by replicas.
// Default: NewMemoryReplayStore(DefaultReplayStoreSize, clock).
func WithReplayStore(s ReplayStore) VerifierOption {
	return verifierOptionFunc(func(c *verifierConfig) error {
		if s == nil {
			return errors.New("dpop: WithReplayStore: nil replay store")
		}
		c.store = s
		return nil
	})
}

// WithNonces makes the server require a valid nonce from n in every proof
// (RFC 9449 §8). Default: no nonce required.
func WithNonces(n *Nonces) VerifierOption {
	return verifierOptionFunc(func(c *verifierConfig) error {
		if n == nil {
			return errors.New("dpop: WithNonces: nil nonces")
		}
		c.nonces = n
		return nil
	})
}

// WithMinRSABits sets the minimum RSA modulus size, at least 2048 and at
// most 8192. Default: DefaultMinRSABits (2048).
func WithMinRSABits(bits int) VerifierOption {
	return verifierOptionFunc(func(c *verifierConfig) error {
		if bits < DefaultMinRSABits || bits > maxRSABits {
			return fmt.Errorf("dpop: WithMinRSABits(%d): minimum RSA size must be in [2048, 8192]", bits)
		}
		c.minRSABits = bits
		return nil
	})
}

// WithMaxProofSize sets the largest accepted proof in bytes, in
// (0, MaxProofSizeLimit]. Default: DefaultMaxSize (8 KiB).
func WithMaxProofSize(n int) VerifierOption {
	return verifierOptionFunc(func(c *verifierConfig) error {
		if n <= 0 || n > MaxProofSizeLimit {
			return fmt.Errorf("dpop: WithMaxProofSize(%d): maximum proof size must be in (0, 64 KiB]", n)
		}
		c.maxSize = n
		return nil
	})
}

// WithKeyCacheSize sets how many parsed proof headers (keys and thumbprints)
// are cached; 0 disables the cache. Default: DefaultKeyCacheSize.
func WithKeyCacheSize(n int) VerifierOption {
	return verifierOptionFunc(func(c *verifierConfig) error {
		if n < 0 {
			return fmt.Errorf("dpop: WithKeyCacheSize(%d): negative key cache size", n)
		}
		c.keyCacheSize = n
		return nil
	})
}
