// Command yamux_peer is the independent half of tunnel's yamux interop test: it
// runs hashicorp/yamux over one loopback TCP connection against
// tests/integration/tools/mux_peer.c (tn_mux), speaking the same little
// per-stream protocol so that each side can check the other.
//
// Every stream starts with a 17-byte request header from its opener:
//
//	op u8 | seed u64 BE | size u64 BE
//
// op 'E': the opener sends size bytes of the seed's pseudo-random sequence and
// then FIN; the acceptor checks them against the same sequence, echoes them,
// and sends FIN once the echo is out. The opener checks the echo (byte by byte
// and by SHA-256) and that both directions end with FIN.
// op 'S' (request-response): the opener sends size bytes and FIN; only after
// that FIN the acceptor answers with size bytes of the sequence seeded with
// seed^0x5555555555555555, then FIN: the whole answer travels on a stream the
// opener has half-closed.
// op 'F' (upload): the acceptor sends FIN right after the header; the opener
// keeps sending size bytes into the stream the peer half-closed, then FIN.
// op 'R': the acceptor resets the stream as soon as it has read the header; the
// opener must see a reset, never data or EOF.
// op 'X': the opener resets the stream itself after writing; the acceptor must
// see a reset, never EOF.
//
// This yamux version has no way to reset a stream, so it cannot open 'X' nor
// accept 'R'; the C peer covers those roles.
//
// The connecting side is the yamux client (odd stream ids); the listening side
// is the server (even ids). The connecting side ends the session once its own
// checks are done; the listening side succeeds only if everything it expected
// happened before the connection closed.
package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"flag"
	"fmt"
	"io"
	"math/rand"
	"net"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/yamux"
)

const (
	hdrLen      = 17
	responseXor = 0x5555555555555555
)

// gen is splitmix64: tiny, identical in C and Go, and good enough that a
// misplaced or repeated chunk never matches by accident.
type gen struct {
	state uint64
	buf   [8]byte
	avail int
}

func newGen(seed uint64) *gen { return &gen{state: seed} }

func (g *gen) next() uint64 {
	g.state += 0x9E3779B97F4A7C15
	z := g.state
	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9
	z = (z ^ (z >> 27)) * 0x94D049BB133111EB
	return z ^ (z >> 31)
}

// fill writes the next len(p) bytes of the sequence (little-endian words).
func (g *gen) fill(p []byte) {
	for i := range p {
		if g.avail == 0 {
			binary.LittleEndian.PutUint64(g.buf[:], g.next())
			g.avail = 8
		}
		p[i] = g.buf[8-g.avail]
		g.avail--
	}
}

// checker compares received bytes with the sequence and remembers the first mismatch.
type checker struct {
	g        *gen
	off      uint64
	scratch  []byte
	mismatch int64
}

func newChecker(seed uint64) *checker {
	return &checker{g: newGen(seed), scratch: make([]byte, 64*1024), mismatch: -1}
}

func (c *checker) feed(p []byte) {
	for len(p) > 0 {
		n := len(p)
		if n > len(c.scratch) {
			n = len(c.scratch)
		}
		want := c.scratch[:n]
		c.g.fill(want)
		if c.mismatch < 0 && !bytes.Equal(want, p[:n]) {
			for i := range want {
				if want[i] != p[i] {
					c.mismatch = int64(c.off) + int64(i)
					break
				}
			}
		}
		c.off += uint64(n)
		p = p[n:]
	}
}

type config struct {
	name            string
	connect, listen int
	openEcho        int
	openRR          int
	openUpload      int
	size            int64
	auxSize         int64
	openResetReq    int
	openResetSelf   int
	acceptEcho      int
	acceptRR        int
	acceptUpload    int
	acceptResetReq  int
	acceptResetSelf int
	pings           int
	window          int
	seed            uint64
	timeout         time.Duration
	orderedSYN      bool
	burst           int
	burstRounds     int
}

type peer struct {
	cfg      config
	sess     *yamux.Session
	client   bool
	deadline time.Time

	mu       sync.Mutex
	failures []string

	acceptedEcho   int64 // atomics
	acceptRR       int64
	acceptUpload   int64
	acceptedResets int64
	acceptedBytes  int64
	acceptDone     chan struct{}
	openMu         sync.Mutex
}

