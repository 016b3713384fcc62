package redisstore_test

import (
	"crypto/tls"
	"log"

	"github.com/redis/go-redis/v9"

	"github.com/stepupgrpc/stepup/challenge"
	"github.com/stepupgrpc/stepup/challenge/redisstore"
	"github.com/stepupgrpc/stepup/dpop"
	"github.com/stepupgrpc/stepup/interceptor"
)

// Every replica builds the same components over the same Redis, and loads
// the same step-up key file. (It needs a Redis server, so it is compiled but
// not run.)
func Example() {
	client := redis.NewClient(&redis.Options{
		Addr: "redis.internal:6379",
		// Required: lets the store's per-operation timeout interrupt a
		// read from a Redis that hangs.
		ContextTimeoutEnabled: true,
	})
	defer client.Close()

	// Checks the client, maxmemory-policy noeviction, and runs every
	// operation once.
	store, err := redisstore.New(client, redisstore.WithPrefix("bank:"))
	if err != nil {
		log.Fatal(err)
	}

	// DPoP proofs: a proof accepted by any replica is refused by all.
	proofs, err := dpop.NewVerifier(dpop.WithAuthorities("bank.example"), dpop.WithReplayStore(store))
	if err != nil {
		log.Fatal(err)
	}
	// Step-up: challenges and grants signed with the shared key file verify
	// on every replica; single use, attempt counts and revocations are in
	// Redis.
	keys, err := challenge.LoadKeySet("/etc/bank/stepup-keys.json")
	if err != nil {
		log.Fatal(err)
	}
	stepUp, err := challenge.NewService(challenge.WithKeys(keys), challenge.WithStore(store) /* , factors... */)
	if err != nil {
		log.Fatal(err)
	}
	guard, err := interceptor.New(interceptor.WithDPoP(proofs), interceptor.WithStepUp(stepUp) /* , token verifier, audit... */)
	if err != nil {
		log.Fatal(err)
	}
	_ = guard // grpc.NewServer(grpc.ChainUnaryInterceptor(guard.UnaryServerInterceptor()), ...)
}

// A managed Redis Cluster that permits neither CONFIG nor INFO: the policy
// is set to noeviction in the service's configuration, and the check is
// skipped. (It needs a Redis server, so it is compiled but not run.)
func ExampleSkipPolicyCheck() {
	client := redis.NewClusterClient(&redis.ClusterOptions{
		Addrs:                 []string{"clustercfg.bank.cache.example:6379"},
		TLSConfig:             &tls.Config{MinVersion: tls.VersionTLS12},
		ContextTimeoutEnabled: true,
	})
	defer client.Close()
	store, err := redisstore.New(client, redisstore.SkipPolicyCheck())
	if err != nil {
		log.Fatal(err)
	}
	_ = store
}
