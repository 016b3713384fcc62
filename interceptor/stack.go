package interceptor

import "runtime"

// growStack makes sure the calling goroutine has the stack a check needs
// before the check starts, by calling a function with an 8 KiB frame.
//
// gRPC runs each call on a fresh goroutine, and a fresh goroutine's stack
// starts small: the runtime sizes it from the stacks it has seen, and in a
// gRPC server that is usually the 2 KiB minimum. A check's deepest point
// is inside the proof's ECDSA verification, dozens of frames down and about
// 14 KiB deep, where the stack would otherwise have to grow. A growth
// copies the stack and walks every frame on it to adjust pointers, so
// growing that deep cost the server more per call than the Guard's own
// checks (profiled: docs/PERFORMANCE.md). Growing here, a few frames below
// gRPC's handler, walks few frames.
//
// While the goroutine has used less than about 7 KiB when the check starts
// (gRPC's frames and a few interceptors), the stack lands in the 16 KiB
// size class, which the runtime caches per processor, and the verification
// then fits without growing it again. With more already in use it goes to
// 32 KiB, a slower allocation path; a 16 KiB frame here would always do
// that, and measured no better than no frame at all. When the stack is
// already large enough (a goroutine reused through grpc.NumStreamWorkers,
// whose stack the garbage collector may also shrink again), the cost is
// zeroing the frame: about 50 ns.
//
//go:noinline
func growStack() {
	var frame [8 << 10]byte
	runtime.KeepAlive(&frame)
}