// open opens a stream. yamux takes the id and sends the SYN in two steps, so
// concurrent opens may put SYNs on the wire out of id order (which the peer must
// accept); --ordered-syn serialises opens to take that out of a diagnosis.
func (p *peer) open() (*yamux.Stream, error) {
	if p.cfg.orderedSYN {
		p.openMu.Lock()
		defer p.openMu.Unlock()
	}
	return p.sess.OpenStream()
}

func (p *peer) failf(format string, args ...interface{}) {
	msg := fmt.Sprintf(format, args...)
	fmt.Fprintf(os.Stderr, "%s: FAIL: %s\n", p.cfg.name, msg)
	p.mu.Lock()
	p.failures = append(p.failures, msg)
	p.mu.Unlock()
}

func (p *peer) failed() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.failures) > 0
}

func encodeHdr(op byte, seed uint64, size int64) []byte {
	h := make([]byte, hdrLen)
	h[0] = op
	binary.BigEndian.PutUint64(h[1:9], seed)
	binary.BigEndian.PutUint64(h[9:17], uint64(size))
	return h
}

// ownParity reports whether id belongs to the side that opened it: odd for the client.
func ownParity(id uint32, client bool) bool { return (id%2 == 1) == client }

// writeSeq sends size bytes of g in writes of varied sizes, so the C side sees
// frames of every size up to its window; h, when given, hashes what was sent.
func writeSeq(st *yamux.Stream, g *gen, size int64, rng *rand.Rand, h io.Writer) error {
	buf := make([]byte, 512*1024)
	for left := size; left > 0; {
		n := int64(1 + rng.Intn(len(buf)))
		if rng.Intn(4) == 0 {
			n = int64(1 + rng.Intn(64))
		}
		if n > left {
			n = left
		}
		g.fill(buf[:n])
		if h != nil {
			h.Write(buf[:n])
		}
		if _, err := st.Write(buf[:n]); err != nil {
			return fmt.Errorf("write after %d of %d bytes: %v", size-left, size, err)
		}
		left -= n
	}
	return nil
}

// readSeq reads exactly size bytes that must match the sequence of seed.
// halfClosed reports whether this side already sent FIN: this yamux then answers
// EOF to a read whenever its buffer is empty, even before the peer's FIN, so
// EOF means "poll again" until the deadline.
func (p *peer) readSeq(st *yamux.Stream, seed uint64, size int64, halfClosed func() bool, h io.Writer) error {
	chk := newChecker(seed)
	buf := make([]byte, 64*1024)
	var got int64
	for got < size {
		n, err := st.Read(buf)
		if n > 0 {
			if got+int64(n) > size {
				return fmt.Errorf("more than the %d bytes expected", size)
			}
			if h != nil {
				h.Write(buf[:n])
			}
			chk.feed(buf[:n])
			got += int64(n)
		}
		if err == io.EOF && halfClosed() {
			if p.sess.IsClosed() {
				return fmt.Errorf("session closed after %d of %d bytes", got, size)
			}
			if time.Now().After(p.deadline) {
				return fmt.Errorf("only %d of %d bytes before the deadline", got, size)
			}
			time.Sleep(time.Millisecond)
			continue
		}
		if err == io.EOF {
			return fmt.Errorf("EOF (FIN) after %d of %d bytes", got, size)
		}
		if err != nil {
			return fmt.Errorf("read after %d of %d bytes: %v", got, size, err)
		}
	}
	if chk.mismatch >= 0 {
		return fmt.Errorf("byte %d differs from the expected sequence", chk.mismatch)
	}
	return nil
}

// rrOut opens an 'S' stream: request, FIN, then the response must arrive in full.
func (p *peer) rrOut(idx int, seed uint64, size int64) bool {
	st, err := p.open()
	if err != nil {
		p.failf("request-response stream %d: open: %v", idx, err)
		return false
	}
	id := st.StreamID()
	st.SetDeadline(p.deadline)
	var closed int32
	werr := make(chan error, 1)
	go func() {
		if _, err := st.Write(encodeHdr('S', seed, size)); err != nil {
			werr <- err
			return
		}
		err := writeSeq(st, newGen(seed), size, rand.New(rand.NewSource(int64(seed))), nil)
		if err == nil {
			atomic.StoreInt32(&closed, 1)
			err = st.Close()
		}
		werr <- err
	}()
	rerr := p.readSeq(st, seed^responseXor, size, func() bool { return atomic.LoadInt32(&closed) == 1 }, nil)
	if err := <-werr; err != nil {
		p.failf("request-response stream %d (id %d): request: %v", idx, id, err)
		return false
	}
	if rerr != nil {
		p.failf("request-response stream %d (id %d): response: %v", idx, id, rerr)
		return false
	}
	return true
}

