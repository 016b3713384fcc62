package interceptor

import (
	"context"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
)

// IsGuardMetadata reports whether response metadata named key (in any
// case) is one that only the Guard sends: MetadataDPoPNonce,
// MetadataWWWAuthenticate, and every name that starts with "stepup-"
// (MetadataStepUpGrant among them). A handler's would make a client use a
// nonce or keep a grant the Guard never issued, or read a refusal the
// Guard never made, so the Guard drops what a handler sets under these
// names (grpc.SetHeader, grpc.SendHeader, grpc.SetTrailer, and the
// ServerStream's methods of the same names); stepup-gateway drops them
// from its backend's responses too.
func IsGuardMetadata(key string) bool {
	k := strings.ToLower(key)
	return k == MetadataDPoPNonce || k == MetadataWWWAuthenticate || strings.HasPrefix(k, "stepup-")
}

// withoutGuardMetadata returns md less the keys IsGuardMetadata reports: md
// itself when it has none, otherwise a copy (the handler's map is left as
// it is).
func withoutGuardMetadata(md metadata.MD) metadata.MD {
	for k := range md {
		if IsGuardMetadata(k) {
			out := make(metadata.MD, len(md))
			for k, v := range md {
				if !IsGuardMetadata(k) {
					out[k] = v
				}
			}
			return out
		}
	}
	return md
}

// handlerTransportStream is the call's transport stream as the handler
// reaches it through its context (grpc.SetHeader, grpc.SendHeader,
// grpc.SetTrailer): what only the Guard may send is dropped.
type handlerTransportStream struct{ grpc.ServerTransportStream }

func (s *handlerTransportStream) SetHeader(md metadata.MD) error {
	return s.ServerTransportStream.SetHeader(withoutGuardMetadata(md))
}

func (s *handlerTransportStream) SendHeader(md metadata.MD) error {
	return s.ServerTransportStream.SendHeader(withoutGuardMetadata(md))
}

func (s *handlerTransportStream) SetTrailer(md metadata.MD) error {
	return s.ServerTransportStream.SetTrailer(withoutGuardMetadata(md))
}

// handlerContext returns ctx for the handler: its transport stream drops
// the metadata only the Guard may send. (grpc-go's SetSendCompressor and
// ClientSupportedCompressors need the transport's own stream, and fail
// behind any wrapper of it: grpc-go issue 9047.)
func handlerContext(ctx context.Context) context.Context {
	sts := grpc.ServerTransportStreamFromContext(ctx)
	if sts == nil {
		return ctx
	}
	if _, ok := sts.(*handlerTransportStream); ok {
		return ctx
	}
	return grpc.NewContextWithServerTransportStream(ctx, &handlerTransportStream{sts})
}
