package gateway_test

import (
	"errors"
	"testing"
	"time"

	"github.com/stepupgrpc/stepup/gateway"
	stepupv1 "github.com/stepupgrpc/stepup/proto/stepup/v1"
	"github.com/stepupgrpc/stepup/testing/testkit"
)

// TestOptionMistakesJoined: New reports every option mistake, joined, each
// naming its option, together with the configuration's own mistakes
// (*gateway.ConfigError), before it reads a file or dials the backend. A nil
// option, logger, sink, store or clock is a mistake (the clock and the
// logger were kept nil before, and failed on first use).
func TestOptionMistakesJoined(t *testing.T) {
	cfg := &stepupv1.GatewayConfig{Listen: "no port"}
	_, err := gateway.New(cfg, gateway.WithClock(nil), nil, gateway.WithLogger(nil), gateway.WithAuditSink(nil), gateway.WithStore(nil))
	testkit.WantMistakes(t, "New", err,
		"gateway: WithClock: nil clock",
		"gateway: New: option 2 is nil",
		"gateway: WithLogger: nil logger",
		"gateway: WithAuditSink: nil sink",
		"gateway: WithStore: nil store")
	var ce *gateway.ConfigError
	if !errors.As(err, &ce) || ce.Field != "listen" {
		t.Errorf("%q does not carry the configuration's mistake (listen)", err)
	}
	var _ gateway.Option = gateway.WithClock(time.Now)
}
