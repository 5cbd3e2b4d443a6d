// blindrelay web client: the page. Four views (create, join, room, ended) over one RoomClient.

import qrcode from '../vendor/qrcode.mjs';
import * as C from './crypto.js';
import { RoomClient, MAX_FILE_BYTES } from './client.js';
import { CodedError, errorInfo, errorText, formatWait } from './errors.js';
import { $, el, formatSize } from './dom.js';
import { MessageLog } from './log.js';
import { Alerts, notificationsSupported } from './notify.js';
import { Attachments } from './attach.js';
import { VoiceNotes } from './voice.js';
import * as store from './storage.js';
import { loadIdentity, newIdentity } from './identity.js';
import { KEY_CHANGED } from './keywatch.js';
import { whose } from './actions.js';
import { TIMER_CHOICES, firstLine } from './kinds.js';
import { TIMER_EXPLAINED, timerBanner, timerWords } from './disappear.js';
import { Attention, SeenTracker } from './seen.js';
import { UnreadMarker } from './unread.js';
import { Search } from './search.js';

/** sessionStorage: an invitation read from a link, until it is used. */
const INVITE_KEY = 'blindrelay.invite.v1';
/**
 * sessionStorage: until when the server refuses this tab's joins of a room (a lockout after
 * wrong keys or passwords), {"<room>": epoch ms}, so that a reload keeps counting down.
 */
const LOCKOUT_KEY = 'blindrelay.lockout.v1';
const ID_RE = /^[A-Za-z0-9_.-]{1,128}$/;
const B64URL_RE = /^[A-Za-z0-9_-]+$/;
const MODES = ['group', 'private', 'password'];
const MODE_TITLE = { group: 'Group room', private: 'Private room', password: 'Password room' };
const HOME_TITLE = 'blindrelay · encrypted rooms';
/** Join refusals that mean the room itself is gone. */
const GONE = new Set(['SESSION_NOT_FOUND', 'SESSION_EXPIRED']);
/** Refusals of a saved member's rejoin that may pass (offline, a wait): the member is kept. */
const PASSING = new Set(['CONNECTION', 'TIMEOUT', 'RATE_LIMITED', 'LIMIT_REACHED', 'UNAVAILABLE', 'SESSION_NOT_ACTIVE']);

let client = null;
let invite = null;
let shareAutoOpened = false;
const log = new MessageLog();
const alerts = new Alerts();
const attention = new Attention();
log.seen = new SeenTracker($('messages'), attention, onSeen);
const unread = new UnreadMarker(log, attention);
const search = new Search(log, () => client);
/** What the composer's next Send does besides a new message: {mode: 'reply'|'edit', record}. */
let composing = null;
log.handlers = {
  reply: (r) => startComposing('reply', r),
  edit: (r) => startComposing('edit', r),
  react: (r, emoji) => {
    const fromPanel = log.openActions === r.key;
    client?.react(r, emoji);
    if (fromPanel) {
      log.closeActions();
      log.els.get(r.key)?.querySelector('.msg-actions-toggle')?.focus();
    }
  },
  delete: (r) => onDelete(r),
};
const attachments = new Attachments({
  accepting: () => Boolean(client && !client.closed && document.body.dataset.view === 'room'),
  send: (files) => sendFiles(files),
  error: (err) => showFailure(err),
});
const voice = new VoiceNotes({
  accepting: () => Boolean(client && !client.closed && document.body.dataset.view === 'room'),
  send: (file) => sendFiles([file]),
  error: (err) => showFailure(err),
});

// ---- small helpers ----

/** Keeps the room for a reload and for other tabs of this browser (storage.js). */
function saveRoom() {
  if (client && !client.closed) store.saveRoom(client.snapshot());
}

// ---- banner and status ----

let waitTimer = null;

/**
 * Shows an error: the page's `detail` about this case, else its sentence for `code`, else
 * the server's `message` (errors.js). With `retryAfterMs` (the server's lockouts and rate
 * limits) it says how long to wait, counting down; `lead` is the sentence before the wait.
 */
function showError(code, { message, detail, retryAfterMs, lead } = {}) {
  hideError();
  const banner = $('banner');
  banner.dataset.code = code;
  banner.hidden = false;
  if (!retryAfterMs) {
    $('banner-text').textContent = errorText(code, { detail, message });
    return;
  }
  const until = Date.now() + retryAfterMs;
  const first = lead ?? (code === 'RATE_LIMITED' ? 'Too many attempts.' : errorText(code, { detail, message }));
  const tick = () => {
    const left = until - Date.now();
    if (left > 0) {
      $('banner-text').textContent = `${first} Try again in ${formatWait(left)}.`;
      return;
    }
    clearInterval(waitTimer);
    waitTimer = null;
    $('banner-text').textContent = `${first} You can try again now.`;
  };
  tick();
  waitTimer = setInterval(tick, 1000);
}

/** Shows what went wrong in `err` (a CodedError, or anything thrown); `extra` as in showError. */
function showFailure(err, extra = {}) {
  const { code, ...info } = errorInfo(err);
  showError(code, { ...info, ...extra });
}

function hideError() {
  clearInterval(waitTimer);
  waitTimer = null;
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
  removed: 'Not in a room',
  failed: 'Not connected',
};

function setConn(state) {
  $('conn').dataset.state = state;
  $('conn-text').textContent = STATE_TEXT[state] ?? state;
}

