// Command old_tunneld plays a tunneld that predates control messages (docs/PROTOCOL.md section 8a), built from
// independent parts: Go's crypto/tls for the mTLS control link and Debian's hashicorp/yamux for the session. It
// carries one port tunnel: every connection accepted on --public becomes a server-opened stream that starts with
// a version 1 stream-open header (section 8.1, encoded here from the document) naming --backend-port, then splices.
//
// Like the old tunneld, it refuses every client-opened stream with WindowUpdate+RST and drops that stream's
// frames; hashicorp/yamux has no way to reset a stream, so a frame filter between TLS and yamux does it. The filter
// also reports what the real tunnelc put on the wire: the largest Data payload it sent, and the largest send
// window it granted on any stream (the sender's view: 256 KiB plus every WindowUpdate delta minus what was
// sent). With --pong-delay-ms it holds each Ping from tunnelc that long before yamux answers it, so tunnelc
// measures a round trip of at least that much whatever the machine's speed.
//
// Lines on stdout (the test greps them):
//
//	listening: control 127.0.0.1:P public 127.0.0.1:Q
//	link N from ADDR: TLS VERSION, client CN NAME
//	refused client stream ID with RST
//	public ADDR -> stream ID
//	stream ID ended: sent X to tunnelc, received Y from tunnelc
//	max client data payload N       (printed when it grows)
//	peak granted window N           (printed when it grows)
//	ping from tunnelc, answered after N ms
//	link N ended
package main

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"time"

	"github.com/hashicorp/yamux"
)

const (
	hdrLen        = 12
	typeData      = 0
	typeWindow    = 1
	typePing      = 2
	flagSYN       = 1
	flagFIN       = 4
	flagRST       = 8
	initialWindow = 256 * 1024
)

var (
	outMu sync.Mutex

	statsMu    sync.Mutex
	maxPayload uint32
	peakWindow int64
)

func say(format string, a ...interface{}) {
	outMu.Lock()
	defer outMu.Unlock()
	fmt.Printf(format+"\n", a...)
}

func die(format string, a ...interface{}) {
	say("FAIL: "+format, a...)
	os.Exit(1)
}

// filterConn sits between the TLS connection and yamux.
type filterConn struct {
	net.Conn
	pongDelay time.Duration

	// read side (yamux's receive goroutine only)
	in      []byte
	out     []byte
	refused map[uint32]bool

	// write side
	wmu       sync.Mutex
	whdr      []byte // header bytes of the outgoing frame being written
	wleft     uint32 // payload bytes of that frame still to come
	pending   [][]byte
	granted   map[uint32]int64
	sent      map[uint32]int64
	writeFail error
}

func newFilter(c net.Conn, pongDelay time.Duration) *filterConn {
	return &filterConn{Conn: c, pongDelay: pongDelay, refused: map[uint32]bool{},
		granted: map[uint32]int64{}, sent: map[uint32]int64{}}
}

func windowFrame(flags uint16, id uint32) []byte {
	f := make([]byte, hdrLen)
	f[1] = typeWindow
	binary.BigEndian.PutUint16(f[2:], flags)
	binary.BigEndian.PutUint32(f[4:], id)
	return f
}

// inject writes a frame of our own between yamux's frames, never inside one.
func (f *filterConn) inject(frame []byte) {
	f.wmu.Lock()
	defer f.wmu.Unlock()
	if len(f.whdr) == 0 && f.wleft == 0 {
		if _, err := f.Conn.Write(frame); err != nil && f.writeFail == nil {
			f.writeFail = err
		}
		return
	}
	f.pending = append(f.pending, frame)
}