// uploadOut opens an 'F' stream: the peer half-closes at once, this side keeps sending.
func (p *peer) uploadOut(idx int, seed uint64, size int64) bool {
	st, err := p.open()
	if err != nil {
		p.failf("upload stream %d: open: %v", idx, err)
		return false
	}
	id := st.StreamID()
	st.SetDeadline(p.deadline)
	if _, err := st.Write(encodeHdr('F', seed, size)); err != nil {
		p.failf("upload stream %d (id %d): writing header: %v", idx, id, err)
		return false
	}
	// The peer's FIN comes first: a read now must end with EOF and no data.
	buf := make([]byte, 16)
	n, rerr := st.Read(buf)
	if n != 0 || rerr != io.EOF {
		p.failf("upload stream %d (id %d): expected the peer's FIN (EOF, no data), got %d bytes and %v", idx, id, n, rerr)
		return false
	}
	if err := writeSeq(st, newGen(seed), size, rand.New(rand.NewSource(int64(seed))), nil); err != nil {
		p.failf("upload stream %d (id %d): after the peer's FIN: %v", idx, id, err)
		return false
	}
	if err := st.Close(); err != nil {
		p.failf("upload stream %d (id %d): close: %v", idx, id, err)
		return false
	}
	return true
}

// echoOut opens one 'E' stream and checks the echo. Returns bytes sent.
func (p *peer) echoOut(idx int, seed uint64, size int64) bool {
	st, err := p.open()
	if err != nil {
		p.failf("echo stream %d: open: %v", idx, err)
		return false
	}
	if !ownParity(st.StreamID(), p.client) {
		p.failf("echo stream %d: opened id %d has the wrong parity", idx, st.StreamID())
	}
	st.SetDeadline(p.deadline)
	id := st.StreamID()

	var closed int32
	sentSum := make(chan []byte, 1)
	go func() {
		h := sha256.New()
		if _, err := st.Write(encodeHdr('E', seed, size)); err != nil {
			p.failf("echo stream %d (id %d): writing header: %v", idx, id, err)
			sentSum <- nil
			return
		}
		if err := writeSeq(st, newGen(seed), size, rand.New(rand.NewSource(int64(seed))), h); err != nil {
			p.failf("echo stream %d (id %d): %v", idx, id, err)
			sentSum <- nil
			return
		}
		// Close is this yamux's half-close: it sends FIN and the stream stays readable.
		atomic.StoreInt32(&closed, 1)
		if err := st.Close(); err != nil {
			p.failf("echo stream %d (id %d): close: %v", idx, id, err)
		}
		sentSum <- h.Sum(nil)
	}()

	h := sha256.New()
	rerr := p.readSeq(st, seed, size, func() bool { return atomic.LoadInt32(&closed) == 1 }, h)
	want := <-sentSum
	if rerr != nil {
		p.failf("echo stream %d (id %d): echo: %v", idx, id, rerr)
		return false
	}
	if want == nil {
		return false
	}
	if !bytes.Equal(want, h.Sum(nil)) {
		p.failf("echo stream %d (id %d): SHA-256 of the echo differs from what was sent", idx, id)
		return false
	}
	return true
}

// resetReqOut opens an 'R' stream: the peer must reset it.
func (p *peer) resetReqOut(idx int) bool {
	seed := p.cfg.seed + 7777 + uint64(idx)
	st, err := p.open()
	if err != nil {
		p.failf("reset stream %d: open: %v", idx, err)
		return false
	}
	id := st.StreamID()
	st.SetDeadline(p.deadline)
	const payload = 64 * 1024
	if _, err := st.Write(encodeHdr('R', seed, payload)); err != nil {
		p.failf("reset stream %d (id %d): writing header: %v", idx, id, err)
		return false
	}
	// Keep writing in small frames: some reach the peer after its RST, which it must ignore.
	g := newGen(seed)
	chunk := make([]byte, 4096)
	for sent := 0; sent < payload; sent += len(chunk) {
		g.fill(chunk)
		if _, err := st.Write(chunk); err != nil {
			if err != yamux.ErrConnectionReset {
				p.failf("reset stream %d (id %d): write failed with %v, expected %v", idx, id, err, yamux.ErrConnectionReset)
				return false
			}
			break
		}
	}
	buf := make([]byte, 4096)
	n, err := st.Read(buf)
	switch {
	case n > 0:
		p.failf("reset stream %d (id %d): got %d bytes of data, expected a reset", idx, id, n)
		return false
	case err == yamux.ErrConnectionReset:
		return true
	case err == io.EOF:
		p.failf("reset stream %d (id %d): got EOF (FIN), expected a reset", idx, id)
	case err == yamux.ErrTimeout:
		p.failf("reset stream %d (id %d): no reset before the deadline", idx, id)
	default:
		p.failf("reset stream %d (id %d): read failed with %v, expected %v", idx, id, err, yamux.ErrConnectionReset)
	}
	return false
}

