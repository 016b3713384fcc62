package interceptor

import (
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/keepalive"
)

// The limits TransportLimits sets, each against what one client could
// otherwise make a server hold (docs/INTEGRATION.md, "Transport limits").
const (
	// DefaultMaxConcurrentStreams bounds the calls and streams one
	// connection may have open at once (grpc-go: no bound). A client
	// that opens streams and stops reading holds one each.
	DefaultMaxConcurrentStreams = 100
	// DefaultMaxHeaderListSize bounds a call's request metadata, as HTTP/2
	// counts it (each name and value plus 32 bytes). grpc-go's default is
	// 16 MiB, which a client fills with garbage that the server decodes
	// before the Guard can refuse the call; grpc-go means to lower it to
	// 8 KiB, less than the credentials a step-up call may carry. 64 KiB
	// holds the largest credentials the Guard accepts (MaxAuthorizationSize
	// + MaxProofSize + MaxAnswerSize + MaxGrantSize, 34 KiB) and 30 KiB of
	// the application's own.
	DefaultMaxHeaderListSize = 64 << 10
	// DefaultMaxConnectionAge is how long a connection lives before the
	// server asks the client to go elsewhere (GOAWAY; grpc-go adds ±10 %),
	// and DefaultMaxConnectionAgeGrace how long its calls then have before
	// it is closed. Together they bound how long anything a client left
	// behind (a stream it stopped reading, buffered data) lives.
	DefaultMaxConnectionAge      = time.Hour
	DefaultMaxConnectionAgeGrace = 5 * time.Minute
	// DefaultMaxConnectionIdle closes a connection without calls for that
	// long.
	DefaultMaxConnectionIdle = 15 * time.Minute
	// DefaultKeepaliveTime is how long a connection may be silent before
	// the server pings the client, and DefaultKeepaliveTimeout how long it
	// waits for the answer before closing the connection (a client that
	// stopped reading altogether never answers).
	DefaultKeepaliveTime    = time.Minute
	DefaultKeepaliveTimeout = 20 * time.Second
	// DefaultKeepaliveMinTime is the shortest interval between a client's
	// pings that the server tolerates, and only while calls are open; a
	// client that pings more often is sent GOAWAY ("too_many_pings").
	DefaultKeepaliveMinTime = time.Minute
	// DefaultConnectionTimeout bounds a new connection's handshake (TLS
	// and the HTTP/2 preface; grpc-go: 120 s).
	DefaultConnectionTimeout = 20 * time.Second
)

// TransportLimits returns the grpc.ServerOptions that bound what one client
// can make a server hold, with the values above: how many streams a
// connection may open, how much request metadata a call may carry, how
// long a connection may live, stay idle or stay silent, how often a client
// may ping, and how long a handshake may take. The Guard checks calls;
// these limits are the transport's, and only the server's options can set
// them. stepup-gateway and the example bank server use them; pass them to
// grpc.NewServer next to the Guard's interceptors, before your own options
// (a later option of the same kind replaces an earlier one):
//
//	grpc.NewServer(append(interceptor.TransportLimits(),
//		grpc.ChainUnaryInterceptor(guard.UnaryServerInterceptor()),
//		grpc.ChainStreamInterceptor(guard.StreamServerInterceptor()),
//	)...)
func TransportLimits() []grpc.ServerOption {
	return []grpc.ServerOption{
		grpc.MaxConcurrentStreams(DefaultMaxConcurrentStreams),
		grpc.MaxHeaderListSize(DefaultMaxHeaderListSize),
		grpc.KeepaliveParams(keepalive.ServerParameters{
			MaxConnectionIdle:     DefaultMaxConnectionIdle,
			MaxConnectionAge:      DefaultMaxConnectionAge,
			MaxConnectionAgeGrace: DefaultMaxConnectionAgeGrace,
			Time:                  DefaultKeepaliveTime,
			Timeout:               DefaultKeepaliveTimeout,
		}),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: DefaultKeepaliveMinTime}),
		grpc.ConnectionTimeout(DefaultConnectionTimeout),
	}
}
