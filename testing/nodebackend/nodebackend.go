// Package nodebackend starts the gateway's Node backend
// (gateway/testdata/node-backend: @grpc/grpc-js and jose, no Stepup code)
// for the gateway's tests and demo.
package nodebackend

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"strings"
	"time"
)

// Dir is the backend's directory relative to the repository root.
const Dir = "gateway/testdata/node-backend"

// Config says how to run it.
type Config struct {
	// Node is the node binary; Dir the backend's directory.
	Node, Dir string
	// Descriptors is the FileDescriptorSet it serves (absolute path).
	Descriptors string
	// JWKSURL, Issuer and Audience verify the gateway's assertions.
	JWKSURL, Issuer, Audience string
	// Stderr receives the backend's standard error (nil: discarded).
	Stderr io.Writer
}

// Start runs the backend on a loopback port until ctx ends, and returns
// its address once it listens. wait returns when the process has exited.
func Start(ctx context.Context, c Config) (addr string, wait func(), err error) {
	cmd := exec.CommandContext(ctx, c.Node, "server.js", "--listen", "127.0.0.1:0", "--descriptors", c.Descriptors,
		"--jwks-url", c.JWKSURL, "--issuer", c.Issuer, "--audience", c.Audience)
	cmd.Dir, cmd.Stderr = c.Dir, c.Stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return "", nil, err
	}
	if err := cmd.Start(); err != nil {
		return "", nil, err
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	wait = func() { <-exited }
	port := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if p, ok := strings.CutPrefix(sc.Text(), "listening on "); ok {
				port <- p
			}
		}
	}()
	select {
	case p := <-port:
		return "127.0.0.1:" + p, wait, nil
	case <-exited:
		return "", wait, errors.New("the Node backend exited before it listened")
	case <-time.After(30 * time.Second):
		return "", wait, fmt.Errorf("the Node backend did not listen within 30 s")
	}
}
