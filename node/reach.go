package node

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"

	"kith/f2f"
	"kith/node/api"
)

// reachWarnDelay is how long after start `kith up` looks whether friends
// outside the node's network can reach it at all, and warns if not.
const reachWarnDelay = 20 * time.Second

// reachService wires NAT traversal into the node: the relay it runs for
// friends, the reservations it holds on friends' relays, the
// reachability friends find for it, and one-step introductions.
type reachService struct {
	n      *Node
	trav   *f2f.Traversal
	reach  *f2f.Reach
	res    *f2f.Reservations
	relay  *f2f.Relay // nil: --no-relay
	intros *f2f.Introductions

	stop chan struct{}
	wg   sync.WaitGroup
	once sync.Once
}

// parseAnnounce parses --announce addresses.
func parseAnnounce(ss []string) ([]ma.Multiaddr, error) {
	var out []ma.Multiaddr
	for _, s := range ss {
		a, err := ma.NewMultiaddr(strings.TrimSpace(s))
		if err != nil {
			return nil, fmt.Errorf("%w: announce address %q: %v", ErrBadSetting, s, err)
		}
		if !(*f2f.AddrPolicy)(nil).Allowed("", a) || f2f.IsCircuitAddr(a) {
			return nil, fmt.Errorf("%w: announce address %q: want /ip4|ip6|dns/HOST/tcp/PORT or /udp/PORT/quic-v1", ErrBadSetting, s)
		}
		out = append(out, a)
	}
	return out, nil
}

// startReach starts the relay for friends, reservations, reachability
// checks and introductions, once the host, the DHT and the connector run.
func startReach(n *Node) (*reachService, error) {
	r := &reachService{n: n, trav: n.trav, stop: make(chan struct{})}
	var err error
	names := func(p peer.ID) string {
		if f, ok := n.friends.Get(p); ok && f.Name != "" {
			return f.Name
		}
		return p.ShortString()
	}
	var res atomic.Pointer[f2f.Reservations]
	if r.reach, err = f2f.NewReach(f2f.ReachConfig{Host: n.host, Key: n.key, Friends: n.friends, Traversal: n.trav,
		Log: n.log.With("service", "reach"), Names: names, Unanswered: n.connector.Probe,
		OnChange: func(f2f.ReachState) {
			if rs := res.Load(); rs != nil {
				rs.Kick()
			}
		}}); err != nil {
		return nil, err
	}
	n.reachable.Store(r.reach)
	// Relays are needed behind NAT, and when friends have not said yet
	// after a moment (a node that is reachable hears so first, and never
	// holds a reservation).
	need := func() bool {
		return r.reach.Private() || (!r.reach.Public() && time.Since(r.reach.Started()) > f2f.ReserveUnknownDelay)
	}
	if r.res, err = f2f.NewReservations(f2f.ReservationsConfig{Host: n.host, Friends: n.friends,
		Need: need, Punched: n.trav.Punched, Unanswered: n.connector.Probe, Log: n.log.With("service", "relay-client")}); err != nil {
		r.close()
		return nil, err
	}
	res.Store(r.res)
	// Directly reachable: friends dial us; a relay that still holds a
	// reservation we dropped is not used.
	n.gater.SetRelayedFilter(func(relay peer.ID) bool { return !r.reach.Public() || r.res.Holds(relay) })
	n.trav.AddSource(r.res.CircuitAddrs)
	if !n.cfg.NoRelay {
		if r.relay, err = f2f.StartRelay(n.host, n.friends, f2f.RelayConfig{Rate: n.cfg.RelayRate,
			Unreachable: r.reach.Private, Log: n.log.With("service", "relay")}); err != nil {
			r.close()
			return nil, err
		}
	}
	if r.intros, err = f2f.OpenIntroductions(n.db, n.friends, n.log.With("service", "introduce")); err != nil {
		r.close()
		return nil, err
	}
	r.intros.SetApprove(n.cfg.ApproveIntroductions)
	f2f.ServeIntroductions(n.host, n.gater, r.intros)
	r.wg.Add(1)
	go r.warnLater()
	return r, nil
}

func (r *reachService) close() error {
	r.once.Do(func() {
		close(r.stop)
		r.wg.Wait()
		r.n.host.RemoveStreamHandler(f2f.IntroduceProtocol)
		if r.relay != nil {
			r.relay.Close()
		}
		if r.res != nil {
			r.res.Close()
		}
		if r.reach != nil {
			r.reach.Close()
		}
	})
	return nil
}

