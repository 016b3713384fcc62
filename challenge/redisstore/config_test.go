package redisstore_test

import (
	"context"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/stepupgrpc/stepup/challenge/redisstore"
	"github.com/stepupgrpc/stepup/dpop"
)

// closedAddr returns a loopback address where nothing listens.
func closedAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	_ = l.Close()
	return addr
}

func TestNewRefusesBadConfiguration(t *testing.T) {
	addr := redisAddr(t)
	cluster := redis.NewClusterClient(&redis.ClusterOptions{Addrs: []string{addr}})
	t.Cleanup(func() { _ = cluster.Close() })
	clusterNoDeadline := redis.NewClusterClient(&redis.ClusterOptions{Addrs: []string{addr}, ContextTimeoutEnabled: true, ReadTimeout: -2})
	t.Cleanup(func() { _ = clusterNoDeadline.Close() })
	ring := redis.NewRing(&redis.RingOptions{Addrs: map[string]string{"a": addr}, ContextTimeoutEnabled: true})
	t.Cleanup(func() { _ = ring.Close() })
	cases := []struct {
		name   string
		client redis.UniversalClient
		opts   []redisstore.Option
		want   string
	}{
		{"nil client", nil, nil, "nil client"},
		{"nil *redis.Client", (*redis.Client)(nil), nil, "nil client"},
		{"client without context timeouts", newClient(t, addr, func(o *redis.Options) { o.ContextTimeoutEnabled = false }), nil, "ContextTimeoutEnabled"},
		{"cluster client without context timeouts", cluster, nil, "ContextTimeoutEnabled"},
		{"ring", ring, nil, "Ring is not supported"},
		{"client without read deadlines", newClient(t, addr, func(o *redis.Options) { o.ReadTimeout = -2 }), nil, "disables socket deadlines"},
		{"client without write deadlines", newClient(t, addr, func(o *redis.Options) { o.WriteTimeout = -2 }), nil, "disables socket deadlines"},
		{"cluster client without read deadlines", clusterNoDeadline, nil, "disables socket deadlines"},
		{"zero timeout", newClient(t, addr), []redisstore.Option{redisstore.WithTimeout(0)}, "timeout must be positive"},
		{"negative margin", newClient(t, addr), []redisstore.Option{redisstore.WithExpiryMargin(-time.Second)}, "margin must not be negative"},
		{"unreachable", newClient(t, closedAddr(t), func(o *redis.Options) { o.MaxRetries = -1 }), nil, "connection refused"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s, err := redisstore.New(tc.client, tc.opts...)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("New = %v, %v; want an error containing %q", s, err, tc.want)
			}
		})
	}
}

