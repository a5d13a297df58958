package tunnels

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
	"golang.org/x/time/rate"

	"kith/internal/friendlink"
	"kith/internal/testkit"
)

// The relay memory benchmark: one relay in a process of its own, with
// origins on its left and holders on its right in this one.
const (
	// relayProcessEnv makes TestRelayProcess run as the relay of
	// BenchmarkRelayIdleTunnels instead of skipping.
	relayProcessEnv = "KITH_BENCH_RELAY_PROCESS"
	// relayLinePrefix marks the relay process's answers on its stdout,
	// which the test framework writes to as well.
	relayLinePrefix = "relay-process:"
	// relayTunnels is the idle tunnels set up through the relay: about
	// MaxTunnels, the most a node relays.
	relayTunnels = 1000
	// relayOrigins open relayTunnels/relayOrigins tunnels each: at most
	// 32, within MaxTunnelsPerFriend, at 80% of TunnelRequestsPerSecond
	// after a burst of 8, in about 15 s. The relay floods each request to
	// every other friend; more origins asking faster overflow its send
	// queues on a small machine that also runs every other host.
	relayOrigins = 32
	// relayHolders hold relayTunnels/relayHolders files each: at most 63,
	// within MaxTunnelsPerFriend and libp2p's default of 64 inbound
	// streams of one protocol from one peer.
	relayHolders = 16
	// relayBenchTimeout bounds one run of the benchmark, relay process
	// included.
	relayBenchTimeout = 3 * time.Minute
	// relayStopTimeout bounds the relay process's exit once told to stop.
	relayStopTimeout = 30 * time.Second
)

// TestRelayProcess is the relay of BenchmarkRelayIdleTunnels, run in a
// process of its own so that its memory is the relay's alone. It skips
// unless relayProcessEnv is set. It prints its peer ID and address, then
// answers commands read from stdin, one per line:
//
//	friend <peer ID>  befriend a peer; answers "ok"
//	links             answers "links <router links up>"
//	mem               after two GCs, answers "mem <HeapInuse> <StackInuse>
//	                  <goroutines> <tunnels held> <tunnel requests dropped>
//	                  <control messages dropped>"
//
// It stops at the end of stdin.
func TestRelayProcess(t *testing.T) {
	if os.Getenv(relayProcessEnv) == "" {
		t.Skip("the relay process of BenchmarkRelayIdleTunnels; set " + relayProcessEnv + " to run it")
	}
	h, friends := newTestHost(t)
	r, err := NewRouter(h, friends, DefaultRouterConfig()) // production settings
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	say := func(format string, args ...any) {
		fmt.Printf(relayLinePrefix+format+"\n", args...)
	}
	say("relay %s %s", h.ID(), h.Addrs()[0])
	sc := bufio.NewScanner(os.Stdin)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		switch {
		case len(f) == 2 && f[0] == "friend":
			p, err := peer.Decode(f[1])
			if err != nil {
				t.Fatalf("befriending %q: %v", f[1], err)
			}
			friends.Add(p)
			say("ok")
		case len(f) == 1 && f[0] == "links":
			say("links %d", len(r.Links()))
		case len(f) == 1 && f[0] == "mem":
			runtime.GC()
			runtime.GC() // the second empties the sync.Pools' victim caches
			var m runtime.MemStats
			runtime.ReadMemStats(&m)
			r.mu.Lock()
			held := r.tun.total
			r.mu.Unlock()
			st := r.Stats()
			say("mem %d %d %d %d %d %d", m.HeapInuse, m.StackInuse, runtime.NumGoroutine(), held,
				st.TunnelsDropped, st.MessagesDropped)
		default:
			t.Fatalf("unknown command %q", sc.Text())
		}
	}
}

// relayProcess drives a TestRelayProcess child.
type relayProcess struct {
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	lines  chan string
	stderr bytes.Buffer
	id     peer.ID
	addr   ma.Multiaddr
}

// startRelayProcess re-executes the test binary as the relay; ctx bounds
// its life.
func startRelayProcess(ctx context.Context, b *testing.B) *relayProcess {
	b.Helper()
	rp := &relayProcess{lines: make(chan string, 16)}
	rp.cmd = exec.CommandContext(ctx, os.Args[0], "-test.run=^TestRelayProcess$", "-test.count=1",
		"-test.timeout="+relayBenchTimeout.String())
	rp.cmd.Env = append(os.Environ(), relayProcessEnv+"=1")
	rp.cmd.Stderr = &rp.stderr
	var err error
	if rp.stdin, err = rp.cmd.StdinPipe(); err != nil {
		b.Fatal(err)
	}
	out, err := rp.cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := rp.cmd.Start(); err != nil {
		b.Fatalf("starting the relay process: %v", err)
	}
	go func() {
		defer close(rp.lines)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if line, ok := strings.CutPrefix(sc.Text(), relayLinePrefix); ok {
				rp.lines <- line
			}
		}
	}()
	f := rp.expect(b, "relay", 3)
	if rp.id, err = peer.Decode(f[1]); err != nil {
		b.Fatal(err)
	}
	if rp.addr, err = ma.NewMultiaddr(f[2]); err != nil {
		b.Fatal(err)
	}
	return rp
}

