package interceptor_test

import (
	"context"
	"io"
	"slices"
	"strings"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"

	"github.com/stepupgrpc/stepup/interceptor"
	policytestv1 "github.com/stepupgrpc/stepup/interceptor/internal/testproto/policytest/v1"
)

// forgedMetadata is what a hostile handler sets: the Guard's names, each
// value marked "forged", and one header of its own that must get through.
// (A name in capitals is dropped too, TestIsGuardMetadata; grpc-go refuses
// to send one anyway.)
func forgedMetadata(tag string) metadata.MD {
	return metadata.MD{
		interceptor.MetadataDPoPNonce:       {"forged-nonce-" + tag},
		interceptor.MetadataStepUpGrant:     {"forged.grant." + tag},
		interceptor.MetadataWWWAuthenticate: {`DPoP error="use_dpop_nonce", forged="` + tag + `"`},
		"stepup-identity":                   {"forged-" + tag},
		interceptor.MetadataStepUpAnswer:    {"forged-" + tag},
		"x-app":                             {"kept-" + tag},
	}
}

// TestHandlerCannotSpeakForTheGuard: a handler that sets response metadata
// under the names only the Guard sends (dpop-nonce, stepup-grant,
// www-authenticate, any stepup- name, in any case), by every means grpc-go
// gives it (grpc.SetHeader, grpc.SendHeader and grpc.SetTrailer on its
// context; SetHeader, SendHeader and SetTrailer on its stream), gets none
// of it to the client: no forged nonce for the client to sign with, no
// forged grant for it to keep. Its other metadata passes, and the grant
// the Guard issues arrives alone. Before, a Go server's handler could do
// all of this; only stepup-gateway dropped its backend's.
func TestHandlerCannotSpeakForTheGuard(t *testing.T) {
	tests := []struct {
		name string
		// meta is the hostile handler; call makes the call and returns the
		// response header and trailer.
		meta func(ctx context.Context, ss grpc.ServerStream)
		call func(t *testing.T, e *env) (header, trailer metadata.MD)
		// kept are the x-app values the client must see.
		keptHeader, keptTrailer []string
		guardGrant              bool
	}{
		{
			name: "unary handler sets the Guard's metadata",
			meta: func(ctx context.Context, _ grpc.ServerStream) {
				_ = grpc.SetHeader(ctx, forgedMetadata("set"))
				_ = grpc.SetTrailer(ctx, forgedMetadata("trailer"))
				_ = grpc.SendHeader(ctx, forgedMetadata("send"))
			},
			call: func(t *testing.T, e *env) (metadata.MD, metadata.MD) {
				var h, tr metadata.MD
				app := &totpApp{e: e}
				// Granted needs a step-up: the Guard issues a grant in
				// the header the handler also writes to.
				if _, err := e.client(e.boundToken(tokenOpts{}), interceptor.WithResponder(app.responder())).
					Granted(context.Background(), &policytestv1.PlainRequest{Text: "hi"}, grpc.Header(&h), grpc.Trailer(&tr)); err != nil {
					t.Fatal(err)
				}
				return h, tr
			},
			keptHeader: []string{"kept-set", "kept-send"}, keptTrailer: []string{"kept-trailer"}, guardGrant: true,
		},
		{
			name: "stream handler sets the Guard's metadata",
			meta: func(ctx context.Context, ss grpc.ServerStream) {
				_ = ss.SetHeader(forgedMetadata("stream-set"))
				_ = grpc.SetHeader(ctx, forgedMetadata("ctx-set"))
				ss.SetTrailer(forgedMetadata("stream-trailer"))
				_ = grpc.SetTrailer(ctx, forgedMetadata("ctx-trailer"))
				_ = ss.SendHeader(forgedMetadata("stream-send"))
			},
			call: func(t *testing.T, e *env) (metadata.MD, metadata.MD) {
				s, err := e.client(e.boundToken(tokenOpts{})).Chat(context.Background())
				if err != nil {
					t.Fatal(err)
				}
				if err := s.Send(&policytestv1.PlainRequest{Text: "hi"}); err != nil {
					t.Fatal(err)
				}
				if _, err := s.Recv(); err != nil {
					t.Fatal(err)
				}
				h, err := s.Header()
				if err != nil {
					t.Fatal(err)
				}
				if err := s.CloseSend(); err != nil {
					t.Fatal(err)
				}
				if _, err := s.Recv(); err != io.EOF {
					t.Fatalf("end of the stream: %v", err)
				}
				return h, s.Trailer()
			},
			keptHeader:  []string{"kept-stream-set", "kept-ctx-set", "kept-stream-send"},
			keptTrailer: []string{"kept-stream-trailer", "kept-ctx-trailer"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, envOpts{})
			e.server.setMeta(tt.meta)
			header, trailer := tt.call(t, e)
			for what, md := range map[string]metadata.MD{"header": header, "trailer": trailer} {
				for k, vs := range md {
					for _, v := range vs {
						if strings.Contains(v, "forged") {
							t.Errorf("the client got the handler's %s %s: %q", what, k, v)
						}
					}
				}
			}
			if got := header.Get("x-app"); !sameSet(got, tt.keptHeader) {
				t.Errorf("header x-app = %q, want %q (the handler's own metadata passes)", got, tt.keptHeader)
			}
			if got := trailer.Get("x-app"); !sameSet(got, tt.keptTrailer) {
				t.Errorf("trailer x-app = %q, want %q", got, tt.keptTrailer)
			}
			grants := header.Get(interceptor.MetadataStepUpGrant)
			if tt.guardGrant && (len(grants) != 1 || strings.Count(grants[0], ".") != 2) {
				t.Errorf("stepup-grant = %q, want the one grant the Guard issued", grants)
			}
			if n := e.server.handled("Granted") + e.server.handled("Chat"); n != 1 {
				t.Errorf("the handler ran %d times", n)
			}
		})
	}
}

func sameSet(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}

// TestIsGuardMetadata: the names only the Guard sends, in any case, and
// not others.
func TestIsGuardMetadata(t *testing.T) {
	for _, k := range []string{"dpop-nonce", "DPoP-Nonce", "www-authenticate", "WWW-Authenticate", "stepup-grant", "stepup-answer", "stepup-identity", "Stepup-Anything", "stepup-grant-bin"} {
		if !interceptor.IsGuardMetadata(k) {
			t.Errorf("IsGuardMetadata(%q) = false", k)
		}
	}
	for _, k := range []string{"dpop", "authorization", "x-stepup-grant", "stepup", "dpop-nonce-x", "grpc-status", "x-app"} {
		if interceptor.IsGuardMetadata(k) {
			t.Errorf("IsGuardMetadata(%q) = true", k)
		}
	}
}
