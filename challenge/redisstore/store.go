package redisstore

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/stepupgrpc/stepup/challenge"
	"github.com/stepupgrpc/stepup/dpop"
	"github.com/stepupgrpc/stepup/internal/nanotime"
)

// Store is a challenge.Store (and a dpop.ReplayStore) on Redis, shared by
// every replica that uses the same Redis and prefix. Build it with New.
//
// It does not own the client: close the client after the last use of the
// store. Safe for concurrent use.
type Store struct {
	client        redis.UniversalClient
	prefix        string
	timeout       time.Duration
	margin        time.Duration
	allowEviction bool
	skipPolicy    bool
	acks          int           // WithDurableWrites: replicas that must acknowledge each write
	ackTimeout    time.Duration // and how long WAIT waits for them
	future        time.Duration // WithFutureWindow
	now           func() time.Time
	epochs        *epochs  // data loss detection (epoch.go)
	batch         *batcher // concurrent inserts in one round trip (batch.go)
}

var (
	_ challenge.Store       = (*Store)(nil)
	_ challenge.MultiGetter = (*Store)(nil)
)

// insertScript: KEYS[1] the epoch record of a slot (epoch.go), KEYS[2..]
// single-use keys of that slot; ARGV[1] the record the store expects,
// ARGV[2..] the expiry of each key (Unix ms). When the record is the one
// expected, each key is SET NX PXAT, and the reply has, for each, 1 when it
// was set and 0 when it was present. Otherwise nothing is written and the
// record found is returned ("" for none): the slot lost its data, or
// another replica raised its floor. One call carries the inserts of
// concurrent callers (batch.go).
var insertScript = redis.NewScript(`
local e = redis.call('GET', KEYS[1]) or ''
if e ~= ARGV[1] then
  return e
end
local out = {}
for i = 2, #KEYS do
  if redis.call('SET', KEYS[i], '1', 'NX', 'PXAT', ARGV[i]) then
    out[i - 1] = 1
  else
    out[i - 1] = 0
  end
end
return out
`)

// incrementScript: KEYS[1] the counter, ARGV[1] its expiry (Unix ms).
// The expiry is set only when the key has none, that is when INCR has just
// created it; later increments do not move it. An expiry in the past
// deletes the key at once, so nothing is remembered and the count is 1.
var incrementScript = redis.NewScript(`
local n = redis.call('INCR', KEYS[1])
if redis.call('PTTL', KEYS[1]) == -1 then
  redis.call('PEXPIREAT', KEYS[1], ARGV[1])
end
return n
`)

// setMaxScript: KEYS[1] the value, ARGV[1] the new value (a canonical
// decimal int64), ARGV[2] its expiry (Unix ms). Values are compared as
// decimal strings, not as Lua numbers, which are doubles and would round
// values beyond 2^53. The expiry only ever moves later (GT).
var setMaxScript = redis.NewScript(`
local function isint64(v)
  if v == '0' then
    return true
  end
  if not string.match(v, '^%-?[1-9]%d*$') then
    return false
  end
  local neg = string.sub(v, 1, 1) == '-'
  local digits = neg and string.sub(v, 2) or v
  if #digits ~= 19 then
    return #digits < 19
  end
  return digits <= (neg and '9223372036854775808' or '9223372036854775807')
end
local cur = redis.call('GET', KEYS[1])
if not cur then
  redis.call('SET', KEYS[1], ARGV[1], 'PXAT', ARGV[2])
  return 1
end
if not isint64(cur) then
  return redis.error_reply('ERR stored value is not a canonical int64')
end
local a = ARGV[1]
if a ~= cur then
  local na, nc = string.sub(a, 1, 1) == '-', string.sub(cur, 1, 1) == '-'
  local greater
  if na ~= nc then
    greater = nc
  elseif #a ~= #cur then
    greater = (#a > #cur) ~= na
  else
    greater = (a > cur) ~= na
  end
  if greater then
    redis.call('SET', KEYS[1], a, 'KEEPTTL')
  end
end
redis.call('PEXPIREAT', KEYS[1], ARGV[2], 'GT')
return 1
`)

