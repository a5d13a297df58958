// Downloads: progress, rate and sources (friends and tunnels) of each
// download, live from the daemon's events; cancel; save a finished file.
import * as api from '../lib/api.js';
import { h, fill, peer, bytes, rate, ago, toast, button, card } from '../lib/dom.js';

// download starts a download of link (from anywhere on the page), and
// says what happened.
export async function download(link, anonymous, again) {
  try {
    const d = await api.post('/v1/downloads', { link, anonymous: anonymous || undefined, again: again || undefined });
    toast((anonymous ? 'anonymous download of ' : 'downloading ') + d.name + (anonymous ? ' (through tunnels only)' : ''));
  } catch (e) {
    if (e.code === 'already_have' && confirm(e.message.replace(/; `kith get --again`.*$/, '') + '\n\nDownload another copy?')) {
      return download(link, anonymous, true);
    }
    throw e;
  }
}

const ENDED = new Set(['done', 'failed']);

function sourcesView(d) {
  const live = (d.sources || []).filter((s) => !s.dropped);
  const dropped = (d.sources || []).filter((s) => s.dropped);
  if (live.length === 0 && dropped.length === 0) return h('span', { class: 'muted' }, ENDED.has(d.state) ? '' : 'looking for sources');
  return h('ul', { class: 'sources' },
    live.map((s) => h('li', null, peer(s.name), ' ', h('span', { class: 'muted' }, rate(s.rate) + ', ' + bytes(s.bytes)))),
    dropped.map((s) => h('li', { class: 'muted' }, peer(s.name), ' dropped: ', peer(s.dropped))));
}

// Row is one download's row, updated in place as events arrive (so a
// button is never replaced under the pointer).
class Row {
  constructor(d) {
    this.bar = h('progress', { max: 1, 'data-test': 'progress' });
    this.pct = h('span', { class: 'num', 'data-test': 'percent' });
    this.state = h('span', { class: 'state', 'data-test': 'state' });
    this.rate = h('span', { class: 'num' });
    this.sources = h('div');
    this.note = h('div', { class: 'muted' });
    this.acts = h('td', { class: 'actions' });
    this.el = h('tr', { 'data-root': d.root, 'data-test': 'download-row' },
      h('td', { class: 'name' }, peer(d.name), this.note),
      h('td', null, this.state),
      h('td', { class: 'progress' }, this.bar, ' ', this.pct),
      h('td', null, this.rate),
      h('td', null, this.sources),
      this.acts);
    this.ended = null;
    this.update(d);
  }

  update(d) {
    this.d = d;
    if (d.size > 0) {
      this.bar.max = d.size;
      this.bar.value = Math.min(d.bytes_done || 0, d.size);
      this.pct.textContent = Math.floor((100 * (d.bytes_done || 0)) / d.size) + '%';
    } else if (d.size === 0 || d.state === 'done') {
      this.bar.max = 1;
      this.bar.value = d.state === 'done' ? 1 : 0;
      this.pct.textContent = d.state === 'done' ? '100%' : '';
    } else {
      this.bar.removeAttribute('value'); // size not known yet
      this.pct.textContent = bytes(d.bytes_done || 0);
    }
    this.state.textContent = d.state;
    this.state.className = 'state ' + d.state;
    this.rate.textContent = ENDED.has(d.state) ? '' : rate(d.rate);
    fill(this.sources, sourcesView(d));
    fill(this.note,
      bytes(d.size) + (d.finished ? ', finished ' + ago(d.finished) : ', added ' + ago(d.added)),
      d.reason ? [h('br'), peer(d.reason)] : null,
      d.error ? [h('br'), h('span', { class: 'error' }, peer(d.error))] : null);
    const ended = ENDED.has(d.state);
    if (this.ended !== ended) {
      this.ended = ended;
      fill(this.acts, d.state === 'done'
        ? h('a', { class: 'btn primary', href: '/web/file/' + encodeURIComponent(d.root), download: '', 'data-test': 'open-file' }, 'Save file')
        : ended ? null
          : button('Cancel', async () => {
            if (!confirm('Cancel this download and delete what it fetched?')) return;
            await api.del('/v1/downloads/' + api.seg(d.root));
            this.el.remove();
          }, { class: 'danger', 'data-test': 'cancel' }));
    }
  }
}

export function mount(main) {
  const body = h('tbody', { 'data-test': 'downloads' });
  const empty = h('p', { class: 'muted' }, 'No downloads. Start one from Browse or Search, or paste a link above.');
  const rows = new Map();
  const put = (d) => {
    if (!d || !d.root) return;
    const r = rows.get(d.root);
    if (r) { r.update(d); return; }
    const nr = new Row(d);
    rows.set(d.root, nr);
    body.prepend(nr.el);
    empty.hidden = true;
  };
  const load = async () => {
    const ds = await api.get('/v1/downloads');
    const seen = new Set(ds.map((d) => d.root));
    for (const [root, r] of rows) if (!seen.has(root)) { r.el.remove(); rows.delete(root); }
    ds.sort((a, b) => new Date(a.added) - new Date(b.added)).forEach(put);
    empty.hidden = rows.size > 0;
  };
  const link = h('input', { type: 'text', class: 'grow', placeholder: 'kith://file/…', 'data-test': 'get-link', spellcheck: 'false' });
  const anon = h('input', { type: 'checkbox' });
  main.append(h('h1', null, 'Downloads'),
    card('Download a link', h('div', { class: 'actions' }, link, h('label', null, anon, ' anonymous (tunnels only)'),
      button('Download', async () => { await download(link.value.trim(), anon.checked); link.value = ''; }, { class: 'primary' }))),
    card(null, empty, h('table', { class: 'list' },
      h('thead', null, h('tr', null, h('th', null, 'File'), h('th', null, 'State'), h('th', null, 'Progress'), h('th', null, 'Rate'), h('th', null, 'Sources'), h('th', null, ''))),
      body)));
  load().catch((e) => toast(e.message, 'error'));
  const off = api.onEvent((t, d) => {
    if (t.startsWith('download.')) put(d);
    if (t === 'events.dropped' || t === 'web.reconnected') load().catch(() => {});
  });
  return off;
}
