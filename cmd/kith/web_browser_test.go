package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	cdpbrowser "github.com/chromedp/cdproto/browser"
	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
)

// The web UI's browser tests drive Debian's chromium (headless) with
// chromedp against real `kith up` daemons. They skip, saying so, where
// chromium is not installed; .ci/run installs it.

// chromiumPath finds the browser, or skips the test.
func chromiumPath(t *testing.T) string {
	t.Helper()
	for _, name := range []string{os.Getenv("KITH_CHROMIUM"), "chromium", "chromium-browser", "google-chrome"} {
		if name == "" {
			continue
		}
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Skip("chromium is not installed: the web UI's browser tests need it (Debian: apt-get install chromium; .ci/run installs it)")
	return ""
}

// webUp starts a daemon on home with its web UI on a free loopback port
// and returns it.
func webUp(t *testing.T, home string, extra ...string) *daemon {
	t.Helper()
	return startDaemon(t, home, append([]string{"--web", "127.0.0.1:0"}, extra...)...)
}

// webLoginLink asks `kith web` for a one-time login link.
func webLoginLink(t *testing.T, home string) string {
	t.Helper()
	var l struct {
		URL string `json:"url"`
	}
	if err := json.Unmarshal([]byte(mustKith(t, "web", "--json", "--no-open", "--home", home)), &l); err != nil || !strings.Contains(l.URL, "/login?token=") {
		t.Fatalf("kith web --json: %q (%v)", l.URL, err)
	}
	return l.URL
}

// webBase is the web UI's address (http://127.0.0.1:PORT) from a login link.
func webBase(login string) string {
	return login[:strings.Index(login, "/login?")]
}

// hookJS runs in every page before its own scripts: it records any call
// of the hostile payloads' hooks (__pwn(...), window.__pwned = ...), every
// Content-Security-Policy violation (an inline handler or script that
// the page's own code would have let in), and every element of the
// payloads' kinds (img src=x, script, iframe, svg, object) added to the
// document other than the page's own module script.
const hookJS = `(() => {
  const rec = { calls: [], violations: [], elements: [] };
  Object.defineProperty(window, '__kithHook', { value: rec });
  Object.defineProperty(window, '__pwn', { value: (w) => rec.calls.push('__pwn(' + String(w) + ')') });
  Object.defineProperty(window, '__pwned', { set: (v) => rec.calls.push('__pwned=' + String(v)), get: () => undefined });
  document.addEventListener('securitypolicyviolation', (e) => rec.violations.push(e.violatedDirective + ' ' + e.blockedURI + ' ' + (e.sample || '')));
  const bad = (n) => {
    if (n.nodeType !== 1) return;
    const els = [n, ...n.querySelectorAll('*')];
    for (const e of els) {
      const tag = e.tagName.toLowerCase();
      if (tag === 'script' && e.getAttribute('src') === '/app.js') continue;
      if (tag === 'img' && (e.getAttribute('src') || '').startsWith('blob:')) continue;
      if (['script', 'iframe', 'svg', 'object', 'embed'].includes(tag) || (tag === 'img' && e.getAttribute('src') === 'x') ||
          [...e.attributes].some((a) => a.name.startsWith('on'))) rec.elements.push(e.outerHTML.slice(0, 200));
    }
  };
  new MutationObserver((ms) => { for (const m of ms) for (const n of m.addedNodes) bad(n); })
    .observe(document, { childList: true, subtree: true });
})();`

// browser is one headless chromium; tab opens a page in it.
type browser struct {
	t     *testing.T
	ctx   context.Context
	mu    sync.Mutex
	fails []string // exceptions thrown in any page
}

func newBrowser(t *testing.T, extra ...chromedp.ExecAllocatorOption) *browser {
	t.Helper()
	bin := chromiumPath(t)
	opts := append(append(chromedp.DefaultExecAllocatorOptions[:], extra...),
		chromedp.ExecPath(bin),
		chromedp.WindowSize(1280, 900),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.Flag("lang", "en-US"),
	)
	if os.Geteuid() == 0 {
		// Chromium's sandbox refuses to run as root; only then is it off.
		opts = append(opts, chromedp.NoSandbox)
	}
	actx, acancel := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	if err := chromedp.Do(ctx); err != nil {
		cancel()
		acancel()
		t.Fatalf("starting chromium (%s): %v", bin, err)
	}
	t.Cleanup(func() { cancel(); acancel() })
	return &browser{t: t, ctx: ctx}
}

// tab is one page of the browser.
type tab struct {
	b    *browser
	name string
	ctx  context.Context
	base string // http://127.0.0.1:PORT of the daemon it shows
}

// tab opens a new tab (in a window of its own, so that it draws) with the
// hooks installed; dialogs (confirm) are accepted.
func (b *browser) tab(name string) *tab {
	b.t.Helper()
	ctx, cancel := chromedp.NewContext(b.ctx)
	b.t.Cleanup(cancel)
	tb := &tab{b: b, name: name, ctx: ctx}
	if err := chromedp.Do(ctx); err != nil {
		b.t.Fatalf("%s: opening a tab: %v", name, err)
	}
	err := chromedp.Listen(ctx, func(ev any) {
		switch e := ev.(type) {
		case *runtime.EventExceptionThrown:
			d := e.ExceptionDetails
			msg := d.Text
			if d.Exception != nil {
				msg += " " + d.Exception.Description
			}
			b.mu.Lock()
			b.fails = append(b.fails, fmt.Sprintf("%s: %s (%s:%d)", name, msg, d.URL, d.LineNumber))
			b.mu.Unlock()
		case *page.EventJavascriptDialogOpening:
			go chromedp.Call(ctx, page.HandleJavaScriptDialog, page.HandleJavaScriptDialogParams{Accept: true})
		}
	})
	if err != nil {
		b.t.Fatalf("%s: listening to the tab: %v", name, err)
	}
	if _, err := chromedp.Call(ctx, page.AddScriptToEvaluateOnNewDocument, page.AddScriptToEvaluateOnNewDocumentParams{Source: hookJS}); err != nil {
		b.t.Fatalf("%s: installing the page hook: %v", name, err)
	}
	return tb
}

// bypassCSP switches the page's Content-Security-Policy off in this tab
// (for a control that shows what a payload would do without it).
func (tb *tab) bypassCSP() {
	tb.b.t.Helper()
	if _, err := chromedp.Call(tb.ctx, page.SetBypassCSP, page.SetBypassCSPParams{Enabled: true}); err != nil {
		tb.b.t.Fatalf("%s: bypassing the CSP: %v", tb.name, err)
	}
}

// clipboard returns what the page put on the clipboard (the tab's origin
// is allowed to read it back, and the tab is brought to the front).
func (tb *tab) clipboard() string {
	tb.b.t.Helper()
	for _, perm := range []string{"clipboard-read", "clipboard-write"} {
		if _, err := chromedp.CallBrowser(tb.ctx, cdpbrowser.SetPermission, cdpbrowser.SetPermissionParams{
			Permission: &cdpbrowser.PermissionDescriptor{Name: perm}, Setting: cdpbrowser.PermissionSettingGranted, Origin: tb.base}); err != nil {
			tb.b.t.Fatalf("%s: allowing %s: %v", tb.name, perm, err)
		}
	}
	if _, err := chromedp.Call(tb.ctx, page.BringToFront, cdp.Empty{}); err != nil {
		tb.b.t.Fatalf("%s: bringing the tab to the front: %v", tb.name, err)
	}
	var s string
	tb.eval(`navigator.clipboard.readText()`, &s)
	return s
}

// exceptions returns the exceptions thrown in the browser's pages.
func (b *browser) exceptions() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.fails...)
}