function showView(name) {
  for (const v of ['home', 'join', 'room', 'ended']) $(`view-${v}`).hidden = v !== name;
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

function fieldError(id, text, focus) {
  const p = $(id);
  p.textContent = text ?? '';
  p.hidden = !text;
  if (text && focus) focus.focus();
}

// ---- links ----

function shareLink({ sessionId, mode, key, secret, creator }) {
  const params = new URLSearchParams({ join: sessionId, mode });
  if (mode !== 'password') {
    params.set('key', key);
    params.set('s', secret);
  }
  // Whose timer for disappearing messages the room follows (disappear.js): not a secret.
  if (creator && ID_RE.test(creator)) params.set('c', creator);
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
  const creator = ID_RE.test(params.get('c') ?? '') ? params.get('c') : null;
  if (!ID_RE.test(sessionId) || !MODES.includes(mode)) return { bad: true };
  if (mode !== 'password' && (!ID_RE.test(key) || key.includes(':') || !B64URL_RE.test(secret))) return { bad: true };
  return { sessionId, mode, key: mode === 'password' ? null : key, secret: mode === 'password' ? null : secret, creator };
}

/** A fresh join credential in the creation format; private and password rooms get a new secret too. */
async function newCredential(mode, sessionId, password) {
  if (mode === 'password') {
    const derived = await C.derivePassword(password, sessionId);
    return { authKey: `${C.randomId(32)}:${derived.digest}`, roomSecret: derived.secret };
  }
  return { authKey: C.randomId(32), roomSecret: C.randomBytes(32) };
}

// ---- QR code ----

function qrSvg(text) {
  // Error correction L: a code shown on a screen is not torn or smudged, and the fewer
  // modules (49 instead of 53 for a room link) are larger at the same size, so easier to scan.
  const qr = qrcode(0, 'L');
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
  alerts.setTitle(HOME_TITLE);
  setConn('idle');
  updateCreateMode();
}

function updateCreateMode() {
  const mode = new FormData($('create-form')).get('mode');
  $('create-password-fields').hidden = mode !== 'password';
}

function validName(input, errorId) {
  const name = input.value.trim();
  if (!name) {
    fieldError(errorId, 'Enter a name so the others know who you are.', input);
    return null;
  }
  // The server's limit (docs/protocol.md "Conventions"): 64 characters as a reader counts them, so
  // an emoji or an accented letter is never cut in half.
  const graphemes = [...new Intl.Segmenter(undefined, { granularity: 'grapheme' }).segment(name)];
  return graphemes.slice(0, 64).map((g) => g.segment).join('');
}

function passwordProblem(password, repeated) {
  if (password.length < 8) return 'Choose a password of at least 8 characters.';
  if (password !== repeated) return errorText('PASSWORD_MISMATCH');
  return null;
}

/** POSTs `body` as JSON to one of the server's routes; rejects when offline. */
function postJson(path, body) {
  return fetch(path, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
}

async function reserve(body) {
  let res;
  try {
    res = await postJson('/api/reserve-session', body);
  } catch {
    throw new CodedError('CONNECTION');
  }
  if (res.ok) return;
  const answer = await res.json().catch(() => ({}));
  const retryAfterMs = Number(res.headers.get('retry-after')) * 1000 || undefined;
  throw new CodedError(answer.code ?? (res.status === 413 ? 'PAYLOAD_TOO_LARGE' : 'UNKNOWN'), { message: answer.error, retryAfterMs });
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
    const problem = passwordProblem(password, $('create-password2').value);
    if (problem) {
      fieldError('create-error', problem, $(password.length < 8 ? 'create-password' : 'create-password2'));
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
      const { authKey, roomSecret } = await newCredential(mode, sessionId, password);
      try {
        await reserve({ sessionId, authKey, chatMode: mode });
      } catch (err) {
        if (err.code === 'SESSION_EXISTS' && attempt++ < 3) continue;
        throw err;
      }
      const userId = C.randomId(16);
      const { identity, saved } = await newIdentity(sessionId, userId);
      await enterRoom({
        sessionId,
        mode,
        isCreator: true,
        authKey,
        roomSecret,
        userId,
        displayName: name,
        identity,
        savedIdentity: saved,
        shareLink: shareLink({ sessionId, mode, key: authKey, secret: C.toBase64Url(roomSecret), creator: userId }),
      }, { share: true });
      $('create-password').value = '';
      $('create-password2').value = '';
      break;
    }
  } catch (err) {
    showFailure(err, { lead: 'Too many rooms created from here.' });
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
  alerts.setTitle('Join a room · blindrelay');
  const pw = inv.mode === 'password';
  $('join-password-fields').hidden = !pw;
  $('join-desc').textContent = {
    private: 'You were invited to a private, end-to-end-encrypted conversation between two people.',
    group: 'You were invited to an end-to-end-encrypted group room. You will read what is said from the moment you join.',
    password: 'You were invited to a password-protected, end-to-end-encrypted conversation. Enter the password you were given.',
  }[inv.mode];
  $('join-name').focus();
  // A lockout this tab already knows of: its countdown goes on (asking the server would
  // only be refused meanwhile).
  const until = lockouts()[inv.sessionId];
  if (until > Date.now()) lockJoin(inv, until);
  else checkLink(inv);
}

let joinUnlockTimer = null;

/** This tab's known lockouts, the ones over dropped. */
function lockouts() {
  const all = store.loadSession(LOCKOUT_KEY) ?? {};
  const now = Date.now();
  for (const [room, until] of Object.entries(all)) if (!(until > now)) delete all[room];
  return all;
}

/**
 * The server refuses every join of `inv`'s room from here until `until` (even with the
 * right key or password): says how long, counting down, with Join off meanwhile; kept
 * across a reload.
 */
function lockJoin(inv, until) {
  const all = lockouts();
  all[inv.sessionId] = until;
  sessionStorage.setItem(LOCKOUT_KEY, JSON.stringify(all));
  const lead = inv.mode === 'password' ? 'Too many wrong passwords.' : 'Too many failed attempts to join this room.';
  showError('RATE_LIMITED', { retryAfterMs: until - Date.now(), lead });
  const button = $('join-submit');
  button.disabled = true;
  clearTimeout(joinUnlockTimer);
  joinUnlockTimer = setTimeout(() => {
    if (invite === inv) button.disabled = false;
  }, until - Date.now());
}

/**
 * Before anyone types a name: does the link still lead to a room? The server answers
 * what a join would, without joining. Any other outcome (offline, a wait) is left to
 * the join itself.
 */
async function checkLink(inv) {
  let res;
  try {
    res = await postJson('/api/session-status', {
      sessionId: inv.sessionId,
      authKey: inv.mode === 'password' ? undefined : inv.key,
    });
  } catch {
    return;
  }
  if (invite !== inv) return;
  // A lockout begun elsewhere (another tab, a join before a restart of the browser).
  const wait = Number(res.headers.get('retry-after')) * 1000;
  if (res.status === 429 && wait > 0) {
    lockJoin(inv, Date.now() + wait);
    return;
  }
  if (!res.ok) return;
  const { status, code } = await res.json().catch(() => ({}));
  if (status === 'gone') showEnded('gone', inv.sessionId);
  else if (code === 'INVALID_KEY') showEnded('mismatch', inv.sessionId);
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
  let locked = false;
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
    const userId = C.randomId(16);
    const { identity, saved } = await newIdentity(invite.sessionId, userId);
    await enterRoom({
      sessionId: invite.sessionId,
      mode: invite.mode,
      isCreator: false,
      credential,
      roomSecret: secret,
      userId,
      displayName: name,
      identity,
      savedIdentity: saved,
      creatorId: invite.creator ?? null,
      shareLink: shareLink({ sessionId: invite.sessionId, mode: invite.mode, key: invite.key, secret: invite.secret, creator: invite.creator }),
    });
    pwInput.value = '';
  } catch (err) {
    locked = joinFailed(err, pwInput);
  } finally {
    setBusy(button, false);
    button.disabled = locked;
  }
}

/** Says why a join failed; returns whether the join button must wait (a lockout). */
function joinFailed(err, pwInput) {
  const code = err.code ?? 'UNKNOWN';
  if (GONE.has(code) || code === 'REMOVED') {
    showEnded(code === 'REMOVED' ? 'removed' : 'gone', invite?.sessionId);
    return false;
  }
  // A wait on a join is a lockout: the wrong try that started it, or any try during it.
  // Every join is refused until then, even with the right key: no point in trying.
  if (err.retryAfterMs && invite) {
    lockJoin(invite, Date.now() + err.retryAfterMs);
    return true;
  }
  // The same link will not do better on a second try.
  if (code === 'INVALID_KEY') {
    showEnded('mismatch', invite?.sessionId);
    return false;
  }
  showFailure(err);
  if (code === 'INVALID_PASSWORD') {
    pwInput.select();
    pwInput.focus();
  }
  return false;
}

// ---- views: after a room ----

const ENDED = {
  left: ['You left the room', 'The others were told. To come back you need the link again, and you will not be able to read what was said while you were away.'],
  removed: ['You were removed from this room', 'The room’s creator took you out of it. You cannot read or send anything there any more.'],
  // Said the same whether the link was mis-copied or replaced: the server cannot tell which.
  mismatch: ['This link’s key does not match', 'The room exists, but the key in this link does not open it: the link may have been copied incompletely or changed on the way, or the room’s creator may have replaced it with a new one. Ask them to send you the link again.'],
  gone: ['This room is not on the server', 'It may have been closed, expired after a while with nobody in it, or been lost when the server restarted without keeping it. If its creator opens it again, this link works again; otherwise ask for a new link, or start a room of your own.'],
};

/** An end screen; this browser is no longer a member of room `sessionId` (if known). */
function showEnded(kind, sessionId) {
  store.forgetRoom(sessionId);
  sessionStorage.removeItem(INVITE_KEY);
  invite = null;
  client = null;
  hideError();
  attachments.clear();
  const [title, text] = ENDED[kind];
  $('ended-title').textContent = title;
  $('ended-text').textContent = text;
  showView('ended');
  setConn(kind === 'left' ? 'left' : 'idle');
  alerts.setTitle(`${title} · blindrelay`);
  $('ended-new').focus();
}

// ---- the room ----

function resetRoomView() {
  log.reset();
  unread.clear();
  search.close({ focus: false });
  stopComposing();
  attachments.clear();
  $('member-list').replaceChildren();
  $('typing').textContent = '';
  $('end-panel').hidden = true;
  $('composer').hidden = false;
  for (const id of ['leave-room', 'more-menu']) $(id).hidden = false;
  $('more-menu').open = false;
  toggleShare(false);
  $('share-qr-box').hidden = true;
  $('qr-toggle').setAttribute('aria-expanded', 'false');
  $('key-generation').hidden = true;
  $('key-generation').dataset.generation = '0';
  $('disappear-timer').hidden = true;
  togglePeople(false);
  setComposerEnabled(true);
}

async function enterRoom(cfg, { share = false, resumed = false } = {}) {
  if (client) client.disconnect();
  resetRoomView();
  const c = new RoomClient({ ...cfg, receipts: store.receiptsOn() });
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
  const locked = lockouts();
  delete locked[c.sessionId];
  sessionStorage.setItem(LOCKOUT_KEY, JSON.stringify(locked));
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
    if (['closed', 'removed'].includes(state)) roomEnded(c, state);
    // A rejoin refused for good; a first join's refusal is resume()'s or onJoin()'s to judge.
    if (state === 'failed' && c.everJoined) store.forgetRoom(c.sessionId);
  }));
  c.addEventListener('members', mine(() => {
    renderMembers(c);
    log.relabel(c);
    renderShare(c);
    // A 1:1 room is complete once the other person is in: the invitation has done its job.
    if (c.mode !== 'group' && shareAutoOpened && c.presentPeers().length) {
      shareAutoOpened = false;
      toggleShare(false);
    }
  }));
  c.addEventListener('keychange', mine(({ userId }) => setVerified(c, userId, null)));
  c.addEventListener('message', mine(({ record }) => {
    log.message(c, record);
    if (log.query) search.count();
    // A message being replied to or edited that was deleted meanwhile: nothing to do any more.
    if (composing?.record === record && c.notes.isDeleted(record.key)) stopComposing();
  }));
  c.addEventListener('progress', mine(({ record }) => log.progress(c, record)));
  c.addEventListener('renamed', mine(() => {
    showMe(c);
    renderMembers(c);
  }));
  c.addEventListener('incoming', mine(({ record }) => {
    alerts.incoming();
    announce(`New ${record.type === 'text' ? 'message' : record.type} from ${c.labelOf(record.from, record.fromName)}`);
    unread.arrived(record);
  }));
  c.addEventListener('notice', mine((n) => log.notice(n)));
  c.addEventListener('typing', mine(({ names }) => renderTyping(names)));
  c.addEventListener('keygen', mine(({ generation }) => renderKeyGeneration(c, generation)));
  c.addEventListener('link', mine(() => {
    renderShare(c);
    if (c.isCreator) toggleShare(true);
  }));
  c.addEventListener('error', mine(({ code, ...info }) => showError(code, info)));
  c.addEventListener('persist', mine(() => saveRoom()));
  c.addEventListener('timer', mine(() => renderTimer(c)));
  c.addEventListener('expired', mine(({ record }) => {
    log.remove(record.key);
    unread.seen(record.key);
    if (composing?.record === record) stopComposing();
    if (log.query) search.count();
  }));
}