// expect reads the relay's next answer, which must start with word and
// have n fields.
func (rp *relayProcess) expect(b *testing.B, word string, n int) []string {
	b.Helper()
	select {
	case line, ok := <-rp.lines:
		f := strings.Fields(line)
		if !ok || len(f) != n || f[0] != word {
			b.Fatalf("relay process: want %q, got %q (stderr: %s)", word, line, rp.stderr.String())
		}
		return f
	case <-time.After(30 * time.Second):
		b.Fatalf("relay process: no %q answer in 30 s", word)
	}
	return nil
}

// ask sends a command to the relay and returns its answer's fields.
func (rp *relayProcess) ask(b *testing.B, cmd, word string, n int) []string {
	b.Helper()
	if _, err := fmt.Fprintln(rp.stdin, cmd); err != nil {
		b.Fatalf("relay process: sending %q: %v", cmd, err)
	}
	return rp.expect(b, word, n)
}

// relayMem is a "mem" answer of the relay process.
type relayMem struct {
	heap, stack, goroutines, tunnels, tunnelsDropped, msgsDropped int64
}

func (rp *relayProcess) mem(b *testing.B) relayMem {
	b.Helper()
	f := rp.ask(b, "mem", "mem", 7)
	var v [6]int64
	for i := range v {
		x, err := strconv.ParseInt(f[i+1], 10, 64)
		if err != nil {
			b.Fatal(err)
		}
		v[i] = x
	}
	return relayMem{v[0], v[1], v[2], v[3], v[4], v[5]}
}

// stop ends the relay process: end of stdin, then wait; one that has not
// exited after relayStopTimeout is made to dump its goroutines and exit.
func (rp *relayProcess) stop(b *testing.B) {
	b.Helper()
	rp.stdin.Close()
	drained := make(chan struct{})
	go func() {
		for range rp.lines { // until the process closes stdout
		}
		close(drained)
	}()
	select {
	case <-drained:
	case <-time.After(relayStopTimeout):
		rp.cmd.Process.Signal(syscall.SIGQUIT)
		<-drained
	}
	if err := rp.cmd.Wait(); err != nil {
		b.Errorf("relay process: %v (stderr: %s)", err, rp.stderr.String())
	}
}

// benchHolder is a holder that speaks the router protocol by hand: unlike
// a Router it answers every tunnel request for a file it holds, however
// fast the relay floods them (a Router holder would drop all but
// TunnelRequestsPerSecond of them, as a node should). Requests for other
// files it drops in silence, as such a Router mostly would.
type benchHolder struct {
	h     host.Host
	relay peer.ID
	roots map[[32]byte][32]byte // target -> root; read-only once started
	ctx   context.Context

	mu       sync.Mutex
	answered map[TunnelID][32]byte // TunnelOK sent, stream awaited
	sessions []*Session
	up       chan<- struct{} // one value per session up
	linked   chan struct{}   // closed when the router stream is served
	linkOnce sync.Once
	wg       sync.WaitGroup
}

// newBenchHolder starts a holder befriending relay; up receives a value
// for each session it accepts.
func newBenchHolder(ctx context.Context, b *testing.B, relay peer.ID, up chan struct{}) *benchHolder {
	h, friends := newTestHost(b)
	friends.Add(relay)
	bh := &benchHolder{
		h: h, relay: relay, roots: make(map[[32]byte][32]byte), ctx: ctx,
		answered: make(map[TunnelID][32]byte),
		up:       up,
		linked:   make(chan struct{}),
	}
	h.SetStreamHandler(RouterProtocol, bh.serveRouter)
	h.SetStreamHandler(TunnelProtocol, bh.serveTunnel)
	return bh
}

// link opens the router stream if this side is the opener; otherwise the
// relay opens it.
func (bh *benchHolder) link(b *testing.B) {
	if !friendlink.Opener(bh.h.ID(), bh.relay) {
		return
	}
	ctx, cancel := context.WithTimeout(bh.ctx, LinkOpenTimeout)
	defer cancel()
	s, err := bh.h.NewStream(ctx, bh.relay, RouterProtocol)
	if err != nil {
		b.Fatalf("holder: opening the router stream: %v", err)
	}
	bh.wg.Add(1)
	go func() { defer bh.wg.Done(); bh.serveRouter(s) }()
}