// getScript: KEYS[1] the value. A script rather than GET, so that the read
// goes to the primary and never to a client-side cache or a replica.
var getScript = redis.NewScript(`
local v = redis.call('GET', KEYS[1])
if not v then
  return '0'
end
return v
`)

// getManyScript: KEYS the values, read in one script (one round trip, on
// the primary). On Redis Cluster the keys must share a slot: those that
// challenge.Service reads together share the subject's hash tag.
var getManyScript = redis.NewScript(`
local out = {}
for i, k in ipairs(KEYS) do
  out[i] = redis.call('GET', k) or '0'
end
return out
`)

// New returns a Store over client. Before returning, it checks what it can
// of the configuration, so that mistakes surface at start and not on the
// first request:
//
//   - the client is not a *redis.Ring, and a *redis.Client or
//     *redis.ClusterClient honours context deadlines (ContextTimeoutEnabled),
//     so that WithTimeout bounds every operation;
//   - every Redis node runs with maxmemory-policy noeviction (unless
//     InsecureAllowEviction or SkipPolicyCheck);
//   - the epoch records (see Insert) can be read, and those missing
//     written: one, or one per hash slot on Redis Cluster (16 384, in one
//     pipeline);
//   - every operation works: each is run once on a throwaway key under the
//     prefix (this catches a Redis older than 7.0, ACL rules that deny a
//     command or the prefix, a read-only replica, a full Redis).
//
// New therefore needs Redis to be reachable; it gives up after 5 seconds
// for the checks, 30 for the epoch records and 5 for the self-test.
func New(client redis.UniversalClient, opts ...Option) (*Store, error) {
	var errs []error
	if client == nil {
		errs = append(errs, errors.New("redisstore: nil client"))
	} else if err := checkClient(client); err != nil {
		errs = append(errs, err)
	}
	c, err := newConfig(opts)
	if err := errors.Join(append(errs, err)...); err != nil {
		return nil, err
	}
	s := &Store{
		client:        client,
		prefix:        c.prefix,
		timeout:       c.timeout,
		margin:        c.margin,
		allowEviction: c.allowEviction,
		skipPolicy:    c.skipPolicy,
		acks:          c.acks,
		ackTimeout:    c.ackTimeout,
		future:        c.future,
		now:           c.now,
	}
	s.batch = newBatcher(s)
	ctx, cancel := context.WithTimeout(context.Background(), setupTimeout)
	defer cancel()
	if err := s.check(ctx); err != nil {
		return nil, err
	}
	s.epochs = newEpochs(s.prefix, isCluster(ctx, client))
	err = s.initEpochs(epochSetupTimeout)
	if err == nil {
		ctx, cancel := context.WithTimeout(context.Background(), setupTimeout)
		defer cancel()
		err = s.probe(ctx)
	}
	if err != nil {
		return nil, fmt.Errorf("redisstore: self-test failed (needs Redis 7.0 or later, a writable primary, "+
			"and permission for SET, EVAL and EVALSHA on the keys under the prefix): %w", err)
	}
	return s, nil
}

// checkClient refuses the clients that cannot give the store's guarantees.
// Clients of other types (wrappers) cannot be inspected and are accepted.
func checkClient(client redis.UniversalClient) error {
	var contextTimeouts, noDeadlines bool
	switch c := client.(type) {
	case *redis.Ring:
		return errors.New("redisstore: *redis.Ring is not supported: it moves the keys of a shard that is down " +
			"to other shards, which would forget single-use keys; use one Redis (with Sentinel) or Redis Cluster")
	case *redis.Client:
		if c == nil {
			return errors.New("redisstore: nil client")
		}
		// Options are normalised: a negative timeout here means that
		// socket deadlines are disabled (ReadTimeout: -2).
		o := c.Options()
		contextTimeouts, noDeadlines = o.ContextTimeoutEnabled, o.ReadTimeout < 0 || o.WriteTimeout < 0
	case *redis.ClusterClient:
		if c == nil {
			return errors.New("redisstore: nil client")
		}
		// Cluster options keep -2, which each node client turns into
		// disabled deadlines.
		o := c.Options()
		contextTimeouts, noDeadlines = o.ContextTimeoutEnabled, o.ReadTimeout < -1 || o.WriteTimeout < -1
	default:
		return nil
	}
	if !contextTimeouts {
		return errors.New("redisstore: the client must be built with ContextTimeoutEnabled: true; " +
			"without it a hung Redis holds each call for the client's ReadTimeout, whatever WithTimeout says")
	}
	if noDeadlines {
		return errors.New("redisstore: the client's ReadTimeout or WriteTimeout disables socket deadlines (-2); " +
			"then no timeout can interrupt a call to a hung Redis")
	}
	return nil
}

