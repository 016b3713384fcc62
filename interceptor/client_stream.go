package interceptor

import (
	"context"
	"errors"
	"io"
	"sync"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
)

// StreamClientInterceptor returns the stream client interceptor: the same retries as
// UnaryClientInterceptor. A stream's refusal arrives with its first response; until
// then the messages sent are kept so the stream can be opened again with a
// new nonce or a step-up answer and replayed.
func (c *Client) StreamClientInterceptor() grpc.StreamClientInterceptor {
	return func(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string, streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
		state := &callState{method: method}
		ctx = context.WithValue(ctx, callStateKey{}, state)
		rs := &retryingStream{c: c, ctx: ctx, state: state, desc: desc, cc: cc, method: method, streamer: streamer, opts: opts, budget: fullRetryBudget}
		if err := rs.open(); err != nil {
			return nil, err
		}
		return rs, nil
	}
}

// maxReplayMessages bounds how many messages sent before the first
// response are kept for a replay. A stream that sends more before the
// server answers is not retried (its refusal is returned as it is).
const maxReplayMessages = 64

// retryingStream reopens a stream refused before its first response.
// Its lock guards its fields only: no blocking call is made while holding
// it, so a bidirectional stream can send while another goroutine receives.
type retryingStream struct {
	c        *Client
	ctx      context.Context
	state    *callState
	desc     *grpc.StreamDesc
	cc       *grpc.ClientConn
	method   string
	streamer grpc.Streamer
	opts     []grpc.CallOption

	mu         sync.Mutex
	cur        grpc.ClientStream
	sent       []any // messages sent before the first response
	overflow   bool  // more than maxReplayMessages were sent: no replay
	closedSend bool
	received   bool
	budget     retryBudget // left for this stream
}

func (s *retryingStream) open() error {
	ctx := s.ctx
	if s.state.answer != "" {
		ctx = metadata.AppendToOutgoingContext(ctx, MetadataStepUpAnswer, s.state.answer)
	}
	cs, err := s.streamer(ctx, s.desc, s.cc, s.method, s.opts...)
	if err != nil {
		return err
	}
	s.mu.Lock()
	s.cur = cs
	s.mu.Unlock()
	return nil
}

// reopen opens the stream again and replays what was sent. The lock is
// held across the replay so that a concurrent SendMsg lands after it.
func (s *retryingStream) reopen() error {
	if err := s.open(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, m := range s.sent {
		if err := s.cur.SendMsg(m); err != nil {
			if errors.Is(err, io.EOF) {
				// Refused again: RecvMsg reads why.
				return nil
			}
			return err
		}
	}
	if s.closedSend {
		return s.cur.CloseSend()
	}
	return nil
}

func (s *retryingStream) current() grpc.ClientStream {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cur
}

func (s *retryingStream) Header() (metadata.MD, error) { return s.current().Header() }
func (s *retryingStream) Trailer() metadata.MD         { return s.current().Trailer() }
func (s *retryingStream) Context() context.Context     { return s.current().Context() }

func (s *retryingStream) CloseSend() error {
	s.mu.Lock()
	s.closedSend = true
	cs := s.cur
	s.mu.Unlock()
	return cs.CloseSend()
}

func (s *retryingStream) SendMsg(m any) error {
	s.mu.Lock()
	kept := false
	if !s.received {
		if len(s.sent) < maxReplayMessages {
			s.sent = append(s.sent, m)
			kept = true
		} else {
			s.overflow = true
		}
	}
	cs := s.cur
	s.mu.Unlock()
	err := cs.SendMsg(m)
	if kept && errors.Is(err, io.EOF) {
		// The server ended this attempt (a refusal arrives before the
		// first response): RecvMsg reopens the stream and sends m again,
		// or returns the refusal. m is not lost, so this is no error yet.
		return nil
	}
	return err
}

func (s *retryingStream) RecvMsg(m any) error {
	for {
		s.mu.Lock()
		cs, received := s.cur, s.received
		s.mu.Unlock()
		err := cs.RecvMsg(m)
		if !received {
			h, _ := cs.Header()
			s.c.learn(s.state, h)
		}
		if err == nil {
			s.mu.Lock()
			s.received, s.sent = true, nil
			s.mu.Unlock()
			return nil
		}
		s.c.learn(s.state, cs.Trailer())
		s.mu.Lock()
		replayable := !s.received && !s.overflow
		s.mu.Unlock()
		if errors.Is(err, io.EOF) || !replayable {
			return err
		}
		var retry bool
		var rerr error
		s.budget, retry, rerr = s.c.onRefusal(s.ctx, s.state, err, s.budget)
		if rerr != nil {
			return rerr
		}
		if !retry {
			return err
		}
		if oerr := s.reopen(); oerr != nil {
			return oerr
		}
	}
}
