// Shares: your shared folders (add by path, browsable / anonymous flags,
// rescan, file counts), each folder's kith://folder/ link and each file's
// kith:// link.
import * as api from '../lib/api.js';
import { h, fill, peer, bytes, ago, toast, copy, button, card, debounce } from '../lib/dom.js';

const RELOAD = new Set(['share.added', 'share.removed', 'share.scanned', 'events.dropped', 'web.reconnected']);

function addCard() {
  const dir = h('input', { type: 'text', placeholder: '/path/to/a/folder on this machine', class: 'grow', 'data-test': 'share-dir', spellcheck: 'false' });
  const browsable = h('input', { type: 'checkbox', checked: true, 'data-test': 'share-browsable' });
  const anonymous = h('input', { type: 'checkbox', 'data-test': 'share-anonymous' });
  const add = async () => {
    if (!browsable.checked && !anonymous.checked) throw new Error('a share is browsable by friends, findable anonymously, or both');
    toast('indexing ' + dir.value + '…');
    const r = await api.post('/v1/shares', { dir: dir.value.trim(), browsable: browsable.checked, anonymous: anonymous.checked });
    dir.value = '';
    toast('shared ' + r.share.Name + ': ' + r.scan.Files + ' files');
  };
  return card('Share a folder',
    h('div', { class: 'actions' }, dir, button('Share', add, { class: 'primary', 'data-test': 'share-add' })),
    h('div', { class: 'actions' },
      h('label', null, browsable, ' browsable: friends see it when they browse you'),
      h('label', null, anonymous, ' anonymous: friends of friends find it by search, without learning it is you')));
}

// foldersView lists the share's folders (the share itself first) with
// their kith://folder/ links: a friend downloads a whole folder from one.
function foldersView(s) {
  const box = h('div', { class: 'folders', 'data-test': 'share-folders' });
  const load = async () => {
    const fs = await api.get('/v1/shares/folders' + api.query({ dir: s.Dir }));
    fill(box, fs.length === 0 ? null : [h('h3', null, 'Folders'),
      h('table', { class: 'list' }, h('tbody', null, fs.map((f) => h('tr', { 'data-test': 'share-folder', 'data-path': f.path },
        h('td', { class: 'name' }, '📁 ', peer(f.path === '' ? f.share : f.share + '/' + f.path)),
        h('td', { class: 'num' }, f.files + ' files'),
        h('td', { class: 'num' }, bytes(f.bytes)),
        h('td', { class: 'actions' }, button('Copy folder link', () => copy(f.link, 'folder link'), { 'data-test': 'copy-folder-link' }))))))]);
  };
  load().catch((e) => fill(box, h('p', { class: 'error' }, e.message)));
  return box;
}

function filesView(s) {
  const box = h('div', { class: 'files' });
  const load = async () => {
    const fs = await api.get('/v1/shares/files' + api.query({ dir: s.Dir }));
    fill(box, fs.length === 0 ? h('p', { class: 'muted' }, 'no files') :
      h('table', { class: 'list' }, h('tbody', null, fs.map((f) => h('tr', null,
        h('td', { class: 'name' }, peer(f.path)),
        h('td', { class: 'num' }, bytes(f.size)),
        h('td', { class: 'actions' }, button('Copy link', () => copy(f.link, 'link'), { 'data-test': 'copy-link' })))))));
  };
  load().catch((e) => fill(box, h('p', { class: 'error' }, e.message)));
  return box;
}

export function mount(main) {
  const list = h('div', { 'data-test': 'shares' });
  const open = new Set(); // shares whose files are shown
  const load = async () => {
    const ss = await api.get('/v1/shares');
    fill(list, ss.length === 0 ? h('p', { class: 'muted' }, 'You share nothing yet.') :
      h('table', { class: 'list' },
        h('thead', null, h('tr', null, h('th', null, 'Folder'), h('th', null, 'Shared as'), h('th', null, 'Files'), h('th', null, 'Size'), h('th', null, 'Scanned'), h('th', null, ''))),
        h('tbody', null, ss.flatMap((s) => {
          const row = h('tr', { 'data-share': s.Name },
            h('td', { class: 'name' }, peer(s.Name), h('div', { class: 'muted mono' }, peer(s.Dir))),
            h('td', null, [s.Browsable ? 'browsable' : null, s.Anonymous ? 'anonymous' : null].filter(Boolean).join(', ')),
            h('td', { class: 'num', 'data-test': 'share-files' }, String(s.Files)),
            h('td', { class: 'num' }, bytes(s.Bytes)),
            h('td', null, ago(s.LastScan)),
            h('td', { class: 'actions' },
              button(open.has(s.Dir) ? 'Hide files' : 'Files and links', () => { open.has(s.Dir) ? open.delete(s.Dir) : open.add(s.Dir); reload(); }, { 'data-test': 'share-show-files' }),
              button('Stop sharing', async () => {
                if (!confirm('Stop sharing this folder? Its files stay where they are.')) return;
                await api.del('/v1/shares' + api.query({ dir: s.Dir }));
              }, { class: 'danger' })));
          return open.has(s.Dir) ? [row, h('tr', null, h('td', { colspan: 6 }, foldersView(s), h('h3', null, 'Files'), filesView(s)))] : [row];
        }))));
  };
  const reload = () => load().catch((e) => toast(e.message, 'error'));
  const soon = debounce(reload, 200);
  main.append(h('h1', null, 'Shares'), addCard(),
    card('Shared folders', h('div', { class: 'actions' }, button('Rescan all', async () => {
      const st = await api.post('/v1/shares/rescan');
      toast('rescanned: ' + st.Files + ' files, ' + st.Hashed + ' hashed, ' + st.Removed + ' removed');
      reload();
    }, { 'data-test': 'rescan' })), list));
  reload();
  const off = api.onEvent((t) => { if (RELOAD.has(t)) soon(); });
  return off;
}
