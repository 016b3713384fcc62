package cputime

import (
	"syscall"
	"time"
	"unsafe"
)

const available = true

// The clock ids of clock_gettime(2).
const (
	clockProcessCPUTimeID = 2 // CLOCK_PROCESS_CPUTIME_ID
	clockThreadCPUTimeID  = 3 // CLOCK_THREAD_CPUTIME_ID
)

func clock(id uintptr) time.Duration {
	var ts syscall.Timespec
	if _, _, errno := syscall.Syscall(syscall.SYS_CLOCK_GETTIME, id, uintptr(unsafe.Pointer(&ts)), 0); errno != 0 {
		return 0
	}
	return time.Duration(ts.Nano())
}

// Thread returns the CPU time used by the calling OS thread, to the
// nanosecond. Lock the goroutine to its thread (runtime.LockOSThread) for
// the reading to mean the measured code's own work.
func Thread() time.Duration { return clock(clockThreadCPUTimeID) }

// Process returns the CPU time used by every thread of this process (user
// and system), to the nanosecond: the goroutines of a server, its garbage
// collection and its system calls included.
func Process() time.Duration { return clock(clockProcessCPUTimeID) }
