package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"kith/node/api"
)

// Payloads a hostile friend puts where the web UI shows peer text. Each
// calls the page hook's __pwn if it ever runs (an inline handler or a
// script element made from it); none has a "/" so that each can be a file
// name too.
const (
	xssNick     = `<img src=x onerror=__pwn('nick')>`
	xssIdentity = `"><svg onload=__pwn('identity')>`
	xssShare    = `<b onclick=__pwn('share')>films`
	xssFile1    = `<img src=x onerror=__pwn('file')>.mkv`
	xssFile2    = `"><script>__pwn('script')<!--.txt`
	xssFile3    = `'><iframe srcdoc=x onload=__pwn('iframe')>.txt`
	xssChat     = `<img src=x onerror=__pwn('chat')> "><script>__pwn('chat2')</script>`
	xssLobby    = `<img src=x onerror=__pwn('lobby')>`
	xssTopic    = `"><script>__pwn('topic')</script>`
	xssLobbyMsg = `<script>__pwn('lobbymsg')</script><img src=x onerror=window.__pwned=1>`
	// A name with a right-to-left override reads "invoiceexe.pdf" where it
	// is obeyed; the page shows the override as a visible escape.
	bidiFile = "invoice\u202efdp.exe"
)

// TestWebUIHostileFriend: a friend's nickname, shared folder and file
// names, chat messages, lobby name and topic, chat identity nick and lobby
// messages are markup and script. alice's pages show every one of them as
// literal text on Friends, Browse, Search, Downloads, Chat and Lobbies,
// and the page hook records no call of a payload, no CSP violation and
// no element made from one. A control in a tab without the page's CSP
// shows the hook does catch such a payload where it is parsed as HTML.
func TestWebUIHostileFriend(t *testing.T) {
	chromiumPath(t)
	dir := t.TempDir()
	homeA, homeM := filepath.Join(dir, "alice"), filepath.Join(dir, "mallory")
	mustKith(t, "init", "--name", "alice", "--home", homeA)
	mustKith(t, "init", "--name", xssNick, "--home", homeM)
	webUp(t, homeA)
	startDaemon(t, homeM, "--no-web")
	var idA, idM api.InviteInfo
	json.Unmarshal([]byte(mustKith(t, "id", "--json", "--home", homeA)), &idA)
	json.Unmarshal([]byte(mustKith(t, "id", "--json", "--home", homeM)), &idM)

	br := newBrowser(t)
	a := br.tab("alice")
	a.login(webLoginLink(t, homeA))

	// The control: in a tab where the page's CSP is bypassed, a payload
	// put into the page as HTML runs, and the hook records its call.
	ctl := br.tab("control")
	ctl.bypassCSP()
	ctl.login(webLoginLink(t, homeA))
	ctl.eval(`document.body.insertAdjacentHTML('beforeend', `+jsString(xssNick)+`)`, nil)
	ctl.waitJS("the control: the hook records the payload running", `window.__kithHook.calls.includes("__pwn(nick)")`, 5*time.Second)

	// alice adds mallory's invite on her page, with the name it carries.
	a.open("#/friends")
	a.setValue(`[data-test=add-invite]`, idM.Invite)
	a.click(`[data-test=add-friend]`)
	mustKith(t, "friend", "add", idA.Invite, "--home", homeM)
	a.waitJS("mallory online", fmt.Sprintf(`(() => { const r = document.querySelector('tr[data-peer=%q]'); return r && r.textContent.includes('online') && !r.textContent.includes('offline'); })()`, idM.PeerID), 30*time.Second)
	literal := func(tb *tab, what, sel, want string) {
		t.Helper()
		tb.waitJS(what+" shown literally", fmt.Sprintf(`[...document.querySelectorAll(%q)].some((e) => e.textContent === %s)`, sel, jsString(want)), 20*time.Second)
	}
	literal(a, "the nickname", fmt.Sprintf(`tr[data-peer=%q] td.name > bdi`, idM.PeerID), xssNick)
	a.checkClean()

	// mallory shares files with hostile names, browsable and anonymous.
	share := filepath.Join(dir, xssShare)
	os.MkdirAll(share, 0o700)
	for _, n := range []string{xssFile1, xssFile2, xssFile3, bidiFile} {
		if err := os.WriteFile(filepath.Join(share, n), []byte("payload "+n), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	mustKith(t, "share", "add", share, "--browsable", "--anonymous", "--home", homeM)

	a.open("#/browse/" + idM.PeerID)
	literal(a, "the shared folder", `[data-test=folder] bdi`, xssShare)
	a.click(`[data-test=folder]`)
	for _, n := range []string{xssFile1, xssFile2, xssFile3} {
		literal(a, "file "+n, `tr[data-test=file] td.name > bdi`, n)
	}
	literal(a, "the bidi override as an escape", `tr[data-test=file] td.name > bdi`, `invoice\u202efdp.exe`)
	literal(a, "the crumbs", `[data-test=crumbs] bdi`, xssShare)
	a.screenshot("hostile-browse")
	a.checkClean()
	// Download one: the toast and the Downloads page show its name.
	a.click(`tr[data-test=file] [data-test=download]`)
	a.open("#/downloads")
	a.waitJS("the download done", `[...document.querySelectorAll('tr[data-test=download-row] [data-test=state]')].some((e) => e.textContent === 'done')`, 30*time.Second)
	var names []string
	a.eval(`[...document.querySelectorAll('tr[data-test=download-row] td.name > bdi')].map((e) => e.textContent)`, &names)
	if len(names) != 1 || !slices.Contains([]string{xssFile1, xssFile2, xssFile3, `invoice\u202efdp.exe`}, names[0]) {
		t.Fatalf("the Downloads page shows %q", names)
	}
	a.checkClean()

	// Search: the hostile names come back as results.
	a.open("#/search")
	var found bool
	for try := 0; try < 6 && !found; try++ {
		a.setValue(`[data-test=search-q]`, "onerror")
		a.click(`[data-test=search-go]`)
		deadline := time.Now().Add(6 * time.Second)
		for time.Now().Before(deadline) && !found {
			var got []string
			a.eval(`[...document.querySelectorAll('tr[data-test=result] td.name > bdi')].map((e) => e.textContent)`, &got)
			found = slices.Contains(got, xssFile1)
			time.Sleep(200 * time.Millisecond)
		}
	}
	if !found {
		t.Fatalf("searching mallory's hostile name found nothing: %q", a.text(`[data-test=search-state]`))
	}
	a.checkClean()

	// Chat: mallory's messages, alice's unread list and the conversation.
	mustKith(t, "chat", "send", idA.PeerID, xssChat, "--home", homeM)
	a.open("#/chat")
	literal(a, "the conversation's name", `[data-test=conversations] a > bdi`, xssNick)
	literal(a, "the last message's preview (its first 60 characters)", `[data-test=conversations] .preview bdi`, xssChat[:60])
	a.open("#/chat/friend/" + idM.PeerID)
	literal(a, "the message", `[data-test=msg] .body > bdi`, xssChat)
	literal(a, "the conversation's head", `.thread-head h2 > bdi`, xssNick)
	a.checkClean()

	// Lobbies: mallory's identity and lobby are hostile; alice makes an
	// identity on her page, joins on her page, and reads.
	a.open("#/chat/identities")
	a.setValue(`[data-test=identity-nick]`, "alice in lobbies")
	a.click(`[data-test=identity-new]`)
	a.waitJS("alice's identity", `document.querySelector('[data-test=identities]').textContent.includes('alice in lobbies')`, 10*time.Second)
	// alice's lobby list is open when mallory makes the lobby: it shows up
	// there by itself.
	a.open("#/chat/lobbies")
	a.waitJS("the lobby list", `document.querySelector('[data-test=lobby-create]') !== null`, 10*time.Second)
	mustKith(t, "identity", "new", xssIdentity, "--home", homeM)
	lobby := strings.TrimSpace(mustKith(t, "lobby", "create", xssLobby, "--topic", xssTopic, "--home", homeM))
	literal(a, "the announced lobby's name", fmt.Sprintf(`tr[data-lobby=%q] td.name > bdi`, lobby), xssLobby)
	literal(a, "its topic", fmt.Sprintf(`tr[data-lobby=%q] td.name .muted bdi`, lobby), xssTopic)
	literal(a, "the friend announcing it", fmt.Sprintf(`tr[data-lobby=%q] td bdi`, lobby), xssNick)
	a.screenshot("lobbies")
	a.click(fmt.Sprintf(`tr[data-lobby=%q] [data-test=join]`, lobby))
	a.waitJS("the lobby's page", `location.hash.startsWith('#/chat/lobby/')`, 10*time.Second)
	mustKith(t, "lobby", "send", lobby, xssLobbyMsg, "--home", homeM)
	literal(a, "the lobby message", `[data-test=msg] .body > bdi`, xssLobbyMsg)
	literal(a, "its author's nick", `[data-test=msg] .meta > bdi`, xssIdentity)
	literal(a, "the member list", `[data-test=members] li > bdi`, xssIdentity)
	literal(a, "the lobby's head", `.thread-head h2 > bdi`, xssLobby)
	a.typeKeys(`[data-test=compose]`, "hello mallory\r")
	literal(a, "alice's own lobby message", `[data-test=msg] .body > bdi`, "hello mallory")
	a.screenshot("lobby")
	a.checkClean()

	// Friends again, after all of it; and the Status page.
	a.open("#/friends")
	literal(a, "the nickname", fmt.Sprintf(`tr[data-peer=%q] td.name > bdi`, idM.PeerID), xssNick)
	a.open("#/status")
	a.waitJS("status", `document.querySelector('[data-test=friends-online]') !== null`, 10*time.Second)
	a.checkClean()
}

// jsString quotes s as a JavaScript string literal.
func jsString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}