function showRoom(c, { share }) {
  showView('room');
  const title = MODE_TITLE[c.mode] ?? 'Room';
  $('room-title').textContent = title;
  alerts.setTitle(`${title} · blindrelay`);
  showMe(c);
  $('close-room').hidden = !c.isCreator;
  $('attach-hint').textContent = `Attach, paste or drop files and images up to ${formatSize(MAX_FILE_BYTES)}, encrypted like messages.`;
  renderShare(c);
  toggleShare(share && !$('share-toggle').hidden);
  shareAutoOpened = share;
  renderMembers(c);
  renderKeyGeneration(c, c.currentGen);
  renderTimer(c);
  if (share) $('share-link').focus();
  else $('message-input').focus();
}

function showMe(c) {
  $('room-me').textContent = `You are ${c.displayName}${c.isCreator ? ' (you created this room)' : ''}.`;
}

/** The invitation: offered while someone may still join and this page knows the link. */
function renderShare(c) {
  const link = c.cfg.shareLink;
  const full = c.mode !== 'group' && c.presentPeers().length > 0;
  $('share-toggle').hidden = !link || full || c.closed;
  if ($('share-toggle').hidden) toggleShare(false);
  // Private and password rooms reset their link only with nobody else in (their secret changes).
  $('reset-link').hidden = !c.isCreator || (c.mode !== 'group' && c.presentPeers().length > 0);
  $('reset-link').textContent = c.mode === 'password' ? 'Change the password…' : 'Reset the link…';
  // The system's share sheet, where the browser has one (phones, some desktops).
  $('share-native').hidden = typeof navigator.share !== 'function';
  if (!link || $('share-link').value === link) return;
  $('share-link').value = link;
  $('share-note').textContent = c.mode === 'password'
    ? 'This link does not contain the password. Tell the other person the password another way (in person, by phone).'
    : `Anyone with this link can join and read what is said from then on. Send it privately: it works like a key.${c.isCreator ? ' To stop it working, reset it (More).' : ''}`;
  $('share-qr').replaceChildren(qrSvg(link));
}

