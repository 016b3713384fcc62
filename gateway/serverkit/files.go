// Package serverkit builds the server-side components that the example
// bank server and stepup-gateway both configure from files: the step-up
// service, the DPoP verifier and the shared Redis store.
package serverkit

import (
	"fmt"
	"net"
	"net/netip"
	"strings"
)

// CheckLoopback accepts a listen address whose host is a loopback IP or
// "localhost". Any other address, including an empty host or 0.0.0.0, would
// expose tokens and proofs in clear text on the network.
func CheckLoopback(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("listen address %q: %w", addr, err)
	}
	if !isLoopbackHost(host) {
		return fmt.Errorf("listen address %q is not a loopback address (use 127.0.0.1, [::1] or localhost, or serve TLS)", addr)
	}
	return nil
}

func isLoopbackHost(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.IsLoopback()
}
