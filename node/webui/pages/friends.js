// Friends: your invite (text, copy, QR code), adding a friend by pasting
// theirs, and each friend's state, last seen and path; rename, remove.
import * as api from '../lib/api.js';
import { h, fill, peer, ago, short, toast, copy, button, card, debounce, clean } from '../lib/dom.js';

const RELOAD = new Set(['friend.added', 'friend.removed', 'friend.online', 'friend.offline', 'friend.renamed',
  'friend.addrs', 'events.dropped', 'web.reconnected']);

// qrImage shows the QR code of text, rendered by the daemon.
async function qrImage(box, text) {
  try {
    const b = await api.blob('/web/qr', { text });
    const url = URL.createObjectURL(b);
    fill(box, h('img', { src: url, alt: 'QR code of the invite', class: 'qr', width: 240, height: 240, 'data-test': 'invite-qr' }));
  } catch (e) {
    fill(box, h('p', { class: 'muted' }, 'no QR code: ' + e.message));
  }
}

function inviteCard() {
  const text = h('textarea', { readonly: true, rows: 4, class: 'invite', 'data-test': 'my-invite', spellcheck: 'false' });
  const qr = h('div', { class: 'qrbox' });
  const note = h('p', { class: 'muted' });
  const load = async () => {
    const inv = await api.get('/v1/invite');
    text.value = inv.invite;
    fill(note, 'Give this to a friend; they add it, and you add theirs.');
    qrImage(qr, inv.invite);
  };
  const intro = async () => {
    const inv = await api.post('/v1/invite/introduce', { ttl_seconds: 86400 });
    text.value = inv.invite;
    fill(note, h('strong', null, 'One-step invite: '),
      'whoever adds it first becomes your friend on both sides at once. It works once, until ' +
      new Date(inv.expires).toLocaleString() + '. It is a secret: send it to one friend, privately.');
    qrImage(qr, inv.invite);
  };
  load().catch((e) => toast(e.message, 'error'));
  return card('Your invite',
    h('div', { class: 'invite-row' },
      h('div', { class: 'grow' }, text, note,
        h('div', { class: 'actions' },
          button('Copy invite', () => copy(text.value, 'invite'), { 'data-test': 'copy-invite' }),
          button('New one-step invite', intro),
          button('Normal invite', load))),
      qr));
}

function addCard() {
  const inv = h('textarea', { rows: 3, placeholder: 'paste your friend\'s invite (kith:…)', 'data-test': 'add-invite', spellcheck: 'false' });
  const name = h('input', { type: 'text', placeholder: 'name (optional: the one in the invite)', maxlength: 64, 'data-test': 'add-name' });
  const add = async () => {
    const f = await api.post('/v1/friends', { invite: inv.value.trim(), name: name.value.trim() || undefined });
    inv.value = '';
    name.value = '';
    if (f.updated) toast('updated the addresses of ' + f.name);
    else if (f.introduction === 'pending') toast('introduced; ' + f.name + ' approves it first');
    else toast('added ' + f.name + (f.introduction ? ' (friends on both sides)' : '; they add your invite too'));
  };
  return card('Add a friend', inv, h('div', { class: 'actions' }, name, button('Add friend', add, { 'data-test': 'add-friend', class: 'primary' })));
}

function pathText(f) {
  if (!f.online) return f.reason ? peer(f.reason) : '—';
  if (f.path === 'relayed') return h('span', null, 'relayed through ', peer(f.relay || short(f.relay_id)));
  return f.path || 'direct';
}

function friendRow(f, state) {
  const nameCell = h('td', { class: 'name' }, peer(f.name), h('div', { class: 'muted mono', title: f.peer_id }, short(f.peer_id)));
  const rename = () => {
    state.editing = true;
    const input = h('input', { type: 'text', value: f.name, maxlength: 64, 'data-test': 'rename-input' });
    const done = () => { state.editing = false; state.reload(); };
    const save = async () => {
      await api.patch('/v1/friends/' + api.seg(f.peer_id), { name: input.value.trim() });
      done();
    };
    input.addEventListener('keydown', (e) => { if (e.key === 'Enter') save().catch((er) => toast(er.message, 'error')); if (e.key === 'Escape') done(); });
    fill(nameCell, input, button('Save', save, { 'data-test': 'rename-save' }), button('Cancel', done));
    input.focus();
  };
  const remove = async () => {
    if (!confirm('Remove ' + clean(f.name) + ' from your friends? Its connections close at once.')) return;
    await api.del('/v1/friends/' + api.seg(f.peer_id));
  };
  return h('tr', { 'data-peer': f.peer_id },
    nameCell,
    h('td', null, h('span', { class: f.online ? 'dot on' : 'dot off' }), f.online ? 'online' : 'offline'),
    h('td', null, f.online ? 'now' : ago(f.last_seen)),
    h('td', { class: 'path' }, pathText(f)),
    h('td', { class: 'actions' },
      h('a', { href: '#/chat/friend/' + api.seg(f.peer_id), class: 'btn' }, 'Chat'),
      h('a', { href: '#/browse/' + api.seg(f.peer_id), class: 'btn' }, 'Browse'),
      button('Rename', rename), button('Remove', remove, { class: 'danger' })));
}

function introRow(q) {
  return h('tr', null, h('td', null, peer(q.name)), h('td', { class: 'mono' }, short(q.peer_id)), h('td', null, ago(q.at)),
    h('td', { class: 'actions' },
      button('Approve', () => api.post('/v1/introductions/' + api.seg(q.peer_id) + '/approve')),
      button('Reject', () => api.del('/v1/introductions/' + api.seg(q.peer_id)), { class: 'danger' })));
}

export function mount(main) {
  const list = h('tbody', { 'data-test': 'friends' });
  const intros = h('div');
  const state = { editing: false, reload: null };
  const load = async () => {
    if (state.editing) return;
    const [fs, qs] = await Promise.all([api.get('/v1/friends'), api.get('/v1/introductions').catch(() => [])]);
    if (state.editing) return;
    fill(list, fs.length ? fs.map((f) => friendRow(f, state)) : h('tr', null, h('td', { colspan: 5, class: 'muted' }, 'No friends yet: give your invite to a friend and add theirs.')));
    fill(intros, qs.length ? card('Introductions waiting for you',
      h('table', null, h('tbody', null, qs.map(introRow)))) : null);
  };
  state.reload = () => load().catch((e) => toast(e.message, 'error'));
  const soon = debounce(state.reload, 150);
  main.append(
    h('h1', null, 'Friends'),
    h('div', { class: 'two' }, inviteCard(), addCard()),
    intros,
    card('Your friends', h('table', { class: 'list' },
      h('thead', null, h('tr', null, h('th', null, 'Name'), h('th', null, 'State'), h('th', null, 'Last seen'), h('th', null, 'Connection'), h('th', null, ''))),
      list)));
  state.reload();
  const tick = setInterval(() => { if (!state.editing) state.reload(); }, 30000); // "5 min ago" moves on
  const off = api.onEvent((t) => { if (RELOAD.has(t)) soon(); });
  return () => { off(); clearInterval(tick); };
}