// TestPolicyCheck runs New and Check against a private server whose
// policy and ACL rules the test changes.
func TestPolicyCheck(t *testing.T) {
	srv := startServer(t)
	admin := newClient(t, srv.Addr)
	ctx := context.Background()
	do := func(args ...any) {
		t.Helper()
		if err := admin.Do(ctx, args...).Err(); err != nil {
			t.Fatalf("%v: %v", args, err)
		}
	}
	as := func(user string) *redis.Client {
		return newClient(t, srv.Addr, func(o *redis.Options) { o.Username, o.Password = user, "pw" })
	}
	expectErr := func(t *testing.T, err error, want string) {
		t.Helper()
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Fatalf("error = %v, want one containing %q", err, want)
		}
	}

	store, err := redisstore.New(admin)
	if err != nil {
		t.Fatalf("noeviction: %v", err)
	}
	if err := store.Check(ctx); err != nil {
		t.Fatalf("Check: %v", err)
	}

	t.Run("eviction policy refused", func(t *testing.T) {
		do("config", "set", "maxmemory-policy", "allkeys-lru")
		defer do("config", "set", "maxmemory-policy", "noeviction")
		// A policy changed at run time is seen by Check.
		expectErr(t, store.Check(ctx), `maxmemory-policy is "allkeys-lru"`)
		_, err := redisstore.New(admin)
		expectErr(t, err, `maxmemory-policy is "allkeys-lru": it must be noeviction`)
		if _, err := redisstore.New(admin, redisstore.InsecureAllowEviction()); err != nil {
			t.Fatalf("InsecureAllowEviction: %v", err)
		}
		if _, err := redisstore.New(admin, redisstore.SkipPolicyCheck()); err != nil {
			t.Fatalf("SkipPolicyCheck: %v", err)
		}
	})

	t.Run("CONFIG not permitted: read from INFO", func(t *testing.T) {
		do("acl", "setuser", "noconfig", "on", ">pw", "~*", "+@all", "-config")
		c := as("noconfig")
		if _, err := redisstore.New(c); err != nil {
			t.Fatalf("noeviction read from INFO: %v", err)
		}
		do("config", "set", "maxmemory-policy", "volatile-ttl")
		defer do("config", "set", "maxmemory-policy", "noeviction")
		_, err := redisstore.New(c)
		expectErr(t, err, `maxmemory-policy is "volatile-ttl"`)
	})

	t.Run("neither CONFIG nor INFO permitted", func(t *testing.T) {
		do("acl", "setuser", "blind", "on", ">pw", "~*", "+@all", "-config", "-info")
		c := as("blind")
		_, err := redisstore.New(c)
		expectErr(t, err, "give SkipPolicyCheck")
		s, err := redisstore.New(c, redisstore.SkipPolicyCheck())
		if err != nil {
			t.Fatalf("SkipPolicyCheck: %v", err)
		}
		if err := s.Check(ctx); err != nil {
			t.Fatalf("Check with SkipPolicyCheck: %v", err)
		}
	})

	// The ACL rule docs/REPLICAS.md recommends: only the store's commands,
	// only its keys.
	t.Run("least privilege", func(t *testing.T) {
		do("acl", "setuser", "stepup", "on", ">pw", "resetkeys", "~stepup:*", "resetchannels", "-@all",
			"+set", "+get", "+incr", "+pttl", "+pexpireat", "+del", "+eval", "+evalsha", "+ping", "+info", "+config|get")
		for _, identity := range []bool{false, true} {
			c := newClient(t, srv.Addr, func(o *redis.Options) {
				o.Username, o.Password, o.DisableIdentity = "stepup", "pw", !identity
			})
			s, err := redisstore.New(c, patient)
			if err != nil {
				t.Fatalf("CLIENT SETINFO sent: %v: %v", identity, err)
			}
			exp := time.Now().Add(time.Minute)
			if err := s.Insert(ctx, "i", exp, exp); err != nil {
				t.Fatal(err)
			}
			if _, err := s.Increment(ctx, "n", exp); err != nil {
				t.Fatal(err)
			}
			if err := s.SetMax(ctx, "m", 1, exp); err != nil {
				t.Fatal(err)
			}
			if _, err := s.Get(ctx, "m"); err != nil {
				t.Fatal(err)
			}
			if err := s.Check(ctx); err != nil {
				t.Fatal(err)
			}
			do("del", "stepup:i", "stepup:n", "stepup:m")
		}
	})

	t.Run("scripting not permitted", func(t *testing.T) {
		do("acl", "setuser", "noscript", "on", ">pw", "~*", "+@all", "-@scripting")
		_, err := redisstore.New(as("noscript"))
		expectErr(t, err, "self-test failed")
	})

	t.Run("prefix not permitted", func(t *testing.T) {
		do("acl", "setuser", "tenant", "on", ">pw", "~tenant-a:*", "+@all")
		_, err := redisstore.New(as("tenant"))
		expectErr(t, err, "self-test failed")
		if _, err := redisstore.New(as("tenant"), redisstore.WithPrefix("tenant-a:")); err != nil {
			t.Fatalf("the permitted prefix: %v", err)
		}
	})

	t.Run("full", func(t *testing.T) {
		do("config", "set", "maxmemory", "1")
		defer do("config", "set", "maxmemory", "0")
		_, err := redisstore.New(admin)
		expectErr(t, err, "OOM")
	})

	t.Run("read-only replica", func(t *testing.T) {
		replica := startServer(t, "--replicaof", "127.0.0.1", strings.TrimPrefix(srv.Addr, "127.0.0.1:"))
		_, err := redisstore.New(newClient(t, replica.Addr))
		expectErr(t, err, "READONLY")
	})
}

