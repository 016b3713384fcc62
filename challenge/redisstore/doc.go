// Package redisstore implements challenge.Store (and so dpop.ReplayStore) on
// Redis, for several replicas of a Stepup-protected server.
//
// Every replica builds its dpop.Verifier with dpop.WithReplayStore and its
// challenge.Service with challenge.WithStore on a Store over the same Redis
// (the same prefix), and loads the same challenge key set: a DPoP proof, a
// challenge or a TOTP time step accepted by one replica is then refused by
// every other one, and attempt counters and grant revocations are shared.
// docs/REPLICAS.md describes a complete deployment.
//
// # Operations
//
// Each operation is one atomic Redis command, or one Lua script when several
// things must change together; each touches a single key or keys of one hash
// slot, so the store works on Redis Cluster too:
//
//	Insert     script: GET the epoch record of the key's slot; when it is the
//	           one the store knows, SET <prefix><key> 1 NX PXAT <expires>
//	           for this key and for the keys of the same slot that
//	           concurrent callers insert meanwhile (one batch, one round
//	           trip; see Store.Insert)
//	Increment  script: INCR, and PEXPIREAT <expires> when the key has no expiry
//	           (that is, when INCR created it)
//	SetMax     script: compare as int64, SET ... KEEPTTL when larger,
//	           PEXPIREAT <expires> GT
//	Get        script: GET
//
// Reads go through a script too, so that they always reach the primary and
// never a client-side cache or a replica: a stale read could revive a revoked
// grant or hide wrong answers. The store never issues a command that go-redis
// caches on the client side, whatever the client's options.
//
// Expiry times are absolute (PXAT, PEXPIREAT), rounded up to the next
// millisecond and extended by a margin (WithExpiryMargin, default one
// second), so that a Redis clock slightly ahead of the replicas' clocks
// never drops a key while a replica could still accept what it protects.
// Replicas and Redis must still keep their clocks synchronised (NTP).
// Redis 7.0 or later is required (PXAT, KEEPTTL, PEXPIREAT GT); New checks it.
//
// # Fail closed
//
// Any Redis error, including a timeout (WithTimeout, default 250 ms per
// operation), makes the operation return an error, never a false "absent".
// The dpop Verifier turns such an error into a refusal with reason
// DPOP_STORE_UNAVAILABLE, and the challenge Service into
// STEPUP_STORE_UNAVAILABLE; the interceptor answers both with gRPC
// UNAVAILABLE. While Redis is down, every call that needs the store is
// refused: no proof, answer or grant is ever accepted without it. A
// command that timed out may still have been applied; the refused caller
// then retries with a fresh proof or a fresh challenge.
//
// The per-operation timeout bounds socket reads only when the client honours
// context deadlines: New refuses a *redis.Client or *redis.ClusterClient
// built without ContextTimeoutEnabled (otherwise a hung Redis would hold each
// call for the client's ReadTimeout, times its retries), or with socket
// deadlines disabled (ReadTimeout or WriteTimeout -2).
//
// # No eviction
//
// Redis must run with maxmemory-policy noeviction. Under any other policy,
// a full Redis silently drops keys before their expiry: a dropped single-use
// key lets its proof, challenge or TOTP code be accepted again, a dropped
// counter gives an attacker more guesses, a dropped revocation revives
// grants. Under noeviction a full Redis refuses writes instead, and the store
// fails closed. New reads the policy (CONFIG GET maxmemory-policy, or INFO
// memory where CONFIG is not permitted, as on most managed services) on every
// node and refuses anything but noeviction, unless InsecureAllowEviction is
// given. Where neither command is permitted, SkipPolicyCheck skips the check;
// the operator then vouches for the policy.
//
// # Data loss
//
// Under noeviction nothing is evicted, but Redis can still lose its data: a
// restart without persistence, a FLUSHALL, a cluster shard that comes back
// empty. The store notices in the script of its next single-use insert: the
// epoch record of the key's slot (<prefix>epoch, or one per hash slot on
// Redis Cluster) is gone or replaced. It then refuses every single-use key
// issued before the moment it noticed, plus the expiry margin and the
// future window (WithFutureWindow), with an error that wraps
// dpop.ErrEvicted and ErrDataLoss: no proof, challenge answer, TOTP code,
// approval decision or sign-in from before the loss is accepted again. The
// floor is kept in the record, for every replica (Floor, Losses). The store
// cannot notice a failover to a replica that had not received the latest
// writes (WithDurableWrites covers that), nor a loss that happened while no
// replica that knew the record was running; counters and revocations are
// lost with the data. docs/REPLICAS.md says what a loss means and how to
// recover.
//
// *redis.Ring is refused: it drops dead shards from the ring and sends their
// keys to other shards, so a key recorded on a shard that went down would
// not be seen again.
package redisstore
