package testkit

import (
	"slices"

	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/proto"
)

// Spelling is a gRPC codec that sends Wire whatever request message it is
// given, and decodes responses as protobuf: a client that spells its
// request its own way (another wire type for a field, a field twice, a
// non-minimal varint, an unknown field) while its interceptors see the
// message it claims to send. Use it with grpc.ForceCodecV2.
type Spelling struct{ Wire []byte }

// Marshal returns a copy of Wire.
func (s Spelling) Marshal(any) (mem.BufferSlice, error) {
	return mem.BufferSlice{mem.SliceBuffer(slices.Clone(s.Wire))}, nil
}

// Unmarshal decodes a response.
func (Spelling) Unmarshal(data mem.BufferSlice, v any) error {
	return proto.Unmarshal(data.Materialize(), v.(proto.Message))
}

// Name is "proto".
func (Spelling) Name() string { return "proto" }
