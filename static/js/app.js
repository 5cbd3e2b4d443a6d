// blindrelay web client: the page. Three views (create, join, room) over one RoomClient.

import qrcode from '../vendor/qrcode.mjs';
import * as C from './crypto.js';
import { RoomClient, MAX_FILE_BYTES } from './client.js';
import { CodedError, errorText } from './errors.js';

/** sessionStorage (this tab only, gone when it closes): the room this tab is in. */
const ROOM_KEY = 'blindrelay.room.v1';
/** sessionStorage: an invitation read from a link, until it is used. */
const INVITE_KEY = 'blindrelay.invite.v1';
const ID_RE = /^[A-Za-z0-9_.-]{1,128}$/;
const B64URL_RE = /^[A-Za-z0-9_-]+$/;
const MODES = ['group', 'private', 'password'];
const MODE_TITLE = { group: 'Group room', private: 'Private room', password: 'Password room' };

const $ = (id) => document.getElementById(id);

let client = null;
let invite = null;
let shareAutoOpened = false;
const messageEls = new Map();

// ---- small helpers ----

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'class') node.className = v;
    else if (k === 'text') node.textContent = v;
    else if (k.startsWith('data-')) node.setAttribute(k, String(v));
    else if (k in node) node[k] = v;
    else node.setAttribute(k, String(v));
  }
  for (const c of children) if (c !== null && c !== undefined && c !== false) node.append(c);
  return node;
}

function formatSize(n) {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
  return `${(n / 1024 / 1024).toFixed(1)} MiB`;
}

function formatTime(ts) {
  const d = new Date(ts);
  return d.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
}

function loadJson(key) {
  try {
    return JSON.parse(sessionStorage.getItem(key) ?? 'null');
  } catch {
    return null;
  }
}

function saveRoom() {
  if (client && !client.closed) sessionStorage.setItem(ROOM_KEY, JSON.stringify(client.snapshot()));
}

function forgetRoom() {
  sessionStorage.removeItem(ROOM_KEY);
}

// ---- banner and status ----

function showError(code, message) {
  const banner = $('banner');
  $('banner-text').textContent = errorText(code, message);
  banner.dataset.code = code;
  banner.hidden = false;
}

function hideError() {
  $('banner').hidden = true;
  delete $('banner').dataset.code;
}

const STATE_TEXT = {
  idle: 'Not connected',
  connecting: 'Connecting…',
  joined: 'Connected · end-to-end encrypted',
  reconnecting: 'Connection lost · reconnecting…',
  restarting: 'The server is restarting · reconnecting…',
  waiting: 'Reconnected · waiting for the room to come back…',
  closed: 'Room closed',
  left: 'Not in a room',
  failed: 'Not connected',
};

function setConn(state) {
  $('conn').dataset.state = state;
  $('conn-text').textContent = STATE_TEXT[state] ?? state;
}

function showView(name) {
  for (const v of ['home', 'join', 'room']) $(`view-${v}`).hidden = v !== name;
  document.body.dataset.view = name;
}

function setBusy(button, busy, text) {
  if (busy) {
    button.dataset.label = button.textContent;
    button.textContent = text;
    button.disabled = true;
    button.setAttribute('aria-busy', 'true');
  } else {
    button.textContent = button.dataset.label ?? button.textContent;
    button.disabled = false;
    button.removeAttribute('aria-busy');
  }
}

// ---- links ----

function shareLink({ sessionId, mode, key, secret }) {
  const params = new URLSearchParams({ join: sessionId, mode });
  if (mode !== 'password') {
    params.set('key', key);
    params.set('s', secret);
  }
  return `${location.origin}${location.pathname}#${params}`;
}

/**
 * Reads an invitation from the address's #fragment (which browsers never send to a server)
 * and removes it from the address bar and history.
 */
function readFragment() {
  const hash = location.hash.slice(1);
  if (!hash) return null;
  const params = new URLSearchParams(hash);
  if (!params.has('join')) return null;
  history.replaceState(null, '', location.pathname + location.search);
  const sessionId = params.get('join') ?? '';
  const mode = params.get('mode') ?? 'private';
  const key = params.get('key') ?? '';
  const secret = params.get('s') ?? '';
  if (!ID_RE.test(sessionId) || !MODES.includes(mode)) return { bad: true };
  if (mode !== 'password' && (!ID_RE.test(key) || key.includes(':') || !B64URL_RE.test(secret))) return { bad: true };
  return { sessionId, mode, key: mode === 'password' ? null : key, secret: mode === 'password' ? null : secret };
}

