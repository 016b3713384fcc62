package redisstore_test

import (
	"net"
	"strings"
	"testing"
	"time"

	"github.com/stepupgrpc/stepup/challenge/redisstore"
	"github.com/stepupgrpc/stepup/testing/testkit"
)

// TestOptionMistakesJoined: New reports every option mistake, joined, each
// naming its option, and connects to nothing: the listener standing in
// for Redis has no connection waiting afterwards. A nil option and a nil
// clock are mistakes (New skipped the one and took the other for time.Now
// before).
func TestOptionMistakesJoined(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	_, err = redisstore.New(newClient(t, l.Addr().String()), redisstore.WithTimeout(0), redisstore.WithClock(nil), nil,
		redisstore.WithExpiryMargin(-time.Second), redisstore.WithFutureWindow(time.Hour), redisstore.WithDurableWrites(-1, 0))
	testkit.WantMistakes(t, "New", err,
		"redisstore: WithTimeout(0s): the timeout must be positive",
		"redisstore: WithClock: nil clock",
		"redisstore: New: option 3 is nil",
		"redisstore: WithExpiryMargin(-1s): the margin must not be negative",
		"redisstore: WithFutureWindow(1h0m0s): must be in [0, 5m0s]",
		"redisstore: WithDurableWrites(-1, 0s)")
	// The wait longer than the operation timeout is a mistake of the two
	// options together.
	_, err = redisstore.New(newClient(t, l.Addr().String()), redisstore.WithTimeout(time.Second), redisstore.WithDurableWrites(1, 2*time.Second))
	if err == nil || !strings.Contains(err.Error(), "redisstore: WithDurableWrites(1, 2s)") || !strings.Contains(err.Error(), "(1s)") {
		t.Errorf("New = %v, want the WithDurableWrites mistake naming the timeout", err)
	}
	if err := l.(*net.TCPListener).SetDeadline(time.Now()); err != nil {
		t.Fatal(err)
	}
	if c, err := l.Accept(); err == nil {
		c.Close()
		t.Error("New connected to Redis although its options were wrong")
	}
	var _ redisstore.Option = redisstore.WithClock(time.Now)
}
