package dpop

import (
	"net/netip"
	"strconv"
	"strings"
)

// uri is an htu split into the parts that are compared. host keeps its
// original case (compared case-insensitively); port is the effective port,
// the scheme default when none is given.
type uri struct {
	https bool
	host  string
	port  int
	path  string
}

func defaultPort(https bool) int {
	if https {
		return 443
	}
	return 80
}

// parseHTU parses an htu claim (RFC 9449 §4.2: the target URI without query
// and fragment). It refuses anything but an absolute http(s) URI with a host,
// and any userinfo, query or fragment. It does not allocate.
func parseHTU(htu string) (uri, *ProofError) {
	var u uri
	i := strings.Index(htu, "://")
	if i <= 0 {
		return u, newError(ReasonBadURI, "htu is not an absolute URI")
	}
	// RFC 3986 §6.2.2.1: the scheme is case-insensitive.
	switch scheme := htu[:i]; {
	case strings.EqualFold(scheme, "https"):
		u.https = true
	case strings.EqualFold(scheme, "http"):
	default:
		return u, newError(ReasonBadURI, "htu scheme is not http(s)")
	}
	rest := htu[i+3:]
	for j := 0; j < len(rest); j++ {
		if c := rest[j]; !uriChar[c] {
			if c == '?' || c == '#' {
				// RFC 9449 §4.2: htu is sent without query and fragment.
				return u, newError(ReasonBadURI, "htu has a query or fragment")
			}
			return u, newError(ReasonBadURI, "htu has a character not allowed in a URI")
		}
	}
	auth, path := rest, ""
	if j := strings.IndexByte(rest, '/'); j >= 0 {
		auth, path = rest[:j], rest[j:]
	}
	if strings.IndexByte(auth, '@') >= 0 {
		// Userinfo has no place in a request target and is a classic
		// way to confuse authority parsing.
		return u, newError(ReasonBadURI, "htu has userinfo")
	}
	host, port, ok := parseAuthority(auth)
	if !ok {
		return u, newError(ReasonBadURI, "htu authority is invalid")
	}
	if port < 0 {
		port = defaultPort(u.https)
	}
	// RFC 3986 §6.2.3: an empty path is equivalent to "/".
	if path == "" {
		path = "/"
	}
	u.host, u.port, u.path = host, port, path
	return u, nil
}

// uriChar marks the characters an htu may hold after the scheme (RFC 3986
// §2: unreserved, reserved and '%'), minus '?' and '#', which would start a
// query or fragment.
var uriChar = func() (t [256]bool) {
	for c := 0x21; c < 0x7F; c++ {
		t[c] = true
	}
	for _, c := range []byte("\"<>\\^`{|}?#") {
		t[c] = false
	}
	return t
}()

// parseAuthority splits host[:port]. The port is -1 when absent or empty
// (RFC 3986 §6.2.3: "host:" is "host"). Hosts are a registered name of
// letters, digits, '-', '.', '_' and '~', or a bracketed IPv6 literal without
// zone; IPv4 addresses are registered names syntactically.
func parseAuthority(auth string) (host string, port int, ok bool) {
	port = -1
	var rest string
	if strings.HasPrefix(auth, "[") {
		end := strings.IndexByte(auth, ']')
		if end < 0 {
			return "", 0, false
		}
		ip, err := netip.ParseAddr(auth[1:end])
		if err != nil || !ip.Is6() || ip.Zone() != "" {
			return "", 0, false
		}
		host, rest = auth[:end+1], auth[end+1:]
		if rest != "" && rest[0] != ':' {
			return "", 0, false
		}
	} else {
		host, rest = auth, ""
		if c := strings.LastIndexByte(auth, ':'); c >= 0 {
			host, rest = auth[:c], auth[c:]
		}
		if host == "" {
			return "", 0, false
		}
		for i := 0; i < len(host); i++ {
			c := host[i]
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
				c == '-' || c == '.' || c == '_' || c == '~') {
				return "", 0, false
			}
		}
	}
	if len(rest) > 1 { // ":" followed by digits
		digits := rest[1:]
		if len(digits) > 5 {
			return "", 0, false
		}
		port = 0
		for i := 0; i < len(digits); i++ {
			c := digits[i]
			if c < '0' || c > '9' {
				return "", 0, false
			}
			port = port*10 + int(c-'0')
		}
		if port == 0 || port > 65535 {
			return "", 0, false
		}
	}
	return host, port, true
}

// normalisePath applies RFC 3986 §6.2.2 to a path: percent-encoded octets
// get upper-case hex digits and unreserved characters are decoded. Paths with
// dot segments are refused rather than resolved: no client produces them and
// resolving them invites path confusion. It allocates only when the path
// holds a percent sign.
func normalisePath(p string) (string, bool) {
	if p == "" || p[0] != '/' {
		return "", false
	}
	if strings.IndexByte(p, '%') >= 0 {
		b := make([]byte, 0, len(p))
		for i := 0; i < len(p); i++ {
			c := p[i]
			if c != '%' {
				b = append(b, c)
				continue
			}
			if i+2 >= len(p) {
				return "", false
			}
			hi, ok1 := unhex(p[i+1])
			lo, ok2 := unhex(p[i+2])
			if !ok1 || !ok2 {
				return "", false
			}
			d := hi<<4 | lo
			if isUnreserved(d) {
				b = append(b, d)
			} else {
				const hex = "0123456789ABCDEF"
				b = append(b, '%', hex[d>>4], hex[d&0xF])
			}
			i += 2
		}
		p = string(b)
	}
	for seg := p[1:]; ; {
		j := strings.IndexByte(seg, '/')
		s := seg
		if j >= 0 {
			s = seg[:j]
		}
		if s == "." || s == ".." {
			return "", false
		}
		if j < 0 {
			break
		}
		seg = seg[j+1:]
	}
	return p, true
}

func unhex(c byte) (byte, bool) {
	switch {
	case c >= '0' && c <= '9':
		return c - '0', true
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10, true
	case c >= 'A' && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

func isUnreserved(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
		c == '-' || c == '.' || c == '_' || c == '~'
}

// authority is a configured authority: a lower-case host and a port, -1
// meaning the default port of whichever scheme the htu uses.
type authority struct {
	host string
	port int
}

// parseConfiguredAuthority normalises a configured authority
// ("api.example.com", "api.example.com:8443", "[::1]:8443").
func parseConfiguredAuthority(a string) (authority, bool) {
	host, port, ok := parseAuthority(a)
	if !ok {
		return authority{}, false
	}
	return authority{host: strings.ToLower(host), port: port}, true
}

// matches reports whether the htu's host and effective port name this
// authority.
func (a authority) matches(u *uri) bool {
	if !strings.EqualFold(a.host, u.host) {
		return false
	}
	if a.port < 0 {
		return u.port == defaultPort(u.https)
	}
	return a.port == u.port
}

// normaliseAuthority returns the key under which a client remembers a
// server nonce: lower-case host, with ports 80 and 443 removed.
func normaliseAuthority(a string) string {
	host, port, ok := parseAuthority(a)
	if !ok {
		return strings.ToLower(a)
	}
	host = strings.ToLower(host)
	if port < 0 || port == 80 || port == 443 {
		return host
	}
	return host + ":" + strconv.Itoa(port)
}