// ---- QR code ----

function qrSvg(text) {
  const qr = qrcode(0, 'M');
  qr.addData(text);
  qr.make();
  const n = qr.getModuleCount();
  const quiet = 4;
  let d = '';
  for (let r = 0; r < n; r++) {
    for (let c = 0; c < n; c++) if (qr.isDark(r, c)) d += `M${c + quiet} ${r + quiet}h1v1h-1z`;
  }
  const ns = 'http://www.w3.org/2000/svg';
  const svg = document.createElementNS(ns, 'svg');
  const size = n + quiet * 2;
  svg.setAttribute('viewBox', `0 0 ${size} ${size}`);
  svg.setAttribute('role', 'img');
  svg.setAttribute('aria-label', 'QR code of the link to this room');
  svg.setAttribute('shape-rendering', 'crispEdges');
  const bg = document.createElementNS(ns, 'rect');
  bg.setAttribute('width', String(size));
  bg.setAttribute('height', String(size));
  bg.setAttribute('fill', '#fff');
  const path = document.createElementNS(ns, 'path');
  path.setAttribute('d', d);
  path.setAttribute('fill', '#000');
  svg.append(bg, path);
  return svg;
}

// ---- views: home ----

function showHome() {
  invite = null;
  sessionStorage.removeItem(INVITE_KEY);
  showView('home');
  document.title = 'blindrelay · encrypted rooms';
  setConn('idle');
  updateCreateMode();
}

function updateCreateMode() {
  const mode = new FormData($('create-form')).get('mode');
  $('create-password-fields').hidden = mode !== 'password';
}

function fieldError(id, text, focus) {
  const p = $(id);
  p.textContent = text ?? '';
  p.hidden = !text;
  if (text && focus) focus.focus();
}

function validName(input, errorId) {
  const name = input.value.trim();
  if (!name) {
    fieldError(errorId, 'Enter a name so the others know who you are.', input);
    return null;
  }
  return name.slice(0, 64);
}

async function reserve(body) {
  let res;
  try {
    res = await fetch('/api/reserve-session', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });
  } catch {
    throw new CodedError('CONNECTION');
  }
  if (res.ok) return;
  const answer = await res.json().catch(() => ({}));
  throw new CodedError(answer.code ?? (res.status === 413 ? 'PAYLOAD_TOO_LARGE' : 'UNKNOWN'), answer.error);
}

async function onCreate(event) {
  event.preventDefault();
  hideError();
  fieldError('create-error', null);
  const name = validName($('create-name'), 'create-error');
  if (!name) return;
  const mode = new FormData($('create-form')).get('mode');
  const password = $('create-password').value;
  if (mode === 'password') {
    if (password.length < 8) {
      fieldError('create-error', 'Choose a password of at least 8 characters.', $('create-password'));
      return;
    }
    if (password !== $('create-password2').value) {
      fieldError('create-error', errorText('PASSWORD_MISMATCH'), $('create-password2'));
      return;
    }
  }
  const button = $('create-submit');
  setBusy(button, true, 'Creating…');
  try {
    let attempt = 0;
    for (;;) {
      // 128-bit random room id; 256-bit random key.
      const sessionId = C.randomId(16);
      let authKey;
      let secret;
      if (mode === 'password') {
        const derived = await C.derivePassword(password, sessionId);
        authKey = `${C.randomId(32)}:${derived.digest}`;
        secret = derived.secret;
      } else {
        authKey = C.randomId(32);
        secret = C.randomBytes(32);
      }
      try {
        await reserve({ sessionId, authKey, chatMode: mode });
      } catch (err) {
        if (err.code === 'SESSION_EXISTS' && attempt++ < 3) continue;
        throw err;
      }
      const identity = await C.generateIdentity();
      await enterRoom({
        sessionId,
        mode,
        isCreator: true,
        authKey,
        roomSecret: secret,
        userId: C.randomId(16),
        displayName: name,
        identity,
        savedIdentity: await C.exportIdentity(identity),
        shareLink: shareLink({ sessionId, mode, key: authKey, secret: C.toBase64Url(secret) }),
      }, { share: true });
      $('create-password').value = '';
      $('create-password2').value = '';
      break;
    }
  } catch (err) {
    showError(err.code ?? 'UNKNOWN', err.message);
  } finally {
    setBusy(button, false);
  }
}

