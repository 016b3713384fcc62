package main

import "testing"

func TestParseAmount(t *testing.T) {
	for in, want := range map[string]int64{"120": 12000, "120.00": 12000, "120.5": 12050, "0.01": 1, "7.50": 750} {
		if got, err := parseAmount(in); err != nil || got != want {
			t.Errorf("parseAmount(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "0", "0.00", "-1", "+1", "1.234", ".5", "1e3", "1,00", "abc", "99999999999999999"} {
		if got, err := parseAmount(in); err == nil {
			t.Errorf("parseAmount(%q) = %d, want an error", in, got)
		}
	}
}

func TestCheckLoopback(t *testing.T) {
	for addr, ok := range map[string]bool{
		"127.0.0.1:8443": true, "[::1]:8443": true, "localhost:8443": true, "LOCALHOST:1": true,
		"0.0.0.0:8443": false, "192.0.2.1:8443": false, "bank.example:443": false, "127.0.0.1": false,
	} {
		if err := checkLoopback(addr); (err == nil) != ok {
			t.Errorf("checkLoopback(%q) = %v, want ok %v", addr, err, ok)
		}
	}
}