// Insert implements dpop.ReplayStore with SET key 1 NX PXAT expires, in a
// script that first checks the epoch record of the key's slot (one round
// trip): nil when the key was absent (it is then recorded until expires,
// plus the margin), dpop.ErrReplayed when it is present, and an error when
// Redis does not answer in time or refuses the write. A key whose expiry has
// passed is not kept.
//
// Redis under noeviction never drops a live key, but it can lose its data
// (a restart without persistence, a flush, a cluster shard that comes back
// empty). The script notices: the epoch record it checks is gone, or is
// another. The store then raises a floor, shared with every replica through
// the record: a key issued at or before the moment it noticed, plus the
// expiry margin and the future window (WithFutureWindow), is refused with
// an error that wraps dpop.ErrEvicted and ErrDataLoss, since it could have
// been recorded before the loss. docs/REPLICAS.md says what a loss means for
// counters and revocations.
//
// Concurrent inserts share round trips: while one batch of inserts is in
// flight, the inserts that arrive queue and leave together as the next
// batch, one script call per slot (with WithDurableWrites, followed by one
// WAIT). An insert that finds no batch in flight is sent at once. Each
// caller still waits only until its own context's deadline (or the
// timeout): past it, its insert fails, whether it was queued or in flight,
// and an insert whose caller has given up before its batch left is not
// sent.
func (s *Store) Insert(ctx context.Context, key string, issued, expires time.Time) error {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	return s.insert(ctx, key, issued, expires)
}

func (s *Store) insert(ctx context.Context, key string, issued, expires time.Time) error {
	k, exp := s.prefix+key, s.expiry(expires)
	slot := s.epochs.slot(k)
	iss := nanotime.Unix(issued)
	for range 3 {
		ep := s.epochs.state[slot].Load()
		if iss <= ep.floor {
			return evicted(issued, ep.floor)
		}
		v, err := s.batch.insertOnce(ctx, k, slot, ep, exp)
		if err != nil {
			return fmt.Errorf("redisstore: insert: %w", err)
		}
		switch v := v.(type) {
		case int64:
			if v == 1 {
				return nil
			}
			return dpop.ErrReplayed
		case string:
			if err := s.epochChanged(ctx, slot, ep, v); err != nil {
				return err
			}
		default:
			return fmt.Errorf("redisstore: insert: unexpected reply %T", v)
		}
	}
	return errors.New("redisstore: insert: the epoch record keeps changing")
}

// Increment implements challenge.Store: it adds one to the counter at key
// and returns the new value, atomically. A new counter expires at expires
// (plus the margin); later increments keep that expiry.
func (s *Store) Increment(ctx context.Context, key string, expires time.Time) (int64, error) {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	return s.increment(ctx, key, expires)
}

func (s *Store) increment(ctx context.Context, key string, expires time.Time) (int64, error) {
	k, exp := s.prefix+key, s.expiry(expires)
	var cmd *redis.Cmd
	err := s.write(ctx, k, func(c commander, eval bool) redis.Cmder {
		cmd = runScript(ctx, c, incrementScript, eval, []string{k}, exp)
		return cmd
	})
	var n int64
	if err == nil {
		n, err = cmd.Int64()
	}
	if err != nil {
		return 0, fmt.Errorf("redisstore: increment: %w", err)
	}
	return n, nil
}