// ---- views: join ----

function showJoin(inv) {
  invite = inv;
  sessionStorage.setItem(INVITE_KEY, JSON.stringify(inv));
  showView('join');
  setConn('idle');
  document.title = 'Join a room · blindrelay';
  const pw = inv.mode === 'password';
  $('join-password-fields').hidden = !pw;
  $('join-desc').textContent = {
    private: 'You were invited to a private, end-to-end-encrypted conversation between two people.',
    group: 'You were invited to an end-to-end-encrypted group room.',
    password: 'You were invited to a password-protected, end-to-end-encrypted conversation. Enter the password you were given.',
  }[inv.mode];
  $('join-name').focus();
}

async function onJoin(event) {
  event.preventDefault();
  hideError();
  fieldError('join-error', null);
  if (!invite) return;
  const name = validName($('join-name'), 'join-error');
  if (!name) return;
  const pwInput = $('join-password');
  if (invite.mode === 'password' && !pwInput.value) {
    fieldError('join-error', 'Enter the room password.', pwInput);
    return;
  }
  const button = $('join-submit');
  setBusy(button, true, invite.mode === 'password' ? 'Checking…' : 'Joining…');
  try {
    let credential;
    let secret;
    if (invite.mode === 'password') {
      const derived = await C.derivePassword(pwInput.value, invite.sessionId);
      credential = `password:${derived.digest}`;
      secret = derived.secret;
    } else {
      credential = invite.key;
      secret = C.fromBase64Url(invite.secret);
    }
    const identity = await C.generateIdentity();
    await enterRoom({
      sessionId: invite.sessionId,
      mode: invite.mode,
      isCreator: false,
      credential,
      roomSecret: secret,
      userId: C.randomId(16),
      displayName: name,
      identity,
      savedIdentity: await C.exportIdentity(identity),
      shareLink: shareLink({ sessionId: invite.sessionId, mode: invite.mode, key: invite.key, secret: invite.secret }),
    });
    pwInput.value = '';
  } catch (err) {
    const code = err.code ?? 'UNKNOWN';
    showError(code, err.message);
    if (code === 'INVALID_PASSWORD') {
      pwInput.select();
      pwInput.focus();
    }
  } finally {
    setBusy(button, false);
  }
}

// ---- the room ----

function resetRoomView() {
  followLog = true;
  messageEls.clear();
  $('messages').replaceChildren();
  $('member-list').replaceChildren();
  $('typing').textContent = '';
  $('closed-panel').hidden = true;
  $('share-panel').hidden = true;
  $('share-toggle').setAttribute('aria-expanded', 'false');
  $('key-generation').hidden = true;
  $('key-generation').dataset.generation = '0';
  setComposerEnabled(true);
}

async function enterRoom(cfg, { share = false, resumed = false } = {}) {
  if (client) client.disconnect();
  resetRoomView();
  const c = new RoomClient(cfg);
  client = c;
  wire(c);
  try {
    await c.start();
  } catch (err) {
    if (client === c) client = null;
    throw err;
  }
  sessionStorage.removeItem(INVITE_KEY);
  invite = null;
  saveRoom();
  showRoom(c, { share });
  if (resumed) c.notice('You are back in the room', 'join');
}

function wire(c) {
  const mine = (fn) => (event) => {
    if (client === c) fn(event.detail);
  };
  c.addEventListener('state', mine(({ state }) => {
    setConn(state);
    if (state === 'closed') roomClosed(c);
    if (state === 'failed') forgetRoom();
  }));
  c.addEventListener('members', mine(() => {
    renderMembers(c);
    // A 1:1 room is complete once the other person is in: the invitation has done its job.
    if (c.mode !== 'group' && shareAutoOpened && c.presentPeers().length) {
      shareAutoOpened = false;
      toggleShare(false);
    }
  }));
  c.addEventListener('message', mine(({ record }) => renderMessage(c, record)));
  c.addEventListener('notice', mine((n) => renderNotice(n)));
  c.addEventListener('typing', mine(({ names }) => renderTyping(names)));
  c.addEventListener('keygen', mine(({ generation }) => renderKeyGeneration(c, generation)));
  c.addEventListener('error', mine(({ code, message }) => showError(code, message)));
  c.addEventListener('persist', mine(() => saveRoom()));
}

