package interceptor

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"

	"github.com/stepupgrpc/stepup/challenge"
)

// DefaultStreamRecheck is how often a long-lived stream's credentials are
// checked again (WithStreamRecheck).
const DefaultStreamRecheck = 30 * time.Second

// streamLife bounds a stream by the credentials it was opened with: it ends
// the stream when the access token expires (or outlives the method's
// max_token_age), when the step-up's max_age passes, or when a re-check
// finds the token or the step-up revoked. One timer per stream; the
// messages pay one atomic load each.
type streamLife struct {
	g      *Guard
	ctx    context.Context // the stream's, for the re-checks
	cancel context.CancelCauseFunc
	ev     Event // the stream's identity, for the audit event at its end
	raw    string
	id     *Identity
	stepUp bool // a step-up to re-check for revocation (grant or answer)

	deadline time.Time // zero: none
	expiry   Reason    // why the deadline ends the stream

	// ending is set once the stream is refused; endMu is held from then
	// until the refusal is audited and stored in ended, so that no message
	// fails, and no status reaches the client, before its audit event.
	ending atomic.Bool
	endMu  sync.Mutex
	ended  *denial
	mu     sync.Mutex
	timer  *time.Timer
	done   bool
}

// newStreamLife returns the life of a stream opened by id on p, or nil when
// nothing bounds it (a method without authentication).
func (g *Guard) newStreamLife(ctx context.Context, p *EffectivePolicy, id *Identity) *streamLife {
	if id == nil || id.Token == nil {
		return nil
	}
	l := &streamLife{g: g, id: id, ev: Event{Method: p.FullMethod, Stream: true,
		Subject: id.Subject, TokenID: id.Token.ID, ClientID: id.Token.ClientID, Thumbprint: id.Thumbprint}}
	l.ev.SetOrigin(ctx)
	l.ev.StepUpRequired = p.StepUp != nil
	md, _ := metadata.FromIncomingContext(ctx)
	if v := md[MetadataAuthorization]; len(v) == 1 {
		_, l.raw, _ = parseAuthorization(v[0])
	}
	bound := func(t time.Time, r Reason) {
		if !t.IsZero() && (l.deadline.IsZero() || t.Before(l.deadline)) {
			l.deadline, l.expiry = t, r
		}
	}
	tok := id.Token
	if !tok.Expiry.IsZero() {
		bound(tok.Expiry.Add(g.cfg.leeway), ReasonStreamTokenExpired)
	}
	if p.MaxTokenAge > 0 && !tok.IssuedAt.IsZero() {
		bound(tok.IssuedAt.Add(p.MaxTokenAge+g.cfg.leeway), ReasonStreamTokenExpired)
	}
	if s := id.StepUp; s != nil && p.StepUp != nil {
		if p.StepUp.MaxAge > 0 {
			bound(s.AuthTime.Add(p.StepUp.MaxAge), ReasonStreamStepUpExpired)
		}
		l.stepUp = s.Via != string(challenge.ViaToken) && g.cfg.stepUp != nil
	}
	return l
}

// start arms the timer and returns the context for the handler, cancelled
// (with the refusal as its cause) when the stream's credentials end.
func (l *streamLife) start(ctx context.Context) context.Context {
	l.ctx, l.cancel = context.WithCancelCause(ctx)
	l.mu.Lock()
	l.timer = time.AfterFunc(l.next(), l.tick)
	l.mu.Unlock()
	return l.ctx
}

// next is the real time until the next look: the re-check interval, or
// sooner when the deadline comes first by the Guard's clock.
func (l *streamLife) next() time.Duration {
	d := l.g.cfg.streamRecheck
	if !l.deadline.IsZero() {
		d = max(min(d, l.deadline.Sub(l.g.cfg.now())), 0)
	}
	return d
}

