// Package netnstest builds small networks of Linux network namespaces for
// tests: namespaces joined by veth pairs and bridges, home routers that
// NAT with iptables, and commands run inside them. Nothing it makes links
// a namespace to the machine's own network: veth pairs are created with
// both ends inside test namespaces, and Isolated checks that no
// namespace has a device or a route out before a test starts daemons.
//
// It needs root, iproute2 and (for routers) iptables; New skips the test
// with a clear message where namespaces cannot be made. Everything is
// removed when the test ends, on failure too.
package netnstest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Net is the namespaces one test made. Its methods fail the test on error.
type Net struct {
	t      testing.TB
	prefix string

	mu    sync.Mutex
	names []string
	cmds  []*exec.Cmd
	addrs map[string]bool // IPs assigned to our namespaces
}

var seq atomic.Int32

// New returns an empty Net for t, removed when t ends, or skips t when
// network namespaces cannot be made here (not root, no iproute2, or a
// tool in need missing).
func New(t testing.TB, need ...string) *Net {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("netnstest: network namespaces need root (CI runs as root)")
	}
	for _, tool := range append([]string{"ip"}, need...) {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("netnstest: %s not installed (.ci/run installs it)", tool)
		}
	}
	n := &Net{t: t, prefix: fmt.Sprintf("kt%d%c", os.Getpid()%100000, 'a'+seq.Add(1)%26), addrs: map[string]bool{}}
	probe := n.prefix + "probe"
	if out, err := exec.Command("ip", "netns", "add", probe).CombinedOutput(); err != nil {
		t.Skipf("netnstest: cannot make a network namespace here: %v: %s", err, out)
	}
	exec.Command("ip", "netns", "del", probe).Run()
	t.Cleanup(n.Close)
	return n
}

// NS returns the name of the namespace for role (made by Add).
func (n *Net) NS(role string) string { return n.prefix + role }

// Add makes a namespace for role, with its loopback up, and returns its
// name.
func (n *Net) Add(role string) string {
	n.t.Helper()
	name := n.NS(role)
	n.ip("netns", "add", name)
	n.mu.Lock()
	n.names = append(n.names, name)
	n.mu.Unlock()
	n.ip("-n", name, "link", "set", "lo", "up")
	return name
}

