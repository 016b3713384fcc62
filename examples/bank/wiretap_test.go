package bank_test

import (
	"context"
	"encoding/binary"
	"fmt"
	"net"
	"sync"

	"golang.org/x/net/http2/hpack"
	"google.golang.org/grpc/credentials"
)

// wireRecorder records what crosses the client's connections at the
// HTTP/2 layer, below gRPC and above TLS: the header blocks and the DATA
// of every stream, in the order the streams were opened. It decodes the
// frames as the bytes are written and read, so that a call's record is
// complete when the call returns.
type wireRecorder struct {
	mu      sync.Mutex
	streams []*wireStream
	taken   int   // streams already handed out by take
	err     error // the first frame that could not be decoded
}

// wireStream is one HTTP/2 stream: one attempt of a gRPC call.
type wireStream struct {
	request      []hpack.HeaderField
	requestData  []byte
	response     []headerBlock
	responseData []byte
}

// headerBlock is one HEADERS frame with its CONTINUATIONs, decoded.
type headerBlock struct {
	fields    []hpack.HeaderField
	endStream bool
}

// trailersOnly reports whether the response was a single header block
// that ended the stream (a gRPC trailers-only response).
func (s *wireStream) trailersOnly() bool {
	return len(s.response) == 1 && s.response[0].endStream
}

// headers returns the response headers: the first block of a response
// that is not trailers-only.
func (s *wireStream) headers() []hpack.HeaderField {
	if len(s.response) == 0 || s.trailersOnly() {
		return nil
	}
	return s.response[0].fields
}

// trailers returns the last block that ended the stream.
func (s *wireStream) trailers() []hpack.HeaderField {
	if n := len(s.response); n > 0 && s.response[n-1].endStream {
		return s.response[n-1].fields
	}
	return nil
}

// take returns the streams opened since the previous take, or the error
// of a frame that could not be decoded.
func (r *wireRecorder) take() ([]*wireStream, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := r.streams[r.taken:]
	r.taken = len(r.streams)
	return out, r.err
}

// credentials wraps transport credentials so that every connection they
// make is recorded after its handshake.
func (r *wireRecorder) credentials(c credentials.TransportCredentials) credentials.TransportCredentials {
	return tappedCredentials{TransportCredentials: c, rec: r}
}

type tappedCredentials struct {
	credentials.TransportCredentials
	rec *wireRecorder
}

func (c tappedCredentials) ClientHandshake(ctx context.Context, authority string, raw net.Conn) (net.Conn, credentials.AuthInfo, error) {
	conn, info, err := c.TransportCredentials.ClientHandshake(ctx, authority, raw)
	if err != nil {
		return nil, nil, err
	}
	t := &tappedConn{Conn: conn, rec: c.rec, streams: map[uint32]*wireStream{}}
	t.out = frameReader{preface: len(http2Preface), dec: hpack.NewDecoder(4096, nil), onBlock: t.sentBlock, onData: t.sentData}
	t.in = frameReader{dec: hpack.NewDecoder(4096, nil), onBlock: t.receivedBlock, onData: t.receivedData}
	return t, info, nil
}

func (c tappedCredentials) Clone() credentials.TransportCredentials {
	return tappedCredentials{TransportCredentials: c.TransportCredentials.Clone(), rec: c.rec}
}

// http2Preface is the client connection preface (RFC 9113 §3.4).
const http2Preface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

// tappedConn decodes the frames written and read on one connection. gRPC
// writes from one goroutine and reads from another, so each direction has
// its own decoder; the streams are shared under the recorder's lock.
type tappedConn struct {
	net.Conn
	rec     *wireRecorder
	streams map[uint32]*wireStream // guarded by rec.mu
	outMu   sync.Mutex
	out     frameReader // client to server
	inMu    sync.Mutex
	in      frameReader // server to client
}

// Write records p before it sends it: once the server has it, the
// response may be read and the call may end before Write returns.
func (c *tappedConn) Write(p []byte) (int, error) {
	c.outMu.Lock()
	c.fail(c.out.feed(p))
	c.outMu.Unlock()
	return c.Conn.Write(p)
}

// Read records what it read before gRPC sees it.
func (c *tappedConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.inMu.Lock()
	c.fail(c.in.feed(p[:n]))
	c.inMu.Unlock()
	return n, err
}

func (c *tappedConn) fail(err error) {
	if err == nil {
		return
	}
	c.rec.mu.Lock()
	if c.rec.err == nil {
		c.rec.err = err
	}
	c.rec.mu.Unlock()
}

