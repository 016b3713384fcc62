package auditlog_test

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stepupgrpc/stepup/auditlog"
	"github.com/stepupgrpc/stepup/testing/testkit"
)

// TestOptionMistakesJoined: Open reports every option mistake, joined, each
// naming its option, with the key's, and creates nothing: the trail's
// directory does not exist afterwards. A nil option, clock, logger or
// checkpoint copy is a mistake (Open stopped at the first mistake before,
// and took a nil copy for none).
func TestOptionMistakesJoined(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "trail")
	_, err := auditlog.Open(dir, auditlog.SigningKey{ID: "k"}, auditlog.WithClock(nil), nil,
		auditlog.WithCheckpointEvery(0), auditlog.WithQueueSize(0), auditlog.WithLogger(nil), auditlog.WithCheckpointCopy(nil),
		auditlog.WithReplica("a/b"))
	testkit.WantMistakes(t, "Open", err,
		"no signing key",
		"auditlog: WithClock: nil clock",
		"auditlog: Open: option 2 is nil",
		"auditlog: WithCheckpointEvery(0): at least 1",
		"auditlog: WithQueueSize(0): at least 1",
		"auditlog: WithLogger: nil logger",
		"auditlog: WithCheckpointCopy: nil writer",
		`auditlog: WithReplica: replica name "a/b"`)
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("Open made the trail's directory although its options were wrong: %v", err)
	}
	var _ auditlog.Option = auditlog.WithClock(time.Now)
}