// SetMax implements challenge.Store: it sets the value at key to
// max(current, value) and its expiry to the later of the current one and
// expires (plus the margin), atomically.
func (s *Store) SetMax(ctx context.Context, key string, value int64, expires time.Time) error {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	return s.setMax(ctx, key, value, expires)
}

func (s *Store) setMax(ctx context.Context, key string, value int64, expires time.Time) error {
	k, v, exp := s.prefix+key, strconv.FormatInt(value, 10), s.expiry(expires)
	err := s.write(ctx, k, func(c commander, eval bool) redis.Cmder {
		return runScript(ctx, c, setMaxScript, eval, []string{k}, v, exp)
	})
	if err != nil {
		return fmt.Errorf("redisstore: set max: %w", err)
	}
	return nil
}

// Get implements challenge.Store: the value at key, 0 when absent or
// expired. The read always reaches the primary (see the package
// documentation).
func (s *Store) Get(ctx context.Context, key string) (int64, error) {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	return s.get(ctx, key)
}

func (s *Store) get(ctx context.Context, key string) (int64, error) {
	v, err := getScript.Run(ctx, s.client, []string{s.prefix + key}).Text()
	if err != nil {
		return 0, fmt.Errorf("redisstore: get: %w", err)
	}
	return parseValue(v)
}

// parseValue reads a stored value. Only what SetMax and Increment write is
// a value: anything else (a corrupted key) is an error, never a number
// that could read as 0.
func parseValue(v string) (int64, error) {
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || strconv.FormatInt(n, 10) != v {
		return 0, errors.New("redisstore: get: stored value is not a canonical int64")
	}
	return n, nil
}

