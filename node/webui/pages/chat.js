// Chat: private conversations with friends (unread counts, delivery
// ticks, typing notices, history scroll-back), lobbies (list, join,
// create, members, talk), distant chat to a chat id, and chat identities.
import * as api from '../lib/api.js';
import { h, fill, peer, clock, ago, short, toast, copy, button, card, debounce, clean } from '../lib/dom.js';

const PAGE = 50; // messages asked for at a time
const LOBBY_PAGES = 40; // pages of a lobby's or distant history read at most when opened
const LOBBY_POLL = 4000; // ms between reloads of the lobby list (announcements have no event)

// thread is a conversation view: messages (keyed by id, so one that
// comes both as an answer and as an event shows once), a typing line, a
// composer, and a "load older" control when older() is given.
function thread({ head, side, older, send, typing, placeholder }) {
  const list = h('div', { class: 'messages', 'data-test': 'messages' });
  const typingLine = h('div', { class: 'typing muted', 'data-test': 'typing' });
  const text = h('textarea', { rows: 2, placeholder: placeholder || 'write a message; Enter sends, Shift+Enter is a new line', 'data-test': 'compose' });
  const olderBtn = older ? button('Load older messages', () => loadOlder(), { class: 'older', 'data-test': 'older' }) : null;
  const byID = new Map();
  let typingTimer = null;
  let lastTyping = 0;
  let noMore = false;

  const ticks = (m) => {
    if (!m.out || m.lobby) return null;
    return h('span', {
      class: 'tick' + (m.delivered ? ' delivered' : ''), 'data-test': 'tick', 'data-delivered': m.delivered ? 'true' : 'false',
      title: m.delivered ? 'delivered' : 'sent; waits until it is delivered',
    }, m.delivered ? '✓✓' : '✓');
  };
  const msgEl = (m) => {
    if (m.kind && m.kind !== 'text') {
      return h('div', { class: 'msg system', 'data-id': m.id }, peer(m.author), m.kind === 'join' ? ' joined' : ' left', h('time', null, ' ' + clock(m.time)));
    }
    return h('div', { class: 'msg ' + (m.out ? 'out' : 'in'), 'data-id': m.id, 'data-test': 'msg' },
      h('div', { class: 'meta' }, m.author !== undefined ? peer(m.author) : null, h('time', { title: new Date(m.time).toLocaleString() }, clock(m.time)), ticks(m)),
      h('div', { class: 'body' }, peer(m.text, true)));
  };
  const atBottom = () => list.scrollHeight - list.scrollTop - list.clientHeight < 40;
  const add = (ms, where) => {
    const stick = where !== 'top' && (atBottom() || ms.some((m) => m.out));
    const before = list.scrollHeight;
    const els = [];
    for (const m of ms) {
      const old = byID.get(m.id);
      if (old) { if (m.out) old.m = Object.assign(old.m, m); refresh(m.id); continue; }
      const el = msgEl(m);
      byID.set(m.id, { m, el });
      els.push(el);
    }
    if (where === 'top') {
      list.prepend(...els);
      list.scrollTop += list.scrollHeight - before;
    } else {
      list.append(...els);
      if (stick) list.scrollTop = list.scrollHeight;
    }
  };
  const refresh = (id) => {
    const e = byID.get(id);
    if (!e) return;
    const n = msgEl(e.m);
    e.el.replaceWith(n);
    e.el = n;
  };
  const delivered = (ids) => {
    for (const id of ids || []) {
      const e = byID.get(id);
      if (e && !e.m.delivered) { e.m.delivered = true; refresh(id); }
    }
  };
  const showTyping = (who) => {
    fill(typingLine, peer(who), ' is typing…');
    clearTimeout(typingTimer);
    typingTimer = setTimeout(() => fill(typingLine), 6000);
  };
  const loadOlder = async () => {
    if (noMore || !older) return;
    const ms = await older();
    if (ms.length === 0) {
      noMore = true;
      if (olderBtn) olderBtn.replaceWith(h('p', { class: 'muted center' }, 'the beginning of the conversation'));
      return;
    }
    add(ms, 'top');
  };
  list.addEventListener('scroll', () => { if (list.scrollTop === 0 && older && byID.size > 0) loadOlder().catch(() => {}); });
  const doSend = async () => {
    const t = text.value;
    if (!t.trim()) return;
    const m = await send(t);
    text.value = '';
    if (m) add([m]);
  };
  text.addEventListener('keydown', (e) => {
    if (e.key === 'Enter' && !e.shiftKey) { e.preventDefault(); doSend().catch((er) => toast(er.message, 'error')); }
  });
  text.addEventListener('input', () => {
    if (typing && Date.now() - lastTyping > 3000) { lastTyping = Date.now(); typing().catch(() => {}); }
  });
  const el = h('section', { class: 'thread' },
    h('div', { class: 'thread-head' }, head),
    h('div', { class: 'thread-main' },
      h('div', { class: 'thread-col' }, h('div', { class: 'scroll' }, olderBtn, list), typingLine,
        send ? h('div', { class: 'composer' }, text, button('Send', doSend, { class: 'primary', 'data-test': 'send' })) : null),
      side || null));
  return { el, add, delivered, showTyping, list, focus: () => text.focus() };
}