// do runs actions in the tab, failing the test on error.
func (tb *tab) do(what string, actions ...chromedp.Action[chromedp.Void]) {
	tb.b.t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, 60*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		tb.b.t.Fatalf("%s: %s: %v", tb.name, what, err)
	}
}

// login opens a login link and waits for the page to be live.
func (tb *tab) login(link string) {
	tb.b.t.Helper()
	tb.base = webBase(link)
	tb.do("login", chromedp.Navigate(link))
	tb.waitJS("the page is live", `document.querySelector('#live.on') !== null`, 20*time.Second)
}

// open shows a page of the UI (a #fragment) and waits for it.
func (tb *tab) open(frag string) {
	tb.b.t.Helper()
	tb.do("open "+frag, chromedp.Evaluate[chromedp.Void](fmt.Sprintf(`location.hash = %q; undefined`, frag)))
	tb.waitJS("page "+frag, `document.querySelector('main h1, main .chat') !== null`, 10*time.Second)
}

// eval evaluates a JavaScript expression (awaiting a promise) into out.
func (tb *tab) eval(expr string, out any) {
	tb.b.t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, 60*time.Second)
	defer cancel()
	raw, err := chromedp.Run(ctx, chromedp.Evaluate[json.RawMessage](`(async () => JSON.stringify((await (`+expr+`)) ?? null))()`, chromedp.EvalAwaitPromise))
	if err != nil {
		tb.b.t.Fatalf("%s: eval %s: %v", tb.name, expr, err)
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		tb.b.t.Fatalf("%s: eval %s: %s: %v", tb.name, expr, raw, err)
	}
	if out != nil {
		if err := json.Unmarshal([]byte(s), out); err != nil {
			tb.b.t.Fatalf("%s: eval %s: %s: %v", tb.name, expr, s, err)
		}
	}
}