// GetMany implements challenge.MultiGetter: the values of keys (0 when
// absent or expired) in one script, on the primary. On Redis Cluster the
// keys must hash to one slot (a CROSSSLOT error otherwise).
func (s *Store) GetMany(ctx context.Context, keys ...string) ([]int64, error) {
	if len(keys) == 0 {
		return nil, nil
	}
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	full := make([]string, len(keys))
	for i, k := range keys {
		full[i] = s.prefix + k
	}
	vs, err := getManyScript.Run(ctx, s.client, full).StringSlice()
	if err != nil {
		return nil, fmt.Errorf("redisstore: get many: %w", err)
	}
	if len(vs) != len(keys) {
		return nil, fmt.Errorf("redisstore: get many: %d values for %d keys", len(vs), len(keys))
	}
	out := make([]int64, len(vs))
	for i, v := range vs {
		if out[i], err = parseValue(v); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// commander is what a write is sent through: the client itself, or a
// pipeline on one connection to the key's primary (WithDurableWrites).
type commander interface {
	Do(ctx context.Context, args ...any) *redis.Cmd
	redis.Scripter
}

// runScript runs script on keys (of one slot): EVALSHA falling back to EVAL
// (Script.Run) when sent alone; in a pipeline, whose replies come only at
// Exec, EVALSHA, or EVAL when eval is set (after a NOSCRIPT).
func runScript(ctx context.Context, c commander, script *redis.Script, eval bool, keys []string, args ...any) *redis.Cmd {
	switch {
	case eval:
		return script.Eval(ctx, c, keys, args...)
	case isPipeline(c):
		return script.EvalSha(ctx, c, keys, args...)
	default:
		return script.Run(ctx, c, keys, args...)
	}
}

func isPipeline(c commander) bool { _, ok := c.(redis.Pipeliner); return ok }

// ErrNotDurable is wrapped by the error of a write that fewer replicas
// than WithDurableWrites asks for acknowledged in time. The write was
// applied on the primary, and the operation is refused (fail closed): a
// proof or answer is accepted only once its single use survives the
// primary's loss.
var ErrNotDurable = errors.New("redisstore: write not acknowledged by enough replicas")

// write sends one write on key, built by queue. Without WithDurableWrites
// it goes through the client like any command. With it, it is pipelined
// with WAIT on one connection to the primary that owns key (WAIT counts
// the replicas that have every earlier write of its own connection), and
// succeeds only when enough replicas acknowledged it. The error of the
// write itself (redis.Nil for a SET NX that found the key) is returned as
// is, with no WAIT needed.
func (s *Store) write(ctx context.Context, key string, queue func(c commander, eval bool) redis.Cmder) error {
	if s.acks == 0 {
		return queue(s.client, false).Err()
	}
	cc, cluster := s.client.(*redis.ClusterClient)
	if !cluster {
		return s.writeOn(ctx, s.client, queue)
	}
	// The primary comes from the client's view of the slots. After a
	// failover that view is stale until reloaded: a write refused by a
	// node that no longer owns the slot (or no longer answers) was not
	// applied, so it is sent again, twice at most, after a reload.
	var err error
	for attempt := range 3 {
		if attempt > 0 {
			cc.ReloadState(ctx)
			select {
			case <-ctx.Done():
				return err
			case <-time.After(20 * time.Millisecond):
			}
		}
		var node *redis.Client
		if node, err = cc.MasterForKey(ctx, key); err != nil {
			continue
		}
		if err = s.writeOn(ctx, node, queue); err == nil || !staleRoute(err) {
			return err
		}
	}
	return err
}

// staleRoute reports whether err says that a write went to a node that does
// not serve its slot (any more): it was not applied.
func staleRoute(err error) bool {
	for _, p := range []string{"MOVED", "READONLY", "CLUSTERDOWN"} {
		if redis.HasErrorPrefix(err, p) {
			return true
		}
	}
	return errors.Is(err, syscall.ECONNREFUSED)
}

// writeOn is write on one primary: the write and WAIT, pipelined on one
// connection.
func (s *Store) writeOn(ctx context.Context, primary interface{ Pipeline() redis.Pipeliner }, queue func(c commander, eval bool) redis.Cmder) error {
	for _, eval := range []bool{false, true} {
		pipe := primary.Pipeline()
		cmd := queue(pipe, eval)
		wait := pipe.Do(ctx, "wait", s.acks, s.ackTimeout.Milliseconds())
		_, _ = pipe.Exec(ctx)
		if err := cmd.Err(); err != nil {
			if !eval && redis.HasErrorPrefix(err, "NOSCRIPT") {
				continue // not run: a primary that never saw the script (after a failover)
			}
			return err
		}
		n, err := wait.Int64()
		if err != nil {
			return fmt.Errorf("WAIT: %w", err)
		}
		if n < int64(s.acks) {
			return fmt.Errorf("%w: %d of %d within %v", ErrNotDurable, n, s.acks, s.ackTimeout)
		}
		return nil
	}
	return errors.New("NOSCRIPT after EVAL") // unreachable: EVAL needs no script cache
}

// expiry returns t plus the margin as Unix milliseconds for PXAT and
// PEXPIREAT: rounded up, so that Redis never drops a key earlier than
// asked, and at least 1, since Redis refuses 0 and negative times (1 ms
// after the epoch is in the past, so such a key is not kept).
func (s *Store) expiry(t time.Time) int64 {
	t = t.Add(s.margin)
	const maxSec = math.MaxInt64/1000 - 1
	sec, nsec := t.Unix(), int64(t.Nanosecond())
	switch {
	case sec >= maxSec:
		return math.MaxInt64
	case sec < 0:
		return 1
	}
	ms := sec*1000 + nsec/1e6
	if nsec%1e6 != 0 {
		ms++
	}
	return max(ms, 1)
}

// Check reports whether Redis answers and, unless SkipPolicyCheck was
// given, whether every node runs with maxmemory-policy noeviction (or
// InsecureAllowEviction was given). New runs it once; call it from a
// readiness probe to notice a policy changed at run time, or a Redis that
// is down (every call that needs the store is then refused).
func (s *Store) Check(ctx context.Context) error {
	return s.check(ctx)
}

func (s *Store) check(ctx context.Context) error {
	if err := s.checkReplicas(ctx); err != nil {
		return err
	}
	if s.skipPolicy {
		if err := s.client.Ping(ctx).Err(); err != nil {
			return fmt.Errorf("redisstore: ping: %w", err)
		}
		return nil
	}
	return forEachNode(ctx, s.client, func(ctx context.Context, node redis.Cmdable, where string) error {
		p, err := maxmemoryPolicy(ctx, node)
		if err != nil {
			return fmt.Errorf("redisstore: %s%w", where, err)
		}
		if p != "noeviction" && !s.allowEviction {
			return fmt.Errorf("redisstore: %smaxmemory-policy is %q: it must be noeviction, "+
				"or Redis drops live keys when full and replays become possible (see InsecureAllowEviction)", where, p)
		}
		return nil
	})
}

// checkReplicas, with WithDurableWrites, checks that every primary has
// enough replicas connected (INFO replication), so that a deployment where
// every write would be refused as not durable is named at start.
func (s *Store) checkReplicas(ctx context.Context) error {
	if s.acks == 0 {
		return nil
	}
	check := func(ctx context.Context, node redis.Cmdable, where string) error {
		info, err := node.Info(ctx, "replication").Result()
		if err != nil {
			return fmt.Errorf("redisstore: %sINFO replication: %w", where, err)
		}
		n := -1
		for line := range strings.Lines(info) {
			if v, ok := strings.CutPrefix(strings.TrimSpace(line), "connected_slaves:"); ok {
				n, _ = strconv.Atoi(v)
			}
		}
		if n < s.acks {
			return fmt.Errorf("redisstore: %sWithDurableWrites(%d, %v): the primary has %d replicas connected; "+
				"every write would be refused", where, s.acks, s.ackTimeout, max(n, 0))
		}
		return nil
	}
	if cc, ok := s.client.(*redis.ClusterClient); ok {
		return cc.ForEachMaster(ctx, func(ctx context.Context, node *redis.Client) error {
			return check(ctx, node, "node "+node.Options().Addr+": ")
		})
	}
	return check(ctx, s.client, "")
}

// forEachNode calls fn for every node of a cluster (primaries and
// replicas: a replica becomes the primary on failover), or once for any
// other client. where names the node for error messages ("" or
// "node <addr>: ").
func forEachNode(ctx context.Context, client redis.UniversalClient, fn func(ctx context.Context, node redis.Cmdable, where string) error) error {
	if cc, ok := client.(*redis.ClusterClient); ok {
		return cc.ForEachShard(ctx, func(ctx context.Context, node *redis.Client) error {
			return fn(ctx, node, "node "+node.Options().Addr+": ")
		})
	}
	return fn(ctx, client, "")
}

// maxmemoryPolicy reads the policy with CONFIG GET, or from INFO memory
// where CONFIG is not permitted (renamed, ACL, managed services).
func maxmemoryPolicy(ctx context.Context, node redis.Cmdable) (string, error) {
	cfg, cfgErr := node.ConfigGet(ctx, "maxmemory-policy").Result()
	if cfgErr == nil {
		if p, ok := cfg["maxmemory-policy"]; ok {
			return p, nil
		}
		cfgErr = errors.New("no maxmemory-policy in the reply")
	}
	info, infoErr := node.Info(ctx, "memory").Result()
	if infoErr == nil {
		for line := range strings.Lines(info) {
			if p, ok := strings.CutPrefix(strings.TrimSpace(line), "maxmemory_policy:"); ok {
				return p, nil
			}
		}
		infoErr = errors.New("no maxmemory_policy in the reply")
	}
	return "", fmt.Errorf("cannot read maxmemory-policy (CONFIG GET: %v; INFO memory: %v); "+
		"if the service permits neither and its policy is noeviction, give SkipPolicyCheck", cfgErr, infoErr)
}

// probe runs every operation once on throwaway keys under the prefix.
func (s *Store) probe(ctx context.Context) error {
	var b [12]byte
	if _, err := rand.Read(b[:]); err != nil {
		return err
	}
	key := "probe:" + hex.EncodeToString(b[:])
	now := time.Now()
	soon := now.Add(10 * time.Second)
	defer func() {
		// Best effort: the keys expire in seconds anyway. One DEL per key,
		// as they may live on different cluster slots.
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.timeout)
		defer cancel()
		for _, k := range []string{key, key + ":n", key + ":i"} {
			_ = s.client.Del(ctx, s.prefix+k).Err()
		}
	}()
	if err := s.setMax(ctx, key, 1, soon); err != nil {
		return err
	}
	if err := s.setMax(ctx, key, 2, soon); err != nil {
		return err
	}
	if v, err := s.get(ctx, key); err != nil || v != 2 {
		return fmt.Errorf("read back %d, %v; want 2", v, err)
	}
	if n, err := s.increment(ctx, key+":n", soon); err != nil || n != 1 {
		return fmt.Errorf("increment gave %d, %v; want 1", n, err)
	}
	// Issued after any floor a loss may have raised, so that the insert is
	// tried.
	issued := now
	if f := s.Floor(); !f.Before(now) {
		issued = f.Add(time.Millisecond)
	}
	if err := s.insert(ctx, key+":i", issued, soon); err != nil {
		return err
	}
	if err := s.insert(ctx, key+":i", issued, soon); !errors.Is(err, dpop.ErrReplayed) {
		return fmt.Errorf("second insert gave %v; want dpop.ErrReplayed", err)
	}
	return nil
}

var _ challenge.ApprovalStore = (*Store)(nil)

// indexApprovalScript adds an approval id to a subject's index (a sorted
// set scored by expiry, in milliseconds), keeps the index alive as long as
// its latest member, and drops the members that expired. One key, so it
// runs on Redis Cluster too.
var indexApprovalScript = redis.NewScript(`
redis.call('ZADD', KEYS[1], ARGV[1], ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[3])
local t = redis.call('PEXPIRETIME', KEYS[1])
if t < tonumber(ARGV[1]) then
  redis.call('PEXPIREAT', KEYS[1], ARGV[1])
end
return 1
`)

// PutApproval implements challenge.ApprovalStore: the record at
// <prefix>aprrec:{<subject>}:<id> and the id in the subject's index
// <prefix>aprs:{<subject>}, both expiring with the approval. The subject in
// braces is the Redis Cluster hash tag of every key of the subject.
func (s *Store) PutApproval(ctx context.Context, subject, id string, record []byte, expires time.Time) error {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	exp := s.expiry(expires)
	set := redis.NewStatusCmd(ctx, "set", s.prefix+"aprrec:{"+subject+"}:"+id, record, "pxat", exp)
	_ = s.client.Process(ctx, set)
	if err := set.Err(); err != nil {
		return fmt.Errorf("redisstore: put approval: %w", err)
	}
	now := strconv.FormatInt(s.now().UnixMilli(), 10)
	if err := indexApprovalScript.Run(ctx, s.client, []string{s.prefix + "aprs:{" + subject + "}"}, exp, id, now).Err(); err != nil {
		return fmt.Errorf("redisstore: put approval: %w", err)
	}
	return nil
}

// Approvals implements challenge.ApprovalStore: the ids of the subject's
// index that have not expired, and their records (a record that expired
// in between is left out).
func (s *Store) Approvals(ctx context.Context, subject string) (map[string][]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	now := strconv.FormatInt(s.now().UnixMilli(), 10)
	ids, err := s.client.ZRangeByScore(ctx, s.prefix+"aprs:{"+subject+"}", &redis.ZRangeBy{Min: "(" + now, Max: "+inf"}).Result()
	if err != nil {
		return nil, fmt.Errorf("redisstore: approvals: %w", err)
	}
	out := make(map[string][]byte, len(ids))
	if len(ids) == 0 {
		return out, nil
	}
	cmds := make([]*redis.StringCmd, len(ids))
	_, err = s.client.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, id := range ids {
			cmds[i] = p.Get(ctx, s.prefix+"aprrec:{"+subject+"}:"+id)
		}
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("redisstore: approvals: %w", err)
	}
	for i, c := range cmds {
		b, err := c.Bytes()
		switch {
		case errors.Is(err, redis.Nil):
			continue
		case err != nil:
			return nil, fmt.Errorf("redisstore: approvals: %w", err)
		}
		out[ids[i]] = b
	}
	return out, nil
}
