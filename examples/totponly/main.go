// Command totponly is the smallest server a user of Stepup writes: the
// example bank behind a Guard whose only step-up factor is TOTP. It exists
// to measure what such a server links (the dependency budget of the core,
// docs/ARCHITECTURE.md):
//
//	go list -deps -f '{{if not .Standard}}{{.ImportPath}}{{end}}' ./examples/totponly | grep -vc '^github.com/stepupgrpc/stepup'
//
// Run it with the issuer's JWK Set and a listen address:
//
//	go run ./examples/totponly -jwks issuer-jwks.json -listen 127.0.0.1:8443
package main

import (
	"context"
	"flag"
	"log"
	"net"
	"os"
	"time"

	"google.golang.org/grpc"

	"github.com/stepupgrpc/stepup/challenge"
	"github.com/stepupgrpc/stepup/challenge/totp"
	"github.com/stepupgrpc/stepup/examples/bank/bankserver"
	"github.com/stepupgrpc/stepup/interceptor"
)

func main() {
	jwks := flag.String("jwks", "", "the issuer's JWK Set file (required)")
	listen := flag.String("listen", "127.0.0.1:0", "the address to listen on")
	secret := flag.String("totp-secret", "", "alice's TOTP secret, base32 (required)")
	flag.Parse()
	if *jwks == "" || *secret == "" {
		flag.Usage()
		os.Exit(2)
	}
	tokens, err := interceptor.NewJWTVerifier(interceptor.JWTConfig{
		Issuer: "https://issuer.example", Audience: "https://bank.example", JWKSFile: *jwks,
	})
	if err != nil {
		log.Fatal(err)
	}
	key, err := challenge.GenerateKey("k1")
	if err != nil {
		log.Fatal(err)
	}
	keys, err := challenge.NewKeySet(key)
	if err != nil {
		log.Fatal(err)
	}
	codes, err := totp.New(totp.SecretsFunc(func(_ context.Context, subject string) (string, error) {
		if subject != "alice" {
			return "", challenge.ErrUnknownSubject
		}
		return *secret, nil
	}), totp.Options{})
	if err != nil {
		log.Fatal(err)
	}
	stepUp, err := challenge.NewService(challenge.WithKeys(keys), challenge.WithFactor(codes))
	if err != nil {
		log.Fatal(err)
	}
	guard, err := interceptor.New(interceptor.WithTokenVerifier(tokens), interceptor.WithStepUp(stepUp), interceptor.WithRequirePolicy())
	if err != nil {
		log.Fatal(err)
	}
	srv := grpc.NewServer(append(interceptor.TransportLimits(),
		grpc.ChainUnaryInterceptor(guard.UnaryServerInterceptor()),
		grpc.ChainStreamInterceptor(guard.StreamServerInterceptor()))...)
	bank := bankserver.New(time.Now)
	bank.Open("alice", "alice-checking", "EUR", 100_000)
	bank.Register(srv)
	lis, err := net.Listen("tcp", *listen)
	if err != nil {
		log.Fatal(err)
	}
	log.Printf("listening on %s", lis.Addr())
	log.Fatal(srv.Serve(lis))
}
