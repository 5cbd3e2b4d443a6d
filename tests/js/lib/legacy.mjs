// The real "End2End Chat" React app's socket layer, rebuilt from
// /work/shared/reference/legacy-client.md, so that tests drive the server exactly as the
// app does: plain emits (never an ack), the pre-connect get-public-keys + join-session
// pair, a null-key join-session on every 'connect', the sessionId rules of §1.6, and the
// state the app keeps (peers, messages merged by id, chat mode, group key, typing names,
// toasts). Any session-error is fatal, as in the app (it alerts and leaves).
//
// Also: a TCP proxy that can blackhole or hold connections (network blips, restarts), and
// a per-test deployment (one node in memory; two nodes on one REDIS_PREFIX with Redis).
//
// Crypto is imitated, not real RSA: the server never looks inside, but sizes, formats
// and "who can decrypt what" match the app, so a test can tell what a bubble would show.

import { createCipheriv, createDecipheriv, createHash, randomBytes, randomUUID } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { io } from 'socket.io-client';
import { startServer, reserve, uid } from './server.mjs';

/** The texts people see, verbatim (legacy-client.md §3). */
export const REFUSAL = {
  notFound: 'Session not found. Please check the session link.',
  invalidKey: 'Invalid authentication key. Please check your link and try again.',
  keyMismatch: 'Session key mismatch. This should not happen.',
  wrongPassword: 'Incorrect password. Please check and try again.',
  notActive: 'Room not active yet. Please wait for the creator to join first.',
  full: 'This room is full. Only 2 members allowed.',
};

/** The app's own alerts when a send is refused client-side (§2.3). */
export const APP_ALERT = {
  connecting: '⏳ Connecting to session. Please wait a moment and try again.',
  keyPending: '⏳ Session key is being set up. Please wait a moment and try again.',
  sendFailed: '❌ Failed to send message. Please try again.',
};

export const UNDECRYPTABLE = '🔒 Unable to decrypt (sent before page refresh)';

/** Default bound of `until`: generous for a debug build, short enough to fail clearly. */
export const WAIT_MS = 8000;

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// ---------------------------------------------------------------------------------------
// Ids, keys and join strings, generated as the app does (§1.1, §1.2, §1.4).

export const newUserId = () => randomUUID();

/** A group or private room: 8 lower-case hex id, 16 hex key (13th char is '4'). */
export function newRoom(chatMode = 'group') {
  const sessionId = randomUUID().slice(0, 8);
  const authKey = randomUUID().replace(/-/g, '').slice(0, 16);
  return { chatMode, sessionId, authKey, link: `${sessionId}:${authKey}` };
}

/** Standard Base64 of a Latin-1 string, one byte per char (the app's btoa). */
export const passwordB64 = (pw) => Buffer.from(pw.trim(), 'latin1').toString('base64');

/** A password room: 5 upper-case hex id, key `<16 hex>:<b64(password)>`. */
export function newPasswordRoom(password) {
  const sessionId = randomUUID().replace(/-/g, '').slice(0, 5).toUpperCase();
  const authKey = `${randomUUID().replace(/-/g, '').slice(0, 16)}:${passwordB64(password)}`;
  return {
    chatMode: 'password',
    sessionId,
    authKey,
    password,
    /** Creator's join string, and a HEAD invite link's. */
    link: `${sessionId}:${authKey}`,
    /** What the "Join Password-Protected Room" form builds from an id and a password. */
    formJoin: (pw = password) => `${sessionId}:password:${passwordB64(pw)}`,
  };
}

/** §1.6: join string -> {sessionId, authKey?}. The password form's string is kept whole. */
export function splitJoinString(joinString) {
  if (joinString.includes(':password:')) return { sessionId: joinString };
  const i = joinString.indexOf(':');
  if (i < 0) return { sessionId: joinString };
  return { sessionId: joinString.slice(0, i), authKey: joinString.slice(i + 1) };
}

/** The app's reserve call (§1.3): only the status counts; non-2xx is a failure. */
export async function reserveRoom(url, room) {
  const r = await reserve(url, { sessionId: room.sessionId, authKey: room.authKey, chatMode: room.chatMode });
  if (r.status < 200 || r.status > 299) {
    throw new Error(`Failed to create secure session (reserve answered ${r.status}: ${r.text})`);
  }
  return r;
}