/** Phones: shows or folds away the members and safety numbers (always shown on a desktop). */
function togglePeople(open) {
  $('view-room').dataset.people = open ? 'open' : '';
  $('people-toggle').setAttribute('aria-expanded', String(open));
}

function toggleShare(open) {
  $('share-panel').hidden = !open;
  $('share-toggle').setAttribute('aria-expanded', String(open));
}

function renderKeyGeneration(c, generation) {
  const pill = $('key-generation');
  pill.dataset.generation = String(generation);
  // Said of a live room only: once it ended (closed, removed) nobody reads on in it.
  pill.hidden = c.mode !== 'group' || !generation || c.closed;
  pill.textContent = 'Only the people here can read new messages';
  pill.title = 'The room key changes whenever someone joins, leaves or is removed: newcomers cannot read earlier messages, and people who left cannot read new ones.';
}

/** The room's disappearing-messages timer: in the header for all, and the creator's setting. */
function renderTimer(c) {
  const seconds = c.disappear.seconds;
  const pill = $('disappear-timer');
  pill.hidden = !seconds || c.closed;
  pill.textContent = seconds ? timerBanner(seconds) : '';
  pill.title = TIMER_EXPLAINED;
  $('timer-setting').hidden = !c.isCreator || c.closed;
  const select = $('timer-select');
  if (!select.options.length) {
    select.append(...TIMER_CHOICES.map((n) => el('option', { value: String(n), text: n ? `After ${timerWords(n)}` : 'Off' })));
  }
  select.value = String(seconds);
  $('timer-hint').textContent = TIMER_EXPLAINED;
}

// ---- members and safety numbers ----

/**
 * A mark holds both public keys (theirs, then mine): the safety number is of the two, so a
 * change of either drops it.
 */
