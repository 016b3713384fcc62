package auditlog_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stepupgrpc/stepup/auditlog"
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
	if err == nil {
		t.Fatal("Open accepted its mistakes")
	}
	for _, want := range []string{
		"no signing key",
		"auditlog: WithClock: nil clock",
		"auditlog: Open: option 2 is nil",
		"auditlog: WithCheckpointEvery(0): at least 1",
		"auditlog: WithQueueSize(0): at least 1",
		"auditlog: WithLogger: nil logger",
		"auditlog: WithCheckpointCopy: nil writer",
		`auditlog: WithReplica: replica name "a/b"`,
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("%q does not report %q", err, want)
		}
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("Open made the trail's directory although its options were wrong: %v", err)
	}
	var _ auditlog.Option = auditlog.WithClock(time.Now)
}
