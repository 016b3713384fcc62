package main

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwt"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/stepupgrpc/stepup/cmd/cli"
	"github.com/stepupgrpc/stepup/dpop"
	bankv1 "github.com/stepupgrpc/stepup/examples/bank/v1"
	"github.com/stepupgrpc/stepup/interceptor"
)

// connFlags are the flags every RPC command shares.
type connFlags struct {
	addr              string
	key               string
	token             string
	ca                string
	serverName        string
	insecurePlaintext bool
	authority         string
	deviceKey         string
	grants            string
	timeout           time.Duration
}

func (c *connFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&c.addr, "addr", "127.0.0.1:8443", "server `host:port`")
	fs.StringVar(&c.key, "key", "", "DPoP private JWK `file` (from \"client keygen\"; required)")
	fs.StringVar(&c.token, "token", "", "`file` holding the access token bound to --key (required)")
	fs.StringVar(&c.ca, "ca", "", "PEM `file` of the CA certificates to trust for TLS (default: the system roots)")
	fs.StringVar(&c.serverName, "server-name", "", "`name` expected in the server certificate (default: the host of --authority, else of --addr)")
	fs.BoolVar(&c.insecurePlaintext, "insecure-plaintext", false,
		"connect without TLS; only to a loopback --addr (the token travels in clear text)")
	fs.StringVar(&c.authority, "authority", "", "override the :authority sent, and signed in DPoP proofs as the htu `host[:port]`")
	fs.StringVar(&c.grants, "grants", "", "`file` (mode 0600) keeping step-up grants between runs, so that a grant earned\n"+
		"by one command is reused by the next within its max_age; default: none kept")
	fs.StringVar(&c.deviceKey, "device-key", "", "answer step-up challenges by signing with this device private JWK `file` instead of a TOTP prompt")
	fs.DurationVar(&c.timeout, "timeout", 2*time.Minute, "give up on the call after this `duration` (prompt included)")
}

// session is a connection with a signing client.
type session struct {
	conn  *grpc.ClientConn
	bank  bankv1.BankServiceClient
	token string
}

func (s *session) Close() error { return s.conn.Close() }

// dial checks the flags, loads the keys and the token and opens a
// connection whose calls are signed by an interceptor.Client.
func (c *connFlags) dial(e *env) (*session, error) {
	var errs []error
	if c.key == "" {
		errs = append(errs, errors.New("--key is required"))
	}
	if c.token == "" {
		errs = append(errs, errors.New("--token is required"))
	}
	if c.insecurePlaintext && (c.ca != "" || c.serverName != "") {
		errs = append(errs, errors.New("--insecure-plaintext cannot be combined with --ca or --server-name"))
	}
	if c.serverName != "" && c.authority != "" && !strings.EqualFold(c.serverName, authorityHost(c.authority)) {
		// gRPC checks the certificate against the :authority's host when one is set.
		errs = append(errs, errors.New("--server-name must be the host of --authority when both are set"))
	}
	if c.insecurePlaintext {
		if err := checkLoopback(c.addr); err != nil {
			errs = append(errs, fmt.Errorf("--insecure-plaintext refused: %w", err))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("%w: %w", cli.ErrUsage, err)
	}

	key, err := loadSigner(c.key)
	if err != nil {
		return nil, fmt.Errorf("--key: %w", err)
	}
	signer, err := dpop.NewSigner(key)
	if err != nil {
		return nil, fmt.Errorf("--key: %w", err)
	}
	token, err := readToken(c.token)
	if err != nil {
		return nil, fmt.Errorf("--token: %w", err)
	}
	responder, err := c.responder(e)
	if err != nil {
		return nil, err
	}
	clientOpts := []interceptor.ClientOption{interceptor.WithResponder(responder)}
	if c.grants != "" {
		clientOpts = append(clientOpts, interceptor.WithGrantStore(&fileGrants{path: c.grants}))
	}
	if c.insecurePlaintext {
		clientOpts = append(clientOpts, interceptor.WithInsecureLocalTransport())
	}
	client, err := interceptor.NewClient(signer, interceptor.StaticToken(token), clientOpts...)
	if err != nil {
		return nil, err
	}

	dialOpts := client.DialOptions()
	if c.insecurePlaintext {
		dialOpts = append(dialOpts, grpc.WithTransportCredentials(insecure.NewCredentials()))
	} else {
		tlsConf := &tls.Config{MinVersion: tls.VersionTLS12}
		if c.authority == "" {
			tlsConf.ServerName = c.serverName
		}
		if c.ca != "" {
			pem, err := cli.ReadFile(c.ca, cli.MaxKeyFile)
			if err != nil {
				return nil, fmt.Errorf("--ca: %w", err)
			}
			tlsConf.RootCAs = x509.NewCertPool()
			if !tlsConf.RootCAs.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("--ca: %s holds no PEM certificate", c.ca)
			}
		}
		dialOpts = append(dialOpts, grpc.WithTransportCredentials(credentials.NewTLS(tlsConf)))
	}
	if c.authority != "" {
		dialOpts = append(dialOpts, grpc.WithAuthority(c.authority))
	}
	conn, err := grpc.NewClient(c.addr, dialOpts...)
	if err != nil {
		return nil, err
	}
	return &session{conn: conn, bank: bankv1.NewBankServiceClient(conn), token: token}, nil
}

// defaultAccount is "<subject>-checking" for the token's subject, read
// without verification (the server verifies the token), or "" when the
// token cannot be read.
func (s *session) defaultAccount() string {
	tok, err := jwt.ParseInsecure([]byte(s.token))
	if err != nil {
		return ""
	}
	sub, ok := tok.Subject()
	if !ok || sub == "" {
		return ""
	}
	return sub + "-checking"
}

// account returns flagValue, or the token subject's account.
func (s *session) account(flagValue string) (string, error) {
	if flagValue != "" {
		return flagValue, nil
	}
	if a := s.defaultAccount(); a != "" {
		return a, nil
	}
	return "", fmt.Errorf("%w: --account is required (the token's subject is unreadable)", cli.ErrUsage)
}

// authorityHost is the host of a host[:port] authority.
func authorityHost(authority string) string {
	if host, _, err := net.SplitHostPort(authority); err == nil {
		return host
	}
	return authority
}

// checkLoopback accepts an address whose host is a loopback IP or
// "localhost": a token sent in clear text must not leave the machine.
func checkLoopback(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("address %q: %w", addr, err)
	}
	if strings.EqualFold(host, "localhost") {
		return nil
	}
	if ip, err := netip.ParseAddr(host); err == nil && ip.IsLoopback() {
		return nil
	}
	return fmt.Errorf("%q is not a loopback address", addr)
}
