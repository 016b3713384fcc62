package redisstore_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/logging"

	"github.com/stepupgrpc/stepup/challenge/redisstore"
	"github.com/stepupgrpc/stepup/testing/testkit"
)

// The tests run against a real redis-server, never a fake: the one named by
// STEPUP_REDIS_ADDR (.ci/redis.sh starts it), and private ones that tests
// start, stop and kill themselves.
const noRedis = "set STEPUP_REDIS_ADDR to a redis-server started with --maxmemory-policy noeviction; " +
	"CI always does (source .ci/redis.sh)"

// redisAddr returns STEPUP_REDIS_ADDR. Without it the test is skipped,
// except under CI, where it fails.
func redisAddr(t testing.TB) string {
	t.Helper()
	addr := os.Getenv("STEPUP_REDIS_ADDR")
	if addr == "" {
		if os.Getenv("CI") != "" {
			t.Fatal(noRedis)
		}
		t.Skip(noRedis)
	}
	return addr
}

// newClient returns a client of addr, closed at cleanup. Its ReadTimeout is
// long on purpose: the store's own timeout must be what bounds an operation.
func newClient(t testing.TB, addr string, edit ...func(*redis.Options)) *redis.Client {
	t.Helper()
	o := &redis.Options{Addr: addr, ContextTimeoutEnabled: true, ReadTimeout: 30 * time.Second, DisableIdentity: true}
	for _, e := range edit {
		e(o)
	}
	c := redis.NewClient(o)
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func randomHex(t testing.TB, n int) string {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// testPrefix returns a key prefix of this test alone; its keys are deleted
// at cleanup.
func testPrefix(t testing.TB, c *redis.Client) string {
	t.Helper()
	p := "stepup-test:" + randomHex(t, 8) + ":"
	t.Cleanup(func() { deleteKeys(t, c, p) })
	return p
}

// deleteKeys deletes every key that starts with prefix.
func deleteKeys(t testing.TB, c *redis.Client, prefix string) {
	t.Helper()
	ctx := context.Background()
	iter := c.Scan(ctx, 0, prefix+"*", 1000).Iterator()
	var batch []string
	for iter.Next(ctx) {
		batch = append(batch, iter.Val())
		if len(batch) == 1000 {
			_ = c.Unlink(ctx, batch...).Err()
			batch = batch[:0]
		}
	}
	if len(batch) > 0 {
		_ = c.Unlink(ctx, batch...).Err()
	}
	if err := iter.Err(); err != nil {
		t.Logf("cleaning %s*: %v", prefix, err)
	}
}

// patient is the store timeout of the tests that are not about timeouts:
// on a loaded CI machine (the race detector, every package at once) an
// operation can take longer than the 250 ms default, and such a test
// would fail for the wrong reason.
var patient = redisstore.WithTimeout(5 * time.Second)

// failFast makes a client give up at once when Redis refuses connections,
// instead of redialling until the deadline, so that the tests that kill
// Redis stay quick with a patient store.
func failFast(o *redis.Options) { o.DialerRetries, o.MaxRetries = 1, -1 }

// sharedStore returns a patient Store on the STEPUP_REDIS_ADDR server with
// a prefix of this test, and a client of the same server for inspection.
func sharedStore(t testing.TB, opts ...redisstore.Option) (*redisstore.Store, *redis.Client, string) {
	t.Helper()
	c := newClient(t, redisAddr(t))
	prefix := testPrefix(t, c)
	s, err := redisstore.New(c, append([]redisstore.Option{patient, redisstore.WithPrefix(prefix)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	return s, c, prefix
}

// startServer starts a private redis-server (testkit.StartRedis: a free
// loopback port, noeviction, no persistence, killed by PID at cleanup),
// under the same skip rule as every other test of the package.
func startServer(t testing.TB, args ...string) *testkit.Redis {
	t.Helper()
	redisAddr(t)
	return testkit.StartRedis(t, args...)
}

// TestMain silences go-redis, which logs every failed dial of the tests
// that stop Redis on purpose.
func TestMain(m *testing.M) {
	redis.SetLogger(&logging.VoidLogger{})
	os.Exit(m.Run())
}