const markOf = (c, publicKey) => `${publicKey} ${c.identity.publicKey}`;

function isVerified(c, m) {
  return Boolean(m.publicKey) && store.verifiedMarks()[`${c.sessionId}/${m.userId}`] === markOf(c, m.publicKey);
}

/** Marks (a public key) or unmarks (null) a member's safety number as compared. */
function setVerified(c, userId, publicKey) {
  store.setVerifiedMark(c.sessionId, userId, publicKey && markOf(c, publicKey));
}

function renderMember(c, m) {
  const name = m.displayName || 'Someone';
  const verified = isVerified(c, m);
  const actions = el('div', { class: 'row' });
  if (m.safety) {
    const toggle = el('button', {
      type: 'button',
      class: 'verify',
      text: verified ? 'Unmark' : 'Mark as verified',
      'aria-label': verified ? `Unmark ${name} as verified` : `Mark ${name} as verified`,
    });
    toggle.addEventListener('click', () => {
      setVerified(c, m.userId, verified ? null : m.publicKey);
      if (!verified) m.keyChanged = false;
      renderMembers(c);
      saveRoom();
    });
    actions.append(toggle);
  }
  if (c.isCreator && !c.closed) {
    const remove = el('button', { type: 'button', class: 'remove danger', text: 'Remove…', 'aria-label': `Remove ${name}…` });
    remove.addEventListener('click', () => onRemove(c, m));
    actions.append(remove);
  }
  const alike = c.looksAlike(m.userId);
  return el('li', { class: 'member', 'data-user-id': m.userId, 'data-verified': verified, 'data-alike': alike ? 'true' : undefined },
    el('span', { class: 'name', text: c.labelOf(m.userId) }),
    alike && el('p', { class: 'lookalike', text: `⚠ Another person here has a name that looks like “${name}”. Tell them apart by the safety number, not the name.` }),
    el('p', { class: 'safety' }, 'Safety number with you:',
      el('code', { class: 'safety-number', text: m.safety ?? (m.publicKey ? 'computing…' : 'no key yet') })),
    verified && el('p', { class: 'verified', text: '✓ Verified by you' }),
    m.keyChanged && el('p', { class: 'safety-changed', role: 'alert', text: m.keyChange === 'returned'
      ? `⚠ ${KEY_CHANGED(name)}. “${name}” came back as a new member with a new key: from another browser, or someone else using the name. Compare the safety number before you trust them.`
      : `⚠ ${KEY_CHANGED(name)}. It is not the one you first saw: compare it again before you trust new messages.` }),
    actions.childElementCount ? actions : null);
}

function renderMembers(c) {
  const me = el('li', { class: 'member me', 'data-user-id': c.me },
    el('span', { class: 'name', text: c.displayName }), ' ', el('span', { class: 'you', text: '(you)' }));
  const peers = [...c.members.values()].filter((m) => m.present).sort((a, b) => a.joinedAt - b.joinedAt);
  $('member-list').replaceChildren(me, ...peers.map((m) => renderMember(c, m)));
  // The phone's folded list says how many are here, and when a number needs a look.
  const warn = peers.some((m) => m.keyChanged || c.looksAlike(m.userId));
  const toggle = $('people-toggle');
  toggle.textContent = `In this room: ${peers.length + 1} · safety numbers${warn ? ' ⚠' : ''}`;
  if (warn) toggle.dataset.warn = 'true';
  else delete toggle.dataset.warn;
  const empty = $('people-empty');
  empty.hidden = peers.length > 0 || c.closed;
  empty.textContent = c.mode === 'group'
    ? 'Nobody else is here yet. Send them the link (Invite).'
    : 'Waiting for the other person. Send them the link (Invite); your messages are sent once they join.';
  // The safety-number advice, only when there is someone to compare with.
  const hint = $('safety-hint');
  hint.hidden = !peers.length;
  hint.textContent = c.mode === 'group'
    ? 'Compare your safety number with each person, by phone or in person. Where they match, nobody swapped keys between the two of you.'
    : 'Compare the safety number with the other person, by phone or in person. If yours match, nobody swapped keys in between and only the two of you can read your messages.';
}

function renderTyping(names) {
  const t = $('typing');
  if (!names.length) t.textContent = '';
  else if (names.length === 1) t.textContent = `${names[0]} is typing…`;
  else if (names.length === 2) t.textContent = `${names[0]} and ${names[1]} are typing…`;
  else t.textContent = 'Several people are typing…';
}

function setComposerEnabled(on) {
  for (const id of ['message-input', 'attach', 'send', 'record']) $(id).disabled = !on;
  if (!on) voice.stop(false);
}

/** Closed or removed: the conversation stays readable on this page, calmly marked as over. */
function roomEnded(c, reason) {
  store.forgetRoom(c.sessionId);
  attachments.clear();
  setComposerEnabled(false);
  stopComposing();
  $('composer').hidden = true;
  for (const id of ['leave-room', 'more-menu', 'share-toggle', 'key-generation', 'disappear-timer']) $(id).hidden = true;
  toggleShare(false);
  const [title, text] = reason === 'removed'
    ? ENDED.removed
    : [c.isCreator ? 'You closed this room' : 'The room was closed',
      `${c.isCreator ? 'It is' : 'Its creator closed it: it is'} deleted from the server with its messages. What you see here disappears when you leave this page.`];
  $('end-title').textContent = title;
  $('end-text').textContent = text;
  $('end-panel').hidden = false;
  renderTyping([]);
  renderMembers(c);
  $('end-new').focus();
}

// ---- confirmations ----

let confirming = null;

/**
 * A modal question; resolves to `{password?}` when confirmed, null when cancelled. When it
 * closes, the focus goes back to `opener`, the control the person used to open it (for an
 * item of the More menu, which closes meanwhile, the menu's button).
 */