// tick judges the stream's credentials once, then re-arms the timer.
func (l *streamLife) tick() {
	if !l.deadline.IsZero() && !l.g.cfg.now().Before(l.deadline) {
		what := "the access token expired"
		if l.expiry == ReasonStreamStepUpExpired {
			what = "the step-up's max_age passed"
		}
		l.end(newDenial(l.expiry, errors.New(what)))
		return
	}
	if d := l.recheck(); d != nil {
		l.end(d)
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.done {
		l.timer.Reset(l.next())
	}
}

// recheck asks the token verifier again (past its cache, so that a
// revocation it knows of applies) and the step-up service whether the
// subject's step-ups were revoked since this one.
func (l *streamLife) recheck() *denial {
	if l.raw == "" {
		return newDenial(ReasonStreamRevoked, errors.New("the stream's access token is unknown"))
	}
	tok, err := l.g.cfg.verifier.VerifyToken(l.ctx, l.raw)
	if err != nil && reasonOf(err, ReasonTokenVerifierFailed) == ReasonTokenExpired {
		// The verifier's clock saw the expiry before the stream's deadline
		// did: the same cause, not a revocation.
		return newDenial(ReasonStreamTokenExpired, fmt.Errorf("the access token expired (the token verifier says so): %w", err))
	}
	if err != nil {
		return newDenial(ReasonStreamRevoked, fmt.Errorf("the access token no longer verifies (%s): %w", reasonOf(err, ReasonTokenVerifierFailed), err))
	}
	if tok.Subject != l.id.Subject || tok.JKT != l.id.Token.JKT {
		return newDenial(ReasonStreamRevoked, errors.New("the access token verifies to another subject or key"))
	}
	if d := l.g.checkTokenRevoked(l.ctx, tok); d != nil {
		return newDenial(ReasonStreamRevoked, d.err)
	}
	if l.stepUp {
		revoked, err := l.g.cfg.stepUp.Revocations().GrantsRevoked(l.ctx, l.id.Subject, l.id.StepUp.AuthTime)
		switch {
		case err != nil:
			// Fail closed: a stream whose revocation cannot be checked ends.
			return newDenial(ReasonStreamRevoked, fmt.Errorf("the revocation check failed: %w", err))
		case revoked:
			return newDenial(ReasonStreamRevoked, errors.New("the subject's step-ups were revoked (RevokeGrants)"))
		}
	}
	return nil
}

// end records the refusal once, audits it, and cancels the handler's
// context.
func (l *streamLife) end(d *denial) {
	l.endMu.Lock()
	if l.ending.Load() {
		l.endMu.Unlock()
		return
	}
	l.ending.Store(true)
	l.stop()
	ev := l.ev
	ev.Time, ev.Decision, ev.Reason, ev.Code = l.g.cfg.now(), DecisionDeny, d.reason, d.code
	if d.err != nil {
		ev.Detail = d.err.Error()
	}
	l.g.cfg.sink.Audit(l.ctx, &ev)
	l.ended = d
	l.endMu.Unlock()
	l.cancel(d.status())
}

// sender sends a bounded stream's messages from a goroutine of its own,
// so that the handler can stop waiting when the stream's credentials end.
// The goroutine starts with the first message and ends with the stream
// (close); pm is reused from one message to the next (a stream's SendMsg
// is never called concurrently), except after a send was abandoned.
type sender struct {
	pm   grpc.PreparedMsg
	next chan struct{} // pm holds a message to send
	done chan error
}

// send sends m on ss and returns when it is sent or when the stream's
// credentials end, whichever comes first: a client that stops reading
// holds a send on HTTP/2 flow control for as long as it likes, and the
// handler must not wait past the credentials. m is encoded here
// (grpc.PreparedMsg, with the stream's codec and compressor), so that it
// is the handler's again when send returns; the sender's goroutine writes
// it, and the end of the stream releases a write still waiting: once the
// handler returns the refusal, grpc-go closes the stream and the write
// fails.
func (l *streamLife) send(snd *sender, ss grpc.ServerStream, m any) error {
	if err := snd.pm.Encode(ss, m); err != nil {
		// Not a stream of grpc-go's server (one made in a test), or a
		// message its codec refuses: SendMsg says so.
		return ss.SendMsg(m)
	}
	if snd.next == nil {
		snd.next, snd.done = make(chan struct{}), make(chan error, 1)
		go snd.run(ss)
	}
	snd.next <- struct{}{}
	select {
	case err := <-snd.done:
		return err
	case <-l.ctx.Done():
	}
	if err := l.err(); err != nil {
		return err
	}
	// The call itself ended (the client cancelled it, its deadline
	// passed): the transport fails the write at once.
	return <-snd.done
}

func (snd *sender) run(ss grpc.ServerStream) {
	for range snd.next {
		snd.done <- ss.SendMsg(&snd.pm)
	}
}

// close ends the sender's goroutine once its last send returns.
func (snd *sender) close() {
	if snd.next != nil {
		close(snd.next)
	}
}

// stop disarms the timer (the stream is over).
func (l *streamLife) stop() {
	l.mu.Lock()
	l.done = true
	if l.timer != nil {
		l.timer.Stop()
	}
	l.mu.Unlock()
}

// err is the refusal that ended the stream, nil while it lives.
func (l *streamLife) err() error {
	if l == nil {
		return nil
	}
	if !l.ending.Load() {
		return nil
	}
	l.endMu.Lock() // until end has audited the refusal
	d := l.ended
	l.endMu.Unlock()
	return d.status()
}

// guardedStream carries the verified identity in the stream's context and
// refuses every message once the stream's credentials have ended.
type guardedStream struct {
	grpc.ServerStream
	ctx    context.Context
	life   *streamLife // nil: nothing bounds the stream
	sender sender      // when life is set
}

func (s *guardedStream) Context() context.Context { return s.ctx }

// SetHeader sets the handler's header metadata, less what only the Guard
// sends (IsGuardMetadata).
func (s *guardedStream) SetHeader(md metadata.MD) error {
	return s.ServerStream.SetHeader(withoutGuardMetadata(md))
}

// SendHeader sends the header metadata, less what only the Guard sends.
func (s *guardedStream) SendHeader(md metadata.MD) error {
	return s.ServerStream.SendHeader(withoutGuardMetadata(md))
}

// SetTrailer sets the handler's trailer metadata, less what only the Guard
// sends.
func (s *guardedStream) SetTrailer(md metadata.MD) {
	s.ServerStream.SetTrailer(withoutGuardMetadata(md))
}

// SendMsg sends m unless the stream's credentials have ended. A send
// still waiting when they end (a client that stopped reading holds it on
// flow control) returns the Guard's refusal then.
func (s *guardedStream) SendMsg(m any) error {
	if err := s.life.err(); err != nil {
		return err
	}
	if s.life == nil {
		return s.ServerStream.SendMsg(m)
	}
	return s.life.send(&s.sender, s.ServerStream, m)
}

// RecvMsg receives m; a message that arrives after the stream's
// credentials ended is not handed to the handler.
func (s *guardedStream) RecvMsg(m any) error {
	if err := s.life.err(); err != nil {
		return err
	}
	err := s.ServerStream.RecvMsg(m)
	if lerr := s.life.err(); lerr != nil {
		return lerr
	}
	return err
}