// identityPicker is a <select> of the node's chat identities ("" is the
// default one).
async function identityPicker(current) {
  const ids = await api.get('/v1/identities').catch(() => []);
  return h('select', { 'data-test': 'as' }, h('option', { value: '' }, 'default identity'),
    ids.map((i) => h('option', { value: i.chat_id, selected: i.chat_id === current }, clean(i.nick) + ' (' + short(i.chat_id) + ')')));
}

// readAll reads a history asked for page by page with after=SEQ.
async function readAll(path, extra) {
  let out = [];
  let after = 0;
  for (let i = 0; i < LOBBY_PAGES; i++) {
    const ms = await api.get(path + api.query(Object.assign({ after: after || undefined, limit: 200 }, extra || {})));
    if (ms.length === 0) break;
    out = out.concat(ms);
    after = ms[ms.length - 1].seq;
  }
  return out;
}

// --- the conversations one can open ---

function sidebar(route, refreshers) {
  const friends = h('ul', { class: 'convs', 'data-test': 'conversations' });
  const lobbies = h('ul', { class: 'convs', 'data-test': 'lobbies' });
  const distant = h('ul', { class: 'convs', 'data-test': 'distant' });
  const kind = route.parts[0];
  const cur = route.parts[1];
  const item = (href, current, kids) => h('li', { class: current ? 'current' : null }, h('a', { href }, kids));
  const loadFriends = async () => {
    const cs = await api.get('/v1/chat');
    fill(friends, cs.length === 0 ? h('li', { class: 'muted' }, 'no friends yet') : cs.map((c) => item('#/chat/friend/' + api.seg(c.peer_id), kind === 'friend' && cur === c.peer_id, [
      h('span', { class: c.online ? 'dot on' : 'dot off' }), peer(c.name),
      c.unread ? h('span', { class: 'badge', 'data-test': 'unread' }, String(c.unread)) : null,
      c.last ? h('div', { class: 'preview muted' }, peer((c.last.out ? 'you: ' : '') + c.last.text.slice(0, 60))) : null])));
  };
  const loadLobbies = async () => {
    const l = await api.get('/v1/lobbies');
    const joined = l.lobbies.filter((x) => x.joined);
    fill(lobbies, joined.map((x) => item('#/chat/lobby/' + api.seg(x.id), kind === 'lobby' && cur === x.id, [peer(x.name), h('span', { class: 'muted' }, ' ' + x.participants)])),
      item('#/chat/lobbies', kind === 'lobbies', [h('em', null, 'all lobbies, create, invites'),
        l.invites.length ? h('span', { class: 'badge' }, String(l.invites.length)) : null]));
  };
  const loadDistant = async () => {
    const ds = await api.get('/v1/distant');
    fill(distant, ds.map((d) => item('#/chat/distant/' + api.seg(d.remote) + '?as=' + api.seg(d.local), kind === 'distant' && cur === d.remote,
      [h('span', { class: 'mono' }, short(d.remote)), d.request ? h('span', { class: 'badge warn' }, 'request') : null,
        d.unread ? h('span', { class: 'badge' }, String(d.unread)) : null])),
    item('#/chat/distant-new', kind === 'distant-new', [h('em', null, 'new distant chat')]),
    item('#/chat/identities', kind === 'identities', [h('em', null, 'your chat identities')]));
  };
  refreshers.friends = debounce(() => loadFriends().catch(() => {}), 200);
  refreshers.lobbies = debounce(() => loadLobbies().catch(() => {}), 300);
  refreshers.distant = debounce(() => loadDistant().catch(() => {}), 300);
  loadFriends().catch((e) => toast(e.message, 'error'));
  loadLobbies().catch(() => {});
  loadDistant().catch(() => {});
  return h('aside', { class: 'chat-side' }, h('h3', null, 'Friends'), friends, h('h3', null, 'Lobbies'), lobbies, h('h3', null, 'Distant chat'), distant);
}

