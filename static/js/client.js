// blindrelay web client: one room, over Socket.IO. This module speaks the protocol
// documented in docs/protocol.md and does the cryptography; it knows nothing of the page.
// It reports what happens through DOM events (CustomEvent) on the RoomClient:
//   state     {state}       connecting | joined | reconnecting | restarting | waiting | closed | left | removed | failed
//   members   {}            the member list or a public key changed
//   keychange {userId}      a member's public key changed (its safety number is new)
//   message   {record}      a message was added or changed (decrypted, delivered...)
//   renamed   {}            the server stored our name cleaned (docs/protocol.md "Conventions")
//   progress  {record}      more of a file being sent has left this page (record.progress %)
//   incoming  {record}      someone else's message arrived live (not from history) and was
//                           decrypted: a message to show, not a reaction, edit or receipt
//   link      {}            the room's link changed (reset by its creator)
//   notice    {text, kind, timestamp}
//   typing    {names}
//   keygen    {generation}  the group room key changed
//   error     {code, message}
//   persist   {}            something worth saving changed (see snapshot())
//   timer     {seconds}     the room's disappearing-messages timer changed (disappear.js)
//   expired   {record}      a message outlived its timer and is gone (disappear.js)

import { io } from '../vendor/socket.io.esm.min.js';
import * as C from './crypto.js';
import { formatSize } from './dom.js';
import { CodedError, errorInfo, formatWait } from './errors.js';
import { Annotations, CONTROL_KINDS, firstLine, readKind } from './kinds.js';
import { lookAlikes } from './names.js';
import { CAME_BACK, KEY_CHANGED, SECOND_ONE, earlierSelf } from './keywatch.js';
import { Uplink } from './uplink.js';
import { Disappearing } from './disappear.js';
import { aliveWhileReceiving } from './downlink.js';
import { FileTransfers, IMAGE_TYPES, MAX_FILE_BYTES } from './files.js';

/** Largest file or image this client sends (in encrypted chunks: files.js). */
export { MAX_FILE_BYTES };

/** The refusal of a file over MAX_FILE_BYTES, saying which file, its size and the limit. */
export function fileTooLarge(file) {
  let size = formatSize(file.size);
  let limit = formatSize(MAX_FILE_BYTES);
  // Just over the limit, both round to "5.0 MiB": then in bytes, so that they differ.
  if (size === limit) [size, limit] = [file.size, MAX_FILE_BYTES].map((n) => `${n.toLocaleString('en')} bytes`);
  return new CodedError('FILE_TOO_LARGE', {
    detail: `“${file.name || 'This file'}” is ${size}; files up to ${limit} can be sent.`,
  });
}
export { IMAGE_TYPES };

/**
 * How long an ack may take once the event's bytes have left this page (see uplink.js:
 * the clock does not run while they are still queued behind an upload).
 */
const ACK_TIMEOUT_MS = 15_000;
/**
 * A join's ack comes after the room's history, which may be 32 MiB of file chunks: on a
 * slow downlink that takes minutes, and a join retried at 15 s would ask for all of it
 * again. A dead connection still fails it at once (the disconnect fails every ack).
 */
const JOIN_ACK_TIMEOUT_MS = 180_000;
/** A file's ack: its bytes have left, but the server still reads and stores them. */
const FILE_ACK_TIMEOUT_MS = 30_000;
/** socket.io-client's own ack clock, only there so that a disconnect fails the ack. */
const NO_CLOCK_MS = 24 * 3600 * 1000;
const TYPING_REPEAT_MS = 3_000;
const TYPING_IDLE_MS = 2_500;
const TYPING_EXPIRY_MS = 8_000;
/** After a server restart, a member's rejoin fails until the creator has re-created the room. */
const REJOIN_RETRY_MS = 1_000;
const REJOIN_MAX_TRIES = 300;
/** Codes after which a rejoin (not the first join) is retried. */
const REJOIN_RETRYABLE = new Set(['SESSION_NOT_FOUND', 'SESSION_NOT_ACTIVE', 'TIMEOUT', 'RATE_LIMITED', 'LIMIT_REACHED']);
/** Binary attachments one received packet may carry: a full history (500 messages) of file chunks. */
const HISTORY_ATTACHMENTS = 500 * C.MAX_CHUNKS + 100;
/** Delivery receipts a snapshot keeps: those of the newest messages (the history is bounded too). */
const RECEIPTS_KEPT = 500;
/**
 * Text-type plaintexts are padded to a multiple of this many bytes, so that a reaction, an
 * edit, a deletion or a read receipt is as long on the wire as a short text: the server
 * cannot tell them apart by size.
 */
const PAD_BYTES = 256;
/** Read receipts wait this long to go out together (one message for what came into view at once). */
const RECEIPT_BATCH_MS = 400;
/** At most this many messages in one read receipt. */
const RECEIPT_MAX_IDS = 64;
/** Members a snapshot remembers (their names and public keys: keywatch.js). */
const KNOWN_KEPT = 64;

export class RoomClient extends EventTarget {
  /**
   * @param {object} cfg
   * @param {string} cfg.sessionId
   * @param {'group'|'private'|'password'} cfg.mode
   * @param {boolean} cfg.isCreator
   * @param {string} [cfg.authKey]     creator: the full stored key
   * @param {string} [cfg.credential]  joiner: what follows "<id>:" in sessionId
   * @param {Uint8Array} cfg.roomSecret
   * @param {string} cfg.userId
   * @param {string} cfg.displayName
   * @param {{privateKey: CryptoKey, publicKey: string}} cfg.identity
   * @param {object} cfg.savedIdentity  the exported identity, for snapshot()
   * @param {object} [cfg.groupKeys]    {generation: raw key base64url} from a snapshot
   * @param {object} [cfg.delivered]    {message id: [userId, ...]}: receipts from a snapshot
   * @param {number} [cfg.linkAt]       when this page last changed the link (a snapshot's)
   * @param {boolean} [cfg.receipts]    whether this page sends read receipts (and shows the others')
   */
  constructor(cfg) {
    super();
    this.cfg = cfg;
    this.sessionId = cfg.sessionId;
    this.mode = cfg.mode;
    this.isCreator = Boolean(cfg.isCreator);
    this.me = cfg.userId;
    this.displayName = cfg.displayName;
    this.identity = cfg.identity;
    this.roomSecret = cfg.roomSecret;
    /** The server's proof that a rejoin is this member (from the first join's ack). */
    this.resumeToken = cfg.resumeToken ?? null;
    /** @type {Map<string, {userId, displayName, publicKey, present, joinedAt, keys: Map, safety?: string}>} */
    this.members = new Map();
    this.selfKeys = new Map();
    /** Records by "<from>/<id>". */
    this.messages = new Map();
    /** Receipts known before this page (a snapshot's), for my messages the history brings back. */
    this.savedReceipts = new Map(Object.entries(cfg.delivered ?? {}));
    this.pending = new Set();
    this.outbox = [];
    /** Group room keys by generation: {raw, key}. */
    this.groupKeys = new Map();
    this.currentGen = 0;
    this.pendingWrapped = null;
    this.distributedTo = new Set();
    this.needsKeyResend = true;
    this.keyChain = Promise.resolve();
    this.typing = new Map();
    /** userIds whose name looks like another person's here (see names.js). */
    this.alike = new Set();
    this.recentAckErrors = new Map();
    this.joined = false;
    this.everJoined = false;
    this.closed = false;
    this.state = 'idle';
    this.rejoinTries = 0;
    this.lastTypingEmit = 0;
    this.uplink = new Uplink(() => this.socket);
    /** Reactions, edits, deletions, receipts and replies (kinds.js). */
    this.notes = new Annotations(cfg.userId);
    this.receiptsOn = cfg.receipts !== false;
    /** Others' messages shown on this page, waiting to go out in one read receipt. */
    this.seenBatch = new Map();
    /** The room creator's userId, whose timer messages alone count (disappear.js). */
    this.creatorId = cfg.isCreator ? cfg.userId : cfg.creatorId ?? null;
    /** Disappearing messages: the room's timer, and removing what has expired. */
    this.disappear = new Disappearing(this, cfg.timer);
    /** Files sent and received in chunks (files.js). */
    this.files = new FileTransfers(this);
    this.recall(cfg.known);
  }

