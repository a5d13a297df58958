// Status: peer ID, addresses, friends online, reachability, transfer
// rates over time (a small chart), and the router's, lobbies' and other
// counters, read from the daemon's /metrics as it serves them.
import * as api from '../lib/api.js';
import { h, fill, peer, bytes, rate, toast, copy, button, card } from '../lib/dom.js';

const POINTS = 90; // samples in the chart
const EVERY = 2000; // ms between samples

// Rates are sampled from the moment the page is opened (startSampling,
// while the browser shows it), so the chart has a past when Status is
// opened.
const history = [];
let lastSample = null;
let lastMetrics = null;
let sampler = null;
const onSample = new Set();

// startSampling samples the rates every EVERY ms while the page is
// visible; onSample(metrics) is called after each.
export function startSampling() {
  if (sampler) return;
  sampler = setInterval(() => {
    if (document.visibilityState === 'visible') sample().catch(() => {});
  }, EVERY);
  sample().catch(() => {});
}

// parseMetrics reads the Prometheus text format: name{labels} value.
function parseMetrics(text) {
  const out = [];
  for (const line of text.split('\n')) {
    if (!line || line[0] === '#') continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)/.exec(line);
    if (!m) continue;
    const labels = {};
    if (m[3]) for (const l of m[3].matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) labels[l[1]] = l[2];
    out.push({ name: m[1], labels, value: Number(m[4]) });
  }
  return out;
}

async function sample() {
  const r = await fetch('/metrics', { credentials: 'same-origin', cache: 'no-store' });
  if (!r.ok) throw new Error('metrics: ' + r.status);
  const ms = parseMetrics(await r.text());
  let inB = 0;
  let outB = 0;
  for (const m of ms) {
    if (m.name !== 'kith_protocol_bytes_total') continue;
    if (m.labels.direction === 'in') inB += m.value; else outB += m.value;
  }
  const now = Date.now();
  if (lastSample && now > lastSample.t) {
    const dt = (now - lastSample.t) / 1000;
    history.push({ t: now, dt, in: Math.max(0, (inB - lastSample.in) / dt), out: Math.max(0, (outB - lastSample.out) / dt) });
    while (history.length > POINTS) history.shift();
  }
  lastSample = { t: now, in: inB, out: outB };
  lastMetrics = ms;
  for (const fn of [...onSample]) fn(ms);
  return ms;
}

function draw(canvas) {
  const ctx = canvas.getContext('2d');
  const w = canvas.width;
  const hgt = canvas.height;
  ctx.clearRect(0, 0, w, hgt);
  const max = Math.max(1024, ...history.map((p) => Math.max(p.in, p.out)));
  canvas.dataset.points = String(history.length);
  canvas.dataset.peak = String(Math.round(max));
  canvas.dataset.sent = String(Math.round(history.reduce((n, p) => n + p.out * p.dt, 0)));
  canvas.dataset.full = String(history.length >= POINTS);
  ctx.strokeStyle = '#ccc';
  ctx.lineWidth = 1;
  for (let i = 1; i < 4; i++) { ctx.beginPath(); ctx.moveTo(0, (hgt * i) / 4); ctx.lineTo(w, (hgt * i) / 4); ctx.stroke(); }
  const line = (key, color) => {
    ctx.strokeStyle = color;
    ctx.lineWidth = 2;
    ctx.beginPath();
    history.forEach((p, i) => {
      const x = w - (history.length - 1 - i) * (w / (POINTS - 1));
      const y = hgt - (p[key] / max) * (hgt - 4) - 2;
      if (i === 0) ctx.moveTo(x, y); else ctx.lineTo(x, y);
    });
    ctx.stroke();
  };
  line('in', '#2a7');
  line('out', '#37c');
  ctx.fillStyle = '#555';
  ctx.font = '12px sans-serif';
  ctx.fillText('max ' + rate(max), 4, 14);
}

// Counters shown, by metric name prefix, with a heading each.
const GROUPS = [
  ['Router (searches and tunnels)', ['kith_router_']],
  ['Lobbies', ['kith_lobby_']],
  ['Chat', ['kith_chat_']],
  ['Sharing', ['kith_share_', 'kith_downloads']],
  ['Friends and connections', ['kith_friends', 'kith_friend_', 'kith_connections_', 'kith_inbound_', 'kith_dht_', 'kith_hole_']],
  ['Relaying for friends', ['kith_relay_']],
];

