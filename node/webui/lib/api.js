// The local API, as the browser reaches it: the same /v1 paths and JSON as
// the CLI uses on the unix socket. The session cookie goes with every
// request by itself; every change carries the session's CSRF token.

let csrf = '';

// ApiError is an answer of the API that is not a success: its message
// and stable code ({"error", "code"}), and the HTTP status.
export class ApiError extends Error {
  constructor(message, code, status) {
    super(message);
    this.code = code || '';
    this.status = status || 0;
  }
}

// loggedOut is called when the daemon refuses the session (401).
let loggedOut = () => {};
export function onLoggedOut(fn) { loggedOut = fn; }

// session loads the CSRF token of this browser's session.
export async function session() {
  const s = await call('GET', '/web/session');
  csrf = s.csrf;
}

async function answer(r) {
  const ct = r.headers.get('Content-Type') || '';
  const data = ct.includes('application/json') ? await r.json().catch(() => null) : null;
  if (!r.ok) {
    if (r.status === 401) loggedOut();
    throw new ApiError((data && data.error) || r.status + ' ' + r.statusText, data && data.code, r.status);
  }
  return data;
}

function options(method, body) {
  const o = { method, headers: {}, credentials: 'same-origin', cache: 'no-store', redirect: 'error' };
  if (method !== 'GET' && method !== 'HEAD') o.headers['X-Kith-CSRF'] = csrf;
  if (body !== undefined) {
    o.headers['Content-Type'] = 'application/json';
    o.body = JSON.stringify(body);
  }
  return o;
}

// send sends one request; a change refused for its CSRF token (this
// browser logged in again, in another tab: the cookie names a new
// session) loads the session's token and is sent once more.
async function send(method, path, body) {
  let r = await fetch(path, options(method, body));
  if (r.status === 403 && method !== 'GET' && method !== 'HEAD') {
    const data = await r.clone().json().catch(() => null);
    if (data && data.code === 'web_csrf') {
      await session();
      r = await fetch(path, options(method, body));
    }
  }
  return r;
}

// call sends one request and returns the decoded JSON answer.
export async function call(method, path, body) {
  return answer(await send(method, path, body));
}

export const get = (p) => call('GET', p);
export const post = (p, b) => call('POST', p, b === undefined ? {} : b);
export const put = (p, b) => call('PUT', p, b);
export const patch = (p, b) => call('PATCH', p, b);
export const del = (p) => call('DELETE', p);

// blob posts body and returns the answer as a Blob (a QR code's PNG).
export async function blob(path, body) {
  const r = await send('POST', path, body);
  if (!r.ok) await answer(r);
  return r.blob();
}

// seg escapes one path segment.
export const seg = (s) => encodeURIComponent(String(s));

// query builds "?k=v&..." from the defined values of o.
export function query(o) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(o)) if (v !== undefined && v !== null && v !== '') q.set(k, String(v));
  const s = q.toString();
  return s ? '?' + s : '';
}

// lines reads a newline-delimited JSON answer (GET /v1/search) as it
// arrives, calling onItem for each object, until it ends or signal aborts.
export async function lines(path, onItem, signal) {
  const r = await fetch(path, Object.assign(options('GET'), { signal }));
  if (!r.ok) await answer(r);
  const reader = r.body.getReader();
  const dec = new TextDecoder();
  let buf = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buf += dec.decode(value, { stream: true });
    let i;
    while ((i = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, i).trim();
      buf = buf.slice(i + 1);
      if (line) onItem(JSON.parse(line));
    }
  }
  if (buf.trim()) onItem(JSON.parse(buf));
}

// The event types of GET /v1/events. An EventSource delivers a named event
// only to a listener of that name, so each is listened for.
export const EVENT_TYPES = [
  'events.dropped', 'friend.added', 'friend.removed', 'friend.online', 'friend.offline', 'friend.addrs',
  'friend.renamed', 'share.added', 'share.removed', 'share.scanned', 'download.progress', 'download.done',
  'download.failed', 'download.source_dropped', 'chat.message', 'chat.delivered', 'chat.typing',
  'distant.message', 'distant.delivered', 'lobby.message', 'lobby.invite', 'config.changed',
];

const listeners = new Set();

// onEvent calls fn(type, data) for every event of the daemon, and for
// "web.reconnected" when the stream came back after a break (events may
// have been missed: reload). It returns a function that stops it.
export function onEvent(fn) {
  listeners.add(fn);
  return () => listeners.delete(fn);
}

// notify tells the page's listeners of a change the page made itself that
// the daemon sends no event for (a conversation marked read: "web.read").
export function notify(type, data) { dispatch(type, data === undefined ? null : data); }

function dispatch(type, data) {
  for (const fn of [...listeners]) {
    try { fn(type, data); } catch (e) { console.error(e); }
  }
}

// events opens the event stream; state(true|false) tells whether it is up.
// The browser reconnects by itself with Last-Event-ID, so the daemon
// replays what was missed; if it cannot, the page reloads what it shows.
export function events(state) {
  let es = null;
  let broken = false;
  const open = () => {
    es = new EventSource('/v1/events');
    for (const t of EVENT_TYPES) {
      es.addEventListener(t, (e) => {
        let ev;
        try { ev = JSON.parse(e.data); } catch { return; }
        dispatch(t, ev.data === undefined ? null : ev.data);
      });
    }
    es.onopen = () => {
      state(true);
      if (broken) dispatch('web.reconnected', null);
      broken = false;
    };
    es.onerror = () => {
      state(false);
      broken = true;
      if (es.readyState === EventSource.CLOSED) retry();
    };
  };
  // retry asks why the stream was refused: a session that ended stops it
  // (the page says to log in again); anything else (the daemon restarting)
  // is tried again.
  const retry = () => {
    get('/web/session').then(() => setTimeout(open, 1000), (e) => {
      if (e.status !== 401) setTimeout(retry, 3000);
    });
  };
  open();
}
