package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"kith/node"
	"kith/node/api"
	"kith/share"
)

// inProcessFriend starts an in-process node on loopback TCP and makes it
// and the daemon in home friends of each other.
func inProcessFriend(t *testing.T, home, name string) (*node.Node, peer.ID) {
	t.Helper()
	nh := filepath.Join(t.TempDir(), name)
	if _, err := node.Init(nh, name); err != nil {
		t.Fatal(err)
	}
	cfg := node.DefaultConfig(nh)
	cfg.ListenAddrs = []string{"/ip4/127.0.0.1/tcp/0"}
	cfg.MDNS = false
	cfg.NoAPI = true
	cfg.RedialMin, cfg.RedialMax = 100*time.Millisecond, time.Second
	n, err := node.Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	var id api.InviteInfo
	if err := json.Unmarshal([]byte(mustKith(t, "id", "--json", "--home", home)), &id); err != nil {
		t.Fatal(err)
	}
	if _, err := n.AddFriend(id.Invite, "victim"); err != nil {
		t.Fatal(err)
	}
	inv, err := n.Invite()
	if err != nil {
		t.Fatal(err)
	}
	mustKith(t, "friend", "add", inv, "--name", name, "--home", home)
	victim, err := peer.Decode(id.PeerID)
	if err != nil {
		t.Fatal(err)
	}
	waitFriend(t, home, n.ID().String(), true)
	deadline := time.Now().Add(15 * time.Second)
	for {
		if f, ok := n.Friends().Get(victim); ok && f.Online {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s never saw the daemon online", name)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return n, victim
}

// procStatus reads a field of /proc/PID/status in KiB (VmRSS, VmHWM).
func procStatus(t *testing.T, pid int, field string) int64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			n, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
	}
	t.Fatalf("no %s in /proc/%d/status", field, pid)
	return 0
}