// serveRouter answers the relay's tunnel requests for the targets held
// with TunnelOK.
func (bh *benchHolder) serveRouter(s network.Stream) {
	defer s.Reset()
	if s.Conn().RemotePeer() != bh.relay {
		return
	}
	bh.linkOnce.Do(func() { close(bh.linked) })
	mr, mw := NewMessageReader(s), NewMessageWriter(s)
	for {
		m, err := mr.Read()
		if errors.Is(err, ErrUnknownMessage) {
			continue
		}
		if err != nil {
			return
		}
		var reply Message
		switch m := m.(type) {
		case *TunnelRequest:
			root, ok := bh.roots[m.Target]
			if !ok {
				break
			}
			bh.mu.Lock()
			bh.answered[m.ID] = root
			bh.mu.Unlock()
			reply = &TunnelOK{ID: m.ID}
		case *TunnelClose:
			bh.mu.Lock()
			delete(bh.answered, m.ID)
			bh.mu.Unlock()
		}
		if reply != nil {
			if err := mw.Write(reply); err != nil {
				return
			}
		}
	}
}

// serveTunnel runs the holder's side of the session on a tunnel stream
// and keeps the session, idle, until the benchmark ends.
func (bh *benchHolder) serveTunnel(s network.Stream) {
	s.SetReadDeadline(time.Now().Add(LinkWriteTimeout))
	id, err := readTunnelHeader(s)
	if err != nil {
		s.Reset()
		return
	}
	s.SetReadDeadline(time.Time{})
	bh.mu.Lock()
	root, ok := bh.answered[id]
	delete(bh.answered, id)
	bh.mu.Unlock()
	if !ok || s.Conn().RemotePeer() != bh.relay {
		s.Reset()
		return
	}
	sess, err := AcceptFileSession(bh.ctx, s, root)
	if err != nil {
		return
	}
	bh.mu.Lock()
	bh.sessions = append(bh.sessions, sess)
	bh.mu.Unlock()
	bh.up <- struct{}{}
}

// close ends the holder's sessions and router streams.
func (bh *benchHolder) close() {
	bh.h.RemoveStreamHandler(RouterProtocol)
	bh.h.RemoveStreamHandler(TunnelProtocol)
	bh.mu.Lock()
	for _, s := range bh.sessions {
		s.Close()
	}
	bh.mu.Unlock()
	bh.h.Close()
	bh.wg.Wait()
}

// BenchmarkRelayIdleTunnels measures what idle tunnels cost the node that
// relays them, over real libp2p hosts (127.0.0.1 TCP, Noise, yamux): one
// relay, in a process of its own, between relayOrigins origins and
// relayHolders holders; relayTunnels tunnels are set up through it
// (request, OK, streams, end-to-end handshake) and left idle. It reports
// the relay's heap and stack in use (after GC) and goroutines, per
// tunnel, against the same relay with every router link up and no tunnel.
// Its ns/op is a whole run: processes, hosts, links and tunnels.
func BenchmarkRelayIdleTunnels(b *testing.B) {
	var heap, stack, goroutines float64
	for range b.N {
		m := relayIdleTunnelsOnce(b)
		heap += m.heap
		stack += m.stack
		goroutines += m.goroutines
	}
	b.ReportMetric(heap/float64(b.N), "heapB/tunnel")
	b.ReportMetric(stack/float64(b.N), "stackB/tunnel")
	b.ReportMetric(goroutines/float64(b.N), "goroutines/tunnel")
}

// perTunnel is the relay's cost per idle tunnel.
type perTunnel struct{ heap, stack, goroutines float64 }