// TestFailClosed: whatever goes wrong with Redis, every operation returns an
// error; never nil for Insert (an acceptance), never a count or a value.
func TestFailClosed(t *testing.T) {
	exp := time.Now().Add(time.Minute)
	// every runs each operation on fresh keys and returns their errors.
	every := func(s *redisstore.Store, ctx context.Context, tag string) map[string]error {
		_, incErr := s.Increment(ctx, "n:"+tag, exp)
		_, getErr := s.Get(ctx, "v:"+tag)
		return map[string]error{
			"Insert":    s.Insert(ctx, "i:"+tag, exp, exp),
			"Increment": incErr,
			"SetMax":    s.SetMax(ctx, "v:"+tag, 1, exp),
			"Get":       getErr,
		}
	}
	allFail := func(t *testing.T, errs map[string]error, skip ...string) {
		t.Helper()
		for op, err := range errs {
			if strings.Contains(strings.Join(skip, " "), op) {
				continue
			}
			if err == nil || errors.Is(err, dpop.ErrReplayed) {
				t.Errorf("%s = %v, want an error", op, err)
			}
		}
	}
	allSucceed := func(t *testing.T, errs map[string]error) {
		t.Helper()
		for op, err := range errs {
			if err != nil {
				t.Errorf("%s: %v", op, err)
			}
		}
	}

	t.Run("full", func(t *testing.T) {
		srv := startServer(t)
		c := newClient(t, srv.Addr)
		s, err := redisstore.New(c, patient)
		if err != nil {
			t.Fatal(err)
		}
		if err := c.ConfigSet(context.Background(), "maxmemory", "1").Err(); err != nil {
			t.Fatal(err)
		}
		// Writes are refused (noeviction); reads still work.
		allFail(t, every(s, context.Background(), "full"), "Get")
		if err := c.ConfigSet(context.Background(), "maxmemory", "0").Err(); err != nil {
			t.Fatal(err)
		}
		allSucceed(t, every(s, context.Background(), "room"))
	})

	t.Run("killed", func(t *testing.T) {
		srv := startServer(t)
		s, err := redisstore.New(newClient(t, srv.Addr, failFast), patient)
		if err != nil {
			t.Fatal(err)
		}
		allSucceed(t, every(s, context.Background(), "before"))
		srv.Kill()
		allFail(t, every(s, context.Background(), "after"))
	})

	// A client with go-redis's defaults redials until the deadline: each
	// operation against a dead Redis takes the timeout, never more.
	t.Run("killed, default client", func(t *testing.T) {
		srv := startServer(t)
		s, err := redisstore.New(newClient(t, srv.Addr))
		if err != nil {
			t.Fatal(err)
		}
		srv.Kill()
		start := time.Now()
		allFail(t, every(s, context.Background(), "after"))
		if d := time.Since(start); d > 4*redisstore.DefaultTimeout+2*time.Second {
			t.Errorf("four operations took %v with Redis down, want each bounded by the timeout", d)
		}
	})

	t.Run("hung", func(t *testing.T) {
		srv := startServer(t)
		c := newClient(t, srv.Addr)
		// Two stores on one client: a quick one to show the timeout, a
		// patient one to show that Redis works before and after.
		quick, err := redisstore.New(c, redisstore.WithTimeout(100*time.Millisecond))
		if err != nil {
			t.Fatal(err)
		}
		s, err := redisstore.New(c, patient)
		if err != nil {
			t.Fatal(err)
		}
		allSucceed(t, every(s, context.Background(), "before"))
		srv.Pause()
		start := time.Now()
		allFail(t, every(quick, context.Background(), "during"))
		// The client's ReadTimeout is 30 s: only the store's timeout can
		// have ended these operations so soon.
		if d := time.Since(start); d > 5*time.Second {
			t.Errorf("four operations took %v against a hung Redis", d)
		}
		srv.Resume()
		allSucceed(t, every(s, context.Background(), "after"))
	})

	t.Run("default timeout", func(t *testing.T) {
		srv := startServer(t)
		s, err := redisstore.New(newClient(t, srv.Addr))
		if err != nil {
			t.Fatal(err)
		}
		srv.Pause()
		defer srv.Resume()
		start := time.Now()
		err = s.Insert(context.Background(), "k", exp, exp)
		d := time.Since(start)
		if err == nil || d < redisstore.DefaultTimeout-50*time.Millisecond || d > 10*redisstore.DefaultTimeout {
			t.Fatalf("Insert against a hung Redis = %v after %v, want an error after about %v", err, d, redisstore.DefaultTimeout)
		}
	})

	t.Run("caller cancelled", func(t *testing.T) {
		s, _, _ := sharedStore(t)
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		allFail(t, every(s, ctx, "cancelled"))
	})
}