  /**
   * The members a snapshot remembers (keywatch.js): their names and keys, and a warning not
   * yet dealt with, so that a reload still sees someone come back under another key.
   */
  recall(known) {
    if (!Array.isArray(known)) return;
    for (const k of known.slice(-KNOWN_KEPT)) {
      if (typeof k?.userId !== 'string' || k.userId === this.me || typeof k.publicKey !== 'string') continue;
      const m = this.member(k.userId);
      m.displayName = String(k.displayName ?? '');
      m.publicKey = k.publicKey;
      m.joinedAt = Number(k.joinedAt) || 0;
      if (k.keyChanged) {
        m.keyChanged = true;
        m.keyChange = k.keyChange === 'returned' ? 'returned' : 'key';
      }
      if (typeof k.succeededBy === 'string') m.succeededBy = k.succeededBy;
      C.safetyNumber(this.identity.publicKey, m.publicKey).then((n) => {
        if (m.publicKey === k.publicKey) m.safety = n;
      }, () => {});
    }
  }

  /** What a snapshot remembers of the members (recall()). */
  known() {
    return [...this.members.values()].filter((m) => m.publicKey).slice(-KNOWN_KEPT).map((m) => ({
      userId: m.userId,
      displayName: m.displayName,
      publicKey: m.publicKey,
      joinedAt: m.joinedAt,
      ...(m.keyChanged ? { keyChanged: true, keyChange: m.keyChange } : {}),
      ...(m.succeededBy ? { succeededBy: m.succeededBy } : {}),
    }));
  }

  // ---- lifecycle ----

  /** Connects and joins; resolves with the join ack, rejects with a CodedError. */
  async start() {
    for (const [gen, raw] of Object.entries(this.cfg.groupKeys ?? {})) {
      const bytes = C.fromBase64Url(raw);
      this.groupKeys.set(Number(gen), { raw: bytes, key: await C.importRoomKey(bytes) });
      this.currentGen = Math.max(this.currentGen, Number(gen));
    }
    if (this.cfg.distributedTo) this.distributedTo = new Set(this.cfg.distributedTo);
    return new Promise((resolve, reject) => {
      this.firstJoin = { resolve, reject };
      const socket = io({
        autoConnect: false,
        reconnectionDelay: 400,
        reconnectionDelayMax: 2_000,
        timeout: 10_000,
      });
      // A history replays in one packet, and every file chunk in it brings up to 8 binary
      // attachments (crypto.js): the parser's default of 10 a packet would refuse it and
      // drop the connection, again at every rejoin.
      socket.io.decoder.opts.maxAttachments = HISTORY_ATTACHMENTS;
      // And receiving it may take longer than the ping timeout (downlink.js).
      aliveWhileReceiving(socket);
      this.socket = socket;
      this.bindSocket(socket);
      this.setState('connecting');
      socket.connect();
    });
  }