func relayIdleTunnelsOnce(b *testing.B) perTunnel {
	ctx, cancel := context.WithTimeout(context.Background(), relayBenchTimeout)
	defer cancel()
	rp := startRelayProcess(ctx, b)
	defer rp.stop(b)

	// Holders on the right, each holding its share of the files.
	roots := make([][32]byte, relayTunnels)
	holders := make([]*benchHolder, relayHolders)
	up := make(chan struct{}, relayTunnels)
	for i := range holders {
		holders[i] = newBenchHolder(ctx, b, rp.id, up)
		defer holders[i].close()
	}
	for k := range roots {
		roots[k] = [32]byte(randBytes(32))
		holders[k%relayHolders].roots[TargetForRoot(roots[k])] = roots[k]
	}
	// Origins on the left: plain routers.
	origins := make([]*Router, relayOrigins)
	var ids []peer.ID
	for i := range origins {
		h, friends := newTestHost(b)
		friends.Add(rp.id)
		cfg := DefaultRouterConfig()
		cfg.Rand = zeroSource{}
		r, err := NewRouter(h, friends, cfg)
		if err != nil {
			b.Fatal(err)
		}
		defer r.Close()
		origins[i] = r
		ids = append(ids, h.ID())
	}
	for _, bh := range holders {
		ids = append(ids, bh.h.ID())
	}
	for _, id := range ids {
		rp.ask(b, "friend "+id.String(), "ok", 1)
	}
	relayInfo := peer.AddrInfo{ID: rp.id, Addrs: []ma.Multiaddr{rp.addr}}
	for _, r := range origins {
		if err := r.h.Connect(ctx, relayInfo); err != nil {
			b.Fatal(err)
		}
	}
	for _, bh := range holders {
		if err := bh.h.Connect(ctx, relayInfo); err != nil {
			b.Fatal(err)
		}
		bh.link(b)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		f := rp.ask(b, "links", "links", 2)
		if f[1] == strconv.Itoa(len(ids)) {
			break
		}
		if time.Now().After(deadline) {
			b.Fatalf("relay has %s router links of %d after 30 s", f[1], len(ids))
		}
		time.Sleep(100 * time.Millisecond)
	}
	for _, bh := range holders {
		select {
		case <-bh.linked:
		case <-ctx.Done():
			b.Fatal("a holder got no router stream")
		}
	}
	for _, r := range origins {
		testkit.WaitFor(b, waitLimit, "origin's router link", func() bool { return len(r.Links()) == 1 })
	}
	time.Sleep(500 * time.Millisecond) // let the link set-up settle
	before := rp.mem(b)

	// Set the tunnels up, each origin within the relay's rate for it
	// (TunnelRequestsPerSecond after a burst), the origins' bursts spread
	// over two seconds so that the relay's floods fit its queues.
	start := time.Now()
	var (
		mu      sync.Mutex
		tunnels []*Tunnel
		fails   []error
		wg      sync.WaitGroup
	)
	for i, r := range origins {
		wg.Add(1)
		go func() {
			defer wg.Done()
			time.Sleep(time.Duration(i) * 2 * time.Second / relayOrigins)
			// A margin below the relay's rate and burst absorbs the
			// jitter of a loaded machine: a request the relay drops
			// is never answered.
			lim := rate.NewLimiter(TunnelRequestsPerSecond*0.8, TunnelRequestBurst-2)
			var owg sync.WaitGroup
			for k := i; k < relayTunnels; k += relayOrigins {
				if err := lim.Wait(ctx); err != nil {
					break
				}
				owg.Add(1)
				go func() {
					defer owg.Done()
					tctx, tcancel := context.WithTimeout(ctx, 30*time.Second)
					defer tcancel()
					tn, err := r.OpenTunnel(tctx, roots[k])
					mu.Lock()
					defer mu.Unlock()
					if err != nil {
						fails = append(fails, err)
						return
					}
					tunnels = append(tunnels, tn)
				}()
			}
			owg.Wait()
		}()
	}
	wg.Wait()
	defer func() {
		for _, tn := range tunnels {
			tn.Close()
		}
	}()
	if len(fails) > 0 {
		m := rp.mem(b)
		b.Fatalf("%d of %d tunnels failed, the first: %v; the relay dropped %d tunnel requests (over a friend's rate) and %d control messages (full queues)",
			len(fails), relayTunnels, fails[0], m.tunnelsDropped, m.msgsDropped)
	}
	for range relayTunnels {
		select {
		case <-up:
		case <-ctx.Done():
			b.Fatal("holders did not see every session up")
		}
	}
	setup := time.Since(start)
	time.Sleep(time.Second) // the floods' last closes and failures
	after := rp.mem(b)
	if after.tunnels != relayTunnels {
		b.Fatalf("the relay holds %d tunnels, want %d", after.tunnels, relayTunnels)
	}
	b.Logf("%d idle tunnels through the relay in %v; relay: heap %.1f -> %.1f MiB, stack %.1f -> %.1f MiB, %d -> %d goroutines; dropped there: %d tunnel requests, %d control messages",
		relayTunnels, setup.Round(time.Millisecond), mib(before.heap), mib(after.heap), mib(before.stack), mib(after.stack),
		before.goroutines, after.goroutines, after.tunnelsDropped, after.msgsDropped)
	return perTunnel{
		heap:       float64(after.heap-before.heap) / relayTunnels,
		stack:      float64(after.stack-before.stack) / relayTunnels,
		goroutines: float64(after.goroutines-before.goroutines) / relayTunnels,
	}
}

func mib(n int64) float64 { return float64(n) / (1 << 20) }
