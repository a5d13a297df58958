// Downloads: progress, rate and sources (friends and tunnels) of each
// download, live from the daemon's events; cancel; save a finished file;
// folder downloads with progress per file and in total; play an audio or
// video file, while it downloads too, in the page's player.
import * as api from '../lib/api.js';
import { h, fill, peer, bytes, rate, ago, toast, button, card, debounce } from '../lib/dom.js';

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

// downloadFolder starts the download of a kith://folder/ link: the daemon
// fetches its manifest from a friend first (this waits for it), then every
// file.
export async function downloadFolder(link, anonymous) {
  toast('asking for the folder\'s list of files…');
  const f = await api.post('/v1/folders', { link, anonymous: anonymous || undefined });
  toast('downloading folder ' + f.name + ': ' + f.files.length + ' files, ' + bytes(f.size));
}

// The extensions the daemon serves as audio or video (share.MediaType):
// those files get a Play button.
const VIDEO = new Set(['mp4', 'm4v', 'mkv', 'webm', 'mov', 'avi', 'ts', 'mpg', 'mpeg', 'ogv']);
const AUDIO = new Set(['mp3', 'flac', 'ogg', 'oga', 'opus', 'm4a', 'wav', 'aac', 'mka']);

// mediaKind is 'video', 'audio' or '' for a file name.
export function mediaKind(name) {
  const m = /\.([A-Za-z0-9]+)$/.exec(String(name || ''));
  const ext = m ? m[1].toLowerCase() : '';
  return VIDEO.has(ext) ? 'video' : AUDIO.has(ext) ? 'audio' : '';
}

// A player URL as POST /v1/streams makes it: the daemon's loopback stream
// port, a root and its token. Nothing else is ever given to a media
// element (the page's CSP allows media from that port only).
const STREAM_URL = /^http:\/\/127\.0\.0\.1:[0-9]{1,5}\/v1\/stream\/[0-9a-f]{64}\?t=[0-9a-f]{16,64}$/;

// The player: one <video> or <audio> at a time, in the box the Downloads
// page gives it (play() may be called from any row).
let playerBox = null;

// play asks the daemon for a player URL of link (a kith:// file link or a
// root), starting its download if it has none, and plays it in the page's
// player.
export async function play(link, name) {
  if (!playerBox) throw new Error('the player is on the Downloads page');
  const s = await api.post('/v1/streams', { link });
  if (!STREAM_URL.test(s.url)) throw new Error('the daemon gave an unexpected player address');
  const kind = mediaKind(s.name || name) || 'video';
  const el = document.createElement(kind);
  el.controls = true;
  el.preload = 'auto';
  el.autoplay = true;
  el.muted = false;
  el.className = 'player-' + kind;
  el.dataset.test = 'player';
  const err = h('p', { class: 'error', hidden: true, 'data-test': 'player-error' });
  el.addEventListener('error', () => {
    const c = el.error ? el.error.code : 0;
    err.textContent = c === 4 ? 'this browser cannot play this file (its format or codec); save it and open it in a player'
      : 'the file could not be read (' + (el.error && el.error.message ? el.error.message : 'error ' + c) + ')';
    err.hidden = false;
  });
  el.src = s.url;
  fill(playerBox,
    h('div', { class: 'player-head' }, h('strong', null, peer(s.name || name)), ' ',
      h('span', { class: 'muted' }, 'verified bytes only; a part not downloaded yet is fetched first'), ' ',
      button('Close', () => { el.pause(); el.removeAttribute('src'); el.load(); fill(playerBox); playerBox.hidden = true; }, { 'data-test': 'player-close' })),
    el, err);
  playerBox.hidden = false;
  playerBox.scrollIntoView({ block: 'nearest' });
}

