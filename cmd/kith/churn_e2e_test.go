package main

import (
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"kith/node/api"
	"kith/share"
)

// ChurnEnv names the environment variable that runs TestChurn and says
// for how long the nodes churn (a Go duration: "30s" in CI, "5m" to
// reproduce the field reports).
const ChurnEnv = "KITH_CHURN"

// churnNode is one `kith up` of the churn ring, restarted on the same
// ports so that its friends find it where they knew it.
type churnNode struct {
	name, home string
	port       int
	extra      []string // more `kith up` flags
	mu         sync.Mutex
	d          *daemon // nil while killed
}

func (c *churnNode) alive() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.d != nil
}

func (c *churnNode) start(t *testing.T) {
	t.Helper()
	d := &daemon{home: c.home, log: &syncBuffer{}, done: make(chan error, 1)}
	d.cmd = exec.Command(kithBin, append([]string{"up", "--home", c.home, "--no-mdns", "--no-web",
		"--listen", fmt.Sprintf("/ip4/127.0.0.1/tcp/%d", c.port),
		"--listen", fmt.Sprintf("/ip4/127.0.0.1/udp/%d/quic-v1", c.port)}, c.extra...)...)
	d.cmd.Stdout, d.cmd.Stderr = d.log, d.log
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { d.done <- d.cmd.Wait() }()
	deadline := time.Now().Add(30 * time.Second)
	for kith(t, "status", "--home", c.home).code != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%s did not come up:\n%s", c.name, d.log)
		}
		time.Sleep(50 * time.Millisecond)
	}
	c.mu.Lock()
	c.d = d
	c.mu.Unlock()
}

// kill ends the daemon with SIGKILL: no shutdown, no flush.
func (c *churnNode) kill() {
	c.mu.Lock()
	d := c.d
	c.d = nil
	c.mu.Unlock()
	if d != nil {
		d.cmd.Process.Signal(syscall.SIGKILL)
		<-d.done
	}
}

// freePort finds a port free for both TCP and UDP on 127.0.0.1.
func freePort(t *testing.T) int {
	t.Helper()
	for range 100 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		u, err := net.ListenPacket("udp", fmt.Sprintf("127.0.0.1:%d", port))
		l.Close()
		if err == nil {
			u.Close()
			return port
		}
	}
	t.Fatal("no free port")
	return 0
}

