package serverkit

import (
	"crypto/rand"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"slices"

	"github.com/redis/go-redis/v9"

	"github.com/stepupgrpc/stepup/challenge"
	"github.com/stepupgrpc/stepup/challenge/devicekey"
	"github.com/stepupgrpc/stepup/challenge/redisstore"
	"github.com/stepupgrpc/stepup/challenge/totp"
	"github.com/stepupgrpc/stepup/dpop"
)

// File is a path and the name its caller knows it by (a flag such as
// "--totp-secrets" or a config field such as "step_up.totp_secrets_file"),
// which prefixes every error about it.
type File struct {
	Name, Path string
}

func (f File) errorf(err error) error { return fmt.Errorf("%s: %w", f.Name, err) }

// StepUpFiles are the files of the step-up service. Each may be empty.
type StepUpFiles struct {
	// Keys is the challenge and grant key set (challenge.LoadKeySet). Empty:
	// a key generated for this process, with a warning on log.
	Keys File
	// TOTPSecrets maps subjects to base32 secrets (challenge.LoadTOTPSecrets).
	TOTPSecrets File
	// DeviceKeys maps subjects to public JWKs (challenge.LoadDeviceKeys).
	DeviceKeys File
}

// NewStepUp builds the step-up service from the factor files and the key
// set, with store when it is not nil and the extra options, and returns
// the sorted subjects that have a factor enrolled.
func NewStepUp(files StepUpFiles, store challenge.Store, log *slog.Logger, extra ...challenge.Option) (*challenge.Service, []string, error) {
	var keys *challenge.KeySet
	if files.Keys.Path != "" {
		k, err := challenge.LoadKeySet(files.Keys.Path)
		if err != nil {
			return nil, nil, files.Keys.errorf(err)
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
		log.Warn("no " + files.Keys.Name + ": generated a step-up key for this process; " +
			"challenges and grants will not survive a restart or work across replicas")
	}
	opts := []challenge.Option{challenge.WithKeys(keys)}
	if store != nil {
		opts = append(opts, challenge.WithStore(store))
	}
	subjects := map[string]bool{}
	if files.TOTPSecrets.Path != "" {
		secrets, err := challenge.LoadTOTPSecrets(files.TOTPSecrets.Path)
		if err != nil {
			return nil, nil, files.TOTPSecrets.errorf(err)
		}
		for sub := range secrets {
			subjects[sub] = true
		}
		f, err := totp.New(challenge.TOTPSecretsMap(secrets), totp.Options{})
		if err != nil {
			return nil, nil, files.TOTPSecrets.errorf(err)
		}
		opts = append(opts, challenge.WithFactor(f))
	}
	if files.DeviceKeys.Path != "" {
		devices, err := challenge.LoadDeviceKeys(files.DeviceKeys.Path)
		if err != nil {
			return nil, nil, files.DeviceKeys.errorf(err)
		}
		for sub := range devices {
			subjects[sub] = true
		}
		f, err := devicekey.New(challenge.DeviceKeysMap(devices))
		if err != nil {
			return nil, nil, files.DeviceKeys.errorf(err)
		}
		opts = append(opts, challenge.WithFactor(f))
	}
	svc, err := challenge.NewService(append(opts, extra...)...)
	if err != nil {
		return nil, nil, err
	}
	return svc, slices.Sorted(maps.Keys(subjects)), nil
}

// DPoP configures NewDPoPVerifier.
type DPoP struct {
	// Authorities are the accepted htu authorities; named by AuthoritiesName
	// in errors.
	Authorities     []string
	AuthoritiesName string
	// RequireNonce turns server nonces on; NonceKey (a file of random bytes
	// shared by replicas) implies it. Without NonceKey the key is random.
	RequireNonce bool
	NonceKey     File
}

// NewDPoPVerifier builds the proof verifier, with the shared store when
// there is one, and reports whether nonces are required.
func NewDPoPVerifier(cfg DPoP, store challenge.Store) (*dpop.Verifier, bool, error) {
	var opts []dpop.VerifierOption
	if store != nil {
		opts = append(opts, dpop.WithReplayStore(store))
	}
	if len(cfg.Authorities) > 0 {
		opts = append(opts, dpop.WithAuthorities(cfg.Authorities...))
	}
	requireNonce := cfg.RequireNonce || cfg.NonceKey.Path != ""
	if requireNonce {
		key := make([]byte, 32)
		if cfg.NonceKey.Path != "" {
			k, err := os.ReadFile(cfg.NonceKey.Path)
			if err != nil {
				return nil, false, cfg.NonceKey.errorf(err)
			}
			key = k
		} else if _, err := rand.Read(key); err != nil {
			return nil, false, err
		}
		n, err := dpop.NewNonces(key, 0, nil)
		if err != nil {
			return nil, false, cfg.NonceKey.errorf(err)
		}
		opts = append(opts, dpop.WithNonces(n))
	}
	v, err := dpop.NewVerifier(opts...)
	if err != nil {
		return nil, false, fmt.Errorf("%s: %w", cfg.AuthoritiesName, err)
	}
	return v, requireNonce, nil
}

// NewRedisStore connects to a Redis URL, the store that replicas share. An
// empty URL gives a nil store: the DPoP verifier and the step-up service
// then keep their in-process defaults. The returned func closes the client;
// call it once the server has stopped. name prefixes errors; hooks (such
// as metrics.RedisHook) are added to the client.
func NewRedisStore(name, url string, hooks ...redis.Hook) (challenge.Store, func(), error) {
	if url == "" {
		return nil, func() {}, nil
	}
	opt, err := redis.ParseURL(url)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", name, err)
	}
	// Lets the store's per-operation timeout (250 ms) interrupt a call to
	// a Redis that hangs; redisstore.New refuses a client without it.
	opt.ContextTimeoutEnabled = true
	client := redis.NewClient(opt)
	for _, h := range hooks {
		client.AddHook(h)
	}
	store, err := redisstore.New(client)
	if err != nil {
		_ = client.Close()
		return nil, nil, fmt.Errorf("%s: %w", name, err)
	}
	return store, func() { _ = client.Close() }, nil
}
