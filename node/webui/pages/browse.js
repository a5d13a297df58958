// Browse a friend: the folders and files it shares browsable with you,
// with sizes, a download button per file and per folder (a folder's link
// comes with the listing when the friend's version makes folder links), and
// their kith:// links; audio and video play on the Downloads page.
import * as api from '../lib/api.js';
import { h, fill, peer, bytes, toast, copy, button, card, short } from '../lib/dom.js';
import { download, downloadFolder, mediaKind, playHref } from './downloads.js';

function friendPicker(current, friends) {
  return h('div', { class: 'chips', 'data-test': 'browse-friends' }, friends.length === 0 ? h('p', { class: 'muted' }, 'No friends yet.') :
    friends.map((f) => h('a', {
      href: '#/browse/' + api.seg(f.peer_id),
      class: 'chip' + (f.peer_id === current ? ' current' : '') + (f.online ? '' : ' offline'),
      title: f.online ? 'online' : 'offline',
    }, h('span', { class: f.online ? 'dot on' : 'dot off' }), peer(f.name))));
}

// href of a folder of friend id.
const folder = (id, path) => '#/browse/' + api.seg(id) + (path ? '/' + path.split('/').map(api.seg).join('/') : '');

function crumbs(id, name, path) {
  const parts = path ? path.split('/') : [];
  const out = [h('a', { href: folder(id, '') }, peer(name))];
  parts.forEach((p, i) => { out.push(' / ', h('a', { href: folder(id, parts.slice(0, i + 1).join('/')) }, peer(p))); });
  return h('nav', { class: 'crumbs', 'data-test': 'crumbs' }, out);
}

export function mount(main, route) {
  const id = route.parts[0] || '';
  const path = route.parts.slice(1).join('/');
  const picker = h('div');
  const view = h('div', { 'data-test': 'browse' });
  let entries = [];
  let more = false;
  let friendName = short(id);
  const render = () => {
    fill(view,
      crumbs(id, friendName, path),
      entries.length === 0 ? h('p', { class: 'muted' }, 'This folder is empty.') :
        h('table', { class: 'list' },
          h('thead', null, h('tr', null, h('th', null, 'Name'), h('th', null, 'Size'), h('th', null, ''))),
          h('tbody', null, entries.map((e) => e.dir
            ? h('tr', { class: 'dir', 'data-test': 'dir' },
              h('td', { class: 'name' }, h('a', { href: folder(id, path ? path + '/' + e.name : e.name), 'data-test': 'folder' }, '📁 ', peer(e.name))),
              h('td'),
              h('td', { class: 'actions' }, e.link ? [
                button('Download folder', () => downloadFolder(e.link, false), { class: 'primary', 'data-test': 'download-folder' }),
                button('Copy link', () => copy(e.link, 'folder link'), { 'data-test': 'copy-folder-link' })] : null))
            : h('tr', { 'data-test': 'file' },
              h('td', { class: 'name' }, peer(e.name)),
              h('td', { class: 'num' }, bytes(e.size)),
              h('td', { class: 'actions' },
                button('Download', () => download(e.link, false), { class: 'primary', 'data-test': 'download' }),
                mediaKind(e.name) ? h('a', { class: 'btn', href: playHref(e.link), 'data-test': 'play', title: 'download it and play it as it arrives' }, 'Play') : null,
                button('Copy link', () => copy(e.link, 'link'))))))),
      more ? button('Show more', () => load(entries.length)) : null);
  };
  const load = async (offset) => {
    const l = await api.get('/v1/browse/' + api.seg(id) + api.query({ path, offset: offset || undefined }));
    friendName = l.friend;
    entries = offset ? entries.concat(l.entries) : l.entries;
    more = l.more;
    render();
  };
  const friends = async () => {
    const fs = await api.get('/v1/friends');
    fill(picker, friendPicker(id, fs));
    const f = fs.find((x) => x.peer_id === id);
    if (f) friendName = f.name;
    return f;
  };
  const reload = async () => {
    const f = await friends();
    if (!id) { fill(view, h('p', { class: 'muted' }, 'Pick a friend to see what it shares with you.')); return; }
    if (f && !f.online) { fill(view, crumbs(id, friendName, path), h('p', { class: 'muted' }, 'Offline: its shares show when it is back.')); return; }
    await load(0);
  };
  const run = () => reload().catch((e) => fill(view, crumbs(id, friendName, path), h('p', { class: 'error' }, peer(e.message))));
  main.append(h('h1', null, 'Browse a friend'), card(null, picker, h('div', { class: 'actions' }, button('Refresh', run)), view));
  run();
  const off = api.onEvent((t, d) => {
    if ((t === 'friend.online' || t === 'friend.offline') && d && d.peer_id === id) run();
    else if (t.startsWith('friend.')) friends().catch(() => {});
    if (t === 'web.reconnected') run();
  });
  return off;
}
