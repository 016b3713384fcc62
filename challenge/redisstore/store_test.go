package redisstore_test

import (
	"context"
	"errors"
	"math"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/stepupgrpc/stepup/challenge"
	"github.com/stepupgrpc/stepup/challenge/redisstore"
	"github.com/stepupgrpc/stepup/dpop"
)

// expiryMillis is what the store must send for t with margin: Unix ms,
// rounded up.
func expiryMillis(t time.Time, margin time.Duration) int64 {
	t = t.Add(margin)
	ms := t.UnixMilli()
	if t.Nanosecond()%int(time.Millisecond) != 0 {
		ms++
	}
	return ms
}

// pexpiretime returns the absolute expiry of key in Unix ms (-1: none,
// -2: no key).
func pexpiretime(t *testing.T, c *redis.Client, key string) int64 {
	t.Helper()
	v, err := c.Do(context.Background(), "pexpiretime", key).Int64()
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func exists(t *testing.T, c *redis.Client, key string) bool {
	t.Helper()
	n, err := c.Exists(context.Background(), key).Result()
	if err != nil {
		t.Fatal(err)
	}
	return n == 1
}

func TestInsert(t *testing.T) {
	s, c, prefix := sharedStore(t)
	ctx := context.Background()
	now := time.Now()
	// A sub-millisecond expiry is rounded up, never down.
	exp := now.Add(time.Minute).Truncate(time.Millisecond).Add(time.Microsecond)

	if err := s.Insert(ctx, "dpop:a", now, exp); err != nil {
		t.Fatalf("first insert: %v", err)
	}
	if err := s.Insert(ctx, "dpop:a", now, exp); !errors.Is(err, dpop.ErrReplayed) {
		t.Fatalf("second insert = %v, want dpop.ErrReplayed", err)
	}
	if got, want := pexpiretime(t, c, prefix+"dpop:a"), expiryMillis(exp, redisstore.DefaultExpiryMargin); got != want {
		t.Fatalf("expiry = %d, want %d (expires rounded up, plus the default margin)", got, want)
	}
	if v, _ := c.Get(ctx, prefix+"dpop:a").Result(); v != "1" {
		t.Fatalf("value = %q, want 1", v)
	}

	// Once Redis has dropped the key at its expiry, the key is new again.
	// Moving the expiry into the past stands for the time passing.
	if err := c.PExpireAt(ctx, prefix+"dpop:a", now.Add(-time.Hour)).Err(); err != nil {
		t.Fatal(err)
	}
	if err := s.Insert(ctx, "dpop:a", now, exp); err != nil {
		t.Fatalf("insert after expiry = %v, want nil", err)
	}

	// A key that has already expired is not kept (callers refuse expired
	// items themselves), like challenge.MemoryStore.
	past := now.Add(-time.Hour)
	for i := 0; i < 2; i++ {
		if err := s.Insert(ctx, "dpop:past", past.Add(-time.Minute), past); err != nil {
			t.Fatalf("insert %d of an expired key = %v, want nil", i, err)
		}
	}
	if exists(t, c, prefix+"dpop:past") {
		t.Fatal("an expired key was kept")
	}
	// ...but a live key is still reported, whatever expiry comes with it.
	if err := s.Insert(ctx, "dpop:a", past, past); !errors.Is(err, dpop.ErrReplayed) {
		t.Fatalf("insert of a live key with a past expiry = %v, want dpop.ErrReplayed", err)
	}

	// Times Redis cannot take (before the epoch, the zero Time, past year
	// 292277026) are clamped: before the epoch means expired.
	if err := s.Insert(ctx, "dpop:zero", time.Time{}, time.Time{}); err != nil || exists(t, c, prefix+"dpop:zero") {
		t.Fatalf("insert with the zero Time = %v (kept: %v), want nil and not kept", err, exists(t, c, prefix+"dpop:zero"))
	}
	far := time.Date(9999, 12, 31, 0, 0, 0, 0, time.UTC)
	if err := s.Insert(ctx, "dpop:far", now, far); err != nil {
		t.Fatalf("insert until year 9999: %v", err)
	}
	if got, want := pexpiretime(t, c, prefix+"dpop:far"), expiryMillis(far, redisstore.DefaultExpiryMargin); got != want {
		t.Fatalf("expiry = %d, want %d", got, want)
	}
	if err := s.Insert(ctx, "dpop:max", now, time.Unix(math.MaxInt64, 0)); err != nil {
		t.Fatalf("insert with the largest Time: %v", err)
	}
}

func TestExpiryMargin(t *testing.T) {
	s, c, prefix := sharedStore(t, redisstore.WithExpiryMargin(0))
	ctx := context.Background()
	exp := time.Now().Add(time.Minute)
	if err := s.Insert(ctx, "k", exp, exp); err != nil {
		t.Fatal(err)
	}
	if got, want := pexpiretime(t, c, prefix+"k"), expiryMillis(exp, 0); got != want {
		t.Fatalf("expiry without margin = %d, want %d", got, want)
	}
	s2, c2, prefix2 := sharedStore(t, redisstore.WithExpiryMargin(30*time.Second))
	if _, err := s2.Increment(ctx, "n", exp); err != nil {
		t.Fatal(err)
	}
	if got, want := pexpiretime(t, c2, prefix2+"n"), expiryMillis(exp, 30*time.Second); got != want {
		t.Fatalf("expiry with a 30 s margin = %d, want %d", got, want)
	}
}

func TestIncrement(t *testing.T) {
	s, c, prefix := sharedStore(t)
	ctx := context.Background()
	now := time.Now()
	exp := now.Add(15 * time.Minute)
	for want := int64(1); want <= 3; want++ {
		// Later increments bring other expiries: they must not move it.
		n, err := s.Increment(ctx, "att:sub:alice:1", exp.Add(time.Duration(want)*time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		if n != want {
			t.Fatalf("increment %d returned %d", want, n)
		}
	}
	if got, want := pexpiretime(t, c, prefix+"att:sub:alice:1"), expiryMillis(exp.Add(time.Hour), redisstore.DefaultExpiryMargin); got != want {
		t.Fatalf("expiry = %d, want %d: set when the key was created, never moved", got, want)
	}
	if n, err := s.Get(ctx, "att:sub:alice:1"); err != nil || n != 3 {
		t.Fatalf("Get = %d, %v; want 3", n, err)
	}

	// An expired counter counts from 1 again.
	if err := c.PExpireAt(ctx, prefix+"att:sub:alice:1", now.Add(-time.Hour)).Err(); err != nil {
		t.Fatal(err)
	}
	if n, err := s.Increment(ctx, "att:sub:alice:1", exp); err != nil || n != 1 {
		t.Fatalf("increment after expiry = %d, %v; want 1", n, err)
	}

	// An expiry in the past: the count is 1 and nothing is remembered.
	for i := 0; i < 2; i++ {
		if n, err := s.Increment(ctx, "att:past", now.Add(-time.Hour)); err != nil || n != 1 {
			t.Fatalf("increment with a past expiry = %d, %v; want 1", n, err)
		}
	}
	if exists(t, c, prefix+"att:past") {
		t.Fatal("a counter with a past expiry was kept")
	}

	// A counter written without expiry by someone else gets one: the store
	// never leaves a key of its own behind forever.
	if err := c.Set(ctx, prefix+"att:noexp", 5, 0).Err(); err != nil {
		t.Fatal(err)
	}
	if n, err := s.Increment(ctx, "att:noexp", exp); err != nil || n != 6 {
		t.Fatalf("increment = %d, %v; want 6", n, err)
	}
	if got := pexpiretime(t, c, prefix+"att:noexp"); got <= 0 {
		t.Fatalf("expiry = %d, want one", got)
	}

	// Not a counter: an error, never a count.
	if err := c.Set(ctx, prefix+"att:text", "x", time.Minute).Err(); err != nil {
		t.Fatal(err)
	}
	if n, err := s.Increment(ctx, "att:text", exp); err == nil {
		t.Fatalf("increment of a non-integer = %d, want an error", n)
	}
}

func TestIncrementConcurrent(t *testing.T) {
	s, _, _ := sharedStore(t)
	const n = 200
	exp := time.Now().Add(time.Minute)
	got := make([]int64, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			v, err := s.Increment(context.Background(), "att:chl:x", exp)
			if err != nil {
				t.Error(err)
			}
			got[i] = v
		})
	}
	wg.Wait()
	slices.Sort(got)
	for i, v := range got {
		if v != int64(i+1) {
			t.Fatalf("concurrent increments returned %v, want each of 1..%d once", got, n)
		}
	}
}

func TestSetMax(t *testing.T) {
	s, _, _ := sharedStore(t)
	ctx := context.Background()
	now := time.Now()
	exp := now.Add(time.Hour)

	// Each step: SetMax(value), then Get must return want. Values beyond
	// 2^53 differ by one: a comparison of doubles would get them wrong.
	const big = 1 << 53
	steps := []struct {
		name        string
		value, want int64
	}{
		{"first value", 5, 5},
		{"smaller", 3, 5},
		{"equal", 5, 5},
		{"larger", 9, 9},
		{"larger, more digits", 10, 10},
		{"negative", -1, 10},
		{"2^53", big, big},
		{"2^53+1, the same double", big + 1, big + 1},
		{"2^53 again", big, big + 1},
		{"2^53+2", big + 2, big + 2},
		{"max int64 - 1", math.MaxInt64 - 1, math.MaxInt64 - 1},
		{"max int64, the same double", math.MaxInt64, math.MaxInt64},
		{"min int64", math.MinInt64, math.MaxInt64},
	}
	for _, st := range steps {
		if err := s.SetMax(ctx, "rev:alice", st.value, exp); err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
		if got, err := s.Get(ctx, "rev:alice"); err != nil || got != st.want {
			t.Fatalf("%s: Get = %d, %v; want %d", st.name, got, err, st.want)
		}
	}

	negatives := []struct {
		name        string
		value, want int64
	}{
		{"first value", -12, -12},
		{"more negative, more digits", -100, -12},
		{"less negative, fewer digits", -5, -5},
		{"more negative, same digits", -7, -5},
		{"zero", 0, 0},
		{"negative after zero", -1, 0},
		{"min int64", math.MinInt64, 0},
		{"positive", 1, 1},
	}
	for _, st := range negatives {
		if err := s.SetMax(ctx, "rev:bob", st.value, exp); err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
		if got, err := s.Get(ctx, "rev:bob"); err != nil || got != st.want {
			t.Fatalf("negatives, %s: Get = %d, %v; want %d", st.name, got, err, st.want)
		}
	}
	if err := s.SetMax(ctx, "rev:carol", math.MinInt64, exp); err != nil {
		t.Fatal(err)
	}
	if got, err := s.Get(ctx, "rev:carol"); err != nil || got != math.MinInt64 {
		t.Fatalf("Get = %d, %v; want min int64", got, err)
	}
}

func TestSetMaxExpiry(t *testing.T) {
	s, c, prefix := sharedStore(t)
	ctx := context.Background()
	now := time.Now()
	e1, e0, e2 := now.Add(time.Hour), now.Add(time.Minute), now.Add(2*time.Hour)
	key := prefix + "rev:alice"
	check := func(step string, value int64, exp time.Time) {
		t.Helper()
		if got, err := s.Get(ctx, "rev:alice"); err != nil || got != value {
			t.Fatalf("%s: Get = %d, %v; want %d", step, got, err, value)
		}
		if got, want := pexpiretime(t, c, key), expiryMillis(exp, redisstore.DefaultExpiryMargin); got != want {
			t.Fatalf("%s: expiry = %d, want %d", step, got, want)
		}
	}
	if err := s.SetMax(ctx, "rev:alice", 100, e1); err != nil {
		t.Fatal(err)
	}
	check("created", 100, e1)
	// A larger value with an earlier expiry: the value changes, the
	// expiry stays.
	if err := s.SetMax(ctx, "rev:alice", 200, e0); err != nil {
		t.Fatal(err)
	}
	check("larger value, earlier expiry", 200, e1)
	// A smaller value with a later expiry: the value stays, the expiry
	// moves.
	if err := s.SetMax(ctx, "rev:alice", 50, e2); err != nil {
		t.Fatal(err)
	}
	check("smaller value, later expiry", 200, e2)
	// A past expiry never shortens a live key.
	if err := s.SetMax(ctx, "rev:alice", 300, now.Add(-time.Hour)); err != nil {
		t.Fatal(err)
	}
	check("past expiry", 300, e2)

	// Absent with a past expiry: nothing is recorded.
	if err := s.SetMax(ctx, "rev:past", 7, now.Add(-time.Hour)); err != nil {
		t.Fatal(err)
	}
	if exists(t, c, prefix+"rev:past") {
		t.Fatal("a value with a past expiry was kept")
	}
	// Expired: a new value starts over, even a smaller one.
	if err := c.PExpireAt(ctx, key, now.Add(-time.Hour)).Err(); err != nil {
		t.Fatal(err)
	}
	if err := s.SetMax(ctx, "rev:alice", 1, e0); err != nil {
		t.Fatal(err)
	}
	check("after expiry", 1, e0)
}

func TestGet(t *testing.T) {
	s, c, prefix := sharedStore(t)
	ctx := context.Background()
	if n, err := s.Get(ctx, "rev:nobody"); err != nil || n != 0 {
		t.Fatalf("Get of an absent key = %d, %v; want 0", n, err)
	}
	// Values the store did not write are errors, never a number: a
	// corrupted revocation or counter must not read as 0.
	for name, v := range map[string]string{
		"text": "abc", "leading zero": "007", "minus zero": "-0", "plus sign": "+5", "space": " 5",
		"above max int64": "9223372036854775808", "below min int64": "-9223372036854775809",
		"20 digits": "99999999999999999999",
	} {
		if err := c.Set(ctx, prefix+"bad", v, time.Minute).Err(); err != nil {
			t.Fatal(err)
		}
		if err := s.SetMax(ctx, "bad", 1, time.Now().Add(time.Minute)); err == nil {
			t.Errorf("%s: SetMax over %q succeeded, want an error", name, v)
		}
		if n, err := s.Get(ctx, "bad"); err == nil {
			t.Errorf("%s: Get of %q = %d, want an error", name, v, n)
		}
	}
	// The bounds themselves are values.
	for _, v := range []string{"9223372036854775807", "-9223372036854775808"} {
		if err := c.Set(ctx, prefix+"bound", v, time.Minute).Err(); err != nil {
			t.Fatal(err)
		}
		if err := s.SetMax(ctx, "bound", 0, time.Now().Add(time.Minute)); err != nil {
			t.Errorf("SetMax over %s: %v", v, err)
		}
	}
	if err := c.RPush(ctx, prefix+"list", "x").Err(); err != nil {
		t.Fatal(err)
	}
	if n, err := s.Get(ctx, "list"); err == nil {
		t.Errorf("Get of a list = %d, want an error", n)
	}
}

// TestPrefix: keys live under the prefix, and stores with different
// prefixes do not see each other.
func TestPrefix(t *testing.T) {
	c := newClient(t, redisAddr(t))
	ctx := context.Background()
	exp := time.Now().Add(time.Minute)

	s, err := redisstore.New(c, patient)
	if err != nil {
		t.Fatal(err)
	}
	key := "test:" + randomHex(t, 8)
	t.Cleanup(func() { c.Del(context.Background(), redisstore.DefaultPrefix+key) })
	if err := s.Insert(ctx, key, exp, exp); err != nil {
		t.Fatal(err)
	}
	if !exists(t, c, "stepup:"+key) {
		t.Fatalf("no key %q: the default prefix must be \"stepup:\"", "stepup:"+key)
	}

	p1, p2 := testPrefix(t, c), testPrefix(t, c)
	s1, err := redisstore.New(c, patient, redisstore.WithPrefix(p1))
	if err != nil {
		t.Fatal(err)
	}
	s1b, err := redisstore.New(newClient(t, redisAddr(t)), patient, redisstore.WithPrefix(p1))
	if err != nil {
		t.Fatal(err)
	}
	s2, err := redisstore.New(c, patient, redisstore.WithPrefix(p2))
	if err != nil {
		t.Fatal(err)
	}
	if err := s1.Insert(ctx, "chl:x", exp, exp); err != nil {
		t.Fatal(err)
	}
	if err := s2.Insert(ctx, "chl:x", exp, exp); err != nil {
		t.Fatalf("another prefix saw the key: %v", err)
	}
	if err := s1b.Insert(ctx, "chl:x", exp, exp); !errors.Is(err, dpop.ErrReplayed) {
		t.Fatalf("another store with the same prefix: %v, want dpop.ErrReplayed", err)
	}
	if _, err := s1.Increment(ctx, "n", exp); err != nil {
		t.Fatal(err)
	}
	if n, _ := s2.Get(ctx, "n"); n != 0 {
		t.Fatalf("another prefix read %d", n)
	}
	if n, _ := s1b.Get(ctx, "n"); n != 1 {
		t.Fatalf("the same prefix read %d, want 1", n)
	}
	if !exists(t, c, p1+"chl:x") || !exists(t, c, p1+"n") {
		t.Fatal("keys are not stored under the prefix")
	}
}

// TestSameAnswersAsMemoryStore runs one sequence of operations on the
// in-process store and on Redis: both implement challenge.Store, and must
// give the same answers.
func TestSameAnswersAsMemoryStore(t *testing.T) {
	rs, _, _ := sharedStore(t)
	now := time.Now()
	ms, err := challenge.NewMemoryStore(100, func() time.Time { return now })
	if err != nil {
		t.Fatal(err)
	}
	later, past := now.Add(10*time.Minute), now.Add(-10*time.Minute)
	ops := []struct {
		name string
		run  func(s challenge.Store) (int64, error)
	}{
		{"insert a", func(s challenge.Store) (int64, error) { return 0, s.Insert(context.Background(), "a", now, later) }},
		{"insert a again", func(s challenge.Store) (int64, error) { return 0, s.Insert(context.Background(), "a", now, later) }},
		{"insert a, past expiry", func(s challenge.Store) (int64, error) { return 0, s.Insert(context.Background(), "a", past, past) }},
		{"insert b, past expiry", func(s challenge.Store) (int64, error) { return 0, s.Insert(context.Background(), "b", past, past) }},
		{"insert b", func(s challenge.Store) (int64, error) { return 0, s.Insert(context.Background(), "b", now, later) }},
		{"increment n", func(s challenge.Store) (int64, error) { return s.Increment(context.Background(), "n", later) }},
		{"increment n", func(s challenge.Store) (int64, error) { return s.Increment(context.Background(), "n", past) }},
		{"get n", func(s challenge.Store) (int64, error) { return s.Get(context.Background(), "n") }},
		{"increment m, past expiry", func(s challenge.Store) (int64, error) { return s.Increment(context.Background(), "m", past) }},
		{"get m", func(s challenge.Store) (int64, error) { return s.Get(context.Background(), "m") }},
		{"set max r 10", func(s challenge.Store) (int64, error) { return 0, s.SetMax(context.Background(), "r", 10, later) }},
		{"set max r 4", func(s challenge.Store) (int64, error) { return 0, s.SetMax(context.Background(), "r", 4, later) }},
		{"get r", func(s challenge.Store) (int64, error) { return s.Get(context.Background(), "r") }},
		{"set max q, past expiry", func(s challenge.Store) (int64, error) { return 0, s.SetMax(context.Background(), "q", 3, past) }},
		{"get q", func(s challenge.Store) (int64, error) { return s.Get(context.Background(), "q") }},
		{"get absent", func(s challenge.Store) (int64, error) { return s.Get(context.Background(), "absent") }},
	}
	for i, op := range ops {
		mv, merr := op.run(ms)
		rv, rerr := op.run(rs)
		if mv != rv || !errors.Is(rerr, merr) || (merr == nil) != (rerr == nil) {
			t.Errorf("op %d (%s): memory %d, %v; redis %d, %v", i, op.name, mv, merr, rv, rerr)
		}
	}
}

// TestOnlyUncachedCommands: the operations use SET NX and scripts only,
// none of which a client-side cache or a replica may answer.
func TestOnlyUncachedCommands(t *testing.T) {
	c := newClient(t, redisAddr(t))
	s, err := redisstore.New(c, patient, redisstore.WithPrefix(testPrefix(t, c)))
	if err != nil {
		t.Fatal(err)
	}
	rec := &commandRecorder{}
	c.AddHook(rec)
	ctx := context.Background()
	exp := time.Now().Add(time.Minute)
	_ = s.Insert(ctx, "i", exp, exp)
	_, _ = s.Increment(ctx, "n", exp)
	_ = s.SetMax(ctx, "m", 1, exp)
	_, _ = s.Get(ctx, "m")
	_, _ = s.Get(ctx, "absent")
	for _, name := range rec.names() {
		if name != "set" && name != "evalsha" && name != "eval" {
			t.Errorf("the store sent %q; want only set, evalsha and eval", name)
		}
	}
	if len(rec.names()) < 5 {
		t.Fatalf("recorded %v", rec.names())
	}
}

type commandRecorder struct {
	mu  sync.Mutex
	cmd []string
}

func (r *commandRecorder) DialHook(next redis.DialHook) redis.DialHook { return next }
func (r *commandRecorder) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		r.mu.Lock()
		r.cmd = append(r.cmd, strings.ToLower(cmd.Name()))
		r.mu.Unlock()
		return next(ctx, cmd)
	}
}
func (r *commandRecorder) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		r.mu.Lock()
		for _, c := range cmds {
			r.cmd = append(r.cmd, "pipeline:"+strings.ToLower(c.Name()))
		}
		r.mu.Unlock()
		return next(ctx, cmds)
	}
}
func (r *commandRecorder) names() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.cmd)
}