  bindSocket(socket) {
    socket.on('connect', () => this.join());
    socket.on('server-shutdown', () => {
      // A graceful restart (docs/operations.md): the server closes our transport next.
      this.serverRestarting = true;
      if (!this.closed) this.setState('restarting');
    });
    socket.on('disconnect', (reason) => {
      this.joined = false;
      for (const r of this.outbox) if (r.state === 'sending') r.state = 'queued';
      if (this.closed) return;
      this.setState(this.serverRestarting ? 'restarting' : 'reconnecting');
      // The server closed the connection itself: Socket.IO does not retry on its own then.
      if (reason === 'io server disconnect') socket.connect();
    });
    socket.on('connect_error', (err) => {
      if (this.closed) return;
      // The server refused the connection itself (a limit, SECURITY.md): its message
      // starts with the code, and Socket.IO does not retry on its own then.
      const refused = /^(RATE_LIMITED|LIMIT_REACHED): /.exec(err?.message ?? '')?.[1];
      if (!this.everJoined && !socket.active) {
        this.failFirstJoin(new CodedError(refused ?? 'CONNECTION'));
        return;
      }
      if (refused && !socket.active) {
        setTimeout(() => { if (!this.closed && !socket.active) socket.connect(); }, 5_000);
      }
      if (!this.everJoined && !this.toldUnreachable) {
        // Socket.IO keeps retrying; say so once.
        this.toldUnreachable = true;
        this.emit('error', { code: 'CONNECTION' });
      }
      if (this.everJoined) this.setState(this.serverRestarting ? 'restarting' : 'reconnecting');
      else this.setState('connecting');
    });

    socket.on('messages-history', (list) => {
      if (!Array.isArray(list)) return;
      for (const m of list) {
        this.ingest(m);
        if (typeof m?.id === 'string') this.replayed?.push({ key: `${m.from}/${m.id}`, timestamp: Number(m.timestamp) || 0 });
      }
    });
    socket.on('session-metadata', (meta) => {
      const wrapped = meta?.encryptedSessionKey ?? meta?.sessionKey;
      if (wrapped) this.acceptWrapped(wrapped);
    });
    socket.on('public-keys-updated', (list) => this.onPublicKeys(list));
    socket.on('public-key-changed', (u) => {
      if (!u?.userId || u.userId === this.me) return;
      this.flagKeyChange(this.member(u.userId));
    });
    socket.on('user-joined', (u) => {
      if (!u?.userId || u.userId === this.me) return;
      const m = this.member(u.userId);
      m.displayName = u.displayName || m.displayName;
      m.present = true;
      m.leftTold = false;
      this.refreshLookAlikes();
      this.notice(`${this.labelOf(u.userId)} joined`, 'join', u.timestamp);
      this.emit('members');
    });
    socket.on('user-left', (u) => {
      if (!u?.userId || u.userId === this.me) return;
      const m = this.members.get(u.userId);
      // Said once per departure; of a member someone took the place of (keywatch.js), as the earlier one.
      const told = m?.leftTold && !m.present;
      if (m) {
        m.present = false;
        m.leftTold = true;
      }
      this.typing.delete(u.userId);
      this.emitTyping();
      if (!told) {
        const who = m?.succeededBy ? `The earlier “${m.displayName}”` : this.labelOf(u.userId);
        this.notice(`${who} left`, 'leave', u.timestamp);
      }
      this.settleReturns();
      this.emit('members');
      this.reconcileGroupKey();
    });
    socket.on('new-message', (m) => {
      const record = this.ingest(m);
      if (record && !record.mine) {
        // Told once decrypted (decrypt()): only a message to show is news to the person.
        record.live = true;
        if (record.content) this.tellIncoming(record);
        // Every message is acknowledged, reactions and receipts too: a message without a
        // delivery receipt would tell the server that it was one of those.
        this.acknowledge(record);
      }
    });
    socket.on('message-delivered', (n) => this.onDelivered(n));
    socket.on('message-sent', (m) => this.ingest(m));
    socket.on('user-typing', (u) => {
      if (!u?.userId || u.userId === this.me) return;
      this.typing.set(u.userId, { name: this.labelOf(u.userId, u.displayName), until: Date.now() + TYPING_EXPIRY_MS });
      this.emitTyping();
      setTimeout(() => this.emitTyping(), TYPING_EXPIRY_MS + 50);
    });
    socket.on('user-stopped-typing', (u) => {
      if (this.typing.delete(u?.userId)) this.emitTyping();
    });
    socket.on('session-key-available', (p) => {
      const wrapped = p?.encryptedKeys?.[this.me];
      if (wrapped) this.acceptWrapped(wrapped);
    });
    socket.on('download-notification', (n) => this.onDownloaded(n));
    socket.on('session-closed', (p) => {
      if (p?.sessionId && p.sessionId !== this.sessionId) return;
      this.end('closed');
    });
    socket.on('member-removed', (u) => {
      if (!u?.userId) return;
      if (u.userId === this.me) {
        this.end('removed');
        return;
      }
      const m = this.member(u.userId);
      m.present = false;
      this.typing.delete(u.userId);
      this.emitTyping();
      this.notice(`${this.labelOf(u.userId, u.displayName)} was removed from the room`, 'leave', u.timestamp);
      this.emit('members');
    });
    socket.on('link-reset', (p) => {
      const what = this.mode === 'password' ? 'password was changed: the old one' : 'link was reset: the old link';
      this.notice(`The room’s ${what} no longer lets anyone in`, 'link', p?.timestamp);
      // Only the creator knows the new link; a member's copy of the old one is useless now.
      if (!this.isCreator && this.cfg.shareLink) {
        this.cfg.shareLink = null;
        this.emit('persist');
        this.emit('link');
      }
    });
    socket.on('join-lockout', (p) => {
      // Tells the room (its creator above all) why a friend may not get in for a while.
      const what = this.mode === 'password' ? 'wrong passwords' : 'a wrong link';
      const wait = Number(p?.retryAfterMs) > 0 ? ` for ${formatWait(p.retryAfterMs)}` : '';
      this.notice(`Someone tried to join with ${what} too often and is locked out${wait}`, 'lockout');
    });
    socket.on('session-error', (e) => {
      // Every error is also acked; this event is for clients that send no ack. Report it
      // only when no ack carried it just now.
      const code = e?.error ?? 'UNKNOWN';
      const seen = this.recentAckErrors.get(code);
      if (seen && Date.now() - seen < 5_000) return;
      if (code === 'REMOVED') {
        if (this.firstJoin) this.failFirstJoin(new CodedError(code));
        else this.end('removed');
        return;
      }
      this.emit('error', errorInfo(new CodedError(code, { message: e?.message, retryAfterMs: e?.retryAfterMs })));
    });
  }

  failFirstJoin(err) {
    if (!this.firstJoin) return;
    const { reject } = this.firstJoin;
    this.firstJoin = null;
    this.closed = true;
    this.socket?.disconnect();
    this.releaseKeyRole?.();
    this.setState('failed');
    reject(err);
  }

  joinPayload() {
    const base = {
      userId: this.me,
      displayName: this.displayName,
      publicKey: this.identity.publicKey,
      ...(this.resumeToken ? { resumeToken: this.resumeToken } : {}),
    };
    if (this.isCreator) {
      return {
        ...base,
        sessionId: this.sessionId,
        isCreator: true,
        authKey: this.cfg.authKey,
        chatMode: this.mode,
      };
    }
    return { ...base, sessionId: `${this.sessionId}:${this.cfg.credential}` };
  }

  async join() {
    if (this.closed) return;
    let ack;
    // What the server replays for this join: after a restart, what it kept.
    this.replayed = [];
    try {
      ack = await this.request('join-session', this.joinPayload(), JOIN_ACK_TIMEOUT_MS);
    } catch (err) {
      if (this.closed) return;
      if (!this.everJoined) {
        this.failFirstJoin(err);
        return;
      }
      if (err.code === 'CONNECTION') return; // the next 'connect' rejoins
      if (err.code === 'REMOVED') {
        this.end('removed');
        return;
      }
      if (REJOIN_RETRYABLE.has(err.code) && this.rejoinTries++ < REJOIN_MAX_TRIES) {
        // After a server restart the room exists again only once its creator is back.
        if (err.code === 'SESSION_NOT_FOUND' && !this.toldRoomMissing) {
          this.toldRoomMissing = true;
          this.notice('The server does not have this room right now: it restarted without keeping it, or the room expired. Waiting for its creator to open it again; until then nothing can be sent.', 'restart');
          // Nobody is known to be here while the room is not on the server.
          for (const m of this.members.values()) m.present = false;
          this.emit('members');
        }
        this.setState('waiting');
        clearTimeout(this.rejoinTimer);
        this.rejoinTimer = setTimeout(() => {
          if (this.socket.connected && !this.joined) this.join();
        }, Math.max(REJOIN_RETRY_MS, err.retryAfterMs ?? 0));
        return;
      }
      this.emit('error', errorInfo(err));
      this.closed = true;
      this.socket.disconnect();
      this.releaseKeyRole?.();
      this.setState('failed');
      return;
    }
    this.rejoinTries = 0;
    this.serverRestarting = false;
    this.joined = true;
    if (ack.resumeToken && ack.resumeToken !== this.resumeToken) {
      this.resumeToken = ack.resumeToken;
      this.emit('persist', {});
    }
    this.isCreator = Boolean(ack.isCreator);
    if (ack.chatMode) this.mode = ack.chatMode;
    const first = !this.everJoined;
    if (!first) this.tellRestart(ack);
    this.everJoined = true;
    this.needsKeyResend = true;
    this.setState('joined');
    if (first && this.firstJoin) {
      this.firstJoin.resolve(ack);
      this.firstJoin = null;
    }
    this.reconcileGroupKey();
    this.flushOutbox();
  }