// ---------------------------------------------------------------------------------------
// Imitation crypto. A "public key" is a 392-char Base64 SPKI-shaped blob (294 bytes,
// starts MIIBIjAN); "wrapping" for it gives 256 bytes (344 Base64 chars, like RSA-2048
// OAEP) that only a holder of that same key pair unwraps.

const SPKI_HEAD = Buffer.from('30820122300d06092a864886f70d01010105000382010f003082010a0282010100', 'hex');
const SPKI_TAIL = Buffer.from('0203010001', 'hex');

export function fakePublicKey() {
  const modulus = randomBytes(256);
  modulus[0] |= 0x80;
  const key = Buffer.concat([SPKI_HEAD, modulus, SPKI_TAIL]).toString('base64');
  if (key.length !== 392 || !key.startsWith('MIIBIjAN')) throw new Error(`bad fake key ${key.length}`);
  return key;
}

const sha256 = (...parts) => {
  const h = createHash('sha256');
  for (const p of parts) h.update(p);
  return h.digest();
};

/** Wraps a 32-byte AES key for `publicKey`: 344 Base64 chars. */
export function wrapKey(aesKey, publicKey) {
  const pad = sha256('wrap', publicKey);
  const masked = Buffer.alloc(32);
  for (let i = 0; i < 32; i++) masked[i] = aesKey[i] ^ pad[i];
  return Buffer.concat([masked, sha256('check', aesKey, publicKey), randomBytes(192)]).toString('base64');
}

/** Unwraps with one's own key pair; throws like a failed RSA-OAEP decrypt. */
export function unwrapKey(wrapped, publicKey) {
  const b = Buffer.from(String(wrapped), 'base64');
  if (b.length !== 256) throw new Error('OperationError: wrapped key length');
  const pad = sha256('wrap', publicKey);
  const key = Buffer.alloc(32);
  for (let i = 0; i < 32; i++) key[i] = b[i] ^ pad[i];
  if (!sha256('check', key, publicKey).equals(b.subarray(32, 64))) throw new Error('OperationError: not for this key');
  return key;
}

function aesGcm(key, plaintext) {
  const iv = randomBytes(12);
  const c = createCipheriv('aes-256-gcm', key, iv);
  const ct = Buffer.concat([c.update(plaintext, 'utf8'), c.final(), c.getAuthTag()]);
  return { iv, ct };
}

function aesGcmOpen(key, iv, ctAndTag) {
  const d = createDecipheriv('aes-256-gcm', key, iv);
  d.setAuthTag(ctAndTag.subarray(ctAndTag.length - 16));
  return Buffer.concat([d.update(ctAndTag.subarray(0, ctAndTag.length - 16)), d.final()]).toString('utf8');
}

/** Group message: Base64 of IV ‖ AES-GCM(ciphertext ‖ tag) under the group key. */
export function groupEncrypt(groupKey, plaintext) {
  const { iv, ct } = aesGcm(groupKey, plaintext);
  return Buffer.concat([iv, ct]).toString('base64');
}

export function groupDecrypt(groupKey, encrypted) {
  const b = Buffer.from(encrypted, 'base64');
  return aesGcmOpen(groupKey, b.subarray(0, 12), b.subarray(12));
}

/** Private/password message: Base64 of JSON {encryptedKey, iv, encryptedMessage, hybrid}. */
export function hybridEncrypt(recipientPublicKey, plaintext) {
  const key = randomBytes(32);
  const { iv, ct } = aesGcm(key, plaintext);
  const inner = JSON.stringify({
    encryptedKey: wrapKey(key, recipientPublicKey),
    iv: iv.toString('base64'),
    encryptedMessage: ct.toString('base64'),
    hybrid: true,
  });
  return Buffer.from(inner, 'utf8').toString('base64');
}

export function hybridDecrypt(ownPublicKey, encrypted) {
  const inner = JSON.parse(Buffer.from(encrypted, 'base64').toString('utf8'));
  const key = unwrapKey(inner.encryptedKey, ownPublicKey);
  return aesGcmOpen(key, Buffer.from(inner.iv, 'base64'), Buffer.from(inner.encryptedMessage, 'base64'));
}

// ---------------------------------------------------------------------------------------
// Big strings (5 MiB files are ~19 MB frames): kept as a short fingerprint in client
// state, so a test holding a few dozen of them stays within a sane heap.