// TestChurn is issue 13's churn run: six daemons in a ring, each a friend
// of its two neighbours, talk in one lobby and run an anonymous download
// across the ring while random nodes are killed with SIGKILL and
// restarted. When the churn ends and every node is back, every member
// must hold every lobby message whose send the API accepted, exactly
// once, and the download must complete with its root verified. It runs
// only with KITH_CHURN set to the churn's duration.
func TestChurn(t *testing.T) {
	churnFor, err := time.ParseDuration(os.Getenv(ChurnEnv))
	if err != nil || churnFor <= 0 {
		t.Skipf("set %s to a duration (e.g. 30s) to run the churn test", ChurnEnv)
	}
	const nodes = 6
	dir := t.TempDir()
	ring := make([]*churnNode, nodes)
	for i := range ring {
		c := &churnNode{name: fmt.Sprintf("n%d", i), home: filepath.Join(dir, fmt.Sprintf("n%d", i)), port: freePort(t)}
		mustKith(t, "init", "--name", c.name, "--home", c.home)
		ring[i] = c
	}
	// The holder uploads slowly, so that the download runs through the
	// churn and is cut by its kills.
	ring[0].extra = []string{"--max-upload", "1MiB"}
	t.Cleanup(func() {
		for _, c := range ring {
			c.kill()
		}
	})
	for _, c := range ring {
		c.start(t)
	}
	type invite struct {
		PeerID string `json:"peer_id"`
		Invite string `json:"invite"`
	}
	ids := make([]invite, nodes)
	for i, c := range ring {
		if err := json.Unmarshal([]byte(mustKith(t, "id", "--json", "--home", c.home)), &ids[i]); err != nil {
			t.Fatal(err)
		}
	}
	for i, c := range ring {
		for _, j := range []int{(i + 1) % nodes, (i + nodes - 1) % nodes} {
			mustKith(t, "friend", "add", ids[j].Invite, "--home", c.home)
		}
	}
	for i, c := range ring {
		waitFriend(t, c.home, ids[(i+1)%nodes].PeerID, true)
	}

	// n0 shares a file anonymously; n3, three hops away on either side,
	// fetches it through tunnels.
	const fileSize = 24 << 20
	shared := filepath.Join(dir, "shared")
	os.MkdirAll(shared, 0o700)
	f, err := os.Create(filepath.Join(shared, "album.flac"))
	if err != nil {
		t.Fatal(err)
	}
	io.CopyN(f, rand.NewChaCha8([32]byte{13}), fileSize)
	f.Close()
	mustKith(t, "share", "add", shared, "--anonymous", "--home", ring[0].home)
	// The file's link is the first line; folder links follow.
	link, _, _ := strings.Cut(strings.TrimSpace(mustKith(t, "share", "ls", "--links", "--home", ring[0].home)), "\n")
	got := filepath.Join(dir, "got")
	os.MkdirAll(got, 0o700)

	// Everyone speaks in one lobby that n0 opens and the others find
	// through their friends.
	for _, c := range ring {
		mustKith(t, "identity", "new", c.name, "--home", c.home)
	}
	lobby := strings.TrimSpace(mustKith(t, "lobby", "create", "ring", "--home", ring[0].home))
	joined := map[int]bool{0: true}
	deadline := time.Now().Add(60 * time.Second)
	for len(joined) < nodes {
		for i, c := range ring {
			if !joined[i] && strings.Contains(mustKith(t, "lobby", "ls", "--home", c.home), lobby) {
				mustKith(t, "lobby", "join", lobby, "--home", c.home)
				joined[i] = true
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("only %d of %d nodes found the lobby", len(joined), nodes)
		}
		time.Sleep(200 * time.Millisecond)
	}
	mustKith(t, "get", "--anonymous", link, "--to", got, "--detach", "--home", ring[3].home)

	// The churn: a talker sends a lobby message from a random live node
	// every 200 ms; a killer kills a random node (at most two down at
	// once) or restarts one, every 1-3 s.
	var (
		sentMu   sync.Mutex
		accepted = map[string]bool{} // texts whose send returned 0
		tried    = map[string]bool{} // texts sent, whatever the outcome
		kills    int
	)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for seq := 0; ; seq++ {
			select {
			case <-stop:
				return
			case <-time.After(200 * time.Millisecond):
			}
			i := rand.IntN(nodes)
			if !ring[i].alive() {
				continue
			}
			text := fmt.Sprintf("m%d from %s", seq, ring[i].name)
			sentMu.Lock()
			tried[text] = true
			sentMu.Unlock()
			if kith(t, "lobby", "send", lobby, text, "--home", ring[i].home).code == 0 {
				sentMu.Lock()
				accepted[text] = true
				sentMu.Unlock()
			}
		}
	}()
	end := time.Now().Add(churnFor)
	for time.Now().Before(end) {
		time.Sleep(time.Second + rand.N(2*time.Second))
		var up, down []*churnNode
		for _, c := range ring {
			if c.alive() {
				up = append(up, c)
			} else {
				down = append(down, c)
			}
		}
		if len(down) < 2 && (len(down) == 0 || rand.IntN(2) == 0) {
			c := up[rand.IntN(len(up))]
			c.kill()
			kills++
		} else {
			down[rand.IntN(len(down))].start(t)
		}
	}
	close(stop)
	wg.Wait()
	for _, c := range ring {
		if !c.alive() {
			c.start(t)
		}
	}

	// Every member catches up: each accepted message once, nothing that
	// was never sent.
	type lobbyMessage struct {
		Kind string `json:"kind"`
		Text string `json:"text"`
	}
	var lost, duplicated, unknown int
	deadline = time.Now().Add(2 * time.Minute)
	for {
		lost, duplicated, unknown = 0, 0, 0
		for _, c := range ring {
			var ms []lobbyMessage
			if err := json.Unmarshal([]byte(mustKith(t, "lobby", "log", lobby, "--json", "--home", c.home)), &ms); err != nil {
				t.Fatal(err)
			}
			seen := map[string]int{}
			for _, m := range ms {
				if strings.HasPrefix(m.Text, "m") && strings.Contains(m.Text, " from n") {
					seen[m.Text]++
				}
			}
			for text := range accepted {
				if seen[text] == 0 {
					lost++
				}
			}
			for text, n := range seen {
				if n > 1 {
					duplicated += n - 1
				}
				if !tried[text] {
					unknown++
				}
			}
		}
		if (lost == 0 && duplicated == 0) || time.Now().After(deadline) {
			break
		}
		time.Sleep(time.Second)
	}
	t.Logf("%d kills in %v; %d lobby messages accepted (%d tried); missing at members: %d, duplicated: %d, never sent: %d",
		kills, churnFor, len(accepted), len(tried), lost, duplicated, unknown)
	if lost > 0 || duplicated > 0 || unknown > 0 {
		t.Errorf("lobby after churn: %d (member, message) pairs missing, %d duplicated, %d never sent", lost, duplicated, unknown)
	}

	// The download completes and its root verifies.
	deadline = time.Now().Add(3 * time.Minute)
	for {
		ds := downloadsOf(t, ring[3].home)
		if len(ds) == 1 && ds[0].State == api.StateDone {
			tree, err := share.HashFile(ds[0].Path)
			if err != nil {
				t.Fatal(err)
			}
			want, _ := share.HashFile(filepath.Join(shared, "album.flac"))
			if tree.Root != want.Root {
				t.Fatalf("the downloaded file's root %x is not the shared file's %x", tree.Root, want.Root)
			}
			t.Logf("anonymous download verified: resumed %d, fetched %d of %d groups", ds[0].ResumedGroups, ds[0].FetchedGroups, ds[0].Groups)
			break
		}
		if len(ds) == 1 && ds[0].State == api.StateFailed || time.Now().After(deadline) {
			t.Fatalf("anonymous download after churn: %+v", ds)
		}
		time.Sleep(500 * time.Millisecond)
	}
}
