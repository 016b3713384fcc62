//go:build !linux

package dpop_test

import "time"

// threadCPU is unavailable here; benchPair then reports wall time only.
func threadCPU() time.Duration { return 0 }