// --- private chat with a friend ---

function friendView(view, id, handlers) {
  let name = short(id);
  let firstSeq = 0;
  const head = h('div');
  const t = thread({
    head,
    older: async () => {
      const ms = await api.get('/v1/chat/' + api.seg(id) + '/messages' + api.query({ before: firstSeq, limit: PAGE }));
      if (ms.length) firstSeq = ms[0].seq;
      return ms;
    },
    send: (text) => api.post('/v1/chat/' + api.seg(id) + '/messages', { text }),
    typing: () => api.post('/v1/chat/' + api.seg(id) + '/typing'),
  });
  const read = debounce(() => api.post('/v1/chat/' + api.seg(id) + '/read').then(() => api.notify('web.read', { peer_id: id }), () => {}), 300);
  const header = async () => {
    const fs = await api.get('/v1/friends');
    const f = fs.find((x) => x.peer_id === id);
    if (!f) { fill(head, h('h2', null, 'Not a friend')); return; }
    name = f.name;
    fill(head, h('h2', null, h('span', { class: f.online ? 'dot on' : 'dot off' }), peer(f.name)),
      h('span', { class: 'muted' }, f.online ? 'online' : 'offline, last seen ' + ago(f.last_seen) + ': messages wait until it is back'));
  };
  const load = async () => {
    const ms = await api.get('/v1/chat/' + api.seg(id) + '/messages' + api.query({ before: 0, limit: PAGE }));
    if (ms.length) firstSeq = ms[0].seq;
    t.add(ms);
    t.list.scrollTop = t.list.scrollHeight;
    read();
  };
  fill(view, t.el);
  header().catch(() => {});
  load().catch((e) => toast(e.message, 'error'));
  t.focus();
  return (type, d) => {
    if (!d) { if (type === 'web.reconnected' || type === 'events.dropped') load().catch(() => {}); return; }
    if (d.peer_id !== id) return;
    if (type === 'chat.message' && d.message) { t.add([d.message]); if (!d.message.out) read(); }
    if (type === 'chat.delivered') t.delivered(d.ids);
    if (type === 'chat.typing') t.showTyping(d.name || name);
    if (type === 'friend.online' || type === 'friend.offline' || type === 'friend.renamed') header().catch(() => {});
  };
}

// --- lobbies ---

