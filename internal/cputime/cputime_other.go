//go:build !linux

package cputime

import "time"

const available = false

// Thread is unavailable here: it returns 0.
func Thread() time.Duration { return 0 }

// Process is unavailable here: it returns 0.
func Process() time.Duration { return 0 }