function showRoom(c, { share }) {
  showView('room');
  const title = MODE_TITLE[c.mode] ?? 'Room';
  $('room-title').textContent = title;
  document.title = `${title} · blindrelay`;
  $('room-me').textContent = `You are ${c.displayName}${c.isCreator ? ' (you created this room)' : ''}.`;
  $('close-room').hidden = !c.isCreator;
  $('attach-hint').textContent = `Files and images up to ${formatSize(MAX_FILE_BYTES)}, encrypted like messages.`;
  const link = c.cfg.shareLink;
  $('share-toggle').hidden = !link;
  if (link) {
    $('share-link').value = link;
    $('share-note').textContent = c.mode === 'password'
      ? 'This link does not contain the password. Tell the other person the password another way (in person, by phone).'
      : 'Anyone with this link can join and read what is said from then on. Send it privately; it contains the room key.';
    $('share-qr').replaceChildren(qrSvg(link));
  }
  toggleShare(share);
  shareAutoOpened = share;
  renderMembers(c);
  renderKeyGeneration(c, c.currentGen);
  if (share) $('share-link').focus();
  else $('message-input').focus();
}

function toggleShare(open) {
  $('share-panel').hidden = !open;
  $('share-toggle').setAttribute('aria-expanded', String(open));
}

function renderKeyGeneration(c, generation) {
  const pill = $('key-generation');
  pill.dataset.generation = String(generation);
  pill.hidden = c.mode !== 'group' || !generation;
  pill.textContent = `Room key #${generation}`;
  pill.title = 'The room key changes whenever someone leaves: people who left cannot read what follows.';
}

function renderMembers(c) {
  const list = $('member-list');
  const items = [el('li', { class: 'member me', 'data-user-id': c.me },
    el('span', { class: 'name', text: c.displayName }), ' ', el('span', { class: 'you', text: '(you)' }))];
  const peers = [...c.members.values()].filter((m) => m.present).sort((a, b) => a.joinedAt - b.joinedAt);
  for (const m of peers) {
    items.push(el('li', { class: 'member', 'data-user-id': m.userId },
      el('span', { class: 'name', text: m.displayName || 'Someone' }),
      el('p', { class: 'safety' }, 'Safety number with you:',
        el('code', { class: 'safety-number', text: m.safety ?? (m.publicKey ? 'computing…' : 'no key yet') })),
      m.keyChanged && el('p', { class: 'safety-changed', text: 'Changed since this person joined: compare it again.' })));
  }
  list.replaceChildren(...items);
  const empty = $('people-empty');
  if (!peers.length && !c.closed) {
    empty.hidden = false;
    empty.textContent = c.mode === 'group'
      ? 'Nobody else is here yet. Send them the link (Invite).'
      : 'Waiting for the other person. Send them the link (Invite); your messages are sent once they join.';
  } else {
    empty.hidden = true;
  }
}

function renderTyping(names) {
  const t = $('typing');
  if (!names.length) t.textContent = '';
  else if (names.length === 1) t.textContent = `${names[0]} is typing…`;
  else if (names.length === 2) t.textContent = `${names[0]} and ${names[1]} are typing…`;
  else t.textContent = 'Several people are typing…';
}

/** Whether the message log follows new messages (it does unless the reader scrolled up). */
let followLog = true;

function keepLogAtBottom() {
  const log = $('messages');
  if (followLog) log.scrollTop = log.scrollHeight;
}

/** Inserts a message or notice element ordered by timestamp. */
function place(node, ts) {
  const log = $('messages');
  node.dataset.ts = String(ts);
  let before = null;
  for (let n = log.lastElementChild; n; n = n.previousElementSibling) {
    if (Number(n.dataset.ts) <= ts) break;
    before = n;
  }
  log.insertBefore(node, before);
  keepLogAtBottom();
}

function renderNotice({ text, kind, timestamp }) {
  place(el('li', { class: `notice notice-${kind}`, text: `${text} · ${formatTime(timestamp)}` }), timestamp);
}

const STATUS_TEXT = {
  queued: 'Not sent yet (offline); sent when reconnected',
  sending: 'Sending…',
  sent: 'Sent',
  failed: 'Not sent',
};