async function lobbiesView(view, handlers) {
  const box = h('div');
  const as = await identityPicker('');
  const name = h('input', { type: 'text', placeholder: 'lobby name', maxlength: 64, 'data-test': 'lobby-name' });
  const topic = h('input', { type: 'text', placeholder: 'topic (optional)', class: 'grow', 'data-test': 'lobby-topic' });
  const priv = h('input', { type: 'checkbox' });
  const create = async () => {
    const l = await api.post('/v1/lobbies', { name: name.value.trim(), topic: topic.value.trim() || undefined, private: priv.checked || undefined, as: as.value || undefined });
    location.hash = '#/chat/lobby/' + api.seg(l.id);
  };
  const joinAs = (id) => async () => {
    const l = await api.post('/v1/lobbies/' + api.seg(id) + '/join', { as: as.value || undefined });
    location.hash = '#/chat/lobby/' + api.seg(l.id);
  };
  const load = async () => {
    const l = await api.get('/v1/lobbies');
    const others = l.lobbies.filter((x) => !x.joined);
    fill(box,
      l.invites.length ? card('Invites', h('table', { class: 'list' }, h('tbody', null, l.invites.map((i) => h('tr', null,
        h('td', { class: 'name' }, peer(i.name), h('div', { class: 'muted' }, peer(i.topic))),
        h('td', null, 'from ', peer(i.from_name || short(i.from)), ' as ', peer(i.nick)),
        h('td', { class: 'actions' }, button('Join', joinAs(i.lobby), { class: 'primary' }))))))) : null,
      card('Lobbies your friends announce', others.length === 0 ? h('p', { class: 'muted' }, 'none now') :
        h('table', { class: 'list', 'data-test': 'announced' }, h('tbody', null, others.map((x) => h('tr', { 'data-lobby': x.id },
          h('td', { class: 'name' }, peer(x.name), h('div', { class: 'muted' }, peer(x.topic))),
          h('td', null, x.participants + ' people; through ', x.friends.map((f, i) => [i ? ', ' : '', peer(f.name || short(f.peer_id))])),
          h('td', { class: 'actions' }, button('Join', joinAs(x.id), { class: 'primary', 'data-test': 'join' }))))))),
      card('Lobbies you are in', l.lobbies.filter((x) => x.joined).length === 0 ? h('p', { class: 'muted' }, 'none') :
        h('ul', null, l.lobbies.filter((x) => x.joined).map((x) => h('li', null, h('a', { href: '#/chat/lobby/' + api.seg(x.id) }, peer(x.name)), ' as ', peer(x.as_nick))))));
  };
  fill(view, h('section', { class: 'thread pad' }, h('h2', null, 'Lobbies'),
    card('Create a lobby', h('div', { class: 'actions' }, name, topic),
      h('div', { class: 'actions' }, h('label', null, priv, ' private (invite only; not announced)'), h('label', null, 'speak as ', as),
        button('Create', create, { class: 'primary', 'data-test': 'lobby-create' }))),
    box));
  load().catch((e) => toast(e.message, 'error'));
  const soon = debounce(() => load().catch(() => {}), 300);
  handlers.lobbiesPage = soon;
  // A friend's announcement of a lobby comes with no event: the list is
  // asked for again every few seconds while it is shown.
  const poll = setInterval(() => { if (document.visibilityState === 'visible') soon(); }, LOBBY_POLL);
  handlers.stop = () => clearInterval(poll);
  if (handlers.gone) handlers.stop();
  return (type) => { if (type === 'lobby.invite' || type === 'web.reconnected' || type === 'friend.online' || type === 'friend.offline') soon(); };
}