// warnLater warns, once, when friends outside the node's network cannot
// reach it at all: every address private, none mapped or announced, no
// friend relaying for it.
func (r *reachService) warnLater() {
	defer r.wg.Done()
	select {
	case <-r.stop:
		return
	case <-time.After(reachWarnDelay):
	}
	if w := r.unreachableWarning(); w != "" {
		r.n.log.Warn(w)
	}
}

// unreachableWarning says what to do when nothing makes the node
// reachable from outside its network; "" when something does.
func (r *reachService) unreachableWarning() string {
	if len(r.n.friends.IDs()) == 0 || r.reach.Public() || len(r.res.Held()) > 0 {
		return ""
	}
	for _, a := range r.n.host.Addrs() {
		if manet.IsPublicAddr(a) && !f2f.IsCircuitAddr(a) {
			return ""
		}
	}
	return "every address of this node is private and no friend relays for it: friends outside this network can reach you only if " +
		"one of you has a forwarded port (`kith up --announce /ip4/PUBLIC-IP/tcp/PORT`) or a friend with a reachable address is online"
}

func (r *reachService) status() *api.ReachStatus {
	st := &api.ReachStatus{Reachability: apiReachState(r.reach.State()), PortMapping: api.PortMapping(r.trav.PortMapping()),
		Announced: addrStrings(r.trav.Announced()), HolePunches: api.HolePunchStats(r.trav.HolePunches()), Reservations: []api.ReservationInfo{}}
	for _, h := range r.res.Held() {
		st.Reservations = append(st.Reservations, api.ReservationInfo{Relay: h.Relay.String(), Name: r.name(h.Relay),
			Expires: h.Expires.UTC(), Addrs: addrStrings(h.Addrs)})
	}
	if r.relay != nil {
		rs := api.RelayStats(r.relay.Stats())
		st.Relay = &rs
	}
	if time.Since(r.n.started) > reachWarnDelay {
		st.Warning = r.unreachableWarning()
	}
	return st
}

func (r *reachService) name(p peer.ID) string {
	if f, ok := r.n.friends.Get(p); ok && f.Name != "" {
		return f.Name
	}
	return p.ShortString()
}

// withPath fills in how a friend is reached now, or why it is not.
func (r *reachService) withPath(fi api.FriendInfo, f f2f.Friend) api.FriendInfo {
	if f.Online {
		p := r.trav.PathTo(r.n.host, f.ID)
		fi.Path = p.Kind
		if p.Relay != "" {
			fi.RelayID, fi.Relay = p.Relay.String(), r.name(p.Relay)
		}
		return fi
	}
	fi.Reason = r.offlineReason(f)
	return fi
}

// offlineReason says, in words a user can act on, why a friend is not
// connected.
func (r *reachService) offlineReason(f f2f.Friend) string {
	di := r.n.connector.DialInfo(f.ID)
	if len(f.Addrs) == 0 {
		return "no address known for them: ask them for a new invite (`kith id`) and add it (`kith friend add`)"
	}
	var relays []peer.ID
	public := false
	for _, a := range f.Addrs {
		if relay := f2f.CircuitRelay(a); relay != "" {
			if !slices.Contains(relays, relay) {
				relays = append(relays, relay)
			}
		} else if manet.IsPublicAddr(a) {
			public = true
		}
	}
	if di.LastAttempt.IsZero() {
		return "not tried yet"
	}
	if di.LastError == "" && f.LastSeen.IsZero() {
		return "their node answers but does not let us in: they may not have added you yet; send them your invite (`kith id`)"
	}
	if len(relays) > 0 {
		var online []string
		for _, rl := range relays {
			if fr, ok := r.n.friends.Get(rl); ok && fr.Online {
				online = append(online, r.name(rl))
			}
		}
		if len(online) == 0 {
			names := make([]string, len(relays))
			for i, rl := range relays {
				names[i] = r.name(rl)
			}
			return fmt.Sprintf("they can be reached only through %s, who is not online for you now", strings.Join(names, ", "))
		}
		return fmt.Sprintf("%s could not reach them: they may be offline", strings.Join(online, ", "))
	}
	if !public && !r.reach.Public() {
		return "neither of you can be reached from outside your network and no friend in common relays for you: " +
			"one of you needs a forwarded port (`kith up --announce`) or a friend with a reachable address who is a friend of both"
	}
	if public {
		return "their addresses did not answer: they may be offline (" + shortDialError(di.LastError) + ")"
	}
	return "not reachable: " + shortDialError(di.LastError)
}

// shortDialError keeps the end of libp2p's dial error, the part that
// names the cause.
func shortDialError(s string) string {
	if s == "" {
		return "no error recorded"
	}
	if i := strings.LastIndex(s, ": "); i >= 0 && len(s)-i > 8 {
		s = s[i+2:]
	}
	if len(s) > 120 {
		s = s[:120]
	}
	return s
}

