// Package quickstart is the README's Quick start as code that compiles and
// runs: the README shows the regions between the "README:" markers of this
// package, and TestREADMEShowsThisCode fails when the two differ by a byte
// (after the regions' one tab of indentation). TestQuickStartOverTLS serves
// Server on loopback TLS and makes a DPoP call and a TOTP step-up call
// through Dial, as the README says a user would.
package quickstart

import (
	"context"
	"crypto"
	"net"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/stepupgrpc/stepup/challenge"
	"github.com/stepupgrpc/stepup/challenge/totp"
	"github.com/stepupgrpc/stepup/dpop"
	bankv1 "github.com/stepupgrpc/stepup/examples/bank/v1"
	"github.com/stepupgrpc/stepup/interceptor"
	stepupv1 "github.com/stepupgrpc/stepup/proto/stepup/v1"
)

// Serve is step 2 of the Quick start: the Guard in front of bank, served
// on lis with tlsCreds until ctx ends. iss, aud and jwksURL name the token
// issuer, keys sign step-up challenges, secrets hold each subject's TOTP
// secret. A wiring mistake that CheckCoverage can see (a method without a
// policy, step-up nobody can verify, no DPoP authorities) is returned
// before anything is served.
func Serve(ctx context.Context, lis net.Listener, iss, aud, jwksURL string, keys *challenge.KeySet,
	secrets totp.Secrets, tlsCreds credentials.TransportCredentials, bank bankv1.BankServiceServer) error {
	// README: server
	tokens, err := interceptor.NewJWTVerifier(interceptor.JWTConfig{Issuer: iss, Audience: aud, JWKSURL: jwksURL})
	if err != nil {
		return err
	}
	defer tokens.Close()
	codes, err := totp.New(secrets, totp.Options{}) // the TOTP factor; challenge/devicekey, challenge/webauthn: the others
	if err != nil {
		return err
	}
	stepUp, err := challenge.NewService(challenge.WithKeys(keys), challenge.WithFactor(codes))
	if err != nil {
		return err
	}
	// The name clients reach this server by, as their calls' :authority
	// carries it: grpc-go sends the ServerName of its TLS config, without
	// a port (docs/DPOP.md, "Which authority").
	proofs, err := dpop.NewVerifier(dpop.WithAuthorities("bank.example.com"))
	if err != nil {
		return err
	}
	guard, err := interceptor.New(interceptor.WithTokenVerifier(tokens), interceptor.WithDPoP(proofs),
		interceptor.WithStepUp(stepUp), interceptor.WithRequirePolicy())
	if err != nil {
		return err
	}
	srv := grpc.NewServer(grpc.Creds(tlsCreds),
		grpc.UnaryInterceptor(guard.UnaryServerInterceptor()), grpc.StreamInterceptor(guard.StreamServerInterceptor()))
	bankv1.RegisterBankServiceServer(srv, bank) // handlers read the caller with interceptor.IdentityFromContext(ctx)
	// Before serving: fails on a method without a policy, step-up nobody can
	// verify, or no DPoP authorities, naming what to set.
	if err := guard.CheckCoverage(srv); err != nil {
		return err
	}
	// README: end
	go func() {
		<-ctx.Done()
		srv.Stop()
	}()
	return srv.Serve(lis)
}

// Dial is step 3 of the Quick start: a connection to target whose calls
// carry accessToken, bound to privateKey, and whose step-up challenges
// promptForCode answers with a TOTP code. tlsCreds name the server as
// Serve's authorities do.
func Dial(target string, privateKey crypto.Signer, accessToken string, tlsCreds credentials.TransportCredentials,
	promptForCode func(context.Context, *stepupv1.StepUpChallenge) (string, error)) (*grpc.ClientConn, error) {
	// README: client
	signer, err := dpop.NewSigner(privateKey) // any crypto.Signer: ES256, ES384, Ed25519, PS256, RS256
	if err != nil {
		return nil, err
	}
	client, err := interceptor.NewClient(signer, interceptor.StaticToken(accessToken),
		interceptor.WithResponder(challenge.TOTPResponder(promptForCode)))
	if err != nil {
		return nil, err
	}
	// tlsCreds: credentials.NewTLS(&tls.Config{ServerName: "bank.example.com"}), whatever address target is
	conn, err := grpc.NewClient(target, append(client.DialOptions(), grpc.WithTransportCredentials(tlsCreds))...)
	// README: end
	return conn, err
}
