package interceptor

import (
	"net"
	"testing"
)

// TestPeerString: the audit event's peer reads as net.Addr.String wrote
// it, for every kind of address.
func TestPeerString(t *testing.T) {
	for _, a := range []net.Addr{
		&net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 50123},
		&net.TCPAddr{IP: net.IP{10, 1, 2, 3}, Port: 443},
		&net.TCPAddr{IP: net.ParseIP("2001:db8::1"), Port: 8443},
		&net.TCPAddr{IP: net.ParseIP("::ffff:192.0.2.7"), Port: 1},
		&net.TCPAddr{IP: net.ParseIP("fe80::1"), Port: 80, Zone: "eth0"},
		&net.TCPAddr{IP: net.ParseIP("::"), Port: 0},
		&net.TCPAddr{Port: 80},
		&net.TCPAddr{IP: net.IPv4(1, 2, 3, 4), Port: 70000},
		&net.UnixAddr{Name: "/run/app.sock", Net: "unix"},
	} {
		if got, want := peerString(a), a.String(); got != want {
			t.Errorf("peerString(%#v) = %q, want %q", a, got, want)
		}
	}
	tcp := &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 50123}
	if n := testing.AllocsPerRun(10, func() { _ = peerString(tcp) }); n > 1 {
		t.Errorf("%v allocations for a TCP peer, want 1", n)
	}
}