  /**
   * Emits an event and waits for its ack: resolves with `{ok: true, ...}` or throws a
   * CodedError. The timeout runs once the event has left this page (uplink.js);
   * `onProgress(fraction)` hears how much of it has.
   */
  request(event, payload, timeout = ACK_TIMEOUT_MS, onProgress) {
    return new Promise((resolve, reject) => {
      if (!this.socket?.connected) {
        reject(new CodedError('CONNECTION'));
        return;
      }
      let settled = false;
      const tracker = this.uplink.track({
        timeoutMs: timeout,
        onProgress,
        onTimeout: () => {
          if (settled) return;
          settled = true;
          reject(new CodedError(this.socket.connected ? 'TIMEOUT' : 'CONNECTION'));
        },
      });
      tracker.begin();
      this.socket.timeout(NO_CLOCK_MS).emit(event, payload, (err, res) => {
        tracker.stop();
        if (settled) return;
        settled = true;
        if (err) {
          reject(new CodedError(this.socket.connected ? 'TIMEOUT' : 'CONNECTION'));
          return;
        }
        if (res?.ok === true) {
          resolve(res);
          return;
        }
        const code = res?.error ?? 'UNKNOWN';
        // Recorded synchronously: the matching 'session-error' may be handled right after.
        this.recentAckErrors.set(code, Date.now());
        reject(new CodedError(code, { message: res?.message, retryAfterMs: res?.retryAfterMs }));
      });
      if (!settled) tracker.sent();
    });
  }

  /** Leaves the room for good (the others see you leave). */
  async leave() {
    this.stopTyping();
    if (this.joined) {
      try {
        await this.request('leave-session', { sessionId: this.sessionId });
      } catch {
        // Leaving anyway: the disconnect below leaves the room too.
      }
    }
    this.end('left');
  }

  /** Creator only: closes the room for everyone (they all get `session-closed`). */
  async closeRoom() {
    try {
      await this.request('close-session', { sessionId: this.sessionId });
    } catch (err) {
      // `session-closed` may arrive before the ack and end the connection: that is success.
      if (this.endReason !== 'closed') throw err;
    }
    this.end('closed');
  }

  /**
   * Creator only: a new join credential (same format as at creation). The old link stops
   * working; members in the room stay. `roomSecret` is given when the link's secret changes
   * too (private and password rooms, where the creator is alone when it happens).
   */
  async resetLink({ authKey, roomSecret, shareLink }) {
    await this.request('reset-link', { sessionId: this.sessionId, authKey });
    this.cfg.authKey = authKey;
    this.cfg.shareLink = shareLink;
    this.cfg.linkAt = Date.now();
    if (roomSecret) {
      this.roomSecret = roomSecret;
      this.selfKeys = new Map();
      for (const m of this.members.values()) m.keys = new Map();
    }
    this.emit('persist');
    this.emit('link');
  }

  /** Creator only: takes a member out of the room (the group key rotates without them). */
  async removeMember(userId) {
    await this.request('remove-member', { sessionId: this.sessionId, userId });
  }

  /** The room is over for this page: closed, left, or this member was removed. */
  end(reason) {
    if (this.endReason) return;
    this.endReason = reason;
    this.closed = true;
    this.joined = false;
    this.stopTyping();
    this.typing.clear();
    for (const m of this.members.values()) m.present = false;
    if (reason === 'closed') this.notice('The room was closed', 'closed');
    this.socket?.disconnect();
    this.releaseKeyRole?.();
    this.disappear.stop();
    this.setState(reason);
  }

  /** Drops the connection without leaving (used when the page goes away). */
  disconnect() {
    this.closed = true;
    this.socket?.disconnect();
    this.releaseKeyRole?.();
  }

  setState(state) {
    this.state = state;
    this.emit('state', { state });
  }

  emit(type, detail = {}) {
    if (type === 'members') this.refreshLookAlikes();
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }

  notice(text, kind, timestamp) {
    this.emit('notice', { text, kind, timestamp: timestamp ?? Date.now() });
  }

  // ---- members and keys ----

  member(userId) {
    let m = this.members.get(userId);
    if (!m) {
      m = { userId, displayName: '', publicKey: null, present: false, joinedAt: 0, keys: new Map() };
      this.members.set(userId, m);
    }
    return m;
  }

  nameOf(userId) {
    if (userId === this.me) return this.displayName || 'You';
    return this.members.get(userId)?.displayName || 'Someone';
  }

  /** Whether `userId`'s name looks like another person's here (me included). */
  looksAlike(userId) {
    return userId !== this.me && this.alike.has(userId);
  }

  /**
   * How the page names someone else: the name (or `fallback`), and when it looks like
   * another person's, a ⚠ and the first block of the safety number the member list shows
   * beside the right person.
   */
  labelOf(userId, fallback) {
    const name = this.members.get(userId)?.displayName || fallback || this.nameOf(userId);
    if (!this.looksAlike(userId)) return name;
    const tag = this.members.get(userId)?.safety?.slice(0, 5);
    return tag ? `${name} ⚠ ${tag}` : `${name} ⚠`;
  }

  refreshLookAlikes() {
    const people = [{ id: this.me, name: this.displayName }];
    // A member that someone of its name came back in place of (keywatch.js) is the same
    // person as far as the page can say: not a second one.
    for (const m of this.members.values()) if (!m.succeededBy) people.push({ id: m.userId, name: m.displayName });
    this.alike = lookAlikes(people);
  }

  /** Present members other than me that have a public key. */
  presentPeers() {
    return [...this.members.values()].filter((m) => m.present && m.publicKey);
  }

  onPublicKeys(list) {
    if (!Array.isArray(list)) return;
    const listed = new Set();
    let keysChanged = false;
    for (const e of list) {
      if (e?.userId === this.me && typeof e.displayName === 'string' && e.displayName
        && e.displayName !== this.displayName) {
        // The server keeps names to readable text (docs/protocol.md "Conventions"): show ours as the
        // others see it.
        this.displayName = e.displayName;
        this.emit('persist');
        this.emit('renamed');
      }
      if (!e?.userId || e.userId === this.me || typeof e.publicKey !== 'string') continue;
      listed.add(e.userId);
      const m = this.member(e.userId);
      if (m.publicKey !== e.publicKey) {
        keysChanged = true;
        const first = !m.publicKey;
        if (m.publicKey) this.flagKeyChange(m);
        m.publicKey = e.publicKey;
        m.keys = new Map();
        m.safety = undefined;
        C.safetyNumber(this.identity.publicKey, e.publicKey).then((s) => {
          if (m.publicKey === e.publicKey) {
            m.safety = s;
            if (first) this.watchReturn(m);
            this.emit('members');
          }
        }, () => {});
      }
      if (e.displayName) m.displayName = e.displayName;
      m.joinedAt = e.joinedAt ?? m.joinedAt;
      m.present = true;
    }
    // The list holds every present member with a key (ours included, or not when it
    // answers get-public-keys); whoever is missing is gone.
    for (const m of this.members.values()) if (!listed.has(m.userId)) m.present = false;
    this.settleReturns();
    this.emit('members');
    if (keysChanged) this.emit('persist');
    this.disappear.membersChanged();
    if (this.pendingWrapped) this.acceptWrapped(this.pendingWrapped);
    this.retryPending();
    this.reconcileGroupKey();
    this.flushOutbox();
  }

