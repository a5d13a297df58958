package api

import (
	"encoding/json"
	"fmt"
	"time"
)

// EventType names an event of the daemon's event stream (GET /v1/events):
// dotted, the part before the dot naming what it is about. Types are only
// ever added; a client skips those it does not know.
type EventType string

// The events the daemon publishes, with the type of their Data.
const (
	// EventFriendAdded: a friend was added (FriendInfo).
	EventFriendAdded EventType = "friend.added"
	// EventFriendRemoved: a friend was removed (FriendInfo).
	EventFriendRemoved EventType = "friend.removed"
	// EventFriendOnline: a friend connected (FriendInfo).
	EventFriendOnline EventType = "friend.online"
	// EventFriendOffline: a friend's last connection closed (FriendInfo).
	EventFriendOffline EventType = "friend.offline"
	// EventFriendAddrs: the node learnt addresses of a friend
	// (FriendAddrsEvent).
	EventFriendAddrs EventType = "friend.addrs"
	// EventFriendRenamed: the user gave a friend a new name (FriendInfo).
	EventFriendRenamed EventType = "friend.renamed"

	// EventShareAdded: a folder was shared and scanned (ShareInfo).
	EventShareAdded EventType = "share.added"
	// EventShareRemoved: a folder is no longer shared (ShareInfo).
	EventShareRemoved EventType = "share.removed"
	// EventShareScanned: the rescan at start ended (ScanStats).
	EventShareScanned EventType = "share.scanned"

	// EventDownloadProgress: a download moved on or changed state
	// (DownloadInfo).
	EventDownloadProgress EventType = "download.progress"
	// EventDownloadDone: a download finished, verified (DownloadInfo).
	EventDownloadDone EventType = "download.done"
	// EventDownloadFailed: a download failed for good (DownloadInfo).
	EventDownloadFailed EventType = "download.failed"
	// EventDownloadSourceDropped: a download dropped a source
	// (DownloadInfo; the source's Dropped says why).
	EventDownloadSourceDropped EventType = "download.source_dropped"

	// EventChatMessage: a private message was stored, sent or received
	// (ChatEvent with Message).
	EventChatMessage EventType = "chat.message"
	// EventChatDelivered: a friend acknowledged messages (ChatEvent with
	// IDs).
	EventChatDelivered EventType = "chat.delivered"
	// EventChatTyping: a friend is typing (ChatEvent).
	EventChatTyping EventType = "chat.typing"

	// EventDistantMessage: a distant message was stored (DistantEvent).
	EventDistantMessage EventType = "distant.message"
	// EventDistantDelivered: a chat identity acknowledged messages
	// (DistantDeliveredEvent).
	EventDistantDelivered EventType = "distant.delivered"

	// EventLobbyMessage: a message was stored in a joined lobby
	// (LobbyMessageEvent).
	EventLobbyMessage EventType = "lobby.message"
	// EventLobbyInvite: a friend invited the node into a lobby
	// (LobbyInvite).
	EventLobbyInvite EventType = "lobby.invite"

	// EventConfigChanged: a setting was changed through the API (Setting).
	EventConfigChanged EventType = "config.changed"

	// EventDropped tells a subscriber it missed events, because it did not
	// keep up or asked for events the daemon no longer keeps
	// (DroppedEvent). It has no ID of its own.
	EventDropped EventType = "events.dropped"
)

// EventTypes returns every event type above, in a fixed order.
func EventTypes() []EventType {
	return []EventType{
		EventFriendAdded, EventFriendRemoved, EventFriendOnline, EventFriendOffline, EventFriendAddrs, EventFriendRenamed,
		EventShareAdded, EventShareRemoved, EventShareScanned,
		EventDownloadProgress, EventDownloadDone, EventDownloadFailed, EventDownloadSourceDropped,
		EventChatMessage, EventChatDelivered, EventChatTyping,
		EventDistantMessage, EventDistantDelivered,
		EventLobbyMessage, EventLobbyInvite,
		EventConfigChanged, EventDropped,
	}
}

// Event is one thing that happened in the node, as sent on the event
// stream. ID numbers the node's events from 1 in the order they were
// published (since the daemon started); a client that reconnects asks for
// those after the last ID it saw. Data is the type's payload (see the
// constants): as published, a value of this package's types; as a Client
// decodes it, generic JSON values, which Decode turns into the type.
type Event struct {
	ID   uint64    `json:"id,omitempty"`
	Type EventType `json:"type"`
	Time time.Time `json:"time"`
	Data any       `json:"data,omitempty"`
}

// Decode stores the event's Data in v, a pointer to the data type of the
// event's Type.
func (e Event) Decode(v any) error {
	b, err := json.Marshal(e.Data)
	if err != nil {
		return fmt.Errorf("re-encoding event data: %w", err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("decoding event data: %w", err)
	}
	return nil
}

// DroppedEvent is the data of an EventDropped event.
type DroppedEvent struct {
	// Missed is how many events the subscriber did not get.
	Missed uint64 `json:"missed"`
}

// FriendAddrsEvent is the data of an EventFriendAddrs event.
type FriendAddrsEvent struct {
	Addrs  []string `json:"addrs"`
	PeerID string   `json:"peer_id"`
	// Source is where the addresses came from: invite, identify, dht or
	// mdns.
	Source string `json:"source"`
}

// ChatEvent is the data of the EventChatMessage, EventChatDelivered and
// EventChatTyping events.
type ChatEvent struct {
	PeerID  string   `json:"peer_id"`
	Name    string   `json:"name"`
	Message *Message `json:"message,omitempty"`
	IDs     []string `json:"ids,omitempty"`
}

// DistantEvent is the data of an EventDistantMessage event: a message of
// the conversation between Local, one of this node's chat identities, and
// Remote.
type DistantEvent struct {
	Local   string  `json:"local"`
	Remote  string  `json:"remote"`
	Message Message `json:"message"`
	// Request is set for a message of a request (an identity the user
	// has not answered nor accepted).
	Request bool `json:"request,omitempty"`
}

// DistantDeliveredEvent is the data of an EventDistantDelivered event.
type DistantDeliveredEvent struct {
	Local  string   `json:"local"`
	Remote string   `json:"remote"`
	IDs    []string `json:"ids"`
}

// LobbyMessageEvent is the data of an EventLobbyMessage event: a message
// stored in a joined lobby (text, join or leave; this node's own too).
// History is set for one that came in a history reply when joining.
type LobbyMessageEvent struct {
	Message LobbyMessage `json:"message"`
	History bool         `json:"history,omitempty"`
}
