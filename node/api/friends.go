package api

import (
	"time"

	"kith/internal/version"
)

// FriendInfo is a friend as the API shows it (GET /v1/friends, the
// answers of POST /v1/friends and DELETE /v1/friends/{ref}, and the
// friend.* events).
type FriendInfo struct {
	PeerID   string    `json:"peer_id"`
	Name     string    `json:"name"`
	Online   bool      `json:"online"`
	LastSeen time.Time `json:"last_seen,omitzero"`
	Added    time.Time `json:"added"`
	Addrs    []string  `json:"addrs"`
	// Path is how an online friend is reached: PathDirect,
	// PathHolePunched or PathRelayed (through Relay, a friend, RelayID its
	// peer ID).
	Path    string `json:"path,omitempty"`
	Relay   string `json:"relay,omitempty"`
	RelayID string `json:"relay_id,omitempty"`
	// Reason says why an offline friend is not reached, and what to do.
	Reason string `json:"reason,omitempty"`
	// Updated is set by `friend add` when the invite was an existing
	// friend's and updated its addresses.
	Updated bool `json:"updated,omitempty"`
	// Introduction is set by `friend add` of an introduction invite:
	// "accepted" (friends on both sides now) or "pending" (the inviter
	// approves first).
	Introduction string `json:"introduction,omitempty"`
	// ClockOffsetMs is the friend's clock minus this node's, in
	// milliseconds, as estimated from its lobby link (absent: not known).
	ClockOffsetMs *int64 `json:"clock_offset_ms,omitempty"`
}

// How a friend is reached (FriendInfo.Path).
const (
	PathDirect      = "direct"
	PathHolePunched = "hole-punched"
	PathRelayed     = "relayed"
)

// InviteInfo is the answer of GET /v1/invite and POST
// /v1/invite/introduce.
type InviteInfo struct {
	Invite string   `json:"invite"`
	PeerID string   `json:"peer_id"`
	Name   string   `json:"name"`
	Addrs  []string `json:"addrs"`
	// Introduce marks an introduction invite, good once until Expires.
	Introduce bool      `json:"introduce,omitempty"`
	Expires   time.Time `json:"expires,omitzero"`
}

// AddFriendRequest is the body of POST /v1/friends.
type AddFriendRequest struct {
	Invite string `json:"invite"`
	Name   string `json:"name,omitempty"`
}

// IntroduceRequest is the body of POST /v1/invite/introduce.
type IntroduceRequest struct {
	// TTLSeconds is how long the invite works; 0 means a day.
	TTLSeconds int64 `json:"ttl_seconds,omitempty"`
}

// IntroRequestInfo is an introduction waiting for approval (GET
// /v1/introductions, DELETE /v1/introductions/{ref}).
type IntroRequestInfo struct {
	PeerID string    `json:"peer_id"`
	Name   string    `json:"name"`
	At     time.Time `json:"at"`
}

// Status is a snapshot of the node (GET /v1/status).
type Status struct {
	PeerID        string    `json:"peer_id"`
	Name          string    `json:"name"`
	Home          string    `json:"home"`
	ListenAddrs   []string  `json:"listen_addrs"`
	FriendsOnline int       `json:"friends_online"`
	FriendsTotal  int       `json:"friends_total"`
	Started       time.Time `json:"started"`
	UptimeSeconds float64   `json:"uptime_seconds"`
	Connections   int       `json:"connections"`
	Refused       uint64    `json:"refused_connections"`
	PID           int       `json:"pid"`
	// MaxUpload and MaxDownload are the caps in effect, bytes per second
	// (0: none).
	MaxUpload   int64 `json:"max_upload"`
	MaxDownload int64 `json:"max_download"`
	// UploadRate and DownloadRate are what all friend connections move
	// now, bytes per second (libp2p's meters, a moving average of the
	// last seconds; 0 without metrics).
	UploadRate   float64 `json:"upload_rate"`
	DownloadRate float64 `json:"download_rate"`
	// TunnelsRelayed and TunnelsServed count the tunnels this node
	// spliced for friends and those that ended here, since it started.
	TunnelsRelayed uint64 `json:"tunnels_relayed"`
	TunnelsServed  uint64 `json:"tunnels_served"`
	// Version is the daemon's build; Schema the database layout it uses.
	Version version.Info `json:"version"`
	Schema  uint64       `json:"schema"`
	// Reach is how friends reach the node: reachability, port mapping,
	// reservations, what it relays for friends.
	Reach *ReachStatus `json:"reach,omitempty"`
	// ClockSkewed is set when this node's clock differs from most
	// friends' by more than chat's LobbyClockWarn; ClockBehindMs is by
	// how much it is behind them (negative: ahead), in milliseconds.
	ClockSkewed   bool  `json:"clock_skewed,omitempty"`
	ClockBehindMs int64 `json:"clock_behind_ms,omitempty"`
}