// serve handles one accepted stream.
func (p *peer) serve(st *yamux.Stream) {
	id := st.StreamID()
	st.SetDeadline(p.deadline)
	if ownParity(id, p.client) {
		p.failf("accepted stream id %d has this side's parity", id)
	}
	hdr := make([]byte, hdrLen)
	if _, err := io.ReadFull(st, hdr); err != nil {
		if err == yamux.ErrConnectionReset {
			// An 'X' stream whose RST overtook our first read.
			atomic.AddInt64(&p.acceptedResets, 1)
			p.acceptDone <- struct{}{}
			return
		}
		p.failf("accepted stream %d: reading the request header: %v", id, err)
		return
	}
	seed := binary.BigEndian.Uint64(hdr[1:9])
	size := int64(binary.BigEndian.Uint64(hdr[9:17]))
	switch hdr[0] {
	case 'E':
		chk := newChecker(seed)
		buf := make([]byte, 64*1024)
		var got int64
		for {
			n, err := st.Read(buf)
			if n > 0 {
				chk.feed(buf[:n])
				got += int64(n)
				if _, werr := st.Write(buf[:n]); werr != nil {
					p.failf("accepted echo stream %d: echo write after %d bytes: %v", id, got, werr)
					return
				}
			}
			if err == io.EOF {
				break
			}
			if err != nil {
				p.failf("accepted echo stream %d: read after %d of %d bytes: %v", id, got, size, err)
				return
			}
		}
		if got != size {
			p.failf("accepted echo stream %d: FIN after %d bytes, the header announced %d", id, got, size)
			return
		}
		if chk.mismatch >= 0 {
			p.failf("accepted echo stream %d: received byte %d differs from the announced sequence", id, chk.mismatch)
			return
		}
		if err := st.Close(); err != nil {
			p.failf("accepted echo stream %d: close: %v", id, err)
			return
		}
		atomic.AddInt64(&p.acceptedBytes, got)
		atomic.AddInt64(&p.acceptedEcho, 1)
		p.acceptDone <- struct{}{}
	case 'S':
		if err := p.readSeq(st, seed, size, func() bool { return false }, nil); err != nil {
			p.failf("accepted request-response stream %d: request: %v", id, err)
			return
		}
		if n, err := st.Read(make([]byte, 1)); n != 0 || err != io.EOF {
			p.failf("accepted request-response stream %d: expected FIN after the request, got %d bytes and %v", id, n, err)
			return
		}
		rng := rand.New(rand.NewSource(int64(seed)))
		if err := writeSeq(st, newGen(seed^responseXor), size, rng, nil); err != nil {
			p.failf("accepted request-response stream %d: response: %v", id, err)
			return
		}
		if err := st.Close(); err != nil {
			p.failf("accepted request-response stream %d: close: %v", id, err)
			return
		}
		atomic.AddInt64(&p.acceptRR, 1)
		p.acceptDone <- struct{}{}
	case 'F':
		if err := st.Close(); err != nil {
			p.failf("accepted upload stream %d: close: %v", id, err)
			return
		}
		if err := p.readSeq(st, seed, size, func() bool { return true }, nil); err != nil {
			p.failf("accepted upload stream %d: %v", id, err)
			return
		}
		atomic.AddInt64(&p.acceptUpload, 1)
		p.acceptDone <- struct{}{}
	case 'X':
		buf := make([]byte, 64*1024)
		for {
			_, err := st.Read(buf)
			if err == nil {
				continue
			}
			if err == yamux.ErrConnectionReset {
				atomic.AddInt64(&p.acceptedResets, 1)
				p.acceptDone <- struct{}{}
			} else {
				p.failf("accepted stream %d ('X'): ended with %v, expected %v", id, err, yamux.ErrConnectionReset)
			}
			return
		}
	default:
		p.failf("accepted stream %d: request op %q is not supported by this peer", id, hdr[0])
		st.Close()
	}
}