function lobbyView(view, id) {
  const head = h('div');
  const members = h('ul', { class: 'members', 'data-test': 'members' });
  const inviteSel = h('select');
  let all = [];
  let shown = 0;
  const lobbyMsg = (m) => ({ id: m.id, seq: m.seq, kind: m.kind, author: m.nick, text: m.text, time: m.time, out: m.author === myID, lobby: true });
  let myID = '';
  const t = thread({
    head,
    side: h('aside', { class: 'members-col' }, h('h3', null, 'Members'), members,
      h('h3', null, 'Invite a friend'), h('div', { class: 'actions' }, inviteSel, button('Invite', async () => {
        if (!inviteSel.value) return;
        await api.post('/v1/lobbies/' + api.seg(id) + '/invite', { friend: inviteSel.value });
        toast('invited');
      }))),
    older: async () => {
      const n = Math.min(PAGE, all.length - shown);
      const out = all.slice(all.length - shown - n, all.length - shown);
      shown += n;
      return out.map(lobbyMsg);
    },
    send: async (text) => lobbyMsg(await api.post('/v1/lobbies/' + api.seg(id) + '/messages', { text })),
  });
  const loadMembers = async () => {
    const ps = await api.get('/v1/lobbies/' + api.seg(id) + '/participants');
    fill(members, ps.map((p) => h('li', { title: clean(p.chat_id) }, peer(p.nick), h('span', { class: 'muted' }, ' ' + ago(p.last_seen)))));
  };
  const membersSoon = debounce(() => loadMembers().catch(() => {}), 500);
  const showHead = (l) => {
    fill(head, h('h2', null, peer(l.name), l.private ? h('span', { class: 'badge' }, 'private') : null),
      h('div', { class: 'muted' }, peer(l.topic)),
      h('div', { class: 'muted' }, 'you speak as ', peer(l.as_nick || short(l.as)), ' · ', l.participants + (l.participants === 1 ? ' person · ' : ' people · '),
        button('Leave', async () => {
          if (!confirm('Leave this lobby?')) return;
          await api.post('/v1/lobbies/' + api.seg(id) + '/leave');
          location.hash = '#/chat/lobbies';
        }, { class: 'link' })));
  };
  const headSoon = debounce(() => api.get('/v1/lobbies/' + api.seg(id)).then(showHead, () => {}), 500);
  const load = async () => {
    const [l, fs] = await Promise.all([api.get('/v1/lobbies/' + api.seg(id)), api.get('/v1/friends')]);
    myID = l.as || '';
    showHead(l);
    fill(inviteSel, fs.map((f) => h('option', { value: f.peer_id }, clean(f.name))));
    if (!l.joined) return;
    all = await readAll('/v1/lobbies/' + api.seg(id) + '/messages');
    shown = Math.min(all.length, PAGE * 2);
    t.add(all.slice(all.length - shown).map(lobbyMsg));
    t.list.scrollTop = t.list.scrollHeight;
    loadMembers().catch(() => {});
  };
  fill(view, t.el);
  load().catch((e) => toast(e.message, 'error'));
  t.focus();
  return (type, d) => {
    if (type === 'lobby.message' && d && d.message && d.message.lobby === id) {
      t.add([lobbyMsg(d.message)]);
      membersSoon();
      headSoon();
    }
    if (type === 'web.reconnected') load().catch(() => {});
  };
}

// --- distant chat ---

async function distantNewView(view) {
  const to = h('input', { type: 'text', class: 'grow', placeholder: 'their chat id (kc…)', 'data-test': 'distant-to', spellcheck: 'false' });
  const as = await identityPicker('');
  const text = h('textarea', { rows: 3, placeholder: 'first message', 'data-test': 'distant-text' });
  const send = async () => {
    await api.post('/v1/distant/' + api.seg(to.value.trim()) + '/messages', { text: text.value, as: as.value || undefined });
    location.hash = '#/chat/distant/' + api.seg(to.value.trim()) + (as.value ? '?as=' + api.seg(as.value) : '');
  };
  fill(view, h('section', { class: 'thread pad' }, h('h2', null, 'New distant chat'),
    h('p', { class: 'muted' }, 'Write to a chat identity that is not your friend: the message goes through tunnels, end-to-end encrypted; neither side learns where the other is.'),
    h('div', { class: 'actions' }, to, h('label', null, 'as ', as)), text,
    h('div', { class: 'actions' }, button('Send', send, { class: 'primary', 'data-test': 'distant-send' }))));
  return () => {};
}

