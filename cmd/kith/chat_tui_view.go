package main

// Drawing of the chat window. The screen, top to bottom:
//
//	Friends (2)         │ bob ● online
//	● bob             2 │ 12:01 me: hi ✓
//	○ carol             │ 12:02 bob: hello
//	                    │
//	────────────────────┴───────────────────────────
//	bob is typing…
//	> message bob (Enter sends)
//	Tab/^N/^P friend · Enter send · PgUp/PgDn scroll · Esc quit
//
// The status line shows errors in place of the key help.

import (
	"fmt"
	"strings"
	"time"

	"github.com/charmbracelet/lipgloss"

	"kith/internal/peertext"
)

const (
	// tuiMinWidth and tuiMinHeight are the smallest window drawn.
	tuiMinWidth, tuiMinHeight = 40, 8
	// tuiChrome is the rows below the panes: rule, typing, input, status.
	tuiChrome = 4
	// tuiHelp is the status line when there is nothing to report.
	tuiHelp = "Tab/^N/^P friend · Enter send · PgUp/PgDn scroll · Esc quit"
)

var (
	styleTitle    = lipgloss.NewStyle().Bold(true)
	styleFaint    = lipgloss.NewStyle().Faint(true)
	styleSelected = lipgloss.NewStyle().Reverse(true)
	styleOnline   = lipgloss.NewStyle().Foreground(lipgloss.Color("2"))
	styleUnread   = lipgloss.NewStyle().Bold(true).Foreground(lipgloss.Color("3"))
	styleMe       = lipgloss.NewStyle().Bold(true).Foreground(lipgloss.Color("4"))
	styleThem     = lipgloss.NewStyle().Bold(true).Foreground(lipgloss.Color("5"))
	styleError    = lipgloss.NewStyle().Foreground(lipgloss.Color("1"))
	styleTyping   = lipgloss.NewStyle().Italic(true).Faint(true)
)

// panes returns the widths of the friends pane and the conversation pane
// (a rule and a space run between them) and the height of both.
func (m *chatModel) panes() (left, right, height int) {
	left = min(max(m.width/4, 14), 24)
	return left, m.width - left - 2, m.height - tuiChrome
}

// layout sizes the conversation and the input to the window.
func (m *chatModel) layout() {
	_, right, height := m.panes()
	// Whether the view was at the bottom is read before the text
	// re-wraps to the new size; the pane's header takes one line.
	bottom := m.view.AtBottom()
	m.view.Width, m.view.Height = max(right, 1), max(height-1, 1)
	m.input.Width = max(m.width-lipgloss.Width(m.input.Prompt)-1, 1)
	m.renderConversation(bottom)
}

// renderConversation fills the viewport with the selected conversation,
// staying at the bottom when it was there or when bottom is set.
func (m *chatModel) renderConversation(bottom bool) {
	if m.width < tuiMinWidth || m.height < tuiMinHeight {
		return
	}
	bottom = bottom || m.view.AtBottom()
	m.view.SetContent(m.conversationText(m.view.Width))
	if bottom {
		m.view.GotoBottom()
	}
}

// conversationText draws the selected conversation, width columns wide.
func (m *chatModel) conversationText(width int) string {
	f := m.selected()
	if f == nil {
		return styleFaint.Render("No friends yet: add one with `kith friend add INVITE`.")
	}
	cv := m.convo(f.id)
	if len(cv.msgs) == 0 {
		if !cv.loaded {
			return styleFaint.Render("loading…")
		}
		return styleFaint.Render("No messages yet: say hello.")
	}
	name := peertext.Line(f.name)
	var b strings.Builder
	for i, msg := range cv.msgs {
		who, mark := styleThem.Render(name), ""
		if msg.Out {
			who, mark = styleMe.Render("me"), " …"
			if msg.Delivered {
				mark = " ✓"
			}
		}
		if i > 0 {
			b.WriteByte('\n')
		}
		head := styleFaint.Render(stamp(msg.Time)) + " " + who + ": "
		text := peertext.Text(msg.Text) + styleFaint.Render(mark)
		// The text wraps in its own column after the head, unless a
		// long name leaves it too narrow.
		if hw := lipgloss.Width(head); hw <= width/2 {
			b.WriteString(lipgloss.JoinHorizontal(lipgloss.Top, head, lipgloss.NewStyle().Width(width-hw).Render(text)))
		} else {
			b.WriteString(lipgloss.NewStyle().Width(width).Render(head + text))
		}
	}
	return b.String()
}