const BIG = 1 << 20;

/** `⟨big <length> <sha256 prefix>⟩` for strings over 1 MiB; the string itself otherwise. */
export function bigRef(s) {
  if (typeof s !== 'string' || s.length <= BIG) return s;
  return `⟨big ${s.length} ${createHash('sha256').update(s).digest('hex').slice(0, 16)}⟩`;
}

const isBigRef = (s) => typeof s === 'string' && s.startsWith('⟨big ');

function summarize(v) {
  if (typeof v === 'string') return bigRef(v);
  if (Array.isArray(v)) return v.map(summarize);
  if (v && typeof v === 'object') {
    const out = {};
    for (const [k, x] of Object.entries(v)) out[k] = summarize(x);
    return out;
  }
  return v;
}

/** A short, log-safe rendering of a payload. */
export function brief(v, max = 200) {
  let s;
  try { s = JSON.stringify(v); } catch { s = String(v); }
  if (s === undefined) s = String(v);
  return s.length > max ? `${s.slice(0, max)}…(${s.length} chars)` : s;
}

/** `msg-<ms>-<up to 9 base36 chars>` (§2.3). */
export const newMessageId = () => `msg-${Date.now()}-${Math.random().toString(36).slice(2, 11)}`;

// ---------------------------------------------------------------------------------------
// The app's socket layer.

const liveClients = new Set();

/**
 * One browser tab in one room. `enter()` opens the socket exactly as the app does.
 *
 * Options: userId (a UUID, kept across tabs of a profile), displayName, joinString
 * (§1.6), isCreator, transports, label (for messages), expectErrors (a session-error is
 * then recorded but not treated as a test failure).
 */
export class LegacyClient {
  constructor(url, {
    userId = newUserId(), displayName, joinString, isCreator = false,
    transports = ['websocket', 'polling'], label, expectErrors = false, publicKey = fakePublicKey(),
  }) {
    if (!joinString) throw new Error('joinString is required');
    this.url = url;
    this.userId = userId;
    this.displayName = displayName ?? label ?? 'Someone';
    this.label = label ?? this.displayName;
    this.isCreator = isCreator;
    this.transports = transports;
    this.expectErrors = expectErrors;
    this.publicKey = publicKey;
    const { sessionId, authKey } = splitJoinString(joinString);
    this.sessionId = sessionId; // every event this tab sends carries this exact value
    this.authKey = authKey;

    // What the app holds.
    this.peers = [];
    this.messages = new Map();
    this.chatMode = null;
    this.groupKey = null; // the unwrapped group key (Buffer)
    this.typing = new Map(); // userId -> shown name
    this.toasts = [];
    this.errors = []; // every session-error payload
    this.fatal = null; // the first session-error not expected by the test

    // What a test wants to see.
    this.log = []; // every incoming event: {name, payload (big strings fingerprinted), at}
    this.sent = []; // every outgoing event: {name, payload}
    this.connects = 0;
    this.disconnects = [];
    this.left = false;
    this.groupKeyRaw = null; // creator: the group key it made
    this.keyMapsSent = [];
    this.reconnectFailed = false;
    this._waiters = new Set();
    this._keySendScheduled = false;
  }

  /** The join-session payload; authKey is absent from the JSON when the string has none. */
  _joinPayload(publicKey) {
    return {
      sessionId: this.sessionId,
      userId: this.userId,
      displayName: this.displayName,
      publicKey,
      isCreator: this.isCreator,
      ...(this.authKey === undefined ? {} : { authKey: this.authKey }),
    };
  }

  /** Opens the socket; before it connects, queues get-public-keys then join-session (key). */
  enter() {
    const socket = io(this.url, {
      transports: this.transports,
      reconnection: true,
      reconnectionDelay: 1000,
      reconnectionAttempts: 5,
      forceNew: true,
    });
    this.socket = socket;
    liveClients.add(this);

    socket.on('connect', () => {
      this.connects += 1;
      // The app's on-connect handler: on every (re)connect, a join with a null key.
      this._emit('join-session', this._joinPayload(null));
      this._changed();
    });
    socket.on('disconnect', (reason) => { this.disconnects.push(reason); this._changed(); });
    socket.io.on('reconnect_failed', () => { this.reconnectFailed = true; this._changed(); });
    socket.onAny((name, payload) => this._receive(name, payload));

    // Buffered by socket.io-client until connected, then flushed before 'connect' fires.
    this._emit('get-public-keys', { sessionId: this.sessionId, userId: this.userId });
    this._emit('join-session', this._joinPayload(this.publicKey));
    return this;
  }