function distantView(view, remote, local) {
  const head = h('div');
  let all = [];
  let shown = 0;
  const t = thread({
    head,
    older: async () => {
      const n = Math.min(PAGE, all.length - shown);
      const out = all.slice(all.length - shown - n, all.length - shown);
      shown += n;
      return out;
    },
    send: (text) => api.post('/v1/distant/' + api.seg(remote) + '/messages', { text, as: local || undefined }),
  });
  const load = async () => {
    const ds = await api.get('/v1/distant');
    const c = ds.find((d) => d.remote === remote && (!local || d.local === local));
    fill(head, h('h2', null, 'Distant chat'),
      h('div', { class: 'muted' }, 'with ', h('span', { class: 'mono' }, remote), ' ', button('Copy id', () => copy(remote, 'chat id'), { class: 'link' })),
      c ? h('div', { class: 'muted' }, 'you are ', peer(c.local_nick || short(c.local))) : null,
      c && c.request ? h('div', { class: 'notice' }, 'A request: this chat id wrote to you first. Its messages wait in a small quota until you accept. ',
        button('Accept', async () => { await api.post('/v1/distant/' + api.seg(remote) + '/accept', { as: local || undefined }); load(); }, { class: 'primary' })) : null);
    all = await readAll('/v1/distant/' + api.seg(remote) + '/messages', { as: local || undefined });
    shown = Math.min(all.length, PAGE * 2);
    t.add(all.slice(all.length - shown));
    t.list.scrollTop = t.list.scrollHeight;
  };
  fill(view, t.el);
  load().catch((e) => toast(e.message, 'error'));
  return (type, d) => {
    if (!d || d.remote !== remote || (local && d.local !== local)) return;
    if (type === 'distant.message') t.add([d.message]);
    if (type === 'distant.delivered') t.delivered(d.ids);
  };
}

// --- chat identities ---

function identitiesView(view) {
  const list = h('tbody', { 'data-test': 'identities' });
  const nick = h('input', { type: 'text', placeholder: 'nickname', maxlength: 64, 'data-test': 'identity-nick' });
  const load = async () => {
    const ids = await api.get('/v1/identities');
    fill(list, ids.map((i) => h('tr', null, h('td', null, peer(i.nick)), h('td', { class: 'mono' }, i.chat_id),
      h('td', { class: 'actions' }, button('Copy chat id', () => copy(i.chat_id, 'chat id'))))));
  };
  fill(view, h('section', { class: 'thread pad' }, h('h2', null, 'Your chat identities'),
    h('p', { class: 'muted' }, 'Pseudonyms for lobbies and distant chat: a chat id is not your node, and tells nobody who you are.'),
    h('table', { class: 'list' }, list),
    h('div', { class: 'actions' }, nick, button('New identity', async () => { await api.post('/v1/identities', { nick: nick.value.trim() }); nick.value = ''; load(); }, { 'data-test': 'identity-new' }))));
  load().catch((e) => toast(e.message, 'error'));
  return () => {};
}

export function mount(main, route) {
  const refreshers = {};
  const view = h('div', { class: 'chat-view' });
  main.append(h('div', { class: 'chat' }, sidebar(route, refreshers), view));
  const kind = route.parts[0];
  const id = route.parts[1];
  let handle = () => {};
  if (kind === 'friend' && id) handle = friendView(view, id, refreshers);
  else if (kind === 'lobby' && id) handle = lobbyView(view, id);
  else if (kind === 'distant' && id) handle = distantView(view, id, route.params.get('as') || '');
  else if (kind === 'lobbies') lobbiesView(view, refreshers).then((f) => { handle = f; });
  else if (kind === 'distant-new') distantNewView(view);
  else if (kind === 'identities') handle = identitiesView(view);
  else fill(view, h('section', { class: 'thread pad' }, h('p', { class: 'muted' }, 'Pick a conversation, a lobby or a distant chat.')));
  const lobbyPoll = setInterval(() => { if (document.visibilityState === 'visible') refreshers.lobbies(); }, LOBBY_POLL);
  const off = api.onEvent((type, d) => {
    if (type.startsWith('chat.') || type.startsWith('friend.') || type === 'web.reconnected' || type === 'web.read') refreshers.friends();
    if (type.startsWith('lobby.') || type === 'web.reconnected') refreshers.lobbies();
    if (type.startsWith('distant.') || type === 'web.reconnected') refreshers.distant();
    handle(type, d);
  });
  return () => { off(); clearInterval(lobbyPoll); refreshers.gone = true; if (refreshers.stop) refreshers.stop(); };
}
