// Package oauth2token takes a Client's access tokens from
// golang.org/x/oauth2 (for example the client_credentials grant), refusing
// any token that is not DPoP-bound. It is a package of its own so that the
// Guard and the Client do not link an OAuth2 client (docs/ARCHITECTURE.md,
// the dependency budget).
package oauth2token

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"golang.org/x/oauth2"

	"github.com/stepupgrpc/stepup/interceptor"
)

// Source returns an interceptor.RefreshableTokenSource over fetch, a token
// request made with golang.org/x/oauth2 — typically a
// clientcredentials.Config's Token method. It keeps each token until a
// minute before its Expiry, or until a quarter of its lifetime is left when
// that is shorter (a 60 s token is reused for 45 s) (Expiry comes from
// expires_in; a token without one is kept until the Guard refuses it), and
// refuses any token whose TokenType is not
// "DPoP" (compared case-insensitively) with an error wrapping
// interceptor.ErrNotDPoPToken.
//
// fetch must request a new token on every call, as
// clientcredentials.Config.Token does: when the Guard refuses a token, the
// Client drops it and calls fetch again. An oauth2.TokenSource from a
// Config's TokenSource method is an oauth2.ReuseTokenSource instead: it
// hands back its cached token until that token's own expiry, so the retry
// would present the refused token again. Pass the Config's Token method,
// not such a source's.
//
// The token request must carry a proof of the Client's key for the token
// to be bound to it (cnf.jkt, RFC 9449 §5): give the oauth2 package an
// http.Client whose Transport is a dpop.Transport with the same Signer. It
// takes the client from the context of the request:
//
//	httpClient := &http.Client{Transport: &dpop.Transport{Signer: signer}}
//	cc := &clientcredentials.Config{ClientID: id, ClientSecret: secret, TokenURL: tokenURL, Scopes: scopes,
//		// the API as audience (RFC 8707; Auth0: "audience"; docs/PROVIDERS.md)
//		EndpointParams: url.Values{"resource": {"https://api.example"}}}
//	ts := oauth2token.Source(func(ctx context.Context) (*oauth2.Token, error) {
//		return cc.Token(context.WithValue(ctx, oauth2.HTTPClient, httpClient))
//	})
//	client, err := interceptor.NewClient(signer, ts)
//
// The dpop.Transport also answers the token endpoint's use_dpop_nonce
// (RFC 9449 §8) by retrying with the nonce it names.
func Source(fetch func(ctx context.Context) (*oauth2.Token, error)) *interceptor.CachingTokenSource {
	return interceptor.NewCachingTokenSource(func(ctx context.Context) (string, time.Time, error) {
		if fetch == nil {
			return "", time.Time{}, errors.New("oauth2token: Source has no fetch function")
		}
		t, err := fetch(ctx)
		if err != nil {
			return "", time.Time{}, err
		}
		if t == nil {
			return "", time.Time{}, errors.New("oauth2token: the oauth2 fetch returned no token")
		}
		// RFC 9449 §5: a DPoP-bound access token is issued with
		// token_type DPoP; the type is case-insensitive (RFC 6749 §5.1).
		if !strings.EqualFold(t.TokenType, "DPoP") {
			typ := t.TokenType
			if len(typ) > 32 {
				typ = typ[:32] + "..." // it comes from the network
			}
			return "", time.Time{}, fmt.Errorf("%w (token_type %q)", interceptor.ErrNotDPoPToken, typ)
		}
		return t.AccessToken, t.Expiry, nil
	})
}