// playButton is a Play button for a file, or null if its name says it is
// neither audio nor video.
function playButton(root, name) {
  return mediaKind(name) ? button('Play', () => play(root, name), { 'data-test': 'play' }) : null;
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
      fill(this.acts, d.state === 'failed' ? null : playButton(d.root, d.name), d.state === 'done'
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

// FolderRow is one folder download: its state, files done of all, bytes,
// and (opened) each file's; updated in place on every poll.
class FolderRow {
  constructor(f, onCancelled) {
    this.bar = h('progress', { max: 1, 'data-test': 'folder-progress' });
    this.pct = h('span', { class: 'num', 'data-test': 'folder-percent' });
    this.state = h('span', { class: 'state', 'data-test': 'folder-state' });
    this.count = h('span', { class: 'num', 'data-test': 'folder-files' });
    this.note = h('div', { class: 'muted' });
    this.files = h('tbody', { 'data-test': 'folder-file-list' });
    this.filesBox = h('tr', { hidden: true }, h('td', { colspan: 5 }, h('table', { class: 'list sub' }, this.files)));
    this.acts = h('td', { class: 'actions' },
      button('Files', () => { this.filesBox.hidden = !this.filesBox.hidden; this.update(this.f); }, { 'data-test': 'folder-show-files' }));
    this.cancel = button('Cancel', async () => {
      if (!confirm('Cancel this folder download? Its files that are done stay; the others are deleted.')) return;
      await api.del('/v1/folders/' + api.seg(f.root));
      onCancelled(f.root);
    }, { class: 'danger', 'data-test': 'folder-cancel' });
    this.acts.append(this.cancel);
    this.el = h('tr', { 'data-root': f.root, 'data-test': 'folder-row' },
      this.name = h('td', { class: 'name' }),
      h('td', null, this.state),
      h('td', { class: 'progress' }, this.bar, ' ', this.pct),
      h('td', null, this.count),
      this.acts);
    this.fileRows = new Map();
    this.update(f);
  }

  update(f) {
    this.f = f;
    const total = (f.files || []).length;
    this.bar.max = Math.max(f.size, 1);
    this.bar.value = f.size > 0 ? Math.min(f.bytes_done || 0, f.size) : (f.state === 'done' ? 1 : 0);
    this.pct.textContent = f.size > 0 ? Math.floor((100 * (f.bytes_done || 0)) / f.size) + '%' : (f.state === 'done' ? '100%' : '');
    this.state.textContent = f.state;
    this.state.className = 'state ' + f.state;
    this.count.textContent = f.files_done + ' / ' + total + ' files';
    // The same folder fetched again (its link once more, after it was
    // done) is the same download, in a new folder of a new name.
    if (this.shownName !== f.name) {
      this.shownName = f.name;
      fill(this.name, '📁 ', peer(f.name), this.note);
    }
    fill(this.note,
      bytes(f.bytes_done || 0) + ' of ' + bytes(f.size) + (f.finished ? ', finished ' + ago(f.finished) : ', added ' + ago(f.added)),
      h('br'), h('span', { class: 'mono' }, peer(f.dir)),
      f.error ? [h('br'), h('span', { class: 'error' }, peer(f.error))] : null);
    this.cancel.hidden = ENDED.has(f.state);
    if (this.filesBox.hidden) return;
    for (const ff of f.files || []) {
      const key = ff.path;
      let r = this.fileRows.get(key);
      if (!r) {
        const name = ff.path.split('/').pop();
        r = { state: h('span', { class: 'state' }), done: h('span', { class: 'num' }) };
        r.el = h('tr', { 'data-test': 'folder-file', 'data-root': ff.root },
          h('td', { class: 'name' }, peer(ff.path)), h('td', null, r.state), h('td', { class: 'num' }, r.done),
          h('td', { class: 'actions' }, playButton(ff.root, name)));
        this.fileRows.set(key, r);
        this.files.append(r.el);
      }
      r.state.textContent = ff.state;
      r.state.className = 'state ' + ff.state;
      r.done.textContent = bytes(ff.bytes_done || 0) + ' / ' + bytes(ff.size);
    }
  }
}

// folderPoll is how often the folder list is read again while a folder
// download runs: the daemon sends events for its files, not for the folder.
const folderPoll = 1500;

// playHref is the address of the Downloads page playing link (from Browse).
export const playHref = (link) => '#/downloads' + api.query({ play: link });

export function mount(main, route) {
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
  const fbody = h('tbody', { 'data-test': 'folders' });
  const fcard = card('Folders', h('table', { class: 'list' },
    h('thead', null, h('tr', null, h('th', null, 'Folder'), h('th', null, 'State'), h('th', null, 'Progress'), h('th', null, 'Files'), h('th', null, ''))),
    fbody));
  fcard.hidden = true;
  const frows = new Map();
  const gone = (root) => { const r = frows.get(root); if (r) { r.el.remove(); r.filesBox.remove(); frows.delete(root); } fcard.hidden = frows.size === 0; };
  let timer = null;
  let stopped = false;
  const loadFolders = async () => {
    const fs = await api.get('/v1/folders');
    const seen = new Set(fs.map((f) => f.root));
    for (const root of [...frows.keys()]) if (!seen.has(root)) gone(root);
    // Newest first, as the daemon lists them.
    for (const f of [...fs].reverse()) {
      const r = frows.get(f.root);
      if (r) { r.update(f); continue; }
      // Cancelled: its files' downloads that were not done are gone too
      // (the daemon sends no event for that).
      const nr = new FolderRow(f, (root) => { gone(root); load().catch(() => {}); });
      frows.set(f.root, nr);
      fbody.prepend(nr.el, nr.filesBox);
    }
    fcard.hidden = frows.size === 0;
    clearTimeout(timer);
    timer = null;
    if (!stopped && fs.some((f) => !ENDED.has(f.state))) timer = setTimeout(() => loadFolders().catch(() => {}), folderPoll);
  };
  const foldersSoon = debounce(() => loadFolders().catch(() => {}), 300);
  const player = h('section', { class: 'card player', hidden: true, 'data-test': 'player-box' });
  playerBox = player;
  const link = h('input', { type: 'text', class: 'grow', placeholder: 'kith://file/… or kith://folder/…', 'data-test': 'get-link', spellcheck: 'false' });
  const anon = h('input', { type: 'checkbox' });
  const get = async () => {
    const l = link.value.trim();
    if (/^kith:\/\/folder\//i.test(l)) {
      await downloadFolder(l, anon.checked);
      loadFolders().catch(() => {});
    } else {
      await download(l, anon.checked);
    }
    link.value = '';
  };
  main.append(h('h1', null, 'Downloads'),
    card('Download a link', h('div', { class: 'actions' }, link, h('label', null, anon, ' anonymous (tunnels only)'),
      button('Download', get, { class: 'primary', 'data-test': 'get' }))),
    player,
    fcard,
    card(null, empty, h('table', { class: 'list' },
      h('thead', null, h('tr', null, h('th', null, 'File'), h('th', null, 'State'), h('th', null, 'Progress'), h('th', null, 'Rate'), h('th', null, 'Sources'), h('th', null, ''))),
      body)));
  load().catch((e) => toast(e.message, 'error'));
  loadFolders().catch((e) => toast(e.message, 'error'));
  const want = route && route.params.get('play');
  if (want) {
    // Once: a reload of the page does not start it again.
    history.replaceState(null, '', '#/downloads');
    play(want).catch((e) => toast(e.message, 'error'));
  }
  const off = api.onEvent((t, d) => {
    if (t.startsWith('download.')) { put(d); foldersSoon(); }
    if (t === 'events.dropped' || t === 'web.reconnected') { load().catch(() => {}); loadFolders().catch(() => {}); }
  });
  return () => {
    off();
    stopped = true;
    clearTimeout(timer);
    if (playerBox === player) playerBox = null;
    for (const m of player.querySelectorAll('video, audio')) { m.pause(); m.removeAttribute('src'); m.load(); }
  };
}
