package gateway

import (
	"fmt"

	"google.golang.org/grpc/mem"
)

// frame is one message as it crossed the wire: the gateway forwards it
// without decoding or re-encoding it.
type frame struct {
	data mem.BufferSlice
}

// bytes returns a copy of the message's bytes.
func (f *frame) bytes() []byte { return f.data.Materialize() }

// free returns the buffers of a frame that will not be sent.
func (f *frame) free() {
	f.data.Free()
	f.data = nil
}

// rawCodec is the pass-through codec of both sides of the gateway.
type rawCodec struct{}

// Marshal hands the frame's buffers to gRPC, which frees them once sent.
func (rawCodec) Marshal(v any) (mem.BufferSlice, error) {
	f, ok := v.(*frame)
	if !ok {
		return nil, fmt.Errorf("gateway: cannot send a %T", v)
	}
	out := f.data
	f.data = nil
	return out, nil
}

// Unmarshal keeps a reference to the received buffers (gRPC frees its own
// as soon as Unmarshal returns).
func (rawCodec) Unmarshal(data mem.BufferSlice, v any) error {
	f, ok := v.(*frame)
	if !ok {
		return fmt.Errorf("gateway: cannot receive into a %T", v)
	}
	data.Ref()
	f.data = data
	return nil
}

// Name is "proto": clients and backends see the usual content type.
func (rawCodec) Name() string { return "proto" }