func (p *peer) acceptLoop() {
	for {
		st, err := p.sess.AcceptStream()
		if err != nil {
			return
		}
		go p.serve(st)
	}
}

// waitUntil polls cond until it holds or the deadline passes.
func (p *peer) waitUntil(cond func() bool) bool {
	for !cond() {
		if time.Now().After(p.deadline) {
			return false
		}
		time.Sleep(2 * time.Millisecond)
	}
	return true
}

func main() {
	var cfg config
	var timeoutSec float64
	var seed uint64
	flag.IntVar(&cfg.connect, "connect", 0, "connect to 127.0.0.1:PORT and be the yamux client")
	flag.IntVar(&cfg.listen, "listen", 0, "listen on 127.0.0.1:PORT, accept one connection and be the yamux server")
	flag.IntVar(&cfg.openEcho, "open-echo", 0, "echo streams to open concurrently")
	flag.Int64Var(&cfg.size, "size", 1<<20, "bytes each echo stream sends (stream i sends size + i*4099)")
	flag.Int64Var(&cfg.auxSize, "aux-size", 1<<20, "bytes each request-response or upload stream sends (+ i*4099)")
	flag.IntVar(&cfg.openRR, "open-rr", 0, "request-response streams to open")
	flag.IntVar(&cfg.openUpload, "open-upload", 0, "upload streams to open (the peer half-closes first)")
	flag.IntVar(&cfg.acceptRR, "accept-rr", 0, "request-response streams the peer will open")
	flag.IntVar(&cfg.acceptUpload, "accept-upload", 0, "upload streams the peer will open")
	flag.IntVar(&cfg.openResetReq, "open-reset-req", 0, "streams to open that the peer must reset")
	flag.IntVar(&cfg.openResetSelf, "open-reset-self", 0, "unsupported here (yamux cannot reset a stream)")
	flag.IntVar(&cfg.acceptEcho, "accept-echo", 0, "echo streams the peer will open")
	flag.IntVar(&cfg.acceptResetReq, "accept-reset-req", 0, "unsupported here (yamux cannot reset a stream)")
	flag.IntVar(&cfg.acceptResetSelf, "accept-reset-self", 0, "streams the peer will open and then reset")
	flag.IntVar(&cfg.pings, "pings", 3, "pings to send")
	flag.IntVar(&cfg.window, "window", 256*1024, "yamux MaxStreamWindowSize (receive window per stream)")
	flag.Uint64Var(&seed, "seed", 1, "seed for stream contents")
	flag.IntVar(&cfg.burst, "burst", 0, "small echo streams opened all at once per round")
	flag.IntVar(&cfg.burstRounds, "burst-rounds", 1, "rounds of --burst opens, each after the previous finished")
	flag.BoolVar(&cfg.orderedSYN, "ordered-syn", false, "open streams one at a time so SYNs go out in id order (diagnosis)")
	flag.Float64Var(&timeoutSec, "timeout", 45, "seconds before giving up")
	flag.Parse()
	cfg.seed = seed
	cfg.timeout = time.Duration(timeoutSec * float64(time.Second))

	if (cfg.connect == 0) == (cfg.listen == 0) {
		fmt.Fprintln(os.Stderr, "yamux_peer: give exactly one of --connect PORT or --listen PORT")
		os.Exit(2)
	}
	if cfg.openResetSelf != 0 || cfg.acceptResetReq != 0 {
		fmt.Fprintln(os.Stderr, "yamux_peer: this yamux version cannot reset streams: --open-reset-self and --accept-reset-req must be 0")
		os.Exit(2)
	}
	client := cfg.connect != 0
	if client {
		cfg.name = "yamux_peer(go client)"
	} else {
		cfg.name = "yamux_peer(go server)"
	}
	os.Exit(run(cfg, client))
}