// TestCluster runs the store on a one-node Redis Cluster through a
// ClusterClient: every operation touches one key, and the policy is read
// from every node.
func TestCluster(t *testing.T) {
	srv := startServer(t, "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf")
	admin := newClient(t, srv.Addr)
	ctx := context.Background()
	if err := admin.Do(ctx, "cluster", "addslotsrange", 0, 16383).Err(); err != nil {
		t.Fatal(err)
	}
	// The node declares the cluster ready on its next cron tick.
	deadline := time.Now().Add(10 * time.Second)
	for {
		info, err := admin.ClusterInfo(ctx).Result()
		if err == nil && strings.Contains(info, "cluster_state:ok") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("cluster not ready: %v %q", err, info)
		}
		time.Sleep(20 * time.Millisecond)
	}
	cc := redis.NewClusterClient(&redis.ClusterOptions{Addrs: []string{srv.Addr}, ContextTimeoutEnabled: true})
	t.Cleanup(func() { _ = cc.Close() })
	s, err := redisstore.New(cc, patient)
	if err != nil {
		t.Fatal(err)
	}
	exp := time.Now().Add(time.Minute)
	if err := s.Insert(ctx, "dpop:a", exp, exp); err != nil {
		t.Fatal(err)
	}
	if err := s.Insert(ctx, "dpop:a", exp, exp); !errors.Is(err, dpop.ErrReplayed) {
		t.Fatalf("second insert = %v, want dpop.ErrReplayed", err)
	}
	for want := int64(1); want <= 2; want++ {
		if n, err := s.Increment(ctx, "att:chl:x", exp); err != nil || n != want {
			t.Fatalf("Increment = %d, %v; want %d", n, err, want)
		}
	}
	if err := s.SetMax(ctx, "rev:alice", 42, exp); err != nil {
		t.Fatal(err)
	}
	if n, err := s.Get(ctx, "rev:alice"); err != nil || n != 42 {
		t.Fatalf("Get = %d, %v; want 42", n, err)
	}
	if err := admin.ConfigSet(ctx, "maxmemory-policy", "allkeys-random").Err(); err != nil {
		t.Fatal(err)
	}
	// The node is named as the cluster announces it (":port" for a node
	// that does not know its own IP).
	if err := s.Check(ctx); err == nil || !strings.Contains(err.Error(), "node ") ||
		!strings.Contains(err.Error(), `maxmemory-policy is "allkeys-random"`) {
		t.Fatalf("Check = %v, want the node and its policy", err)
	}
}