  get connected() { return Boolean(this.socket?.connected); }

  /** No ack callback, ever. */
  _emit(name, payload) {
    this.sent.push({ name, payload: summarize(payload), at: Date.now() });
    this.socket.emit(name, payload);
  }

  _receive(name, raw) {
    const payload = summarize(raw);
    this.log.push({ name, payload, at: Date.now() });
    if (this.left) return; // the app dropped its listeners
    const handler = this._handlers[name];
    if (handler) handler.call(this, payload);
    this._changed();
  }

  _handlers = {
    'public-keys-updated'(list) {
      if (!Array.isArray(list)) return;
      this.peers = list.filter((k) => k && k.userId !== this.userId);
      this._scheduleGroupKey();
    },
    'messages-history'(list) {
      if (!Array.isArray(list)) return;
      for (const m of list) if (m && m.id !== undefined) this.messages.set(m.id, m); // replaces
    },
    'new-message'(m) {
      if (m && !this.messages.has(m.id)) this.messages.set(m.id, m);
    },
    'message-sent'(m) {
      if (m && !this.messages.has(m.id)) this.messages.set(m.id, m);
    },
    'session-metadata'(meta) {
      const before = this.chatMode;
      this.chatMode = meta?.chatMode ?? null;
      if (this.chatMode === 'group' && typeof meta?.sessionKey === 'string') {
        try { this.groupKey = unwrapKey(meta.sessionKey, this.publicKey); } catch { /* logged only */ }
      }
      if (this.chatMode !== before) this._scheduleGroupKey();
    },
    'session-key-available'(p) {
      const entry = p?.encryptedKeys?.[this.userId];
      if (typeof entry !== 'string') return;
      try {
        this.groupKey = unwrapKey(entry, this.publicKey);
        this.chatMode = 'group';
      } catch { /* the app logs and ignores */ }
    },
    'user-joined'(p) {
      this.toasts.push({ kind: 'joined', text: `👤 ${p?.displayName || p?.userId} joined the chat`, payload: p });
      this._emit('get-public-keys', { sessionId: this.sessionId, userId: this.userId });
    },
    'user-left'(p) {
      this.toasts.push({ kind: 'left', text: `👋 ${p?.userId} left the chat`, payload: p });
    },
    'user-typing'(p) {
      if (p?.userId && p.userId !== this.userId) this.typing.set(p.userId, p.displayName || p.userId);
    },
    'user-stopped-typing'(p) {
      if (p?.userId) this.typing.delete(p.userId);
    },
    'download-notification'(p) {
      this.toasts.push({ kind: 'download', text: `📥 ${p?.downloadedBy} downloaded your file: ${p?.fileName}`, payload: p });
    },
    'session-error'(p) {
      this.errors.push(p);
      if (!this.expectErrors && !this.fatal) this.fatal = p;
      // The app: alert "❌ " + message, then the usual clean-up.
      this.leave();
    },
  };

  /** §2.2: the creator of a group room re-sends the whole key map whenever its peer list
   *  (or the mode) changes; updates arriving together make one send, as React batches. */
  _scheduleGroupKey() {
    if (!this.isCreator || this._keySendScheduled) return;
    this._keySendScheduled = true;
    setImmediate(() => {
      this._keySendScheduled = false;
      if (this.left || !this.connected || this.chatMode !== 'group') return;
      this.groupKeyRaw ??= randomBytes(32);
      const encryptedKeys = { [this.userId]: wrapKey(this.groupKeyRaw, this.publicKey) };
      for (const p of this.peers) {
        if (typeof p.publicKey === 'string' && p.publicKey) encryptedKeys[p.userId] = wrapKey(this.groupKeyRaw, p.publicKey);
      }
      this.keyMapsSent.push(Object.keys(encryptedKeys));
      this._emit('set-session-key', { sessionId: this.sessionId, encryptedKeys });
    });
  }

  // --- what a person does --------------------------------------------------------------