  /**
   * A member's key was replaced: seen here (the key list changed) or told by the server
   * (`public-key-changed`); both usually happen for one change, hence the short dedup.
   */
  flagKeyChange(m) {
    const now = Date.now();
    if (m.keyChangedAt && now - m.keyChangedAt < 10_000) return;
    m.keyChangedAt = now;
    m.keyChanged = true;
    m.keyChange = 'key';
    this.notice(`⚠ ${KEY_CHANGED(this.labelOf(m.userId))}: compare it again before trusting them`, 'key', now);
    this.emit('keychange', { userId: m.userId });
    this.emit('members');
    this.emit('persist');
  }

  /**
   * A member seen with its first key has the name of one this page knew with another key
   * (keywatch.js): the same person back from another browser, or someone else. While the
   * earlier one is here, both stay, marked apart; once it is gone, this one takes its place.
   */
  watchReturn(m) {
    const x = earlierSelf(this.members, m, this.me);
    if (!x) return;
    m.earlier = x.userId;
    if (x.present) {
      this.notice(`⚠ ${SECOND_ONE(m.displayName, m.safety.slice(0, 5))}`, 'key');
      return;
    }
    this.takeOver(x, m);
  }

  /** Members waiting to take the place of an earlier self that has now gone. */
  settleReturns() {
    for (const m of this.members.values()) {
      const x = m.earlier && this.members.get(m.earlier);
      if (m.present && x && !x.present && !x.succeededBy) this.takeOver(x, m);
    }
  }

  takeOver(x, m) {
    x.succeededBy = m.userId;
    m.keyChanged = true;
    m.keyChange = 'returned';
    m.keyChangedAt = Date.now();
    this.refreshLookAlikes();
    this.notice(`⚠ ${CAME_BACK(m.displayName)}`, 'key');
    // The mark "verified" was for the earlier key: it goes.
    this.emit('keychange', { userId: x.userId });
    this.emit('members');
    this.emit('persist');
  }

  /** The AES key I share with `userId` for `purpose` ("msg" or "wrap"), derived once. */
  pairKey(userId, purpose) {
    const peerPublicKey = userId === this.me ? this.identity.publicKey : this.members.get(userId)?.publicKey;
    if (!peerPublicKey) return null;
    const cache = userId === this.me ? this.selfKeys : this.members.get(userId).keys;
    let p = cache.get(purpose);
    if (!p) {
      p = C.importPublicKey(peerPublicKey).then((peerKey) => C.derivePairKey({
        privateKey: this.identity.privateKey,
        myPublicKey: this.identity.publicKey,
        peerPublicKey,
        peerKey,
        roomSecret: this.roomSecret,
        sessionId: this.sessionId,
        purpose,
      }));
      cache.set(purpose, p);
    }
    return p;
  }

  // ---- group room key ----

  /** Creator of a group room: makes sure every present member holds the current room key. */
  reconcileGroupKey() {
    if (this.mode !== 'group' || !this.isCreator || !this.holdsKeyRole()) return;
    this.keyChain = this.keyChain
      .then(() => this.reconcileGroupKeyNow())
      .catch((err) => this.emit('error', errorInfo(err)));
  }

  /**
   * Whether this tab hands out the room keys. The creator may have the room open in
   * several tabs of one browser (the same member, see storage.js): two of them making
   * their own key of the same generation would leave the members with one and the other
   * tab's messages unreadable. So only the tab holding a lock (Web Locks, per browser)
   * does it; the others get the key like any member (their own wrapped copy). When that
   * tab goes, the lock passes to another, which takes over.
   */
  holdsKeyRole() {
    if (this.keyRole !== undefined) return this.keyRole;
    if (!navigator.locks) {
      this.keyRole = true;
      return true;
    }
    this.keyRole = false;
    navigator.locks.request(`blindrelay.keys.${this.sessionId}`, () => {
      if (this.closed) return undefined;
      this.keyRole = true;
      this.needsKeyResend = true;
      this.reconcileGroupKey();
      return new Promise((release) => { this.releaseKeyRole = release; });
    }).catch(() => {});
    return false;
  }

  async reconcileGroupKeyNow() {
    if (!this.joined || this.closed) return;
    const present = new Set([this.me, ...this.presentPeers().map((m) => m.userId)]);
    const someoneLeft = [...this.distributedTo].some((u) => !present.has(u));
    const someoneNew = [...present].some((u) => !this.distributedTo.has(u));
    // Every change of membership makes a new key: whoever left (or was removed) never sees
    // it, so cannot read what follows; whoever arrived gets only it, so cannot read what
    // was said before.
    const rotate = !this.currentGen || someoneLeft || someoneNew;
    if (!rotate && !this.needsKeyResend) return;
    if (rotate) {
      const gen = this.currentGen + 1;
      this.groupKeys.set(gen, await C.newRoomKey());
      this.currentGen = gen;
      this.emit('keygen', { generation: gen });
      this.emit('persist');
    }
    const gen = this.currentGen;
    const { raw } = this.groupKeys.get(gen);
    const encryptedKeys = {};
    for (const userId of present) {
      const wrapKey = await this.pairKey(userId, 'wrap');
      encryptedKeys[userId] = await C.wrapRoomKey(wrapKey, raw, {
        sessionId: this.sessionId, gen, by: this.me, forUser: userId,
      });
    }
    await this.request('set-session-key', { sessionId: this.sessionId, encryptedKeys });
    this.distributedTo = present;
    this.needsKeyResend = false;
    this.emit('persist');
    if (rotate) this.disappear.keyChanged();
    this.flushOutbox();
  }

  /** A member receives its wrapped room key (in `session-metadata` or `session-key-available`). */
  acceptWrapped(wrapped) {
    this.keyChain = this.keyChain.then(async () => {
      if (!C.isWrappedKey(wrapped)) return;
      if (this.groupKeys.has(wrapped.gen)) {
        if (this.pendingWrapped === wrapped) this.pendingWrapped = null;
        return;
      }
      const wrapKey = this.pairKey(wrapped.by, 'wrap');
      if (!wrapKey) {
        this.pendingWrapped = wrapped; // the creator's public key has not arrived yet
        return;
      }
      let raw;
      try {
        raw = await C.unwrapRoomKey(await wrapKey, wrapped, { sessionId: this.sessionId, forUser: this.me });
      } catch {
        this.pendingWrapped = wrapped;
        this.emit('error', { code: 'DECRYPT_FAILED' });
        return;
      }
      this.pendingWrapped = null;
      // Only the creator hands out room keys (the server allows set-session-key from it
      // alone, and the wrap is bound to `by`): whose timer messages count.
      this.creatorId = wrapped.by;
      this.groupKeys.set(wrapped.gen, { raw, key: await C.importRoomKey(raw) });
      if (wrapped.gen > this.currentGen) {
        this.currentGen = wrapped.gen;
        this.emit('keygen', { generation: wrapped.gen });
      }
      this.emit('persist');
      this.retryPending();
      this.flushOutbox();
    }).catch(() => {});
  }

