package main

// The interactive chat window of `kith chat`: a bubbletea program that
// shows the friends list and one conversation, and talks to the daemon
// only through its API. Live changes come from the daemon's event
// stream; a periodic resync heals whatever the stream missed (the gap
// before it connects, a daemon restart), so the window never has to
// trust that it saw every event.

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/charmbracelet/bubbles/textinput"
	"github.com/charmbracelet/bubbles/viewport"
	tea "github.com/charmbracelet/bubbletea"
	"golang.org/x/term"

	"kith/internal/peertext"
	"kith/node/api"
)

const (
	// tuiHistory is how many of a conversation's latest messages the
	// window loads when the conversation is first shown.
	tuiHistory = 500
	// tuiKeep caps the messages the window holds per conversation, and
	// tuiKeepBytes their text.
	tuiKeep      = 2000
	tuiKeepBytes = 8 << 20
	// tuiResync is how often the window re-reads the friends list and
	// the shown conversation, to heal missed events.
	tuiResync = 5 * time.Second
	// tuiEventsRetry is the pause before the event stream is reopened
	// after it broke.
	tuiEventsRetry = 2 * time.Second
	// tuiCallTimeout bounds one API call of the window.
	tuiCallTimeout = 15 * time.Second
	// tuiTypingTick is how often the window redraws while a "typing"
	// line is shown, so it disappears on time.
	tuiTypingTick = 500 * time.Millisecond
)

// errNoTerminal is returned by `kith chat` when it does not run in a
// terminal.
var errNoTerminal = errors.New("the chat window needs a terminal (stdin and stdout): " +
	"in scripts use `kith chat send FRIEND TEXT` and `kith chat log FRIEND`")