  /** Sends a text (or a file's plaintext); returns the message id, or null when the app
   *  would lose it silently. `encrypted` reuses a prebuilt blob (big files). */
  sendContent(content, type = 'text', { encrypted } = {}) {
    if (!this.chatMode) throw new Error(APP_ALERT.connecting);
    const group = this.chatMode === 'group';
    if (group && !this.groupKey) throw new Error(APP_ALERT.keyPending);
    if (!this.connected) {
      if (group) throw new Error(APP_ALERT.sendFailed);
      return null; // private rooms: silently lost, input cleared
    }
    const id = newMessageId();
    const base = { sessionId: this.sessionId, from: this.userId };
    if (group) {
      this._emit('send-message', {
        ...base, to: 'all', encrypted: encrypted ?? groupEncrypt(this.groupKey, content),
        originalContent: content, type, clientMessageId: id,
      });
    } else {
      for (const peer of this.peers) {
        this._emit('send-message', {
          ...base, to: peer.userId, encrypted: encrypted ?? hybridEncrypt(peer.publicKey, content),
          originalContent: content, type, clientMessageId: id,
        });
      }
    }
    this.stoppedTyping();
    return id;
  }

  sendText(text) { return this.sendContent(text, 'text'); }

  /** `[IMAGE]` + data URL, type image. */
  sendImage(dataUrl, opts) { return this.sendContent(`[IMAGE]${dataUrl}`, 'image', opts); }

  /** `[FILE]name:mime:` + data URL, type file. */
  sendFile(name, mime, dataUrl, opts) { return this.sendContent(`[FILE]${name}:${mime}:${dataUrl}`, 'file', opts); }

  /** One keystroke; dropped while disconnected (not queued). */
  typed() {
    if (this.connected) this._emit('typing', { sessionId: this.sessionId, userId: this.userId, displayName: this.displayName });
  }

  stoppedTyping() {
    if (this.connected) this._emit('stopped-typing', { sessionId: this.sessionId, userId: this.userId, displayName: this.displayName });
  }

  /** Clicking download on someone else's file or image (§2.6). */
  downloaded({ senderId, fileName }) {
    if (!this.connected) return;
    this._emit('file-downloaded', {
      sessionId: this.sessionId, downloadedBy: this.displayName || this.userId, senderId, fileName, timestamp: Date.now(),
    });
  }

  /** Leave button, session-error, screen close, unload: the same clean-up (§2.7). */
  leave() {
    if (this.left) return;
    if (this.connected) this._emit('leave-session', { sessionId: this.sessionId, userId: this.userId });
    this.left = true;
    this.socket.disconnect(); // Socket.IO `41`, then close; no reconnection
    liveClients.delete(this);
    this._changed();
  }

  // --- what the person sees --------------------------------------------------------------

  /** Messages sorted by timestamp, as rendered. */
  get messageList() {
    return [...this.messages.values()].sort((a, b) => (a.timestamp ?? 0) - (b.timestamp ?? 0));
  }

  /** "Previous messages cannot be decrypted": a message to me without originalContent. */
  get bannerShown() {
    return this.messageList.some((m) => m.to === this.userId && !m.originalContent);
  }

  /** What a bubble shows: own -> originalContent or "Sending..."; others -> decrypted. */
  bubble(idOrMessage) {
    const m = typeof idOrMessage === 'string' ? this.messages.get(idOrMessage) : idOrMessage;
    if (!m) return undefined;
    if (m.from === this.userId) return m.originalContent || 'Sending...';
    if (typeof m.encrypted !== 'string' || isBigRef(m.encrypted)) return UNDECRYPTABLE;
    try {
      if (this.chatMode === 'group') return groupDecrypt(this.groupKey, m.encrypted);
      return hybridDecrypt(this.publicKey, m.encrypted);
    } catch {
      return UNDECRYPTABLE;
    }
  }

  get typingNames() { return [...this.typing.values()]; }

  peer(userId) { return this.peers.find((p) => p.userId === userId); }

  /** Incoming events of `name` (optionally matching `pred`). */
  received(name, pred = () => true) {
    return this.log.filter((e) => e.name === name && pred(e.payload)).map((e) => e.payload);
  }

  count(name, pred) { return this.received(name, pred).length; }

  /** Outgoing events of `name`. */
  emitted(name) { return this.sent.filter((e) => e.name === name).map((e) => e.payload); }