  /**
   * After a rejoin, says what the server did with the room, only when it is news: kept
   * through a restart (its snapshot), or lost and opened again by this creator. After a
   * crash, the messages this page holds that the server's history no longer has are
   * counted: they stay here, but people who join later will not get them.
   */
  tellRestart(ack) {
    this.toldRoomMissing = false;
    if (ack.created && this.isCreator) {
      this.notice('The server no longer had this room (it restarted without keeping it, or the room expired). It is open again under the same link; the messages from before are only on the pages that show them.', 'restart');
      return;
    }
    if (!ack.restored) return;
    const replayed = new Set(this.replayed.map((m) => m.key));
    // Older than the oldest replayed message: trimmed by the history's bounds, not lost.
    const since = this.replayed.length ? Math.min(...this.replayed.map((m) => m.timestamp)) : 0;
    const lost = [...this.messages.values()].filter((r) => r.state === 'sent' || r.state === 'received')
      .filter((r) => r.timestamp >= since && !replayed.has(r.key) && !r.notKept && !r.transfer && !r.incoming);
    if (lost.length === 0) {
      this.notice('The server restarted; this room was kept.', 'restart');
      return;
    }
    for (const r of lost) {
      r.notKept = true;
      this.emit('message', { record: r });
    }
    const n = lost.length === 1 ? 'message' : `${lost.length} messages`;
    this.notice(`The server restarted after a crash and did not keep the last ${n} of this room: ${lost.length === 1 ? 'it stays' : 'they stay'} on this page, but people who join later will not get ${lost.length === 1 ? 'it' : 'them'}.`, 'restart');
  }

  // ---- incoming messages ----

  /** Adds a relayed message; returns its record when it is new. */
  ingest(m) {
    if (!m || typeof m.id !== 'string' || typeof m.from !== 'string') return null;
    // A chunk of a file this page is sending, echoed back (message-sent): nothing to read.
    if (m.from === this.me && this.files.isOwnChunk(m.id)) return null;
    const key = `${m.from}/${m.id}`;
    if (this.disappear.gone.has(key)) return null;
    const known = this.messages.get(key);
    if (known) {
      if (known.mine && known.state !== 'sent') {
        known.state = 'sent';
        known.timestamp = m.timestamp ?? known.timestamp;
        this.outbox = this.outbox.filter((r) => r !== known);
        this.emit('message', { record: known });
      }
      return null;
    }
    const record = {
      key,
      id: m.id,
      from: m.from,
      fromName: m.senderDisplayName || this.nameOf(m.from),
      to: m.to ?? 'all',
      group: this.mode === 'group',
      type: typeof m.type === 'string' ? m.type : 'text',
      timestamp: Number(m.timestamp) || Date.now(),
      mine: m.from === this.me,
      state: m.from === this.me ? 'sent' : 'received',
      encrypted: m.encrypted,
      gen: C.isEnvelope(m.encrypted) ? m.encrypted.gen : undefined,
      content: null,
      problem: null,
      downloadedBy: [],
      // What this page knew before a reload (or another tab of this member): the server
      // keeps no receipts.
      deliveredTo: new Set(m.from === this.me ? this.savedReceipts.get(m.id) ?? [] : []),
    };
    this.messages.set(key, record);
    this.emit('message', { record });
    this.decrypt(record);
    return record;
  }

  retryPending() {
    for (const r of this.pending) this.decrypt(r);
  }

  async decrypt(r) {
    const e = r.encrypted;
    if (!C.isEnvelope(e)) {
      r.problem = 'unsupported';
      this.emit('message', { record: r });
      return;
    }
    let key;
    if (e.gen > 0) {
      key = this.groupKeys.get(e.gen)?.key;
    } else {
      const peer = r.mine ? r.to : r.from;
      key = await this.pairKey(peer, 'msg');
    }
    if (!key) {
      r.problem = e.gen > 0 ? 'no-room-key' : 'no-peer-key';
      this.pending.add(r);
      this.emit('message', { record: r });
      return;
    }
    let bytes;
    try {
      bytes = await C.decryptMessage(key, e, {
        sessionId: this.sessionId, from: r.from, to: r.to, id: r.id, type: r.type, gen: e.gen,
      });
    } catch {
      // Wrong key (a key that changed since) or tampering: retried when keys change.
      r.problem = 'undecryptable';
      this.pending.add(r);
      this.emit('message', { record: r });
      return;
    }
    if (r.content) return; // decrypted meanwhile by a concurrent retry
    this.pending.delete(r);
    r.problem = null;
    r.encrypted = null;
    try {
      const decoded = C.decodeContent(bytes);
      // A file's chunk or its cancel: files.js puts the file together; not shown itself.
      if (this.files.take(r, decoded)) {
        this.emit('message', { record: r });
        return;
      }
      r.content = contentFrom(decoded, r.type);
    } catch {
      r.problem = 'unsupported';
    }
    this.annotate(r);
    if (this.disappear.due(r)) return;
    this.emit('message', { record: r });
    if (r.live) this.tellIncoming(r);
  }

  /**
   * A decrypted message's kind: a reaction, an edit, a deletion or a receipt changes other
   * messages (drawn again) and is not shown itself; a reply is noted with what it quotes.
   */
  annotate(r) {
    const kind = r.content?.kind;
    if (kind === 'unknown' || CONTROL_KINDS.has(kind)) {
      r.control = true;
      if (kind === 'timer') this.disappear.apply(r.content, r.from, r.timestamp);
      this.touch(this.notes.apply(r.content, r.from, r.timestamp));
    } else if (r.content?.reply) {
      this.notes.noteReply(r.key, r.content.reply);
    }
  }

  /** Draws again the messages of `keys` and the replies quoting them. */
  touch(keys) {
    for (const key of keys) {
      const record = this.messages.get(key);
      if (record) this.emit('message', { record });
      for (const reply of this.notes.repliesTo(key)) {
        const r = this.messages.get(reply);
        if (r) this.emit('message', { record: r });
      }
    }
  }

  tellIncoming(r) {
    if (r.told || r.control || !r.content) return;
    r.told = true;
    this.emit('incoming', { record: r });
  }

  // ---- outgoing messages ----

  /** Sends a text; `reply` (a record) makes it a reply quoting that message. */
  sendText(text, { reply } = {}) {
    this.flushReceipts();
    // The timer it is sent under travels with it (disappear.js).
    const meta = { kind: 'text', text, ttl: this.disappear.seconds };
    if (reply) {
      meta.reply = {
        id: reply.id,
        from: reply.from,
        name: reply.mine ? this.displayName : this.labelOf(reply.from, reply.fromName),
        text: firstLine(quoteText(reply, this.notes)),
      };
    }
    const record = this.queue('text', padded(meta), readKind(meta));
    if (record.content.reply) this.notes.noteReply(record.key, record.content.reply);
    return record;
  }

  /**
   * Sends a reaction, an edit, a deletion or a receipt (kinds.js): encrypted and sent like a
   * text, and applied here at once.
   */
  sendControl(meta) {
    const content = readKind(meta);
    const record = this.queue('text', padded(meta), content, { control: true });
    this.touch(this.notes.apply(content, this.me, record.timestamp));
    return record;
  }