func (n *Net) ip(args ...string) string {
	n.t.Helper()
	out, err := exec.Command("ip", args...).CombinedOutput()
	if err != nil {
		n.t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// IP runs ip(8) inside ns.
func (n *Net) IP(ns string, args ...string) string {
	n.t.Helper()
	return n.ip(append([]string{"-n", ns}, args...)...)
}

// Run runs a command inside ns and returns its output.
func (n *Net) Run(ns string, name string, args ...string) string {
	n.t.Helper()
	out, err := n.Try(ns, name, args...)
	if err != nil {
		n.t.Fatalf("in %s: %s %s: %v: %s", ns, name, strings.Join(args, " "), err, out)
	}
	return out
}

// Try runs a command inside ns and returns its output and error.
func (n *Net) Try(ns string, name string, args ...string) (string, error) {
	out, err := exec.Command("ip", append([]string{"netns", "exec", ns, name}, args...)...).CombinedOutput()
	return string(out), err
}

// Command returns a command that runs inside ns. A command started from
// it is killed when the test ends (Started records it).
func (n *Net) Command(ns string, name string, args ...string) *exec.Cmd {
	return exec.Command("ip", append([]string{"netns", "exec", ns, name}, args...)...)
}

// Started records a command started inside a namespace, to be killed at
// the end if it still runs.
func (n *Net) Started(c *exec.Cmd) {
	n.mu.Lock()
	n.cmds = append(n.cmds, c)
	n.mu.Unlock()
}

// Link joins nsA and nsB with a veth pair (ifA in nsA, ifB in nsB), both
// up. Neither end is ever in the machine's own namespace.
func (n *Net) Link(nsA, ifA, nsB, ifB string) {
	n.t.Helper()
	n.ip("link", "add", ifA, "netns", nsA, "type", "veth", "peer", "name", ifB, "netns", nsB)
	n.IP(nsA, "link", "set", ifA, "up")
	n.IP(nsB, "link", "set", ifB, "up")
}

// Bridge makes a bridge br in ns with the given member interfaces.
func (n *Net) Bridge(ns, br string, members ...string) {
	n.t.Helper()
	n.IP(ns, "link", "add", br, "type", "bridge")
	n.IP(ns, "link", "set", br, "up")
	for _, m := range members {
		n.IP(ns, "link", "set", m, "master", br)
	}
}

// Addr gives iface in ns the address cidr (like 10.0.1.2/24).
func (n *Net) Addr(ns, iface, cidr string) {
	n.t.Helper()
	n.IP(ns, "addr", "add", cidr, "dev", iface)
	n.mu.Lock()
	n.addrs[strings.Split(cidr, "/")[0]] = true
	n.mu.Unlock()
}

// DelAddr takes cidr off iface in ns.
func (n *Net) DelAddr(ns, iface, cidr string) {
	n.t.Helper()
	n.IP(ns, "addr", "del", cidr, "dev", iface)
}

// DefaultRoute sets the default route of ns via gw, which must be an
// address of one of the Net's namespaces.
func (n *Net) DefaultRoute(ns, gw string) {
	n.t.Helper()
	n.IP(ns, "route", "replace", "default", "via", gw)
}

// HomeRouter makes ns a home router: IP forwarding, source NAT
// (MASQUERADE, with masqArgs such as --random-fully) of everything that
// leaves by wan, a FORWARD chain that passes replies, port forwards and
// what the LAN sends out, and an INPUT chain that drops what the
// Internet sends the router unasked (as home routers do; it also keeps
// an unsolicited packet from taking the NAT port of a hole punch).
func (n *Net) HomeRouter(ns, wan, lan string, masqArgs ...string) {
	n.t.Helper()
	n.Run(ns, "sysctl", "-qw", "net.ipv4.ip_forward=1")
	ipt := func(args ...string) { n.t.Helper(); n.Run(ns, "iptables", append([]string{"-w"}, args...)...) }
	ipt(append([]string{"-t", "nat", "-A", "POSTROUTING", "-o", wan, "-j", "MASQUERADE"}, masqArgs...)...)
	ipt("-A", "FORWARD", "-m", "conntrack", "--ctstate", "ESTABLISHED,RELATED,DNAT", "-j", "ACCEPT")
	ipt("-A", "FORWARD", "-i", lan, "-o", wan, "-j", "ACCEPT")
	ipt("-P", "FORWARD", "DROP")
	ipt("-A", "INPUT", "-i", wan, "-m", "conntrack", "--ctstate", "ESTABLISHED,RELATED", "-j", "ACCEPT")
	ipt("-A", "INPUT", "-i", wan, "-j", "DROP")
}

// SetMasquerade replaces the router's source NAT rule (HomeRouter) with
// one that has masqArgs.
func (n *Net) SetMasquerade(ns, wan string, masqArgs ...string) {
	n.t.Helper()
	n.Run(ns, "iptables", "-w", "-t", "nat", "-F", "POSTROUTING")
	n.Run(ns, "iptables", append([]string{"-w", "-t", "nat", "-A", "POSTROUTING", "-o", wan, "-j", "MASQUERADE"}, masqArgs...)...)
}

// Forward makes the router ns forward proto ("tcp" or "udp") port on wan
// to to (ip:port), a port forward as a user sets on a home router.
func (n *Net) Forward(ns, wan, proto string, port int, to string) {
	n.t.Helper()
	n.Run(ns, "iptables", "-w", "-t", "nat", "-A", "PREROUTING", "-i", wan, "-p", proto, "--dport", strconv.Itoa(port), "-j", "DNAT", "--to-destination", to)
}

type ipLink struct {
	Name     string `json:"ifname"`
	NetnsID  *int   `json:"link_netnsid"`
	LinkInfo struct {
		Kind string `json:"info_kind"`
	} `json:"linkinfo"`
	LinkType string `json:"link_type"`
}

var nsidName = regexp.MustCompile(`nsid (\d+) \(iproute2 netns name: (\S+)\)`)

// Isolated fails the test unless no namespace of the Net reaches the
// machine's own network: each holds only its loopback, bridges and veth
// ends whose peers are in the Net's namespaces, and a default route, if
// any, goes via an address of the Net.
func (n *Net) Isolated() {
	n.t.Helper()
	n.mu.Lock()
	names := slices.Clone(n.names)
	addrs := make(map[string]bool, len(n.addrs))
	for a := range n.addrs {
		addrs[a] = true
	}
	n.mu.Unlock()
	for _, ns := range names {
		ids := map[int]string{}
		for _, m := range nsidName.FindAllStringSubmatch(n.IP(ns, "netns", "list-id"), -1) {
			id, _ := strconv.Atoi(m[1])
			ids[id] = m[2]
		}
		var links []ipLink
		if err := json.Unmarshal([]byte(n.IP(ns, "-j", "-d", "link", "show")), &links); err != nil {
			n.t.Fatalf("reading the links of %s: %v", ns, err)
		}
		for _, l := range links {
			switch {
			case l.LinkType == "loopback", l.LinkInfo.Kind == "bridge":
			case l.LinkInfo.Kind == "veth":
				if l.NetnsID != nil && !slices.Contains(names, ids[*l.NetnsID]) {
					n.t.Fatalf("namespace %s: veth %s leads out of the test's namespaces (nsid %d)", ns, l.Name, *l.NetnsID)
				}
			default:
				n.t.Fatalf("namespace %s: device %s (%s %s) is not the test's", ns, l.Name, l.LinkType, l.LinkInfo.Kind)
			}
		}
		for _, line := range strings.Split(strings.TrimSpace(n.IP(ns, "route", "show", "default")), "\n") {
			if line == "" {
				continue
			}
			f := strings.Fields(line)
			i := slices.Index(f, "via")
			if i < 0 || i+1 >= len(f) || !addrs[f[i+1]] {
				n.t.Fatalf("namespace %s: default route %q does not stay inside the test's namespaces", ns, line)
			}
		}
	}
}

// Close kills what runs in the Net's namespaces and removes them. Safe to
// call more than once.
func (n *Net) Close() {
	n.mu.Lock()
	cmds, names := n.cmds, n.names
	n.cmds, n.names = nil, nil
	n.mu.Unlock()
	for _, c := range cmds {
		if c.Process != nil && c.ProcessState == nil {
			c.Process.Kill()
		}
	}
	for _, ns := range names {
		// Anything else still in the namespace was started by this test.
		out, _ := exec.Command("ip", "netns", "pids", ns).Output()
		for _, f := range bytes.Fields(out) {
			if pid, err := strconv.Atoi(string(f)); err == nil {
				if p, err := os.FindProcess(pid); err == nil {
					p.Kill()
				}
			}
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for _, ns := range names {
		for {
			err := exec.Command("ip", "netns", "del", ns).Run()
			if err == nil || time.Now().After(deadline) {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
}
