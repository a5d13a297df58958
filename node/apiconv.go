package node

import (
	"kith/chat"
	"kith/f2f"
	"kith/node/api"
	"kith/share"
)

// The components' types as the API shows them (package api). The API's
// types are its own so that a component's Go types cannot change the
// JSON by accident; where the fields are the same, a conversion copies
// them and the compiler checks they still are.

func apiMessage(m chat.Message) api.Message {
	return api.Message{Seq: m.Seq, ID: m.ID.String(), Time: m.Time, Stored: m.Stored, Out: m.Out, Text: m.Text, Delivered: m.Delivered}
}

func apiMessagePtr(m *chat.Message) *api.Message {
	if m == nil {
		return nil
	}
	out := apiMessage(*m)
	return &out
}

func apiMessages(ms []chat.Message) []api.Message {
	out := make([]api.Message, 0, len(ms))
	for _, m := range ms {
		out = append(out, apiMessage(m))
	}
	return out
}

func msgIDs(ids []chat.MsgID) []string {
	out := make([]string, 0, len(ids))
	for _, id := range ids {
		out = append(out, id.String())
	}
	return out
}

func apiChatStats(s chat.Stats) api.ChatStats { return api.ChatStats(s) }

func apiIdentity(i chat.Identity) api.IdentityInfo {
	return api.IdentityInfo{ChatID: i.ID.String(), Nick: i.Nick, Created: i.Created}
}

func apiShare(s share.ShareInfo) api.ShareInfo { return api.ShareInfo(s) }

func apiShares(ss []share.ShareInfo) []api.ShareInfo {
	out := make([]api.ShareInfo, 0, len(ss))
	for _, s := range ss {
		out = append(out, apiShare(s))
	}
	return out
}

func apiScan(s share.ScanStats) api.ScanStats { return api.ScanStats(s) }

func apiDownload(d share.DownloadInfo) api.DownloadInfo {
	out := api.DownloadInfo{
		Root: d.Root, Name: d.Name, Size: d.Size, SizeProven: d.SizeProven, Dir: d.Dir,
		State: api.DownloadState(d.State), Reason: d.Reason, Path: d.Path, Error: d.Error,
		Groups: d.Groups, Verified: d.Verified, Received: d.Received, Done: d.Done, Rate: d.Rate,
		Sources: make([]api.SourceInfo, 0, len(d.Sources)), Added: d.Added, Finished: d.Finished, Anonymous: d.Anonymous,
		ResumedGroups: d.ResumedGroups, FetchedGroups: d.FetchedGroups, DuplicateGroups: d.DuplicateGroups, BadRanges: d.BadRanges,
	}
	for _, s := range d.Sources {
		out.Sources = append(out.Sources, api.SourceInfo(s))
	}
	return out
}

// publishDownloadEvent puts a download event of the share manager on the
// bus as the API shows it.
func (n *Node) publishDownloadEvent(typ string, info share.DownloadInfo) {
	n.dlCounts.observe(typ, info)
	n.events.Publish(api.EventType(typ), apiDownload(info))
}

func apiReachState(s f2f.ReachState) api.ReachState {
	out := api.ReachState{State: s.State, How: s.How, Reachable: s.Reachable, Unreachable: s.Unreachable,
		Observed: s.Observed, Checked: s.Checked}
	for _, p := range s.CheckedBy {
		out.CheckedBy = append(out.CheckedBy, p.String())
	}
	return out
}

func apiLobbyMessage(m chat.LobbyMessage) api.LobbyMessage {
	return api.LobbyMessage{Seq: m.Seq, Lobby: m.Lobby.String(), ID: m.ID.String(), Kind: api.LobbyKind(m.Kind.String()),
		Author: m.Author.String(), Nick: m.Nick, Time: m.Time, Stored: m.Stored, Text: m.Text}
}

func (n *Node) apiLobbyInvite(inv chat.LobbyInvite) api.LobbyInvite {
	return api.LobbyInvite{Lobby: inv.Lobby.String(), Name: inv.Name, Topic: inv.Topic, Private: inv.Private,
		From: inv.From, Nick: inv.Nick, Received: inv.Received, FromName: n.friendName(inv.From)}
}