  /** Toggles my reaction `emoji` on message `target`. */
  react(target, emoji) {
    const on = !this.notes.reacted(target.key, emoji);
    return this.sendControl({ kind: 'reaction', id: target.id, from: target.from, emoji, on });
  }

  /** Replaces the text of my message `target` for everyone. */
  editMessage(target, text) {
    if (!target.mine || target.type !== 'text' || this.notes.isDeleted(target.key)) return null;
    return this.sendControl({ kind: 'edit', id: target.id, text });
  }

  /** Deletes my message `target` for everyone (their pages show that it was deleted). */
  deleteMessage(target) {
    if (!target.mine || this.notes.isDeleted(target.key)) return null;
    return this.sendControl({ kind: 'delete', id: target.id });
  }

  /** Turns read receipts on or off: off, none are sent and the others' are not shown. */
  setReceipts(on) {
    this.receiptsOn = on;
    if (!on) this.seenBatch.clear();
    for (const r of this.messages.values()) if (r.mine && !r.control) this.emit('message', { record: r });
  }

  /**
   * Someone else's message was shown in a focused page: its sender gets a read receipt
   * (batched), unless receipts are off or one went out already (from here or another tab).
   */
  markSeen(r) {
    if (!this.receiptsOn || r.mine || r.control || !r.content || this.closed) return;
    if (this.notes.receipted.has(r.key)) return;
    this.seenBatch.set(r.key, { id: r.id, from: r.from });
    this.receiptTimer ??= setTimeout(() => this.flushReceipts(), RECEIPT_BATCH_MS);
  }

  /** Sends the receipts waiting in the batch (before a message of mine: what I read, I read first). */
  flushReceipts() {
    clearTimeout(this.receiptTimer);
    this.receiptTimer = null;
    const seen = [...this.seenBatch].filter(([key]) => !this.notes.receipted.has(key)).map(([, s]) => s);
    this.seenBatch.clear();
    if (!this.receiptsOn) return;
    for (let i = 0; i < seen.length; i += RECEIPT_MAX_IDS) {
      this.sendControl({ kind: 'receipt', seen: seen.slice(i, i + RECEIPT_MAX_IDS) });
    }
  }

  /** Sends a file in encrypted chunks (files.js); returns its record. */
  async sendFile(file) {
    if (file.size > MAX_FILE_BYTES) throw fileTooLarge(file);
    return this.files.send(file);
  }

  queue(type, plaintext, content, extra = {}) {
    const id = `m-${C.randomId(12)}`;
    const record = {
      key: `${this.me}/${id}`,
      id,
      from: this.me,
      fromName: this.displayName,
      to: null,
      type,
      timestamp: Date.now(),
      group: this.mode === 'group',
      mine: true,
      state: 'queued',
      gen: undefined,
      content,
      plaintext,
      problem: null,
      downloadedBy: [],
      deliveredTo: new Set(),
      ...extra,
    };
    this.messages.set(record.key, record);
    this.outbox.push(record);
    this.emit('message', { record });
    this.flushOutbox();
    return record;
  }

  retry(record) {
    if (record.transfer) return this.files.retry(record);
    if (record.state !== 'failed') return;
    record.state = 'queued';
    this.emit('message', { record });
    this.flushOutbox();
  }

  /** Sends what the outbox holds, in order, once joined and keys allow. */
  flushOutbox() {
    if (this.flushing) {
      this.flushAgain = true;
      return;
    }
    this.flushing = true;
    this.flushOutboxNow()
      .catch((err) => this.emit('error', errorInfo(err)))
      .finally(() => {
        this.flushing = false;
        if (this.flushAgain) {
          this.flushAgain = false;
          this.flushOutbox();
        }
      });
  }

  async flushOutboxNow() {
    for (const r of [...this.outbox]) {
      if (!this.joined || this.closed) return;
      if (r.state === 'sending' || r.state === 'failed' || r.state === 'sent') continue;
      const sealed = await this.seal(r);
      if (!sealed) {
        r.state = 'waiting';
        this.emit('message', { record: r });
        continue;
      }
      if (!this.joined) return;
      r.state = 'sending';
      this.emit('message', { record: r });
      const timeout = r.type === 'text' ? ACK_TIMEOUT_MS : FILE_ACK_TIMEOUT_MS;
      const upload = r.type === 'text' ? undefined : (fraction) => this.uploadProgress(r, fraction);
      this.request('send-message', {
        sessionId: this.sessionId,
        to: sealed.to,
        encrypted: sealed.encrypted,
        type: r.type,
        clientMessageId: r.id,
      }, timeout, upload).then((ack) => {
        r.progress = undefined;
        r.state = 'sent';
        r.timestamp = ack.timestamp ?? r.timestamp;
        r.plaintext = null;
        r.sealed = null;
        this.outbox = this.outbox.filter((x) => x !== r);
        this.emit('message', { record: r });
      }, (err) => {
        r.progress = undefined;
        if (err.code === 'CONNECTION') {
          r.state = 'queued'; // sent again (same id: the server drops a duplicate) after the rejoin
        } else {
          r.state = 'failed';
          r.failure = err.code;
          this.emit('error', errorInfo(err));
        }
        this.emit('message', { record: r });
      });
    }
  }

  /** A file on its way out: its share that has left this page, in whole percent. */
  uploadProgress(r, fraction) {
    const percent = Math.floor(fraction * 100);
    if (r.state !== 'sending' || percent === r.progress) return;
    r.progress = percent;
    this.emit('progress', { record: r });
  }

  /** Encrypts a queued record for whoever it can go to now; null while it must wait. */
  async seal(r) {
    if (this.mode === 'group') {
      const gen = this.currentGen;
      const entry = this.groupKeys.get(gen);
      if (!entry) {
        r.waitingFor = 'room-key';
        return null;
      }
      if (r.sealed?.gen !== gen) {
        const encrypted = await C.encryptMessage(entry.key, r.plaintext, {
          sessionId: this.sessionId, from: this.me, to: 'all', id: r.id, type: r.type, gen,
        }, { chunked: r.type !== 'text' });
        r.sealed = { gen, to: 'all', encrypted };
      }
      r.to = 'all';
      r.gen = gen;
      return r.sealed;
    }
    const peer = this.presentPeers()[0];
    if (!peer) {
      r.waitingFor = 'peer';
      return null;
    }
    if (r.sealed?.to !== peer.userId || r.sealed?.publicKey !== peer.publicKey) {
      const key = await this.pairKey(peer.userId, 'msg');
      const encrypted = await C.encryptMessage(key, r.plaintext, {
        sessionId: this.sessionId, from: this.me, to: peer.userId, id: r.id, type: r.type, gen: 0,
      }, { chunked: r.type !== 'text' });
      r.sealed = { gen: 0, to: peer.userId, publicKey: peer.publicKey, encrypted };
    }
    r.to = peer.userId;
    r.gen = 0;
    return r.sealed;
  }