const PROBLEM_TEXT = {
  'no-room-key': 'Encrypted with a room key you do not have (sent before you joined). It cannot be read here.',
  'no-peer-key': 'Waiting for the sender’s key to decrypt this message…',
  undecryptable: 'This message could not be decrypted (wrong key or tampered with).',
  unsupported: 'This message was sent by a client this page cannot read.',
};

function statusText(c, r) {
  if (r.state === 'waiting') {
    return r.waitingFor === 'room-key' ? 'Waiting for the room key…' : 'Waiting for the other person to join…';
  }
  let s = STATUS_TEXT[r.state] ?? '';
  if (r.state === 'failed' && r.failure) s += `: ${errorText(r.failure)}`;
  if (r.downloadedBy?.length) s += ` · Downloaded by ${r.downloadedBy.join(', ')}`;
  return s;
}

function renderMessage(c, r) {
  let li = messageEls.get(r.key);
  const fresh = !li;
  if (fresh) {
    li = el('li');
    messageEls.set(r.key, li);
  }
  li.className = `msg ${r.mine ? 'mine' : 'theirs'}`;
  li.dataset.id = r.id;
  li.dataset.state = r.state;
  li.dataset.type = r.type;
  if (r.gen !== undefined) li.dataset.gen = String(r.gen);
  const who = r.mine ? 'You' : (r.fromName || c.nameOf(r.from));
  const parts = [el('p', { class: 'meta' },
    el('span', { class: 'who', text: who }),
    el('time', { dateTime: new Date(r.timestamp).toISOString(), text: formatTime(r.timestamp) }))];
  if (r.problem && !r.content) {
    parts.push(el('p', { class: 'body problem', text: PROBLEM_TEXT[r.problem] ?? PROBLEM_TEXT.undecryptable }));
  } else if (!r.content) {
    parts.push(el('p', { class: 'body problem', text: 'Decrypting…' }));
  } else if (r.type === 'text') {
    parts.push(el('p', { class: 'body', text: r.content.text }));
  } else {
    const f = r.content;
    const box = el('div', { class: 'file' });
    if (f.image) {
      const img = el('img', { src: f.url, alt: `Image: ${f.name}` });
      img.addEventListener('load', keepLogAtBottom, { once: true });
      box.append(img);
    }
    else box.append(el('p', { class: 'body', text: `File: ${f.name} (${formatSize(f.size)})` }));
    const link = el('a', { class: 'download', href: f.url, download: f.name, text: `Download ${f.name}` });
    if (!r.mine) link.addEventListener('click', () => c.fileDownloaded(r));
    box.append(link);
    parts.push(box);
  }
  if (r.mine) {
    const status = el('p', { class: 'status', text: statusText(c, r) });
    if (r.state === 'failed') {
      const retry = el('button', { type: 'button', text: 'Retry' });
      retry.addEventListener('click', () => c.retry(r));
      status.append(retry);
    }
    parts.push(status);
  }
  li.replaceChildren(...parts);
  if (fresh) place(li, r.timestamp);
  else keepLogAtBottom();
}

function setComposerEnabled(on) {
  for (const id of ['message-input', 'attach', 'send']) $(id).disabled = !on;
}

function roomClosed(c) {
  forgetRoom();
  setComposerEnabled(false);
  $('close-room').hidden = true;
  $('leave-room').hidden = true;
  $('share-toggle').hidden = true;
  toggleShare(false);
  $('closed-panel').hidden = false;
  $('closed-text').textContent = c.isCreator
    ? 'You closed the room. It is deleted from the server.'
    : 'This room no longer exists. Its messages were deleted from the server.';
  renderTyping([]);
  renderMembers(c);
  if (!c.isCreator) showError('ROOM_CLOSED');
  $('closed-new').focus();
}

function sendFromComposer(event) {
  event?.preventDefault();
  if (!client) return;
  const input = $('message-input');
  const text = input.value.trim();
  if (!text) return;
  client.sendText(text);
  client.stopTyping();
  input.value = '';
  input.focus();
}

