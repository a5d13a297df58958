// DOM helpers. Every element of the page is made here, with
// createElement and text nodes: nothing is ever parsed as HTML, so a
// friend's file name, nickname or message can only ever be text. The page's
// Content-Security-Policy requires Trusted Types, so an HTML sink (innerHTML,
// outerHTML, insertAdjacentHTML, document.write) throws if any code tries one.

// Attributes h() sets; anything else is refused (an attribute named by
// mistake after data, such as "style" or "onclick", must fail loudly).
const ATTRS = new Set([
  'type', 'value', 'placeholder', 'title', 'name', 'for', 'rows', 'cols', 'max', 'min', 'step',
  'disabled', 'readonly', 'hidden', 'role', 'spellcheck', 'autocomplete', 'tabindex', 'colspan',
  'maxlength', 'alt', 'width', 'height', 'download', 'id', 'open', 'required', 'multiple', 'selected',
]);

// h(tag, props, ...children) makes an element. props: class, on<event>
// (functions), value, checked, href (only "#..." or "/..."), src (only
// blob: or "/..."), data-* and aria-* and the attributes above. Children
// are nodes or strings (which become text), arrays of them, or null.
export function h(tag, props, ...kids) {
  const el = document.createElement(tag);
  if (props) {
    for (const [k, v] of Object.entries(props)) {
      if (v === undefined || v === null || v === false) continue;
      if (k === 'class') el.className = v;
      else if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
      else if (k === 'value') el.value = v;
      else if (k === 'checked') el.checked = true;
      else if (k === 'href') el.setAttribute('href', safeURL(v, /^(#|\/(?!\/))/));
      else if (k === 'src') el.setAttribute('src', safeURL(v, /^(blob:|\/(?!\/))/));
      else if (ATTRS.has(k) || k.startsWith('data-') || k.startsWith('aria-')) el.setAttribute(k, v === true ? '' : String(v));
      else throw new Error('h: attribute not allowed: ' + k);
    }
  }
  add(el, kids);
  return el;
}

function safeURL(v, re) {
  v = String(v);
  if (!re.test(v)) throw new Error('h: URL not allowed');
  return v;
}

function add(el, kids) {
  for (const k of kids.flat(Infinity)) {
    if (k === null || k === undefined || k === false) continue;
    el.append(k instanceof Node ? k : document.createTextNode(String(k)));
  }
}

// fill replaces el's children.
export function fill(el, ...kids) {
  el.replaceChildren();
  add(el, kids);
  return el;
}

// Characters that may not be shown as themselves, as kith/internal/peertext
// has them: C0 and C1 controls and DEL, bidirectional controls (which make
// "invoice\u202efdp.exe" read as "invoiceexe.pdf"), line and paragraph
// separators, zero-width spaces.
const UNSAFE = /[\u0000-\u001f\u007f-\u009f\u061c\u200b\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069\ufeff]/;

function escapeChar(c) {
  const n = c.codePointAt(0);
  return n < 0x80 ? '\\x' + n.toString(16).padStart(2, '0') : '\\u' + n.toString(16).padStart(4, '0');
}

// clean returns s as peertext.Line (or, multiline, peertext.Text) shows it:
// every unsafe character as a visible escape; multiline keeps newlines,
// turns tabs into spaces and drops carriage returns.
export function clean(s, multiline) {
  s = String(s ?? '');
  let out = '';
  for (const c of s) {
    if (multiline && c === '\n') out += c;
    else if (multiline && c === '\t') out += ' ';
    else if (multiline && c === '\r') continue;
    else if (UNSAFE.test(c) || (c.length === 1 && c >= '\ud800' && c <= '\udfff')) out += escapeChar(c);
    else out += c;
  }
  return out;
}

// peer shows text that came from a peer: in a <bdi> (its direction
// isolated from the text around it), each unsafe character as an escape in
// a marked span, so it reads as the odd thing it is.
export function peer(s, multiline) {
  s = String(s ?? '');
  const el = h('bdi', { class: multiline ? 'peer text' : 'peer' });
  let run = '';
  for (const c of s) {
    let esc = null;
    if (multiline && c === '\n') run += c;
    else if (multiline && c === '\t') run += ' ';
    else if (multiline && c === '\r') continue;
    else if (UNSAFE.test(c) || (c.length === 1 && c >= '\ud800' && c <= '\udfff')) esc = escapeChar(c);
    else run += c;
    if (esc !== null) {
      if (run) el.append(document.createTextNode(run));
      run = '';
      el.append(h('span', { class: 'esc', title: 'a control or direction character the sender put here' }, esc));
    }
  }
  if (run) el.append(document.createTextNode(run));
  return el;
}

// Formatting.

export function bytes(n) {
  if (n === undefined || n === null || n < 0) return '?';
  const u = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  let f = n;
  while (f >= 1024 && i < u.length - 1) { f /= 1024; i++; }
  return i === 0 ? n + ' B' : f.toFixed(f < 10 ? 1 : 0) + ' ' + u[i];
}

export function rate(bps) {
  return bytes(Math.round(bps || 0)) + '/s';
}

export function ago(t) {
  if (!t) return 'never';
  const d = new Date(t);
  if (isNaN(d) || d.getFullYear() < 2000) return 'never';
  const s = Math.round((Date.now() - d.getTime()) / 1000);
  if (s < 5) return 'just now';
  if (s < 60) return s + ' s ago';
  if (s < 3600) return Math.floor(s / 60) + ' min ago';
  if (s < 86400) return Math.floor(s / 3600) + ' h ago';
  return d.toLocaleDateString();
}

export function clock(t) {
  const d = new Date(t);
  if (isNaN(d)) return '';
  const today = new Date();
  return d.toDateString() === today.toDateString() ? d.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' }) : d.toLocaleString();
}

export function short(id) {
  id = String(id || '');
  return id.length > 14 ? id.slice(0, 6) + '…' + id.slice(-6) : id;
}

// toast shows a message for a few seconds; text that may carry peer text
// (an error from a friend) is shown through peer().
export function toast(msg, kind) {
  const box = document.getElementById('toasts');
  const t = h('div', { class: 'toast ' + (kind || 'info'), role: kind === 'error' ? 'alert' : 'status' }, peer(msg, true));
  box.append(t);
  setTimeout(() => t.remove(), kind === 'error' ? 9000 : 4000);
}

// copy puts text on the clipboard and says so.
export async function copy(text, what) {
  try {
    await navigator.clipboard.writeText(text);
  } catch {
    const ta = h('textarea', { readonly: true, class: 'offscreen' });
    ta.value = text;
    document.body.append(ta);
    ta.select();
    const ok = document.execCommand('copy');
    ta.remove();
    if (!ok) { toast('could not copy; select the text and copy it by hand', 'error'); return; }
  }
  toast((what || 'text') + ' copied');
}

// button makes a button that runs fn, disabled while fn runs; errors
// become toasts.
export function button(label, fn, props) {
  const b = h('button', Object.assign({ type: 'button' }, props || {}), label);
  b.addEventListener('click', async (ev) => {
    ev.preventDefault();
    b.disabled = true;
    try { await fn(ev); } catch (e) { toast(e.message || String(e), 'error'); } finally { b.disabled = false; }
  });
  return b;
}

// card is a titled section of a page.
export function card(title, ...kids) {
  return h('section', { class: 'card' }, title ? h('h2', null, title) : null, ...kids);
}

// debounce runs fn at most once per ms, after the last call.
export function debounce(fn, ms) {
  let t = null;
  return (...a) => { clearTimeout(t); t = setTimeout(() => fn(...a), ms); };
}