  // ---- typing ----

  typingInput() {
    if (!this.joined) return;
    const now = Date.now();
    if (now - this.lastTypingEmit > TYPING_REPEAT_MS) {
      this.lastTypingEmit = now;
      this.request('typing', { sessionId: this.sessionId }).catch(() => {});
    }
    clearTimeout(this.typingTimer);
    this.typingTimer = setTimeout(() => this.stopTyping(), TYPING_IDLE_MS);
  }

  stopTyping() {
    clearTimeout(this.typingTimer);
    if (!this.lastTypingEmit) return;
    this.lastTypingEmit = 0;
    if (this.joined) this.request('stopped-typing', { sessionId: this.sessionId }).catch(() => {});
  }

  emitTyping() {
    const now = Date.now();
    for (const [u, t] of this.typing) if (t.until <= now) this.typing.delete(u);
    this.emit('typing', { names: [...this.typing.values()].map((t) => t.name) });
  }

  // ---- files ----

  /**
   * Tells the sender their file was downloaded. The `fileName` sent is the message id: the
   * real name is encrypted and the server must not learn it; the sender maps it back.
   */
  fileDownloaded(record) {
    if (record.mine || record.notified || !this.joined) return;
    record.notified = true;
    this.request('file-downloaded', {
      sessionId: this.sessionId,
      senderId: record.from,
      fileName: record.id,
      timestamp: Date.now(),
    }).catch(() => {
      record.notified = false;
    });
  }

  /**
   * Tells a message's sender that it reached this page (`message-delivered`), batched:
   * what arrives together goes in one event per sender.
   */
  acknowledge(record) {
    this.toAcknowledge ??= new Map();
    const ids = this.toAcknowledge.get(record.from) ?? [];
    ids.push(record.id);
    this.toAcknowledge.set(record.from, ids);
    if (this.ackTimer) return;
    this.ackTimer = setTimeout(() => {
      this.ackTimer = null;
      const batches = this.toAcknowledge;
      this.toAcknowledge = new Map();
      for (const [senderId, all] of batches) {
        for (let i = 0; i < all.length; i += 64) {
          this.socket?.emit('message-delivered', { sessionId: this.sessionId, senderId, ids: all.slice(i, i + 64) });
        }
      }
    }, 250);
  }

  onDelivered(n) {
    if (!n?.userId || !Array.isArray(n.ids)) return;
    for (const id of n.ids) {
      // A file's chunks are acked one by one: the last one's receipt marks the file.
      const record = this.messages.get(`${this.me}/${id}`) ?? this.files.byLastChunk(id);
      if (!record) continue;
      record.deliveredTo ??= new Set();
      if (!record.deliveredTo.has(n.userId)) {
        record.deliveredTo.add(n.userId);
        this.emit('message', { record });
        this.receiptsChanged = true;
      }
    }
    // Kept, so that a reload (or another tab) still shows what the others' pages said.
    if (this.receiptsChanged) {
      this.receiptsChanged = false;
      this.emit('persist');
    }
  }

  /** Receipts for a snapshot: the saved ones, updated by this page's, the newest kept. */
  receipts() {
    const all = new Map(this.savedReceipts);
    for (const r of this.messages.values()) {
      if (!r.mine || r.control || !r.deliveredTo?.size) continue;
      all.delete(r.id);
      all.set(r.id, [...r.deliveredTo]);
    }
    return Object.fromEntries([...all].slice(-RECEIPTS_KEPT));
  }

  onDownloaded(n) {
    if (!n?.userId) return;
    const record = this.messages.get(`${this.me}/${n.fileName}`);
    const who = this.labelOf(n.userId);
    if (record) {
      if (!record.downloadedBy.includes(who)) record.downloadedBy.push(who);
      this.emit('message', { record });
    }
    const what = record?.content?.name ?? 'your file';
    this.notice(`${who} downloaded ${what}`, 'download', n.timestamp);
  }

  // ---- persistence ----

  /** What a reload of this tab needs to come back as the same member (sessionStorage). */
  snapshot() {
    const groupKeys = {};
    for (const [gen, { raw }] of this.groupKeys) groupKeys[gen] = C.toBase64Url(raw);
    return {
      v: 1,
      sessionId: this.sessionId,
      mode: this.mode,
      isCreator: this.isCreator,
      authKey: this.cfg.authKey ?? null,
      credential: this.cfg.credential ?? null,
      roomSecret: C.toBase64Url(this.roomSecret),
      userId: this.me,
      displayName: this.displayName,
      identity: this.cfg.savedIdentity,
      groupKeys,
      distributedTo: [...this.distributedTo],
      shareLink: this.cfg.shareLink ?? null,
      linkAt: this.cfg.linkAt ?? 0,
      resumeToken: this.resumeToken,
      delivered: this.receipts(),
      creatorId: this.creatorId,
      timer: this.disappear.saved(),
      known: this.known(),
    };
  }

  /**
   * Another tab of this member (same browser) saved its snapshot: a link it reset there is
   * taken over here, so that this tab neither offers the old link nor saves it back.
   */
  adopt(saved) {
    if (!saved || saved.sessionId !== this.sessionId || saved.userId !== this.me) return;
    if (!(saved.linkAt > (this.cfg.linkAt ?? 0))) return;
    this.cfg.linkAt = saved.linkAt;
    this.cfg.authKey = saved.authKey ?? this.cfg.authKey;
    this.cfg.shareLink = saved.shareLink;
    if (saved.roomSecret && saved.roomSecret !== C.toBase64Url(this.roomSecret)) {
      this.roomSecret = C.fromBase64Url(saved.roomSecret);
      this.selfKeys = new Map();
      for (const m of this.members.values()) m.keys = new Map();
    }
    this.emit('link');
  }
}

/**
 * A text-type plaintext (a text or a kinds.js control message), padded with zero bytes after
 * its header (which readers skip) to a multiple of PAD_BYTES.
 */
function padded(meta) {
  const head = new TextEncoder().encode(JSON.stringify(meta)).length + 4;
  const pad = (PAD_BYTES - (head % PAD_BYTES)) % PAD_BYTES;
  return C.encodeContent(meta, new Uint8Array(pad));
}

/** A reply's quote of `r`: the first line of its text (as edited), or its file's name. */
function quoteText(r, notes) {
  if (r.type !== 'text') return r.content?.name ?? '';
  return notes.editOf(r.key) ?? r.content?.text ?? '';
}

/** What the page shows of a decrypted message. */
function contentFrom({ meta, body }, type) {
  if (type === 'text') return readKind(meta);
  const name = String(meta.name ?? 'file').slice(0, 255);
  const image = type === 'image' && IMAGE_TYPES.includes(meta.mime);
  // Anything but a known raster image is downloaded as opaque bytes: a blob URL shares this
  // page's origin, so an HTML file must never be rendered from it.
  const blob = new Blob([body], { type: image ? meta.mime : 'application/octet-stream' });
  return { name, mime: String(meta.mime ?? ''), size: body.length, image, media: image ? 'image' : null, url: URL.createObjectURL(blob), complete: true };
}
