// Package cputime reads the CPU time of the calling thread and of the whole
// process, for benchmarks that must not count the time other processes on
// a shared machine take: CPU time is what the measured code used, wall time
// is what it was given.
package cputime

// Available reports whether Thread and Process measure anything on this
// system (Linux); elsewhere they return 0 and benchmarks fall back to wall
// time.
const Available = available