// waitJS polls expr until it is true.
func (tb *tab) waitJS(what, expr string, timeout time.Duration) {
	tb.b.t.Helper()
	// Waiting longer costs nothing when the page is right; on a loaded
	// machine (-race, chromium and daemons on two cores) it is slow.
	timeout = max(timeout, 45*time.Second)
	deadline := time.Now().Add(timeout)
	for {
		ctx, cancel := context.WithTimeout(tb.ctx, 10*time.Second)
		ok, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`!!(`+expr+`)`))
		cancel()
		if err == nil && ok {
			return
		}
		if time.Now().After(deadline) {
			ctx, cancel := context.WithTimeout(tb.ctx, 5*time.Second)
			body, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.body ? document.body.innerText.slice(0, 3000) : ''`))
			hook, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`JSON.stringify(window.__kithHook)`))
			cancel()
			tb.b.t.Fatalf("%s: waiting for %s (%s): %v\npage text:\n%s\npage hook: %s\nexceptions: %v", tb.name, what, expr, err, body, hook, tb.b.exceptions())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// click clicks the first element matching a CSS selector.
func (tb *tab) click(sel string) {
	tb.b.t.Helper()
	tb.do("click "+sel, chromedp.Click(chromedp.CSS(sel), chromedp.NodeVisible))
}

// setValue sets an input's or textarea's value (as a paste does).
func (tb *tab) setValue(sel, v string) {
	tb.b.t.Helper()
	tb.do("set "+sel, chromedp.SetValue(chromedp.CSS(sel), v))
}

// typeKeys types text into an element, key by key.
func (tb *tab) typeKeys(sel, text string) {
	tb.b.t.Helper()
	tb.do("type into "+sel, chromedp.SendKeys(chromedp.CSS(sel), text))
}

// text returns the textContent of the first element matching sel.
func (tb *tab) text(sel string) string {
	tb.b.t.Helper()
	var s string
	tb.eval(fmt.Sprintf(`(document.querySelector(%q) || {textContent: ''}).textContent`, sel), &s)
	return s
}

// hook returns what the page hook recorded.
func (tb *tab) hook() (calls, violations, elements []string) {
	tb.b.t.Helper()
	var rec struct {
		Calls      []string `json:"calls"`
		Violations []string `json:"violations"`
		Elements   []string `json:"elements"`
	}
	tb.eval(`window.__kithHook`, &rec)
	return rec.Calls, rec.Violations, rec.Elements
}

// checkClean fails the test if the page hook recorded anything or a page
// threw.
func (tb *tab) checkClean() {
	tb.b.t.Helper()
	calls, violations, elements := tb.hook()
	if len(calls)+len(violations)+len(elements) > 0 {
		tb.b.t.Fatalf("%s: the page ran or built hostile markup: calls %q, CSP violations %q, elements %q", tb.name, calls, violations, elements)
	}
	if ex := tb.b.exceptions(); len(ex) > 0 {
		tb.b.t.Fatalf("exceptions in the pages: %q", ex)
	}
}

// screenshot writes the tab's page to docs/screenshots/NAME.png when
// KITH_SCREENSHOTS=1 (the README shows them).
func (tb *tab) screenshot(name string) {
	tb.b.t.Helper()
	if os.Getenv("KITH_SCREENSHOTS") != "1" {
		return
	}
	// The toasts of the steps before are cleared: they would hide the page.
	tb.eval(`document.getElementById('toasts').replaceChildren()`, nil)
	time.Sleep(200 * time.Millisecond)
	ctx, cancel := context.WithTimeout(tb.ctx, 30*time.Second)
	png, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
	cancel()
	if err != nil {
		tb.b.t.Fatalf("%s: screenshot %s: %v", tb.name, name, err)
	}
	dir := filepath.Join("..", "..", "docs", "screenshots")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		tb.b.t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name+".png"), png, 0o644); err != nil {
		tb.b.t.Fatal(err)
	}
}