// runChatTUI runs the interactive chat window until the user quits it. It
// first checks that the daemon answers, so a missing daemon is a plain
// error and not a broken window. The event-stream goroutine it starts has
// stopped when it returns.
func runChatTUI(g *globals) error {
	c, err := g.client()
	if err != nil {
		return err
	}
	if !term.IsTerminal(int(os.Stdin.Fd())) || !term.IsTerminal(int(os.Stdout.Fd())) {
		return errNoTerminal
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	first, firstCancel := context.WithTimeout(ctx, tuiCallTimeout)
	convs, err := c.Conversations(first)
	firstCancel()
	if err != nil {
		return err
	}

	p := tea.NewProgram(newChatModel(ctx, c, convs), tea.WithAltScreen())
	var wg sync.WaitGroup
	// p.Send returns at once after the program ended, so cancel and
	// Wait below cannot hang on a send.
	wg.Go(func() { followEvents(ctx, c, p.Send) })
	_, err = p.Run()
	cancel()
	wg.Wait()
	if err != nil && !errors.Is(err, tea.ErrInterrupted) {
		return fmt.Errorf("running the chat window: %w", err)
	}
	return nil
}

// followEvents feeds the daemon's events to send until ctx ends,
// reopening the stream after it breaks. Each break is reported once as a
// streamDownMsg.
func followEvents(ctx context.Context, c *api.Client, send func(tea.Msg)) {
	for {
		err := c.Events(ctx, func(ev api.Event) error {
			send(eventMsg(ev))
			return nil
		})
		if ctx.Err() != nil {
			return
		}
		send(streamDownMsg{err})
		select {
		case <-ctx.Done():
			return
		case <-time.After(tuiEventsRetry):
		}
	}
}

// Messages of the window's update loop.
type (
	// eventMsg is one event of the daemon's event stream.
	eventMsg api.Event
	// streamDownMsg says the event stream broke (err may be nil when the
	// daemon closed it).
	streamDownMsg struct{ err error }
	// convsMsg is the answer to a Conversations call.
	convsMsg struct {
		convs []api.Conversation
		err   error
	}
	// historyMsg is the answer to a ChatLog call for peer.
	historyMsg struct {
		peer, name string
		msgs       []api.Message
		err        error
	}
	// sentMsg is the answer to a ChatSend call.
	sentMsg struct {
		peer, name, text string
		msg              api.Message
		err              error
	}
	// callErrMsg reports a failed call whose answer is otherwise unused.
	callErrMsg struct {
		what string
		err  error
	}
	// resyncMsg asks for the periodic resync.
	resyncMsg struct{}
	// typingTickMsg asks for a redraw while a typing line is shown.
	typingTickMsg struct{}
)

// friendRow is one friend of the window's list.
type friendRow struct {
	id, name string
	online   bool
	unread   int
	// lastSeq is the newest message's sequence number known.
	lastSeq uint64
}

// convo is what the window holds of the conversation with one friend.
type convo struct {
	msgs        []api.Message // ascending by Seq, no duplicates
	loaded      bool          // the history was read at least once
	typingUntil time.Time
}

// chatModel is the window's state. It is only used on bubbletea's update
// goroutine; the commands it returns run elsewhere and capture only
// immutable values (the client, ids, text), never the model.
type chatModel struct {
	ctx context.Context // ends when the window quits; bounds every call
	c   *api.Client

	friends []*friendRow
	sel     int
	convos  map[string]*convo

	input         textinput.Model
	view          viewport.Model
	width, height int

	status     string
	statusErr  bool
	daemonDown bool // status shows that the daemon is unreachable

	typingSent time.Time // when the last typing notice went out
	ticking    bool      // a typingTickMsg is pending
}

// newChatModel returns the window's state for the friends of convs, with
// the first one selected.
func newChatModel(ctx context.Context, c *api.Client, convs []api.Conversation) *chatModel {
	in := textinput.New()
	in.Prompt = "> "
	in.Focus()
	m := &chatModel{ctx: ctx, c: c, convos: map[string]*convo{}, input: in, view: viewport.New(0, 0)}
	m.mergeFriends(convs)
	m.updatePlaceholder()
	return m
}

// Init loads the selected conversation and starts the resync.
func (m *chatModel) Init() tea.Cmd {
	cmds := []tea.Cmd{textinput.Blink, m.resyncLater()}
	if f := m.selected(); f != nil {
		f.unread = 0
		cmds = append(cmds, m.loadHistory(f), m.markRead(f))
	}
	return tea.Batch(cmds...)
}

// Update handles one message.
func (m *chatModel) Update(msg tea.Msg) (tea.Model, tea.Cmd) {
	switch msg := msg.(type) {
	case tea.WindowSizeMsg:
		m.width, m.height = msg.Width, msg.Height
		m.layout()
		return m, nil
	case tea.KeyMsg:
		return m, m.key(msg)
	case eventMsg:
		return m, m.event(api.Event(msg))
	case streamDownMsg:
		m.daemonDown = true
		switch {
		case errors.Is(msg.err, api.ErrNoDaemon):
			m.status, m.statusErr = describeError(msg.err)+" (retrying)", true
		case msg.err == nil:
			m.setError("lost the daemon's events (retrying)", errors.New("the daemon closed the stream"))
		default:
			m.setError("lost the daemon's events (retrying)", msg.err)
		}
		return m, nil
	case convsMsg:
		return m, m.gotConversations(msg)
	case historyMsg:
		return m, m.gotHistory(msg)
	case sentMsg:
		return m, m.gotSent(msg)
	case callErrMsg:
		m.setError(msg.what, msg.err)
		return m, nil
	case resyncMsg:
		cmds := []tea.Cmd{m.loadConversations(), m.resyncLater()}
		if f := m.selected(); f != nil {
			cmds = append(cmds, m.loadHistory(f))
		}
		return m, tea.Batch(cmds...)
	case typingTickMsg:
		m.ticking = false
		return m, m.typingTick()
	}
	var cmd tea.Cmd
	m.input, cmd = m.input.Update(msg)
	return m, cmd
}

// key handles a key press: window keys first, the rest edits the input.
func (m *chatModel) key(k tea.KeyMsg) tea.Cmd {
	switch k.String() {
	case "esc", "ctrl+c":
		return tea.Quit
	case "tab", "ctrl+n":
		return m.selectFriend(m.sel + 1)
	case "shift+tab", "ctrl+p":
		return m.selectFriend(m.sel - 1)
	case "down":
		if m.input.Value() == "" {
			return m.selectFriend(m.sel + 1)
		}
		return nil
	case "up":
		if m.input.Value() == "" {
			return m.selectFriend(m.sel - 1)
		}
		return nil
	case "pgup":
		m.view.PageUp()
		return nil
	case "pgdown":
		m.view.PageDown()
		return nil
	case "enter":
		return m.send()
	}
	before := m.input.Value()
	var cmd tea.Cmd
	m.input, cmd = m.input.Update(k)
	if v := m.input.Value(); v != before && strings.TrimSpace(v) != "" {
		return tea.Batch(cmd, m.sendTyping())
	}
	return cmd
}

// selected returns the selected friend, or nil when there are none.
func (m *chatModel) selected() *friendRow {
	if m.sel < 0 || m.sel >= len(m.friends) {
		return nil
	}
	return m.friends[m.sel]
}

// friend returns the row of a peer ID, or nil.
func (m *chatModel) friend(id string) *friendRow {
	for _, f := range m.friends {
		if f.id == id {
			return f
		}
	}
	return nil
}

// convo returns the conversation with a peer, made on first use.
func (m *chatModel) convo(id string) *convo {
	cv := m.convos[id]
	if cv == nil {
		cv = &convo{}
		m.convos[id] = cv
	}
	return cv
}

// selectFriend shows friend i (wrapping around), marks it read and
// loads its history.
func (m *chatModel) selectFriend(i int) tea.Cmd {
	n := len(m.friends)
	if n == 0 {
		return nil
	}
	m.sel = (i%n + n) % n
	f := m.friends[m.sel]
	f.unread = 0
	m.typingSent = time.Time{}
	m.updatePlaceholder()
	m.renderConversation(true)
	return tea.Batch(m.loadHistory(f), m.markRead(f))
}

func (m *chatModel) updatePlaceholder() {
	if f := m.selected(); f != nil {
		m.input.Placeholder = "message " + peertext.Line(f.name) + " (Enter sends)"
	} else {
		m.input.Placeholder = "no friends yet: add one with `kith friend add INVITE`"
	}
}

// send sends the input to the selected friend. Text the daemon would
// refuse is caught here, with the reason in the status line.
func (m *chatModel) send() tea.Cmd {
	text := m.input.Value()
	if strings.TrimSpace(text) == "" {
		return nil
	}
	f := m.selected()
	if f == nil {
		m.setError("not sent", errors.New("no friend to send to: add one with `kith friend add INVITE`"))
		return nil
	}
	if err := api.CheckText(text); err != nil {
		m.setError("not sent", fmt.Errorf("%w; Ctrl+U clears the line", err))
		return nil
	}
	m.input.Reset()
	m.typingSent = time.Time{}
	m.clearStatus()
	c, id, name := m.c, f.id, f.name
	return m.call(func(ctx context.Context) tea.Msg {
		msg, err := c.ChatSend(ctx, id, text)
		return sentMsg{peer: id, name: name, text: text, msg: msg, err: err}
	})
}

// sendTyping tells the selected friend the user types, at most once per
// api.TypingInterval.
func (m *chatModel) sendTyping() tea.Cmd {
	f := m.selected()
	if f == nil || time.Since(m.typingSent) < api.TypingInterval {
		return nil
	}
	m.typingSent = time.Now()
	c, id := m.c, f.id
	return m.call(func(ctx context.Context) tea.Msg {
		c.ChatTyping(ctx, id) // best effort: a lost notice only hides a hint
		return nil
	})
}

// call runs fn as a command with a context bounded by the window's
// lifetime and tuiCallTimeout.
func (m *chatModel) call(fn func(ctx context.Context) tea.Msg) tea.Cmd {
	parent := m.ctx
	return func() tea.Msg {
		ctx, cancel := context.WithTimeout(parent, tuiCallTimeout)
		defer cancel()
		return fn(ctx)
	}
}

func (m *chatModel) loadConversations() tea.Cmd {
	c := m.c
	return m.call(func(ctx context.Context) tea.Msg {
		convs, err := c.Conversations(ctx)
		return convsMsg{convs, err}
	})
}

// loadHistory reads what the window lacks of a conversation, page by
// page: the newest page (at most tuiHistory messages) the first time,
// later everything after the oldest message still waiting for delivery
// (so delivery marks heal too) or after the newest held, up to what the
// window keeps.
func (m *chatModel) loadHistory(f *friendRow) tea.Cmd {
	cv := m.convo(f.id)
	var after uint64
	first := !cv.loaded
	switch {
	case first:
	case len(cv.msgs) > 0:
		after = cv.msgs[len(cv.msgs)-1].Seq
		for _, msg := range cv.msgs {
			if msg.Out && !msg.Delivered {
				after = msg.Seq - 1
				break
			}
		}
	}
	c, id, name := m.c, f.id, f.name
	return m.call(func(ctx context.Context) tea.Msg {
		if first {
			msgs, err := c.ChatLogBefore(ctx, id, 0, tuiHistory)
			return historyMsg{peer: id, name: name, msgs: msgs, err: err}
		}
		var all []api.Message
		bytes := 0
		for len(all) < tuiKeep && bytes < tuiKeepBytes {
			page, err := c.ChatLog(ctx, id, after, time.Time{}, 0)
			if err != nil {
				return historyMsg{peer: id, name: name, err: err}
			}
			if len(page) == 0 {
				break
			}
			for _, msg := range page {
				bytes += len(msg.Text)
			}
			all = append(all, page...)
			after = page[len(page)-1].Seq
		}
		return historyMsg{peer: id, name: name, msgs: all}
	})
}

// markRead marks the conversation with f read in the daemon.
func (m *chatModel) markRead(f *friendRow) tea.Cmd {
	c, id, name := m.c, f.id, f.name
	return m.call(func(ctx context.Context) tea.Msg {
		if err := c.ChatRead(ctx, id); err != nil {
			return callErrMsg{"marking the chat with " + peertext.Line(name) + " read", err}
		}
		return nil
	})
}

func (m *chatModel) resyncLater() tea.Cmd {
	return tea.Tick(tuiResync, func(time.Time) tea.Msg { return resyncMsg{} })
}

// typingTick keeps redrawing while some friend is shown typing.
func (m *chatModel) typingTick() tea.Cmd {
	if m.ticking {
		return nil
	}
	now := time.Now()
	for _, cv := range m.convos {
		if cv.typingUntil.After(now) {
			m.ticking = true
			return tea.Tick(tuiTypingTick, func(time.Time) tea.Msg { return typingTickMsg{} })
		}
	}
	return nil
}

// gotConversations merges the friends list from the daemon. Known rows
// keep their place so the list does not jump under the user; new
// friends go to the end.
func (m *chatModel) gotConversations(msg convsMsg) tea.Cmd {
	if msg.err != nil {
		m.daemonDown = true
		m.setError("reading the friends list", msg.err)
		return nil
	}
	if m.daemonDown {
		m.daemonDown = false
		m.clearStatus()
	}
	before := m.selected()
	m.mergeFriends(msg.convs)
	after := m.selected()
	switch {
	case after == nil:
		m.updatePlaceholder()
		m.renderConversation(true)
		return nil
	case before == nil || before.id != after.id:
		return m.selectFriend(m.sel)
	case after.unread > 0:
		// The shown conversation is read as it arrives.
		after.unread = 0
		return m.markRead(after)
	}
	return nil
}

// mergeFriends brings the list in line with convs, keeping the selected
// friend selected when it is still there.
func (m *chatModel) mergeFriends(convs []api.Conversation) {
	var selID string
	if f := m.selected(); f != nil {
		selID = f.id
	}
	byID := map[string]api.Conversation{}
	for _, cv := range convs {
		byID[cv.PeerID] = cv
	}
	var rows []*friendRow
	for _, f := range m.friends {
		if _, ok := byID[f.id]; ok {
			rows = append(rows, f)
		} else {
			delete(m.convos, f.id)
		}
	}
	for _, cv := range convs {
		if !slices.ContainsFunc(rows, func(f *friendRow) bool { return f.id == cv.PeerID }) {
			rows = append(rows, &friendRow{id: cv.PeerID})
		}
	}
	for _, f := range rows {
		cv := byID[f.id]
		f.name, f.online, f.unread = cv.Name, cv.Online, cv.Unread
		if cv.Last != nil {
			f.lastSeq = max(f.lastSeq, cv.Last.Seq)
		}
	}
	m.friends = rows
	m.sel = 0
	for i, f := range rows {
		if f.id == selID {
			m.sel = i
		}
	}
}

// gotHistory merges a history page into its conversation.
func (m *chatModel) gotHistory(msg historyMsg) tea.Cmd {
	if msg.err != nil {
		m.setError("reading the chat with "+peertext.Line(msg.name), msg.err)
		return nil
	}
	f := m.friend(msg.peer)
	if f == nil {
		return nil
	}
	cv := m.convo(msg.peer)
	first := !cv.loaded
	cv.loaded = true
	cv.msgs = mergeMessages(cv.msgs, msg.msgs)
	if n := len(cv.msgs); n > 0 {
		f.lastSeq = max(f.lastSeq, cv.msgs[n-1].Seq)
	}
	if f == m.selected() {
		m.renderConversation(first)
	}
	return nil
}

// gotSent shows a sent message, or why it was not sent, giving the text
// back to the input when it is still empty.
func (m *chatModel) gotSent(msg sentMsg) tea.Cmd {
	if msg.err != nil {
		m.setError("not sent to "+peertext.Line(msg.name), msg.err)
		if m.input.Value() == "" {
			m.input.SetValue(msg.text)
		}
		return nil
	}
	return m.addMessage(msg.peer, msg.msg)
}

// addMessage puts a message into its conversation (the send answer and
// the event of the same message both arrive: merging is by Seq).
func (m *chatModel) addMessage(peer string, msg api.Message) tea.Cmd {
	f := m.friend(peer)
	if f == nil {
		return m.loadConversations()
	}
	cv := m.convo(peer)
	known := slices.ContainsFunc(cv.msgs, func(x api.Message) bool { return x.Seq == msg.Seq })
	cv.msgs = mergeMessages(cv.msgs, []api.Message{msg})
	f.lastSeq = max(f.lastSeq, msg.Seq)
	var cmd tea.Cmd
	if !msg.Out {
		cv.typingUntil = time.Time{}
		if !known {
			if f == m.selected() {
				cmd = m.markRead(f)
			} else {
				f.unread++
			}
		}
	}
	if f == m.selected() {
		m.renderConversation(msg.Out)
	}
	return cmd
}

// event applies one event of the daemon's stream.
func (m *chatModel) event(ev api.Event) tea.Cmd {
	if m.daemonDown {
		m.daemonDown = false
		m.clearStatus()
	}
	switch ev.Type {
	case api.EventChatMessage, api.EventChatDelivered, api.EventChatTyping:
		var ce api.ChatEvent
		if err := ev.Decode(&ce); err != nil {
			return nil
		}
		f := m.friend(ce.PeerID)
		if f == nil {
			return m.loadConversations()
		}
		cv := m.convo(f.id)
		switch ev.Type {
		case api.EventChatMessage:
			if ce.Message != nil {
				return m.addMessage(f.id, *ce.Message)
			}
		case api.EventChatDelivered:
			for i := range cv.msgs {
				if slices.Contains(ce.IDs, cv.msgs[i].ID) {
					cv.msgs[i].Delivered = true
				}
			}
			if f == m.selected() {
				m.renderConversation(false)
			}
		case api.EventChatTyping:
			cv.typingUntil = time.Now().Add(api.TypingShown)
			return m.typingTick()
		}
	case api.EventFriendOnline, api.EventFriendOffline:
		var fi api.FriendInfo
		if err := ev.Decode(&fi); err != nil {
			return nil
		}
		f := m.friend(fi.PeerID)
		if f == nil {
			return m.loadConversations()
		}
		f.online = ev.Type == api.EventFriendOnline
	case api.EventFriendAdded, api.EventFriendRemoved, api.EventDropped:
		return m.loadConversations()
	}
	return nil
}

// mergeMessages merges add into msgs (both ascending by Seq): a message
// of add replaces the held one of the same Seq. At most tuiKeep of the
// newest, and tuiKeepBytes of text, are kept.
func mergeMessages(msgs, add []api.Message) []api.Message {
	for _, a := range add {
		i, found := slices.BinarySearchFunc(msgs, a.Seq, func(x api.Message, seq uint64) int {
			switch {
			case x.Seq < seq:
				return -1
			case x.Seq > seq:
				return 1
			}
			return 0
		})
		if found {
			// A delivered mark never goes back: an older answer may
			// race with the delivered event.
			a.Delivered = a.Delivered || msgs[i].Delivered
			msgs[i] = a
		} else {
			msgs = slices.Insert(msgs, i, a)
		}
	}
	if len(msgs) > tuiKeep {
		msgs = slices.Delete(msgs, 0, len(msgs)-tuiKeep)
	}
	bytes, cut := 0, 0
	for i := len(msgs) - 1; i >= 0; i-- {
		if bytes += len(msgs[i].Text); bytes > tuiKeepBytes && i < len(msgs)-1 {
			cut = i + 1
			break
		}
	}
	return slices.Delete(msgs, 0, cut)
}

// setError shows in the status line that what failed, and why.
func (m *chatModel) setError(what string, err error) {
	m.status, m.statusErr = what+": "+describeError(err), true
}

// describeError words err for the short status line: a missing daemon
// is told by the advice alone, without the dial error behind it.
func describeError(err error) string {
	if errors.Is(err, api.ErrNoDaemon) {
		return "the daemon is not running: start it with `kith up`"
	}
	return err.Error()
}

func (m *chatModel) clearStatus() { m.status, m.statusErr = "", false }