func run(cfg config, client bool) int {
	p := &peer{cfg: cfg, client: client, deadline: time.Now().Add(cfg.timeout)}
	expectAccepted := cfg.acceptEcho + cfg.acceptRR + cfg.acceptUpload + cfg.acceptResetSelf
	p.acceptDone = make(chan struct{}, expectAccepted+64)

	var conn net.Conn
	var err error
	if client {
		conn, err = net.DialTimeout("tcp", "127.0.0.1:"+strconv.Itoa(cfg.connect), 10*time.Second)
		if err != nil {
			fmt.Fprintf(os.Stderr, "%s: connect: %v\n", cfg.name, err)
			return 1
		}
	} else {
		ln, lerr := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(cfg.listen))
		if lerr != nil {
			fmt.Fprintf(os.Stderr, "%s: listen: %v\n", cfg.name, lerr)
			return 1
		}
		fmt.Printf("%s: listening on %s\n", cfg.name, ln.Addr())
		ln.(*net.TCPListener).SetDeadline(p.deadline)
		conn, err = ln.Accept()
		ln.Close()
		if err != nil {
			fmt.Fprintf(os.Stderr, "%s: accept: %v\n", cfg.name, err)
			return 1
		}
	}

	ycfg := yamux.DefaultConfig()
	ycfg.MaxStreamWindowSize = uint32(cfg.window)
	ycfg.ConnectionWriteTimeout = cfg.timeout
	ycfg.LogOutput = os.Stderr
	if client {
		p.sess, err = yamux.Client(conn, ycfg)
	} else {
		p.sess, err = yamux.Server(conn, ycfg)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s: yamux: %v\n", cfg.name, err)
		return 1
	}
	go p.acceptLoop()

	start := time.Now()
	// Every opener waits at this barrier so the opens really run at once: that is
	// when yamux's SYNs leave out of id order, which a peer must accept.
	barrier := make(chan struct{})
	var wg sync.WaitGroup
	var echoOK, rrOK, uploadOK, resetOK, pingOK, burstOK int64
	var sentBytes int64
	for i := 0; i < cfg.openEcho; i++ {
		size := cfg.size + int64(i)*4099
		seed := cfg.seed + uint64(i)*1000003
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			<-barrier
			if p.echoOut(i, seed, size) {
				atomic.AddInt64(&echoOK, 1)
				atomic.AddInt64(&sentBytes, size)
			}
		}(i)
	}
	for i := 0; i < cfg.openRR; i++ {
		size := cfg.auxSize + int64(i)*4099
		seed := cfg.seed + 100000007 + uint64(i)*1000003
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			<-barrier
			if p.rrOut(i, seed, size) {
				atomic.AddInt64(&rrOK, 1)
			}
		}(i)
	}
	for i := 0; i < cfg.openUpload; i++ {
		size := cfg.auxSize + int64(i)*4099
		seed := cfg.seed + 200000014 + uint64(i)*1000003
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			<-barrier
			if p.uploadOut(i, seed, size) {
				atomic.AddInt64(&uploadOK, 1)
			}
		}(i)
	}
	for i := 0; i < cfg.openResetReq; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			<-barrier
			if p.resetReqOut(i) {
				atomic.AddInt64(&resetOK, 1)
			}
		}(i)
	}
	if cfg.burst > 0 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-barrier
			for r := 0; r < cfg.burstRounds; r++ {
				var bwg sync.WaitGroup
				go1 := make(chan struct{})
				for i := 0; i < cfg.burst; i++ {
					bwg.Add(1)
					go func(i int) {
						defer bwg.Done()
						<-go1
						idx := 1000000 + r*cfg.burst + i
						if p.echoOut(idx, cfg.seed+300000021+uint64(idx), int64(1+i*7)) {
							atomic.AddInt64(&burstOK, 1)
						}
					}(i)
				}
				close(go1)
				bwg.Wait()
			}
		}()
	}
	close(barrier)
	var rtts []time.Duration
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; i < cfg.pings; i++ {
			rtt, err := p.sess.Ping()
			if err != nil {
				p.failf("ping %d: %v", i, err)
				return
			}
			rtts = append(rtts, rtt)
			atomic.AddInt64(&pingOK, 1)
		}
	}()
	wg.Wait()
	elapsed := time.Since(start)

	accepted := 0
	if client {
		// The client ends the session, so it first waits for everything the server does.
		timer := time.NewTimer(time.Until(p.deadline))
	WAIT:
		for accepted < expectAccepted {
			select {
			case <-p.acceptDone:
				accepted++
			case <-p.sess.CloseChan():
				p.failf("the session ended early")
				break WAIT
			case <-timer.C:
				break WAIT
			}
		}
		timer.Stop()
		// Streams leave the session once both FINs (or a RST) went through, so an
		// empty session proves the peer closed every stream properly.
		if !p.waitUntil(func() bool { return p.sess.NumStreams() == 0 || p.sess.IsClosed() }) || p.sess.IsClosed() {
			p.failf("%d streams still open at the deadline (peer never sent FIN or RST on them)", p.sess.NumStreams())
		}
		if err := p.sess.GoAway(); err != nil {
			p.failf("sending GoAway: %v", err)
		}
		p.sess.Close()
	} else {
		// The client closes the connection when it is done; by then everything must be.
		select {
		case <-p.sess.CloseChan():
		case <-time.After(time.Until(p.deadline)):
			p.failf("the client did not close the session before the deadline")
			p.sess.Close()
		}
	DRAIN:
		for {
			select {
			case <-p.acceptDone:
				accepted++
			default:
				break DRAIN
			}
		}
	}

	if int(echoOK) != cfg.openEcho {
		p.failf("%d of %d opened echo streams passed", echoOK, cfg.openEcho)
	}
	if want := cfg.burst * cfg.burstRounds; int(burstOK) != want {
		p.failf("%d of %d burst echo streams passed", burstOK, want)
	}
	if int(rrOK) != cfg.openRR {
		p.failf("%d of %d opened request-response streams passed", rrOK, cfg.openRR)
	}
	if int(uploadOK) != cfg.openUpload {
		p.failf("%d of %d opened upload streams passed", uploadOK, cfg.openUpload)
	}
	if int(atomic.LoadInt64(&p.acceptRR)) != cfg.acceptRR {
		p.failf("%d of %d request-response streams from the peer completed", p.acceptRR, cfg.acceptRR)
	}
	if int(atomic.LoadInt64(&p.acceptUpload)) != cfg.acceptUpload {
		p.failf("%d of %d upload streams from the peer completed", p.acceptUpload, cfg.acceptUpload)
	}
	if int(resetOK) != cfg.openResetReq {
		p.failf("%d of %d opened streams were reset by the peer as asked", resetOK, cfg.openResetReq)
	}
	if int(pingOK) != cfg.pings {
		p.failf("%d of %d pings answered", pingOK, cfg.pings)
	}
	if int(atomic.LoadInt64(&p.acceptedEcho)) != cfg.acceptEcho {
		p.failf("%d of %d echo streams from the peer completed", p.acceptedEcho, cfg.acceptEcho)
	}
	if int(atomic.LoadInt64(&p.acceptedResets)) != cfg.acceptResetSelf {
		p.failf("%d of %d streams reset by the peer were seen as reset", p.acceptedResets, cfg.acceptResetSelf)
	}

	var avgRTT time.Duration
	for _, r := range rtts {
		avgRTT += r / time.Duration(len(rtts))
	}
	mib := float64(sentBytes) / (1 << 20)
	rate := 0.0
	if secs := elapsed.Seconds(); secs > 0 {
		rate = float64(sentBytes) / 1e6 / secs
	}
	fmt.Printf("%s: %d/%d echo streams, %.1f MiB out and %.1f MiB back in %.2f s (%.1f MB/s each way); "+
		"opened burst echo %d/%d, request-response %d/%d, upload %d/%d, reset-req %d/%d; "+
		"served echo %d/%d (%.1f MiB), request-response %d/%d, upload %d/%d, reset-self %d/%d; "+
		"%d pings (avg rtt %.2f ms)\n",
		cfg.name, echoOK, cfg.openEcho, mib, mib, elapsed.Seconds(), rate, burstOK, cfg.burst*cfg.burstRounds, rrOK, cfg.openRR, uploadOK,
		cfg.openUpload, resetOK, cfg.openResetReq, p.acceptedEcho, cfg.acceptEcho,
		float64(p.acceptedBytes)/(1<<20), p.acceptRR, cfg.acceptRR, p.acceptUpload, cfg.acceptUpload,
		p.acceptedResets, cfg.acceptResetSelf, pingOK, float64(avgRTT)/float64(time.Millisecond))
	if p.failed() {
		fmt.Fprintf(os.Stderr, "%s: FAILED (%d problems)\n", cfg.name, len(p.failures))
		return 1
	}
	fmt.Printf("%s: PASS\n", cfg.name)
	return 0
}