function confirmAction({ title, text, confirm, password = false, opener = document.activeElement }) {
  $('confirm-title').textContent = title;
  $('confirm-text').textContent = text;
  $('confirm-ok').textContent = confirm;
  $('confirm-password-fields').hidden = !password;
  $('confirm-password').value = '';
  $('confirm-password2').value = '';
  fieldError('confirm-error', null);
  $('confirm-dialog').showModal();
  if (password) $('confirm-password').focus();
  return new Promise((resolve) => { confirming = { resolve, password, result: null, opener }; });
}

function onConfirmSubmit(event) {
  event.preventDefault();
  const result = {};
  if (confirming.password) {
    const pw = $('confirm-password').value;
    const problem = passwordProblem(pw, $('confirm-password2').value);
    if (problem) {
      fieldError('confirm-error', problem, $(pw.length < 8 ? 'confirm-password' : 'confirm-password2'));
      return;
    }
    result.password = pw;
  }
  confirming.result = result;
  $('confirm-dialog').close();
}

// ---- creator controls ----

/** A new link: the old one stops admitting anyone; who is in stays. */
async function resetLink(c, password) {
  const { authKey, roomSecret } = await newCredential(c.mode, c.sessionId, password);
  // A group room's members keep deriving with the current secret, so only its key changes.
  const secret = c.mode === 'group' ? c.roomSecret : roomSecret;
  await c.resetLink({
    authKey,
    roomSecret: c.mode === 'group' ? undefined : roomSecret,
    shareLink: shareLink({ sessionId: c.sessionId, mode: c.mode, key: authKey, secret: C.toBase64Url(secret), creator: c.me }),
  });
}

/** The More menu's own button: where the focus goes back after one of its items. */
const moreButton = () => $('more-menu').querySelector('summary');

/** Focuses `opener` (or what it returns) if it can still take the focus, else the message box or the log. */
function returnFocus(opener) {
  const first = typeof opener === 'function' ? opener() : opener;
  for (const target of [first, $('message-input'), $('messages')]) {
    if (target?.isConnected && !target.disabled && target.checkVisibility?.() !== false) {
      target.focus();
      if (document.activeElement === target) return;
    }
  }
}

async function onResetLink() {
  const c = client;
  if (!c) return;
  $('more-menu').open = false;
  // A password room's link holds no key: resetting it means changing the password.
  const pw = c.mode === 'password';
  const answer = await confirmAction({
    opener: moreButton(),
    ...(pw ? {
      title: 'Change the password?',
      text: 'The current password stops working at once. Everyone in the room now stays; anyone new needs the new password.',
      confirm: 'Change the password',
      password: true,
    } : {
      title: 'Reset the link?',
      text: 'The current link stops working at once. Everyone in the room now stays; anyone new needs the new link.',
      confirm: 'Reset the link',
    }),
  });
  if (!answer || client !== c) return;
  try {
    await resetLink(c, answer.password);
  } catch (err) {
    showFailure(err);
  }
}

async function onRemove(c, m) {
  const name = m.displayName || 'this person';
  const pw = c.mode === 'password';
  const answer = await confirmAction({
    title: `Remove ${name}?`,
    text: `${name} is taken out of the room now and cannot read anything said after this. `
      + (pw
        ? 'The room’s password changes at the same time, so they cannot come back with it: choose the new one now; anyone new needs it.'
        : 'The room’s link is reset at the same time, so they cannot come back with it: the people still here stay, and anyone new needs the new link.'),
    confirm: pw ? 'Remove and change the password' : 'Remove and reset the link',
    password: pw,
    // The list may be drawn again meanwhile: the button is found again at the end.
    opener: () => document.querySelector(`.member[data-user-id="${CSS.escape(m.userId)}"] button.remove`),
  });
  if (!answer || client !== c) return;
  try {
    // The link first: the removed person must not slip back in with the old one meanwhile.
    await resetLink(c, answer.password);
    await c.removeMember(m.userId);
  } catch (err) {
    showFailure(err);
  }
}

async function onLeave() {
  const c = client;
  if (!c) return;
  const answer = await confirmAction({
    title: 'Leave this room?',
    text: c.isCreator && c.mode === 'group'
      ? 'The room stays open for the others, but while you are away nobody new can get its key. To end it for everyone, close the room instead (in More).'
      : 'The others will see that you left. To come back you need the link again.',
    confirm: 'Leave',
  });
  if (!answer || client !== c) return;
  await c.leave();
  showEnded('left', c.sessionId);
}

async function onClose() {
  $('more-menu').open = false;
  const answer = await confirmAction({
    title: 'Close the room for everyone?',
    text: 'Everyone is removed and the room and its messages are deleted from the server. This cannot be undone.',
    confirm: 'Close the room',
    opener: moreButton(),
  });
  if (!answer) return;
  try {
    await client?.closeRoom();
  } catch (err) {
    showFailure(err);
  }
}

// ---- composer ----

/** A touch screen first (a phone, a tablet): no hardware keyboard to count on. */
const TOUCH_QUERY = '(pointer: coarse)';
const touchFirst = () => matchMedia(TOUCH_QUERY).matches;

function describeComposer() {
  $('composer-hint').textContent = touchFirst()
    ? 'Enter adds a line; the Send button sends. Attach a file with the Attach button.'
    : 'Enter sends, Shift and Enter adds a line. Paste or drop a file to attach it.';
  $('message-input').enterKeyHint = touchFirst() ? 'enter' : 'send';
}