function counters(ms) {
  return h('div', { class: 'counters', 'data-test': 'counters' }, GROUPS.map(([title, prefixes]) => {
    const rows = ms.filter((m) => prefixes.some((p) => m.name.startsWith(p)));
    if (rows.length === 0) return null;
    return h('div', { class: 'group' }, h('h3', null, title), h('table', { class: 'kv' }, h('tbody', null, rows.map((m) => h('tr', null,
      h('td', null, m.name.replace(/^kith_/, '').replace(/_total$/, '').replace(/_/g, ' '),
        Object.keys(m.labels).length ? h('span', { class: 'muted' }, ' ' + Object.values(m.labels).join(', ')) : null),
      h('td', { class: 'num' }, m.name.includes('bytes') ? bytes(m.value) : String(m.value)))))));
  }));
}

// kv shows a JSON object as a table of its fields (text only).
function kv(o) {
  if (o === null || o === undefined) return '—';
  if (typeof o !== 'object') return peer(String(o));
  if (Array.isArray(o)) return o.length === 0 ? '—' : h('ul', { class: 'plain' }, o.map((x) => h('li', null, kv(x))));
  return h('table', { class: 'kv' }, h('tbody', null, Object.entries(o).map(([k, v]) => h('tr', null, h('td', null, k.replace(/_/g, ' ')), h('td', null, kv(v))))));
}

export function mount(main) {
  const info = h('div', { 'data-test': 'status' });
  const canvas = h('canvas', { width: 720, height: 160, class: 'chart', 'data-test': 'chart' });
  const now = h('p', { class: 'legend' });
  const cs = h('div');
  const reach = h('div');
  const loadStatus = async () => {
    const st = await api.get('/v1/status');
    fill(info, h('table', { class: 'kv' }, h('tbody', null,
      h('tr', null, h('td', null, 'name'), h('td', null, peer(st.name))),
      h('tr', null, h('td', null, 'peer ID'), h('td', { class: 'mono' }, st.peer_id, ' ', button('Copy', () => copy(st.peer_id, 'peer ID'), { class: 'link' }))),
      h('tr', null, h('td', null, 'friends online'), h('td', { 'data-test': 'friends-online' }, st.friends_online + ' of ' + st.friends_total)),
      h('tr', null, h('td', null, 'connections'), h('td', null, String(st.connections))),
      h('tr', null, h('td', null, 'refused (not friends)'), h('td', null, String(st.refused_connections))),
      h('tr', null, h('td', null, 'uptime'), h('td', null, Math.floor(st.uptime_seconds / 3600) + ' h ' + Math.floor((st.uptime_seconds % 3600) / 60) + ' min')),
      h('tr', null, h('td', null, 'rate caps'), h('td', null, 'up ' + (st.max_upload ? rate(st.max_upload) : 'none') + ', down ' + (st.max_download ? rate(st.max_download) : 'none'))),
      h('tr', null, h('td', null, 'listening on'), h('td', { class: 'mono' }, h('ul', { class: 'plain' }, st.listen_addrs.map((a) => h('li', null, a))))),
      h('tr', null, h('td', null, 'version'), h('td', null, String(st.version && (st.version.version || '')) + ' ' + String((st.version && st.version.revision) || '').slice(0, 12) + ', schema ' + st.schema)),
      h('tr', null, h('td', null, 'home'), h('td', { class: 'mono' }, peer(st.home))))));
    fill(reach, kv(st.reach));
  };
  const show = (ms) => {
    draw(canvas);
    const p = history[history.length - 1];
    fill(now, h('span', { class: 'in' }, '■ in ' + rate(p ? p.in : 0)), '   ', h('span', { class: 'out' }, '■ out ' + rate(p ? p.out : 0)));
    fill(cs, counters(ms));
  };
  main.append(h('h1', null, 'Status'),
    h('div', { class: 'two' }, card('This node', info), card('Transfer rates (all friends and tunnels)', canvas, now)),
    h('div', { class: 'two' }, card('Reachability', reach), card('Counters', cs)));
  loadStatus().catch((e) => toast(e.message, 'error'));
  startSampling();
  if (lastMetrics) show(lastMetrics);
  onSample.add(show);
  const t2 = setInterval(() => loadStatus().catch(() => {}), 5000);
  const off = api.onEvent((t) => { if (t.startsWith('friend.') || t === 'config.changed') loadStatus().catch(() => {}); });
  return () => { onSample.delete(show); clearInterval(t2); off(); };
}