  /** In the room as the app sees it: mode, history and a key list received. */
  get inRoom() {
    return this.chatMode !== null && this.count('messages-history') > 0 && this.count('public-keys-updated') > 0;
  }

  // --- waiting on state ------------------------------------------------------------------

  _changed() {
    for (const w of [...this._waiters]) w();
  }

  /**
   * Resolves once `pred()` holds, re-checked on every event. Rejects after `timeoutMs`
   * (with the state), and at once on an unexpected session-error.
   */
  until(pred, what = String(pred), timeoutMs = WAIT_MS) {
    return new Promise((resolve, reject) => {
      let timer;
      const done = (fn, v) => { clearTimeout(timer); this._waiters.delete(check); fn(v); };
      const check = () => {
        if (this.fatal) {
          done(reject, new Error(`${this.label}: session-error ${brief(this.fatal)} while waiting for ${what}`));
          return;
        }
        let ok;
        try { ok = pred(); } catch (e) { done(reject, e); return; }
        if (ok) done(resolve, undefined);
      };
      timer = setTimeout(() => {
        this._waiters.delete(check);
        reject(new Error(`${this.label}: timed out after ${timeoutMs} ms waiting for ${what}\n  state: ${this.describe()}`));
      }, timeoutMs);
      this._waiters.add(check);
      check();
    });
  }

  /** Waits until in the room (see `inRoom`). */
  entered(timeoutMs) { return this.until(() => this.inRoom, 'entry (metadata, history, keys)', timeoutMs); }

  /** A bounded wait for a negative assertion: none of `names` arrives within `ms`. */
  async quietFor(ms, names) {
    const from = this.log.length;
    await sleep(ms);
    const bad = this.log.slice(from).filter((e) => names.includes(e.name));
    if (bad.length) throw new Error(`${this.label}: unexpected ${bad.map((e) => `${e.name} ${brief(e.payload)}`).join('; ')}`);
  }

  /** The raw net.Socket under the WebSocket transport (to find it in a proxy). */
  get localPort() {
    return this.socket.io.engine?.transport?.ws?._socket?.localPort;
  }

  describe() {
    return brief({
      user: this.userId.slice(0, 8),
      connected: this.connected,
      connects: this.connects,
      disconnects: this.disconnects,
      left: this.left,
      chatMode: this.chatMode,
      groupKey: Boolean(this.groupKey),
      peers: this.peers.map((p) => `${String(p.userId).slice(0, 8)}${typeof p.publicKey === 'string' ? '+key' : ''}`),
      messages: this.messages.size,
      errors: this.errors,
      last: this.log.slice(-8).map((e) => e.name),
    }, 1200);
  }
}

/** Closes every LegacyClient still open (test teardown). */
export function closeLegacyClients() {
  for (const c of liveClients) {
    c.left = true;
    c.socket?.disconnect();
  }
  liveClients.clear();
}

// ---------------------------------------------------------------------------------------
// A TCP proxy between clients and a server. Forwards both ways; per connection it can
// blackhole (drop everything both ways, keep both sockets open) or be destroyed; while
// "down" it refuses new connections or holds them until retargeted.

/** Starts `proxy.server` on a free loopback port; sets `proxy.port` and `proxy.url`. */
export async function listenOnLoopback(proxy) {
  await new Promise((resolve, reject) => {
    proxy.server.once('error', reject);
    proxy.server.listen(0, '127.0.0.1', resolve);
  });
  proxy.port = proxy.server.address().port;
  proxy.url = `http://127.0.0.1:${proxy.port}`;
  return proxy;
}

export class TcpProxy {
  constructor(targetPort) {
    this.target = targetPort;
    this.whenDown = 'refuse';
    this.conns = new Set();
    this.held = [];
    this.accepted = 0;
    this.server = net.createServer((client) => this._accept(client));
  }

  async listen() {
    return listenOnLoopback(this);
  }

  _accept(client) {
    this.accepted += 1;
    client.on('error', () => {});
    if (this.target === null) {
      if (this.whenDown === 'hold') this.held.push(client); // paused: no 'data' listener yet
      else client.destroy();
      return;
    }
    this._forward(client);
  }

