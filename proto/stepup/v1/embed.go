package stepupv1

import "embed"

// Protos holds the .proto sources of this package (options.proto and
// gateway.proto), for tools that vendor them into a user's build:
// `stepup proto export` writes them. Their Go code is this package; a
// user's build must never generate it again (docs/PROTO.md).
//
//go:embed options.proto gateway.proto
var Protos embed.FS