func (c *tappedConn) stream(id uint32) *wireStream {
	s, ok := c.streams[id]
	if !ok {
		s = &wireStream{}
		c.streams[id] = s
		c.rec.streams = append(c.rec.streams, s)
	}
	return s
}

func (c *tappedConn) sentBlock(id uint32, b headerBlock) {
	c.rec.mu.Lock()
	defer c.rec.mu.Unlock()
	s := c.stream(id)
	if s.request == nil {
		s.request = b.fields
	}
}

func (c *tappedConn) sentData(id uint32, data []byte) {
	c.rec.mu.Lock()
	defer c.rec.mu.Unlock()
	s := c.stream(id)
	s.requestData = append(s.requestData, data...)
}

func (c *tappedConn) receivedBlock(id uint32, b headerBlock) {
	c.rec.mu.Lock()
	defer c.rec.mu.Unlock()
	s := c.stream(id)
	s.response = append(s.response, b)
}

func (c *tappedConn) receivedData(id uint32, data []byte) {
	c.rec.mu.Lock()
	defer c.rec.mu.Unlock()
	s := c.stream(id)
	s.responseData = append(s.responseData, data...)
}

// frameReader decodes one direction of an HTTP/2 connection (RFC 9113 §4)
// from the bytes fed to it, whatever their split: the header blocks of
// HEADERS and CONTINUATION frames through HPACK (RFC 7541), and the
// payload of DATA frames. Other frames are skipped.
type frameReader struct {
	preface int // bytes of the connection preface still to skip
	buf     []byte
	dec     *hpack.Decoder

	// The header block being assembled, when a HEADERS frame came
	// without END_HEADERS.
	blockStream uint32
	blockEnd    bool
	block       []byte

	onBlock func(stream uint32, b headerBlock)
	onData  func(stream uint32, data []byte)
}

// HTTP/2 frame types and flags (RFC 9113 §6).
const (
	frameData         = 0x0
	frameHeaders      = 0x1
	frameContinuation = 0x9
	flagEndStream     = 0x1
	flagEndHeaders    = 0x4
	flagPadded        = 0x8
	flagPriority      = 0x20
)

func (f *frameReader) feed(p []byte) error {
	if f.preface > 0 {
		n := min(f.preface, len(p))
		f.preface -= n
		p = p[n:]
	}
	f.buf = append(f.buf, p...)
	for len(f.buf) >= 9 {
		length := int(f.buf[0])<<16 | int(f.buf[1])<<8 | int(f.buf[2])
		if len(f.buf) < 9+length {
			return nil
		}
		typ, flags := f.buf[3], f.buf[4]
		stream := binary.BigEndian.Uint32(f.buf[5:9]) & 0x7fffffff
		payload := f.buf[9 : 9+length]
		if err := f.frame(typ, flags, stream, payload); err != nil {
			return err
		}
		f.buf = f.buf[9+length:]
	}
	return nil
}

func (f *frameReader) frame(typ, flags byte, stream uint32, payload []byte) error {
	switch typ {
	case frameData:
		data, err := unpad(flags, payload)
		if err != nil {
			return err
		}
		f.onData(stream, append([]byte(nil), data...))
	case frameHeaders:
		frag, err := unpad(flags, payload)
		if err != nil {
			return err
		}
		if flags&flagPriority != 0 {
			if len(frag) < 5 {
				return fmt.Errorf("HEADERS frame of stream %d: short priority", stream)
			}
			frag = frag[5:]
		}
		f.blockStream, f.blockEnd = stream, flags&flagEndStream != 0
		f.block = append(f.block[:0], frag...)
		if flags&flagEndHeaders != 0 {
			return f.endBlock()
		}
	case frameContinuation:
		if stream != f.blockStream {
			return fmt.Errorf("CONTINUATION of stream %d inside a header block of stream %d", stream, f.blockStream)
		}
		f.block = append(f.block, payload...)
		if flags&flagEndHeaders != 0 {
			return f.endBlock()
		}
	}
	return nil
}

func (f *frameReader) endBlock() error {
	fields, err := f.dec.DecodeFull(f.block)
	if err != nil {
		return fmt.Errorf("header block of stream %d: %w", f.blockStream, err)
	}
	f.onBlock(f.blockStream, headerBlock{fields: fields, endStream: f.blockEnd})
	return nil
}

// unpad removes the padding of a PADDED frame.
func unpad(flags byte, payload []byte) ([]byte, error) {
	if flags&flagPadded == 0 {
		return payload, nil
	}
	if len(payload) < 1 || int(payload[0]) > len(payload)-1 {
		return nil, fmt.Errorf("bad padding")
	}
	return payload[1 : len(payload)-int(payload[0])], nil
}
