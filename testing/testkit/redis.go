package testkit

import (
	"bufio"
	"errors"
	"io"
	"net"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Redis is a private redis-server of one test: on a free loopback port,
// with noeviction and no persistence, not daemonized, so that the test owns
// the process and stops it by its PID (never by port). It is killed at
// cleanup.
type Redis struct {
	// Addr is the server's address, "127.0.0.1:<port>"; Restart keeps it.
	Addr string

	t    testing.TB
	bin  string
	args []string
	dir  string

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{} // closed when the current process has exited
	log  strings.Builder
}

// StartRedis starts a private redis-server with the extra command-line
// arguments args and waits until it accepts connections. Without
// redis-server installed the test is skipped, or fails when CI is set.
func StartRedis(t testing.TB, args ...string) *Redis {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		const msg = "redis-server is not installed: .ci/redis.sh installs it"
		if os.Getenv("CI") != "" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	r := &Redis{t: t, bin: bin, args: args, dir: t.TempDir()}
	for attempt := 0; ; attempt++ {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		r.Addr = l.Addr().String()
		_ = l.Close()
		// The port was free a moment ago; another process may take it
		// in between, and then this one exits: try another.
		if err = r.start(); err == nil {
			t.Cleanup(r.Kill)
			return r
		}
		if attempt == 4 {
			t.Fatalf("redis-server did not start: %v", err)
		}
	}
}

// start runs the server on r.Addr and waits for its readiness line.
func (r *Redis) start() error {
	_, port, _ := net.SplitHostPort(r.Addr)
	argv := append([]string{
		"--bind", "127.0.0.1", "--port", port, "--save", "", "--appendonly", "no",
		"--maxmemory-policy", "noeviction", "--daemonize", "no", "--dir", r.dir, "--logfile", "",
	}, r.args...)
	cmd := exec.Command(r.bin, argv...)
	out, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return err
	}
	done := make(chan struct{})
	r.mu.Lock()
	r.cmd, r.done = cmd, done
	r.log.Reset()
	r.mu.Unlock()
	ready := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(out)
		signalled := false
		for sc.Scan() {
			r.mu.Lock()
			r.log.WriteString(sc.Text() + "\n")
			r.mu.Unlock()
			if !signalled && strings.Contains(sc.Text(), "Ready to accept connections") {
				signalled = true
				close(ready)
			}
		}
		_, _ = io.Copy(io.Discard, out)
		_ = cmd.Wait()
		close(done)
	}()
	select {
	case <-ready:
		return nil
	case <-done:
		r.mu.Lock()
		defer r.mu.Unlock()
		return errors.New("redis-server exited: " + r.log.String())
	case <-time.After(10 * time.Second):
		_ = cmd.Process.Kill()
		<-done
		return errors.New("redis-server: no readiness line within 10s")
	}
}

// PID is the process id of the running server.
func (r *Redis) PID() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.cmd.Process.Pid
}

// Kill stops the server for good (SIGKILL to its PID: no shutdown, no
// goodbye to the clients) and waits until the process has exited. It is
// a no-op when the server is not running.
func (r *Redis) Kill() {
	r.mu.Lock()
	cmd, done := r.cmd, r.done
	r.mu.Unlock()
	_ = cmd.Process.Kill()
	<-done
}

// Restart starts a killed server again on the same address, empty (no
// persistence): a Redis that lost its data.
func (r *Redis) Restart() {
	r.t.Helper()
	r.mu.Lock()
	done := r.done
	r.mu.Unlock()
	select {
	case <-done:
	default:
		r.t.Fatal("testkit: Restart of a redis-server that runs; Kill it first")
	}
	var err error
	for range 20 { // the port may linger for a moment
		if err = r.start(); err == nil {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	r.t.Fatalf("redis-server did not start again on %s: %v", r.Addr, err)
}

// Pause freezes the server (SIGSTOP): connections stay open and nothing
// answers, as with a hung Redis or a network partition. Resume undoes it.
func (r *Redis) Pause() { r.signal(syscall.SIGSTOP) }

// Resume lets a paused server run again (SIGCONT).
func (r *Redis) Resume() { r.signal(syscall.SIGCONT) }

func (r *Redis) signal(sig syscall.Signal) {
	r.t.Helper()
	r.mu.Lock()
	p := r.cmd.Process
	r.mu.Unlock()
	if err := p.Signal(sig); err != nil {
		r.t.Fatal(err)
	}
}
