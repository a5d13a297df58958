// Search through friends of friends: results appear as they arrive (the
// API streams them), each downloadable normally or anonymously.
import * as api from '../lib/api.js';
import { h, fill, peer, bytes, copy, button, card } from '../lib/dom.js';
// (the Search button is a plain one: a new search may start while one
// runs, and replaces it)
import { download } from './downloads.js';

// One search's results stay while the page is left and come back to.
let last = { q: '', hits: new Map(), running: false };

export function mount(main) {
  const q = h('input', { type: 'search', class: 'grow', placeholder: 'words of a file name, or a kith:// link', value: last.q, 'data-test': 'search-q' });
  const timeout = h('select', null, ['5s', '15s', '30s', '60s'].map((t) => h('option', { value: t, selected: t === '15s' }, 'listen ' + t)));
  const body = h('tbody', { 'data-test': 'results' });
  const state = h('p', { class: 'muted', 'data-test': 'search-state' });
  const rows = new Map();
  let ctl = null;
  const put = (hit) => {
    last.hits.set(hit.root, hit);
    const r = rows.get(hit.root);
    if (r) { r.sources.textContent = String(hit.sources); return; }
    if (last.running) state.textContent = 'searching… ' + (rows.size + 1) + (rows.size ? ' files' : ' file') + ' so far; more may come as friends of friends answer';
    const sources = h('td', { class: 'num' }, String(hit.sources));
    const el = h('tr', { 'data-root': hit.root, 'data-test': 'result' },
      h('td', { class: 'name' }, peer(hit.name)),
      h('td', { class: 'num' }, bytes(hit.size)),
      sources,
      h('td', { class: 'actions' },
        button('Download', () => download(hit.link, false), { class: 'primary', 'data-test': 'download' }),
        button('Download anonymously', () => download(hit.link, true), { 'data-test': 'download-anon' }),
        button('Copy link', () => copy(hit.link, 'link'))));
    rows.set(hit.root, { el, sources });
    body.append(el);
  };
  const run = async () => {
    const words = q.value.trim();
    if (!words) return;
    if (ctl) ctl.abort();
    ctl = new AbortController();
    last = { q: words, hits: new Map(), running: true };
    const mine = last;
    rows.clear();
    fill(body);
    state.textContent = 'searching… results appear as friends of friends answer';
    try {
      await api.lines('/v1/search' + api.query({ q: words, timeout: timeout.value }), put, ctl.signal);
      state.textContent = rows.size === 0 ? 'nothing found' : rows.size + ' files found';
    } catch (e) {
      if (e.name !== 'AbortError') state.textContent = e.message;
    } finally {
      mine.running = false;
    }
  };
  q.addEventListener('keydown', (e) => { if (e.key === 'Enter') run(); });
  main.append(h('h1', null, 'Search'),
    card(null, h('div', { class: 'actions' }, q, timeout, h('button', { type: 'button', class: 'primary', 'data-test': 'search-go', onclick: () => run() }, 'Search')),
      h('p', { class: 'muted' }, 'Searches go through your friends to theirs; nobody learns the search is yours, and answers come back sealed.'),
      state,
      h('table', { class: 'list' },
        h('thead', null, h('tr', null, h('th', null, 'Name'), h('th', null, 'Size'), h('th', null, 'Sources'), h('th', null, ''))),
        body)));
  for (const hit of last.hits.values()) put(hit);
  if (last.hits.size) state.textContent = last.hits.size + ' files found';
  return () => { if (ctl) ctl.abort(); };
}