function sendFromComposer(event) {
  event?.preventDefault();
  if (!client) return;
  const input = $('message-input');
  const text = input.value.trim();
  if (attachments.files.length) attachments.send();
  if (!text) return;
  if (composing?.mode === 'edit') client.editMessage(composing.record, text);
  else client.sendText(text, { reply: composing?.mode === 'reply' ? composing.record : undefined });
  stopComposing();
  // The person wrote: what came before is read.
  unread.clear();
  client.stopTyping();
  input.value = '';
  input.focus();
}

// ---- replies and edits ----

/** The next Send replies to `record`, or (mode 'edit') replaces its text. */
function startComposing(mode, record) {
  const c = client;
  if (!c) return;
  log.closeActions();
  composing = { mode, record };
  const input = $('message-input');
  if (mode === 'edit') {
    $('compose-context-text').textContent = 'Editing your message';
    $('compose-context-cancel').setAttribute('aria-label', 'Cancel editing your message');
    input.value = c.notes.editOf(record.key) ?? record.content.text;
  } else {
    const who = record.mine ? 'yourself' : c.labelOf(record.from, record.fromName);
    const text = record.type === 'text' ? firstLine(c.notes.editOf(record.key) ?? record.content.text) : record.content.name;
    $('compose-context-text').replaceChildren('Replying to ', el('strong', { text: who }), `: ${text}`);
    $('compose-context-cancel').setAttribute('aria-label', `Cancel the reply to ${whose(c, record)}`);
  }
  $('compose-context').hidden = false;
  $('compose-context').dataset.mode = mode;
  input.focus();
}

function stopComposing() {
  const wasEdit = composing?.mode === 'edit';
  composing = null;
  $('compose-context').hidden = true;
  if (wasEdit) $('message-input').value = '';
}

async function onDelete(r) {
  const c = client;
  if (!c) return;
  const opener = log.els.get(r.key)?.querySelector('.msg-actions-toggle');
  log.closeActions();
  const answer = await confirmAction({
    title: 'Delete this message for everyone?',
    text: 'Every page in the room shows “This message was deleted” instead, and so will the pages of people who open the room later. Someone who already read it may have kept a copy.',
    confirm: 'Delete for everyone',
    opener: () => (opener?.isConnected ? opener : $('message-input')),
  });
  if (!answer || client !== c) return;
  c.deleteMessage(r);
}

// ---- reading ----

/** Someone else's message was in view in a looked-at page: read receipt, unread line. */
function onSeen(key) {
  const r = client?.messages.get(key);
  if (!r) return;
  r.seenHere = true;
  log.els.get(key)?.setAttribute('data-seen', 'true');
  client.markSeen(r);
  unread.seen(key);
}

let announceTimer = null;

/** Says `text` through the polite live region (who sent a message, never its text). */
function announce(text) {
  const region = $('announcer');
  region.textContent = '';
  clearTimeout(announceTimer);
  // Emptied first, so that the same sentence twice is said twice.
  announceTimer = setTimeout(() => { region.textContent = text; }, 100);
}

function renderReceiptsButton() {
  const on = store.receiptsOn();
  const b = $('receipts-toggle');
  b.setAttribute('aria-pressed', String(on));
  b.textContent = `Read receipts: ${on ? 'on' : 'off'}`;
}

async function sendFiles(files) {
  for (const file of files) {
    try {
      await client?.sendFile(file);
    } catch (err) {
      showFailure(err);
    }
  }
}

// ---- alerts ----

function renderAlertButtons() {
  const sound = $('sound-toggle');
  sound.setAttribute('aria-pressed', String(alerts.sound));
  sound.textContent = `Sound for new messages: ${alerts.sound ? 'on' : 'off'}`;
  const notify = $('notify-toggle');
  notify.hidden = !notificationsSupported();
  notify.setAttribute('aria-pressed', String(alerts.notify));
  notify.textContent = notificationsSupported() && Notification.permission === 'denied'
    ? 'Browser notifications: blocked in the browser’s settings'
    : `Browser notifications: ${alerts.notify ? 'on' : 'off'}`;
}

// ---- resuming after a reload ----

/**
 * Comes back as a member this browser kept: this tab's after a reload, or one another tab
 * made (the room's `link` opened in a new tab), which then falls back to the join form.
 */
async function resume(saved, { link } = {}) {
  setConn('connecting');
  try {
    const kept = await keptIdentity(saved);
    const { identity } = kept;
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
      savedIdentity: kept.saved,
      groupKeys: saved.groupKeys,
      distributedTo: saved.distributedTo,
      shareLink: saved.shareLink,
      resumeToken: saved.resumeToken ?? null,
      delivered: saved.delivered,
      linkAt: saved.linkAt,
      creatorId: saved.creatorId ?? null,
      timer: saved.timer,
      known: saved.known,
    }, { resumed: true });
    if (kept.lost) client?.notice('This browser no longer had your key for this room, so you have a new one: the others see that your safety number changed, and compare it again.', 'key');
  } catch (err) {
    if (GONE.has(err.code) || err.code === 'REMOVED') {
      showEnded(err.code === 'REMOVED' ? 'removed' : 'gone', saved.sessionId);
      return;
    }
    // Refused for good (no resume token, another key...): this member cannot come back.
    if (PASSING.has(err.code)) store.leaveTab();
    else store.forgetRoom(saved.sessionId);
    if (link) showJoin(link);
    else showHome();
    showFailure(err);
  }
}

/**
 * The identity a kept member comes back with: its key from IndexedDB (an older page's JWK
 * moved there once, the snapshot saved again without it), or, when this browser lost it, a
 * new one under the same userId (the server then tells the others `public-key-changed`).
 */
async function keptIdentity(saved) {
  const found = await loadIdentity(saved.sessionId, saved.userId, saved.identity);
  if (found) {
    if (found.migrated) store.saveRoom({ ...saved, identity: found.saved });
    return found;
  }
  return { ...(await newIdentity(saved.sessionId, saved.userId)), lost: true };
}

