package dpop_test

import (
	"syscall"
	"time"
	"unsafe"
)

// clockThreadCPUTimeID is CLOCK_THREAD_CPUTIME_ID (Linux).
const clockThreadCPUTimeID = 3

// threadCPU returns the CPU time used by the calling OS thread, to the
// nanosecond. With the goroutine locked to its thread it measures only the
// work of the measured code, not the time other processes on a shared
// machine take from it.
func threadCPU() time.Duration {
	var ts syscall.Timespec
	_, _, errno := syscall.Syscall(syscall.SYS_CLOCK_GETTIME, clockThreadCPUTimeID, uintptr(unsafe.Pointer(&ts)), 0)
	if errno != 0 {
		return 0
	}
	return time.Duration(ts.Nano())
}