// addFriendInvite adds the node of an invite as a friend, or, for an
// existing friend, takes the invite's addresses and dials them at once.
// An introduction invite (`kith id --introduce`) also introduces us to
// its inviter, who adds us in the same step.
func (n *Node) addFriendInvite(ctx context.Context, invite, name string) (api.FriendInfo, error) {
	inv, err := f2f.ParseInvite(invite)
	if err != nil {
		return api.FriendInfo{}, err
	}
	if old, ok := n.friends.Get(inv.ID); ok {
		fresh := 0
		for _, a := range inv.Addrs {
			if !slices.ContainsFunc(old.Addrs, a.Equal) {
				fresh++
			}
		}
		n.connector.LearnAddrs(inv.ID, inv.Addrs, f2f.SourceInvite)
		if fresh == 0 && len(inv.IntroKey) == 0 {
			return api.FriendInfo{}, fmt.Errorf("%w: %s (their invite has no address we did not know)", f2f.ErrAlreadyFriend, inv.ID)
		}
		f, _ := n.friends.Get(inv.ID)
		fi := friendJSON(f)
		fi.Updated = true
		return fi, nil
	}
	f, err := n.friends.Add(inv, name)
	if err != nil {
		return api.FriendInfo{}, err
	}
	fi := friendJSON(f)
	if len(inv.IntroKey) == 0 || n.reach == nil {
		return fi, nil
	}
	own, err := n.Invite()
	if err == nil {
		fi.Introduction, err = f2f.Introduce(ctx, inv, n.key, own, f2f.NewAddrPolicy(n.host.Network().ListenAddresses()))
	}
	if err != nil {
		n.friends.Remove(inv.ID.String())
		return api.FriendInfo{}, err
	}
	return fi, nil
}

// Introduce returns an introduction invite: whoever adds it becomes a
// friend on both sides at once (or waits for approval), once, within ttl.
func (n *Node) Introduce(ttl time.Duration) (api.InviteInfo, error) {
	seed, exp, err := n.reach.intros.Issue(ttl)
	if err != nil {
		return api.InviteInfo{}, err
	}
	text, err := f2f.NewIntroInvite(n.key, n.InviteAddrs(), n.Name(), seed, exp)
	if err != nil {
		return api.InviteInfo{}, err
	}
	return api.InviteInfo{Invite: text, PeerID: n.ID().String(), Name: n.Name(), Addrs: addrStrings(n.InviteAddrs()),
		Introduce: true, Expires: exp.UTC()}, nil
}

// reachAPIErrors are the reachability and introduction errors the API
// maps to codes.
var reachAPIErrors = []apiErrorCode{
	{f2f.ErrIntroRefused, "intro_refused"},
	{f2f.ErrIntroUnreachable, "intro_unreachable"},
	{f2f.ErrTooManyIntros, "too_many_intros"},
	{f2f.ErrNoSuchRequest, "no_such_request"},
}

func (a *apiServer) reachRoutes(mux *http.ServeMux) {
	mux.HandleFunc("POST /v1/invite/introduce", a.introduce)
	mux.HandleFunc("GET /v1/introductions", a.listIntroductions)
	mux.HandleFunc("POST /v1/introductions/{ref}/approve", a.approveIntroduction)
	mux.HandleFunc("DELETE /v1/introductions/{ref}", a.rejectIntroduction)
}

func (a *apiServer) introduce(w http.ResponseWriter, r *http.Request) {
	var req api.IntroduceRequest
	if !readJSON(w, r, &req) {
		return
	}
	inv, err := a.n.Introduce(time.Duration(req.TTLSeconds) * time.Second)
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusCreated, inv)
}

func (a *apiServer) listIntroductions(w http.ResponseWriter, r *http.Request) {
	out := []api.IntroRequestInfo{}
	for _, q := range a.n.reach.intros.Requests() {
		out = append(out, api.IntroRequestInfo{PeerID: q.ID.String(), Name: q.Name, At: q.At})
	}
	writeJSON(w, http.StatusOK, out)
}

func (a *apiServer) approveIntroduction(w http.ResponseWriter, r *http.Request) {
	f, err := a.n.reach.intros.Approve(r.PathValue("ref"))
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, friendJSON(f))
}

func (a *apiServer) rejectIntroduction(w http.ResponseWriter, r *http.Request) {
	q, err := a.n.reach.intros.Reject(r.PathValue("ref"))
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, api.IntroRequestInfo{PeerID: q.ID.String(), Name: q.Name, At: q.At})
}
