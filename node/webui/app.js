// kith's web UI: a client of the daemon's local API, like the CLI. This
// module logs in to the API (the CSRF token), keeps the event stream open,
// and shows one page at a time from the address's #fragment.
import * as api from './lib/api.js';
import { h, fill, peer, toast } from './lib/dom.js';
import * as friends from './pages/friends.js';
import * as shares from './pages/shares.js';
import * as browse from './pages/browse.js';
import * as search from './pages/search.js';
import * as downloads from './pages/downloads.js';
import * as chat from './pages/chat.js';
import * as status from './pages/status.js';

const pages = { friends, shares, browse, search, downloads, chat, status };
const main = document.getElementById('main');
let unmount = null;

// route reads the fragment: #/page/part/part?k=v. Parts are
// percent-decoded (a folder path, a peer ID).
function route() {
  const frag = location.hash.replace(/^#\/?/, '');
  const [p, q] = frag.split('?');
  const parts = (p || '').split('/').filter((x) => x !== '').map((x) => {
    try { return decodeURIComponent(x); } catch { return x; }
  });
  const page = pages[parts[0]] ? parts.shift() : 'friends';
  return { page, parts, params: new URLSearchParams(q || '') };
}

function show() {
  const r = route();
  if (unmount) { try { unmount(); } catch (e) { console.error(e); } }
  unmount = null;
  for (const a of document.querySelectorAll('#nav a')) {
    a.classList.toggle('current', a.dataset.page === r.page);
  }
  fill(main);
  const u = pages[r.page].mount(main, r);
  unmount = typeof u === 'function' ? u : null;
}

// The badges in the navigation: unread private messages, running downloads.
async function badges() {
  try {
    const [convs, dls] = await Promise.all([api.get('/v1/chat'), api.get('/v1/downloads')]);
    const unread = convs.reduce((n, c) => n + (c.unread || 0), 0);
    const b = document.getElementById('unread');
    b.hidden = unread === 0;
    b.textContent = String(unread);
    const active = dls.filter((d) => !['done', 'failed'].includes(d.state)).length;
    const d = document.getElementById('active-downloads');
    d.hidden = active === 0;
    d.textContent = String(active);
  } catch { /* shown again at the next event */ }
}

let badgeTimer = null;
function badgesSoon() {
  if (badgeTimer) return;
  badgeTimer = setTimeout(() => { badgeTimer = null; badges(); }, 300);
}

async function me() {
  try {
    const st = await api.get('/v1/status');
    fill(document.getElementById('me'), peer(st.name || 'kith'));
  } catch { /* the status page says more */ }
}

function loggedOut() {
  if (unmount) { try { unmount(); } catch { /* ending anyway */ } }
  unmount = null;
  const live = document.getElementById('live');
  live.textContent = 'logged out';
  live.className = 'live off';
  fill(main, h('section', { class: 'card' },
    h('h2', null, 'Not logged in'),
    h('p', null, 'This browser has no session with the kith daemon (it may have restarted). Run ',
      h('code', null, 'kith web'), ' and open the link it prints.')));
}

async function start() {
  api.onLoggedOut(loggedOut);
  try {
    await api.session();
  } catch (e) {
    if (e.status !== 401) fill(main, h('p', { class: 'error' }, 'The kith daemon does not answer: ' + e.message));
    return;
  }
  const live = document.getElementById('live');
  api.events((up) => {
    live.textContent = up ? 'live' : 'reconnecting';
    live.className = up ? 'live on' : 'live off';
  });
  api.onEvent((type) => {
    if (type.startsWith('chat.') || type.startsWith('download.') || type === 'web.reconnected' || type === 'web.read') badgesSoon();
    if (type === 'config.changed') me();
    if (type === 'events.dropped') toast('some live updates were missed; the page reloads what it shows');
  });
  window.addEventListener('hashchange', show);
  show();
  status.startSampling();
  me();
  badges();
}

start();