func (f *filterConn) Write(p []byte) (int, error) {
	f.wmu.Lock()
	defer f.wmu.Unlock()
	if f.writeFail != nil {
		return 0, f.writeFail
	}
	n, err := f.Conn.Write(p)
	if err != nil {
		f.writeFail = err
		return n, err
	}
	// Track frame boundaries of what yamux wrote (it writes a header and its payload in separate calls).
	for rest := p; len(rest) > 0; {
		if f.wleft > 0 {
			k := uint32(len(rest))
			if k > f.wleft {
				k = f.wleft
			}
			f.wleft -= k
			rest = rest[k:]
			continue
		}
		k := hdrLen - len(f.whdr)
		if k > len(rest) {
			k = len(rest)
		}
		f.whdr = append(f.whdr, rest[:k]...)
		rest = rest[k:]
		if len(f.whdr) == hdrLen {
			id := binary.BigEndian.Uint32(f.whdr[4:])
			length := binary.BigEndian.Uint32(f.whdr[8:])
			if f.whdr[1] == typeData {
				f.wleft = length
				statsMu.Lock()
				f.sent[id] += int64(length)
				statsMu.Unlock()
			}
			f.whdr = f.whdr[:0]
		}
	}
	if len(f.whdr) == 0 && f.wleft == 0 {
		for _, frame := range f.pending {
			if _, err := f.Conn.Write(frame); err != nil {
				f.writeFail = err
				return n, err
			}
		}
		f.pending = nil
	}
	return n, nil
}

func (f *filterConn) Read(p []byte) (int, error) {
	for len(f.out) == 0 {
		buf := make([]byte, 65536)
		n, err := f.Conn.Read(buf)
		f.in = append(f.in, buf[:n]...)
		f.parse()
		if err != nil && len(f.out) == 0 {
			return 0, err
		}
	}
	n := copy(p, f.out)
	f.out = f.out[n:]
	return n, nil
}

// parse moves every whole frame from in to out, except those of refused client streams.
func (f *filterConn) parse() {
	for len(f.in) >= hdrLen {
		typ := f.in[1]
		flags := binary.BigEndian.Uint16(f.in[2:])
		id := binary.BigEndian.Uint32(f.in[4:])
		length := binary.BigEndian.Uint32(f.in[8:])
		size := hdrLen
		if typ == typeData {
			size += int(length)
		}
		if len(f.in) < size {
			return
		}
		frame := f.in[:size]
		f.in = f.in[size:]
		if id%2 == 1 && (flags&flagSYN != 0 || f.refused[id]) {
			if !f.refused[id] {
				f.refused[id] = true
				say("refused client stream %d with RST", id)
				f.inject(windowFrame(flagRST, id))
			}
			continue
		}
		switch {
		case typ == typeData && id%2 == 0:
			statsMu.Lock()
			if length > maxPayload {
				maxPayload = length
				say("max client data payload %d", length)
			}
			statsMu.Unlock()
		case typ == typeWindow && id%2 == 0:
			statsMu.Lock()
			if _, ok := f.granted[id]; !ok {
				f.granted[id] = initialWindow
			}
			f.granted[id] += int64(length)
			if w := f.granted[id] - f.sent[id]; w > peakWindow {
				peakWindow = w
				say("peak granted window %d", w)
			}
			statsMu.Unlock()
		case typ == typePing && flags&flagSYN != 0:
			say("ping from tunnelc, answered after %d ms", f.pongDelay.Milliseconds())
			time.Sleep(f.pongDelay)
		}
		f.out = append(f.out, frame...)
	}
}

// openHeader encodes a version 1 stream-open header for a port backend without PROXY (PROTOCOL.md 8.1).
func openHeader(backendPort uint16, peer, listener *net.TCPAddr) []byte {
	addr := func(a *net.TCPAddr) []byte {
		if v4 := a.IP.To4(); v4 != nil {
			return append([]byte{4, byte(a.Port >> 8), byte(a.Port)}, v4...)
		}
		return append([]byte{6, byte(a.Port >> 8), byte(a.Port)}, a.IP.To16()...)
	}
	h := []byte{1, 0, 0, 0, 1, 0, byte(backendPort >> 8), byte(backendPort)}
	h = append(h, addr(peer)...)
	h = append(h, addr(listener)...)
	binary.BigEndian.PutUint16(h[2:], uint16(len(h)))
	return h
}

type counter struct {
	mu sync.Mutex
	n  int64
}

func (c *counter) Write(p []byte) (int, error) {
	c.mu.Lock()
	c.n += int64(len(p))
	c.mu.Unlock()
	return len(p), nil
}

type link struct {
	sess   *yamux.Session
	filter *filterConn
}