  _forward(client) {
    if (client.destroyed) return;
    const upstream = net.connect(this.target, '127.0.0.1');
    const conn = {
      client, upstream, blackholed: false, clientPort: client.remotePort, target: this.target,
    };
    this.conns.add(conn);
    upstream.on('error', () => { if (!conn.blackholed) client.destroy(); });
    client.on('data', (d) => { if (!conn.blackholed) upstream.write(d); });
    upstream.on('data', (d) => { if (!conn.blackholed) client.write(d); });
    client.on('end', () => { if (!conn.blackholed) upstream.end(); });
    upstream.on('end', () => { if (!conn.blackholed) client.end(); });
    const closed = () => {
      if (conn.blackholed) return; // a blackholed pair stays until destroy()
      client.destroy();
      upstream.destroy();
      this.conns.delete(conn);
    };
    client.on('close', closed);
    upstream.on('close', closed);
  }

  /** Connections currently forwarded (not blackholed, not closed). */
  openConns() {
    return [...this.conns].filter((c) => !c.blackholed && !c.client.destroyed && !c.upstream.destroyed);
  }

  /** Stops forwarding both ways; both sockets stay open. */
  blackhole(conn) { conn.blackholed = true; }

  /** Closes both sides at once (the server finally sees the TCP connection go). */
  destroy(conn) {
    conn.blackholed = false;
    conn.client.destroy();
    conn.upstream.destroy();
    this.conns.delete(conn);
  }

  /** No server behind: new connections are refused ('refuse') or wait ('hold'). */
  down(how = 'refuse') {
    this.target = null;
    this.whenDown = how;
  }

  /** Points at a (new) server; held connections proceed. */
  retarget(port) {
    this.target = port;
    const held = this.held;
    this.held = [];
    for (const c of held) this._forward(c);
  }

  async close() {
    for (const c of [...this.conns]) this.destroy(c);
    for (const c of this.held) c.destroy();
    this.held = [];
    await new Promise((r) => this.server.close(() => r()));
  }
}

export async function startProxy(targetPort) {
  return new TcpProxy(targetPort).listen();
}

// ---------------------------------------------------------------------------------------
// One deployment per test: with REDIS_URL, two nodes sharing one REDIS_PREFIX (the
// creator uses node A, everyone else node B, so every message crosses nodes); in
// memory, one node playing both parts.

export async function startDeployment(env = {}) {
  const redis = Boolean(process.env.REDIS_URL);
  // In memory, the nodes of one deployment share a data folder, so a restarted node
  // reads what the stopped one wrote (as the same command in the same folder would).
  const shared = redis
    ? { REDIS_PREFIX: `legacy-${uid('p')}:` }
    : { DATA_DIR: mkdtempSync(path.join(os.tmpdir(), 'blindrelay-data-')) };
  const startNode = () => startServer({ ...shared, ...env });
  const nodes = await Promise.all(redis ? [startNode(), startNode()] : [startNode()]);
  const started = [...nodes];
  const proxies = [];
  return {
    redis,
    nodeA: nodes[0],
    nodeB: nodes[nodes.length - 1],
    /** Another node of the same deployment (same REDIS_PREFIX with Redis). */
    async startNode() {
      const n = await startNode();
      started.push(n);
      return n;
    },
    async proxy(targetPort) {
      const p = await startProxy(targetPort);
      proxies.push(p);
      return p;
    },
    async stop() {
      await Promise.all(proxies.map((p) => p.close()));
      await Promise.all(started.map((n) => n.stop()));
    },
  };
}

const labels = (list) => list.map((c) => c.label).join(', ');

/** Everyone is in and holds every other one, with that one's own public key. */
export function converged(clients, timeoutMs) {
  return Promise.all(clients.map((c) => {
    const others = clients.filter((o) => o !== c);
    return c.until(
      () => c.inRoom && c.peers.length === others.length
        && others.every((o) => c.peer(o.userId)?.publicKey === o.publicKey),
      `${c.label} to see [${labels(others)}] with their keys`, timeoutMs,
    );
  }));
}

/** Everyone holds the group key the creator made (from session-key-available). */
export function groupKeyEverywhere(creator, clients) {
  return Promise.all(clients.map((c) => c.until(
    () => creator.groupKeyRaw !== null && c.groupKey?.equals(creator.groupKeyRaw),
    `${c.label} to hold ${creator.label}'s group key`,
  )));
}