// stamp is a message's time: the clock today, with the date otherwise.
func stamp(t time.Time) string {
	t = t.Local()
	if y, mo, d := t.Date(); y == time.Now().Year() && mo == time.Now().Month() && d == time.Now().Day() {
		return t.Format("15:04")
	}
	return t.Format("Jan 2 15:04")
}

// View draws the window.
func (m *chatModel) View() string {
	if m.width == 0 {
		return ""
	}
	if m.width < tuiMinWidth || m.height < tuiMinHeight {
		return lipgloss.NewStyle().Width(m.width).Render(
			fmt.Sprintf("The chat window needs at least %dx%d (Esc quits).", tuiMinWidth, tuiMinHeight))
	}
	left, right, height := m.panes()
	rule := styleFaint.Render(strings.TrimSuffix(strings.Repeat("│ \n", height), "\n"))
	body := lipgloss.JoinHorizontal(lipgloss.Top,
		m.friendsPane(left, height), rule,
		lipgloss.JoinVertical(lipgloss.Left, m.conversationHeader(right), m.view.View()))

	typing := ""
	if f := m.selected(); f != nil && m.convo(f.id).typingUntil.After(time.Now()) {
		typing = styleTyping.Render(peertext.Line(f.name) + " is typing…")
	}
	status := styleFaint.Render(truncate(tuiHelp, m.width))
	if m.status != "" {
		status = truncate(peertext.Line(m.status), m.width)
		if m.statusErr {
			status = styleError.Render(status)
		}
	}
	line := lipgloss.NewStyle().MaxWidth(m.width)
	return lipgloss.JoinVertical(lipgloss.Left,
		body,
		styleFaint.Render(strings.Repeat("─", left)+"┴"+strings.Repeat("─", right+1)),
		line.Render(typing),
		line.Render(m.input.View()),
		line.Render(status))
}

// friendsPane draws the friends list, width by height, scrolled so the
// selected friend shows.
func (m *chatModel) friendsPane(width, height int) string {
	lines := []string{styleTitle.Render(truncate(fmt.Sprintf("Friends (%d)", len(m.friends)), width))}
	rows := height - 1
	start := max(0, m.sel-rows+1)
	for i := start; i < len(m.friends) && i < start+rows; i++ {
		f := m.friends[i]
		dot := "○"
		if f.online {
			dot = "●"
		}
		count := ""
		if f.unread > 0 {
			count = fmt.Sprintf(" %d", f.unread)
		}
		name := truncate(peertext.Line(f.name), width-3-lipgloss.Width(count))
		pad := strings.Repeat(" ", max(0, width-3-lipgloss.Width(name)-lipgloss.Width(count)))
		if i == m.sel {
			lines = append(lines, styleSelected.Render(dot+" "+name+pad+count))
			continue
		}
		if f.online {
			dot = styleOnline.Render(dot)
		} else {
			dot = styleFaint.Render(dot)
		}
		lines = append(lines, dot+" "+name+pad+styleUnread.Render(count))
	}
	return lipgloss.NewStyle().Width(width).Height(height).MaxHeight(height).Render(strings.Join(lines, "\n"))
}

// conversationHeader is the line above the conversation: the friend,
// presence, and a hint when newer messages are below the view.
func (m *chatModel) conversationHeader(width int) string {
	f := m.selected()
	if f == nil {
		return strings.Repeat(" ", width)
	}
	head := styleTitle.Render(peertext.Line(f.name)) + " "
	if f.online {
		head += styleOnline.Render("● online")
	} else {
		head += styleFaint.Render("○ offline")
	}
	if !m.view.AtBottom() {
		head += styleFaint.Render("  ↓ more below (PgDn)")
	}
	return lipgloss.NewStyle().Width(width).MaxWidth(width).Render(head)
}

// truncate shortens s to width columns, ending it with "…" when cut.
func truncate(s string, width int) string {
	if width <= 0 {
		return ""
	}
	if lipgloss.Width(s) <= width {
		return s
	}
	r := []rune(s)
	for len(r) > 0 && lipgloss.Width(string(r))+1 > width {
		r = r[:len(r)-1]
	}
	return string(r) + "…"
}