// This yamux's Stream.Close ends reading too (Read returns EOF once the local side closed), so a visitor's
// half-close is sent as a FIN frame of our own after yamux has written the stream's last data; the stream is
// left to yamux's session teardown.
func serveVisitor(l link, pub *net.TCPConn, backendPort uint16) {
	sess := l.sess
	defer pub.Close()
	st, err := sess.OpenStream()
	if err != nil {
		say("public %s: no stream: %v", pub.RemoteAddr(), err)
		return
	}
	say("public %s -> stream %d", pub.RemoteAddr(), st.StreamID())
	if _, err := st.Write(openHeader(backendPort, pub.RemoteAddr().(*net.TCPAddr), pub.LocalAddr().(*net.TCPAddr))); err != nil {
		say("stream %d: header not sent: %v", st.StreamID(), err)
		return
	}
	var up, down counter
	done := make(chan struct{})
	go func() {
		io.Copy(io.MultiWriter(st, &up), pub)
		l.filter.inject(windowFrame(flagFIN, st.StreamID()))
		close(done)
	}()
	io.Copy(io.MultiWriter(pub, &down), st)
	pub.CloseWrite()
	<-done
	say("stream %d ended: sent %d to tunnelc, received %d from tunnelc", st.StreamID(), up.n, down.n)
}

func main() {
	control := flag.Int("control", 0, "control port on 127.0.0.1")
	public := flag.Int("public", 0, "public port on 127.0.0.1")
	backend := flag.Int("backend-port", 0, "BackEndPort named in every stream-open header")
	caFile := flag.String("ca", "", "CA that client certificates must chain to")
	certFile := flag.String("cert", "", "server certificate")
	keyFile := flag.String("key", "", "server key")
	pongDelay := flag.Int("pong-delay-ms", 0, "hold each Ping from tunnelc this long before answering")
	flag.Parse()
	if *control == 0 || *public == 0 || *backend == 0 || *caFile == "" || *certFile == "" || *keyFile == "" {
		die("usage: old_tunneld --control P --public P --backend-port P --ca F --cert F --key F [--pong-delay-ms N]")
	}
	cert, err := tls.LoadX509KeyPair(*certFile, *keyFile)
	if err != nil {
		die("server certificate: %v", err)
	}
	caPEM, err := os.ReadFile(*caFile)
	if err != nil {
		die("CA: %v", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		die("CA: no certificate in %s", *caFile)
	}
	tcfg := &tls.Config{Certificates: []tls.Certificate{cert}, ClientCAs: pool,
		ClientAuth: tls.RequireAndVerifyClientCert, MinVersion: tls.VersionTLS12}
	cl, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", *control))
	if err != nil {
		die("control: %v", err)
	}
	pl, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", *public))
	if err != nil {
		die("public: %v", err)
	}
	say("listening: control %s public %s", cl.Addr(), pl.Addr())

	var sessMu sync.Mutex
	var current link
	go func() {
		for n := 1; ; n++ {
			c, err := cl.Accept()
			if err != nil {
				die("control accept: %v", err)
			}
			tc := tls.Server(c, tcfg)
			tc.SetDeadline(time.Now().Add(10 * time.Second))
			if err := tc.Handshake(); err != nil {
				say("link %d from %s: handshake failed: %v", n, c.RemoteAddr(), err)
				c.Close()
				continue
			}
			tc.SetDeadline(time.Time{})
			cs := tc.ConnectionState()
			version := map[uint16]string{tls.VersionTLS12: "1.2", tls.VersionTLS13: "1.3"}[cs.Version]
			say("link %d from %s: TLS %s, client CN %s", n, c.RemoteAddr(), version, cs.PeerCertificates[0].Subject.CommonName)
			ycfg := yamux.DefaultConfig()
			ycfg.EnableKeepAlive = false // tunnelc pings; its pings are what --pong-delay-ms shapes
			ycfg.LogOutput = os.Stdout
			filter := newFilter(tc, time.Duration(*pongDelay)*time.Millisecond)
			sess, err := yamux.Server(filter, ycfg)
			if err != nil {
				die("yamux: %v", err)
			}
			sessMu.Lock()
			current = link{sess, filter}
			sessMu.Unlock()
			go func(n int, s *yamux.Session) {
				<-s.CloseChan()
				say("link %d ended", n)
			}(n, sess)
		}
	}()
	for {
		c, err := pl.Accept()
		if err != nil {
			die("public accept: %v", err)
		}
		sessMu.Lock()
		l := current
		sessMu.Unlock()
		if l.sess == nil || l.sess.IsClosed() {
			say("public %s: no link", c.RemoteAddr())
			c.Close()
			continue
		}
		go serveVisitor(l, c.(*net.TCPConn), uint16(*backend))
	}
}