// downloadFrom downloads link with n and checks the result against want.
func downloadFrom(t *testing.T, n *node.Node, link share.Link, want []byte) {
	t.Helper()
	to := t.TempDir()
	if _, err := n.Downloads().Add(link, to); err != nil {
		t.Error(err)
		return
	}
	deadline := time.Now().Add(90 * time.Second)
	for {
		info, _ := n.Downloads().Info(link.Root)
		if info.State == share.StateDone {
			got, err := os.ReadFile(info.Path)
			if err != nil || !bytes.Equal(got, want) {
				t.Errorf("download of %s differs (%v)", link.Name, err)
			}
			n.Downloads().Cancel(link.Root)
			return
		}
		if info.State == share.StateFailed || time.Now().After(deadline) {
			t.Errorf("download of %s: %+v", link.Name, info)
			n.Downloads().Cancel(link.Root)
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestShareSlowlorisDaemon attacks a running `kith up`: a friend opens
// many /kith/share/1 streams, announces a frame of MaxMessageSize bytes on
// each and then sends its body one byte a second. The daemon must not set
// memory aside for what was announced but not sent, must not keep more
// than share.MaxShareStreamsPerFriend of the streams, must close those it
// keeps by the frame timeout, and must go on serving another friend.
func TestShareSlowlorisDaemon(t *testing.T) {
	if testing.Short() {
		t.Skip("slow attack on a daemon; run without -short")
	}
	const (
		streams = 256
		// bound is the growth of the daemon's peak resident memory the
		// attack may cause, on top of an honest download before it.
		bound = 24 << 10 // KiB
	)
	dir := t.TempDir()
	home := filepath.Join(dir, "victim")
	mustKith(t, "init", "--name", "victim", "--home", home)
	d := startDaemon(t, home)
	shared := filepath.Join(dir, "shared")
	os.MkdirAll(shared, 0o700)
	content := make([]byte, 32<<20)
	rand.NewChaCha8([32]byte{5}).Read(content)
	os.WriteFile(filepath.Join(shared, "film.mkv"), content, 0o600)
	mustKith(t, "share", "add", shared, "--home", home)
	link, err := share.ParseLink(strings.TrimSpace(mustKith(t, "share", "ls", "--links", "--home", home)))
	if err != nil {
		t.Fatal(err)
	}

	attacker, victim := inProcessFriend(t, home, "mallory")
	honest, _ := inProcessFriend(t, home, "carol")
	// Warm up: an honest download before the attack sets the baseline.
	downloadFrom(t, honest, link, content)
	pid := d.cmd.Process.Pid
	baseRSS, baseHWM := procStatus(t, pid, "VmRSS"), procStatus(t, pid, "VmHWM")
	t.Logf("daemon after an honest download: VmRSS %d KiB, VmHWM %d KiB", baseRSS, baseHWM)

	// The attack. The first streams announce a request-sized frame and
	// send its body one byte a second; the others announce a frame of
	// MaxMessageSize bytes, send all of it but its last 64 bytes at once
	// and those one a second.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var (
		wg               sync.WaitGroup
		opened, accepted atomic.Int64 // streams opened; of those, streams that sent body bytes
		closedEarly      atomic.Int64 // closed by the daemon before the frame was done
		bodySent         atomic.Int64
		stop             = make(chan struct{})
	)
	for i := range streams {
		size, burst := 4<<10, 0
		if i >= streams/4 {
			size, burst = share.MaxMessageSize, share.MaxMessageSize-64
		}
		st, err := attacker.Host().NewStream(ctx, victim, share.ProtocolID)
		if err != nil {
			continue // refused by the daemon's resource limits
		}
		opened.Add(1)
		wg.Add(1)
		go func(st network.Stream) {
			defer wg.Done()
			defer st.Reset()
			// A reader that learns when the daemon ends the stream.
			gone := make(chan struct{})
			go func() {
				io.Copy(io.Discard, bufio.NewReader(st))
				close(gone)
			}()
			first := binary.AppendUvarint(nil, uint64(size))
			first = append(first, make([]byte, burst)...)
			if _, err := st.Write(first); err != nil {
				closedEarly.Add(1)
				return
			}
			bodySent.Add(int64(burst))
			t := time.NewTicker(time.Second)
			defer t.Stop()
			for sent := burst; sent < size; sent++ {
				select {
				case <-gone:
					closedEarly.Add(1)
					return
				case <-stop:
					return
				case <-t.C:
				}
				if _, err := st.Write([]byte{0}); err != nil {
					closedEarly.Add(1)
					return
				}
				if sent == burst {
					accepted.Add(1)
				}
				bodySent.Add(1)
			}
		}(st)
	}
	t.Logf("opened %d share streams", opened.Load())

	// Meanwhile another friend downloads, and the daemon's memory is
	// watched.
	var peakRSS atomic.Int64
	watchDone := make(chan struct{})
	go func() {
		defer close(watchDone)
		for {
			select {
			case <-stop:
				return
			case <-time.After(200 * time.Millisecond):
			}
			if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid)); err == nil {
				for line := range strings.SplitSeq(string(b), "\n") {
					if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
						n, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
						if n > peakRSS.Load() {
							peakRSS.Store(n)
						}
					}
				}
			}
		}
	}()
	downloadFrom(t, honest, link, content)
	// Dribble on for at least twice the frame timeout.
	time.Sleep(2*share.ServerFrameTimeout + 5*time.Second)
	close(stop)
	wg.Wait()
	<-watchDone
	hwm := procStatus(t, pid, "VmHWM")
	t.Logf("streams: opened %d, closed early by the daemon %d, took body bytes one by one %d; body bytes sent %d",
		opened.Load(), closedEarly.Load(), accepted.Load(), bodySent.Load())
	t.Logf("daemon during the attack: peak VmRSS %d KiB (+%d), VmHWM %d KiB (+%d)", peakRSS.Load(), peakRSS.Load()-baseRSS, hwm, hwm-baseHWM)
	if grow := hwm - baseHWM; grow > bound {
		t.Errorf("the attack grew the daemon's peak memory by %d KiB; bound %d KiB", grow, bound)
	}
	// The daemon keeps at most its per-friend number of streams (the
	// others are reset at once), and those it keeps it closes by the
	// frame timeout.
	if a := accepted.Load(); a == 0 || a > share.MaxShareStreamsPerFriend {
		t.Errorf("%d slow streams were read from; want 1 to %d", a, share.MaxShareStreamsPerFriend)
	}
	if n := opened.Load() - closedEarly.Load(); n != 0 {
		t.Errorf("%d of %d slow streams were still open after %v of dribbling", n, opened.Load(), 2*share.ServerFrameTimeout)
	}
	// The honest friend is still served after the attack.
	downloadFrom(t, honest, link, content)
	d.stop(t)
}