// ---- start ----

function bindRoom() {
  $('share-toggle').addEventListener('click', () => {
    shareAutoOpened = false;
    toggleShare($('share-panel').hidden);
  });
  $('share-close').addEventListener('click', () => {
    shareAutoOpened = false;
    toggleShare(false);
    $('share-toggle').focus();
  });
  $('qr-toggle').addEventListener('click', () => {
    const open = $('share-qr-box').hidden;
    $('share-qr-box').hidden = !open;
    $('qr-toggle').setAttribute('aria-expanded', String(open));
    // On a phone the invitation scrolls within itself: the code is what is wanted now.
    if (open) $('share-qr-box').scrollIntoView({ block: 'nearest' });
  });
  $('people-toggle').addEventListener('click', () => {
    const open = $('people-toggle').getAttribute('aria-expanded') !== 'true';
    togglePeople(open);
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
  $('leave-room').addEventListener('click', onLeave);
  $('close-room').addEventListener('click', onClose);
  $('reset-link').addEventListener('click', onResetLink);
  $('sound-toggle').addEventListener('click', () => {
    alerts.toggleSound();
    renderAlertButtons();
  });
  $('notify-toggle').addEventListener('click', async () => {
    await alerts.toggleNotify();
    renderAlertButtons();
  });
  $('receipts-toggle').addEventListener('click', () => {
    store.setReceiptsOn(!store.receiptsOn());
    renderReceiptsButton();
    client?.setReceipts(store.receiptsOn());
  });
  $('timer-select').addEventListener('change', () => {
    client?.disappear.set(Number($('timer-select').value));
  });
  $('share-native').addEventListener('click', async () => {
    try {
      await navigator.share({ title: 'An encrypted blindrelay room', url: $('share-link').value });
    } catch {
      // Cancelled, or refused by the browser: the link is still there to copy.
    }
  });
  $('compose-context-cancel').addEventListener('click', () => {
    stopComposing();
    $('message-input').focus();
  });
  // The menu closes when the person clicks elsewhere or presses Escape, as menus do.
  document.addEventListener('click', (e) => {
    if (!$('more-menu').contains(e.target)) $('more-menu').open = false;
  });
  $('more-menu').addEventListener('keydown', (e) => {
    if (e.key !== 'Escape') return;
    $('more-menu').open = false;
    $('more-menu').querySelector('summary').focus();
  });
  $('composer').addEventListener('submit', sendFromComposer);
  $('message-input').addEventListener('keydown', (e) => {
    // A phone's keyboard has no Shift to hold for a new line: there Enter adds one, and
    // the Send button sends.
    if (e.key === 'Enter' && !e.shiftKey && !e.isComposing && !touchFirst()) sendFromComposer(e);
    if (e.key === 'Escape' && composing) stopComposing();
  });
  describeComposer();
  matchMedia(TOUCH_QUERY).addEventListener('change', describeComposer);
  $('message-input').addEventListener('input', () => {
    if ($('message-input').value) client?.typingInput();
    else client?.stopTyping();
  });
  attachments.bind();
  voice.bind();
}

function bind() {
  $('create-form').addEventListener('submit', onCreate);
  $('create-form').addEventListener('change', updateCreateMode);
  $('join-form').addEventListener('submit', onJoin);
  $('join-cancel').addEventListener('click', () => {
    hideError();
    showHome();
  });
  $('banner-close').addEventListener('click', hideError);
  $('confirm-form').addEventListener('submit', onConfirmSubmit);
  $('confirm-cancel').addEventListener('click', () => $('confirm-dialog').close());
  $('confirm-dialog').addEventListener('close', () => {
    const pending = confirming;
    confirming = null;
    // The browser gives the focus back to what had it, which is gone when that was an item
    // of a menu closed since, or a member's button re-rendered: then the page body had it.
    // What follows (an end screen) may move it again.
    returnFocus(pending?.opener);
    pending?.resolve(pending.result);
  });
  for (const id of ['end-new', 'ended-new']) {
    $(id).addEventListener('click', () => {
      client = null;
      hideError();
      showHome();
      $('create-name').focus();
    });
  }
  bindRoom();
  window.addEventListener('hashchange', () => {
    if (new URLSearchParams(location.hash.slice(1)).has('join')) location.reload();
  });
  // Another tab of this member saved the room (it may have reset the link there).
  window.addEventListener('storage', (e) => {
    if (!client || client.closed || !store.isMemberChange(e, client.sessionId) || !e.newValue) return;
    try {
      client.adopt(JSON.parse(e.newValue));
    } catch {
      // not ours to read
    }
  });
}

function init() {
  bind();
  renderAlertButtons();
  renderReceiptsButton();
  if (!C.cryptoAvailable()) {
    showView('home');
    showError('INSECURE_CONTEXT');
    $('create-submit').disabled = true;
    $('join-submit').disabled = true;
    return;
  }
  store.purge();
  const fromLink = readFragment();
  const saved = store.tabRoom();
  if (fromLink?.bad) {
    showHome();
    showError('BAD_LINK');
    return;
  }
  if (fromLink) {
    if (saved?.sessionId === fromLink.sessionId) {
      resume(saved);
      return;
    }
    // This tab goes to another room; a member of that one this browser already is comes
    // back as itself (another tab made it), the same person, key and safety number.
    store.leaveTab();
    const member = store.memberOf(fromLink.sessionId);
    if (member) resume(member, { link: fromLink });
    else showJoin(fromLink);
    return;
  }
  if (saved) {
    resume(saved);
    return;
  }
  const pending = store.loadSession(INVITE_KEY);
  if (pending?.sessionId) showJoin(pending);
  else showHome();
}

init();
