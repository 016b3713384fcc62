package testkit

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// H2Answer is how a gRPC server answered RawCall.
type H2Answer struct {
	// Settings is the server's first SETTINGS frame.
	Settings map[http2.SettingID]uint32
	// Outcome is "grpc-status N" (the call reached gRPC and ended with
	// that status), "RST_STREAM <code>" (the transport reset the stream),
	// "GOAWAY <code>" or "closed" (the transport gave up on the
	// connection).
	Outcome string
}

// RawRequest returns the bytes a client sends for one unary gRPC call to
// method (an empty request message) over a new plaintext HTTP/2 connection
// (h2c with prior knowledge, as grpc-go's server takes it), with garbage
// bytes of request metadata in 8 KiB header fields "x-garbage-<i>": the
// preface, SETTINGS, HEADERS and CONTINUATION frames, and the request's
// one DATA frame. RawCall sends them. An encoding error fails t.
func RawRequest(t testing.TB, method string, garbage int) []byte {
	t.Helper()
	req, err := rawRequest(method, garbage)
	if err != nil {
		t.Fatal(err)
	}
	return req
}

func rawRequest(method string, garbage int) ([]byte, error) {
	var out bytes.Buffer
	out.WriteString(http2.ClientPreface)
	fr := http2.NewFramer(&out, nil)
	if err := fr.WriteSettings(); err != nil {
		return nil, err
	}
	var block bytes.Buffer
	enc := hpack.NewEncoder(&block)
	for _, f := range []hpack.HeaderField{
		{Name: ":method", Value: "POST"}, {Name: ":scheme", Value: "http"}, {Name: ":path", Value: method},
		{Name: ":authority", Value: "api.example"}, {Name: "content-type", Value: "application/grpc"}, {Name: "te", Value: "trailers"},
	} {
		if err := enc.WriteField(f); err != nil {
			return nil, err
		}
	}
	value := strings.Repeat("g", 8<<10)
	for i := 0; garbage > 0; i++ {
		v := value[:min(len(value), garbage)]
		garbage -= len(v)
		if err := enc.WriteField(hpack.HeaderField{Name: "x-garbage-" + strconv.Itoa(i), Value: v, Sensitive: true}); err != nil {
			return nil, err
		}
	}
	// HEADERS, then CONTINUATION frames of at most 16 KiB (the smallest
	// SETTINGS_MAX_FRAME_SIZE a peer may have), then an empty request
	// message (no compression, length 0) that ends the request.
	const chunk = 16 << 10
	b := block.Bytes()
	first := b[:min(len(b), chunk)]
	b = b[len(first):]
	if err := fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: first, EndHeaders: len(b) == 0}); err != nil {
		return nil, err
	}
	for len(b) > 0 {
		c := b[:min(len(b), chunk)]
		b = b[len(c):]
		if err := fr.WriteContinuation(1, len(b) == 0, c); err != nil {
			return nil, err
		}
	}
	if err := fr.WriteData(1, true, make([]byte, 5)); err != nil {
		return nil, err
	}
	return out.Bytes(), nil
}

// RawCall sends req (RawRequest) on a new connection to addr, ignoring what
// the server advertises (SETTINGS_MAX_HEADER_LIST_SIZE), as a hostile
// client would (grpc-go's client refuses to send what the server said it
// will not take), and returns how the server answered.
func RawCall(addr string, req []byte) (*H2Answer, error) {
	conn, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(20 * time.Second))
	// A server that gives up on the connection makes the write fail: what
	// it sent before is read below.
	_, _ = conn.Write(req)
	fr := http2.NewFramer(conn, conn)
	fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	fr.MaxHeaderListSize = 1 << 20

	ans := &H2Answer{}
	for {
		f, err := fr.ReadFrame()
		if err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) || errors.Is(err, syscall.ECONNRESET) {
				ans.Outcome = "closed"
				return ans, nil
			}
			return ans, err
		}
		switch f := f.(type) {
		case *http2.SettingsFrame:
			if f.IsAck() {
				continue
			}
			if ans.Settings == nil {
				ans.Settings = map[http2.SettingID]uint32{}
				_ = f.ForeachSetting(func(s http2.Setting) error {
					ans.Settings[s.ID] = s.Val
					return nil
				})
			}
			if err := fr.WriteSettingsAck(); err != nil {
				ans.Outcome = "closed"
				return ans, nil
			}
		case *http2.PingFrame:
			if !f.IsAck() {
				_ = fr.WritePing(true, f.Data)
			}
		case *http2.RSTStreamFrame:
			ans.Outcome = "RST_STREAM " + f.ErrCode.String()
			return ans, nil
		case *http2.GoAwayFrame:
			ans.Outcome = "GOAWAY " + f.ErrCode.String()
			return ans, nil
		case *http2.MetaHeadersFrame:
			if s := f.PseudoValue("status"); s != "" && s != "200" {
				ans.Outcome = "HTTP " + s
				return ans, nil
			}
			for _, h := range f.RegularFields() {
				if h.Name == "grpc-status" {
					ans.Outcome = "grpc-status " + h.Value
					return ans, nil
				}
			}
			if f.StreamEnded() {
				return ans, fmt.Errorf("testkit: the response ended without grpc-status")
			}
		}
	}
}