// ReachStatus is the reachability part of Status.
type ReachStatus struct {
	// Reachability is what friends found: directly reachable, behind NAT
	// or unknown, and how the node knows.
	Reachability ReachState `json:"reachability"`
	// PortMapping is what UPnP / NAT-PMP did.
	PortMapping PortMapping `json:"port_mapping"`
	// Announced are the --announce addresses.
	Announced []string `json:"announced,omitempty"`
	// Reservations are the slots held on friends' relays.
	Reservations []ReservationInfo `json:"reservations"`
	// Relay is what the node relays for friends (nil: --no-relay).
	Relay *RelayStats `json:"relay,omitempty"`
	// HolePunches counts DCUtR hole punches with friends.
	HolePunches HolePunchStats `json:"hole_punches"`
	// Warning says what to do when friends outside cannot reach the node.
	Warning string `json:"warning,omitempty"`
}

// Reachability states (ReachState.State).
const (
	ReachUnknown = "unknown"
	ReachPublic  = "public"
	ReachPrivate = "private"
)

// ReachState is what friends found about the node's reachability.
type ReachState struct {
	// State is ReachPublic (directly reachable), ReachPrivate (behind a
	// NAT or firewall) or ReachUnknown.
	State string `json:"state"`
	// How says how the node knows, in words (friends' names in it are
	// peer text).
	How string `json:"how"`
	// Reachable are the addresses a friend reached from outside.
	Reachable []string `json:"reachable,omitempty"`
	// Unreachable are the public addresses friends failed to reach.
	Unreachable []string `json:"unreachable,omitempty"`
	// Observed are the addresses friends see us at.
	Observed []string `json:"observed,omitempty"`
	// Checked is when friends last dialled us back (zero: never).
	Checked time.Time `json:"checked,omitzero"`
	// CheckedBy are the peer IDs of the friends that did.
	CheckedBy []string `json:"checked_by,omitempty"`
}

// PortMapping is what UPnP / NAT-PMP did for the node.
type PortMapping struct {
	// Enabled is false when port mapping is off (--no-port-map, or a
	// node that listens on loopback only).
	Enabled bool `json:"enabled"`
	// Gateway is true once a UPnP or NAT-PMP gateway was found.
	Gateway bool `json:"gateway"`
	// Mapped are the external addresses the gateway maps to us.
	Mapped []string `json:"mapped,omitempty"`
}

// ReservationInfo is a slot held on a friend's relay.
type ReservationInfo struct {
	Relay   string    `json:"relay"`
	Name    string    `json:"name"`
	Expires time.Time `json:"expires"`
	Addrs   []string  `json:"addrs"`
}

// RelayStats is what the node relays for friends.
type RelayStats struct {
	// Reservations is how many friends hold a reservation with us now.
	Reservations int64 `json:"reservations"`
	// ReservationsRefused counts reservation requests refused.
	ReservationsRefused uint64 `json:"reservations_refused"`
	// Circuits is how many circuits we relay now.
	Circuits int64 `json:"circuits"`
	// CircuitsTotal counts the circuits we relayed since start.
	CircuitsTotal uint64 `json:"circuits_total"`
	// CircuitsRefused counts circuit requests refused.
	CircuitsRefused uint64 `json:"circuits_refused"`
	// RefusedNotFriend counts reservations and circuits refused because
	// a peer was not our friend.
	RefusedNotFriend uint64 `json:"refused_not_friend"`
	// Bytes counts the bytes relayed, both directions.
	Bytes uint64 `json:"bytes"`
	// Rate is the bandwidth cap in effect, bytes per second (0: none).
	Rate int64 `json:"rate"`
	// MaxCircuits is the circuit cap in effect.
	MaxCircuits int `json:"max_circuits"`
}

// HolePunchStats counts DCUtR hole punches with friends.
type HolePunchStats struct {
	// Attempts counts hole punches started.
	Attempts uint64 `json:"attempts"`
	// Succeeded counts hole punches that made a direct connection.
	Succeeded uint64 `json:"succeeded"`
	// Failed counts hole punches that did not.
	Failed uint64 `json:"failed"`
	// DirectDials counts upgrades made by dialling a friend's public
	// address directly, without a punch.
	DirectDials uint64 `json:"direct_dials"`
}

// Setting is one `kith config` key with its value as text (GET
// /v1/config, PUT /v1/config/{key}, the config.changed event).
type Setting struct {
	Key   string `json:"key"`
	Value string `json:"value"`
	// Default is the value an unset key has.
	Default string `json:"default"`
	// Help says what the key does.
	Help string `json:"help"`
	// Live is set when a change takes effect at once; others take effect
	// at the next `kith up`.
	Live bool `json:"live,omitempty"`
}

// SetConfigRequest is the body of PUT /v1/config/{key}.
type SetConfigRequest struct {
	Value string `json:"value"`
}
