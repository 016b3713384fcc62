package redisstore_test

import (
	"context"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/stepupgrpc/stepup/challenge/redisstore"
)

// TestApprovals checks the approval records against a real Redis: kept
// by subject, listed until they expire, and never another subject's.
func TestApprovals(t *testing.T) {
	c := newClient(t, redisAddr(t))
	prefix := testPrefix(t, c)
	s, err := redisstore.New(c, redisstore.WithPrefix(prefix))
	if err != nil {
		t.Fatal(err)
	}
	testApprovals(t, s, c, prefix)
}

// TestApprovalsCluster: the same on Redis Cluster, where a subject's
// records and index share its hash slot (the index script touches one
// key, the records are read in one pipeline to that slot's primary).
func TestApprovalsCluster(t *testing.T) {
	d := deployments()[0]
	s, prefix := newDeploymentStore(t, d)
	testApprovals(t, s, d.client(t), prefix)
}

func testApprovals(t *testing.T, s *redisstore.Store, c redis.UniversalClient, prefix string) {
	t.Helper()
	ctx := context.Background()
	now := time.Now()
	put := func(sub, id, rec string, expires time.Time) {
		t.Helper()
		if err := s.PutApproval(ctx, sub, id, []byte(rec), expires); err != nil {
			t.Fatal(err)
		}
	}
	put("alice", "a1", "one", now.Add(time.Minute))
	put("alice", "a2", "two", now.Add(2*time.Minute))
	put("bob", "b1", "bob's", now.Add(time.Minute))
	// Past the store's expiry margin (the Service checks the expiry itself).
	put("alice", "gone", "expired", now.Add(-time.Hour))

	got, err := s.Approvals(ctx, "alice")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || string(got["a1"]) != "one" || string(got["a2"]) != "two" {
		t.Fatalf("alice's approvals: %q", got)
	}
	got, err = s.Approvals(ctx, "bob")
	if err != nil || len(got) != 1 || string(got["b1"]) != "bob's" {
		t.Fatalf("bob's approvals: %q %v", got, err)
	}
	got, err = s.Approvals(ctx, "carol")
	if err != nil || len(got) != 0 {
		t.Fatalf("carol's approvals: %q %v", got, err)
	}
	// The index lives as long as its latest record.
	ttl, err := c.PTTL(ctx, prefix+"aprs:{alice}").Result()
	if err != nil || ttl < time.Minute || ttl > 2*time.Minute+redisstore.DefaultExpiryMargin+time.Second {
		t.Fatalf("index TTL %s %v, want 2m and the expiry margin", ttl, err)
	}
}