async function sendFiles(files) {
  for (const file of files) {
    if (file.size > MAX_FILE_BYTES) {
      showError('FILE_TOO_LARGE', `“${file.name}” is ${formatSize(file.size)}; files up to ${formatSize(MAX_FILE_BYTES)} can be sent.`);
      continue;
    }
    try {
      await client.sendFile(file);
    } catch (err) {
      showError(err.code ?? 'UNKNOWN', err.message);
    }
  }
}

async function resume(saved) {
  setConn('connecting');
  try {
    const identity = await C.importIdentity(saved.identity);
    await enterRoom({
      sessionId: saved.sessionId,
      mode: saved.mode,
      isCreator: saved.isCreator,
      authKey: saved.authKey ?? undefined,
      credential: saved.credential ?? undefined,
      roomSecret: C.fromBase64Url(saved.roomSecret),
      userId: saved.userId,
      displayName: saved.displayName,
      identity,
      savedIdentity: saved.identity,
      groupKeys: saved.groupKeys,
      distributedTo: saved.distributedTo,
      shareLink: saved.shareLink,
      resumeToken: saved.resumeToken ?? null,
    }, { resumed: true });
  } catch (err) {
    forgetRoom();
    showHome();
    showError(err.code ?? 'UNKNOWN', err.message);
  }
}

// ---- start ----

function bind() {
  $('create-form').addEventListener('submit', onCreate);
  $('create-form').addEventListener('change', updateCreateMode);
  $('join-form').addEventListener('submit', onJoin);
  $('join-cancel').addEventListener('click', () => {
    hideError();
    showHome();
  });
  $('banner-close').addEventListener('click', hideError);
  $('share-toggle').addEventListener('click', () => {
    shareAutoOpened = false;
    toggleShare($('share-panel').hidden);
  });
  $('share-copy').addEventListener('click', async () => {
    const input = $('share-link');
    const button = $('share-copy');
    try {
      await navigator.clipboard.writeText(input.value);
      button.textContent = 'Copied';
    } catch {
      input.select();
      button.textContent = 'Press Ctrl+C to copy';
    }
    setTimeout(() => { button.textContent = 'Copy link'; }, 2500);
  });
  $('leave-room').addEventListener('click', async () => {
    if (!client) return;
    const c = client;
    await c.leave();
    forgetRoom();
    client = null;
    hideError();
    showHome();
  });
  $('close-room').addEventListener('click', () => $('close-dialog').showModal());
  $('close-cancel').addEventListener('click', () => $('close-dialog').close());
  $('close-confirm').addEventListener('click', async () => {
    $('close-dialog').close();
    try {
      await client?.closeRoom();
    } catch (err) {
      showError(err.code ?? 'UNKNOWN', err.message);
    }
  });
  $('closed-new').addEventListener('click', () => {
    client = null;
    hideError();
    showHome();
    $('create-name').focus();
  });
  $('messages').addEventListener('scroll', () => {
    const log = $('messages');
    followLog = log.scrollHeight - log.scrollTop - log.clientHeight < 40;
  }, { passive: true });
  $('composer').addEventListener('submit', sendFromComposer);
  $('message-input').addEventListener('keydown', (e) => {
    if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) sendFromComposer(e);
  });
  $('message-input').addEventListener('input', () => {
    if ($('message-input').value) client?.typingInput();
    else client?.stopTyping();
  });
  $('attach').addEventListener('click', () => $('file-input').click());
  $('file-input').addEventListener('change', async () => {
    const files = [...$('file-input').files];
    $('file-input').value = '';
    await sendFiles(files);
  });
  window.addEventListener('hashchange', () => {
    if (new URLSearchParams(location.hash.slice(1)).has('join')) location.reload();
  });
}

function init() {
  bind();
  if (!C.cryptoAvailable()) {
    showView('home');
    showError('INSECURE_CONTEXT');
    $('create-submit').disabled = true;
    $('join-submit').disabled = true;
    return;
  }
  const fromLink = readFragment();
  const saved = loadJson(ROOM_KEY);
  if (fromLink?.bad) {
    showHome();
    showError('BAD_LINK');
    return;
  }
  if (fromLink) {
    if (saved?.sessionId === fromLink.sessionId) resume(saved);
    else {
      forgetRoom();
      showJoin(fromLink);
    }
    return;
  }
  if (saved?.v === 1) {
    resume(saved);
    return;
  }
  const pending = loadJson(INVITE_KEY);
  if (pending?.sessionId) showJoin(pending);
  else showHome();
}

init();
