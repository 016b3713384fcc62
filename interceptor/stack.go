package interceptor

import "runtime"

// growStack makes sure the calling goroutine has the stack a check needs
// before the check starts, by calling a function with an 8 KiB frame.
//
// gRPC runs each call on a fresh goroutine, and a fresh goroutine's stack
// is small (2 KiB, the runtime's starting size here). A check's deepest
// point is inside the proof's ECDSA verification, dozens of frames down,
// where the stack would otherwise have to grow. A growth copies the stack
// and walks every frame on it to adjust pointers, so growing that deep
// cost the server more per call than the Guard's own checks (profiled:
// docs/PERFORMANCE.md). Growing here, a few frames below gRPC's handler,
// walks few frames, and the verification then runs without growing the
// stack again. The frame is sized to land in the 16 KiB stack size class:
// a 16 KiB frame takes the goroutine to 32 KiB, which the runtime
// allocates and frees on a slower path, and measured no better. When the
// stack is already large enough (a goroutine reused through
// grpc.NumStreamWorkers), the cost is zeroing the frame.
//
//go:noinline
func growStack() {
	var frame [8 << 10]byte
	runtime.KeepAlive(&frame)
}
