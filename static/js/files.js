// blindrelay web client: files in encrypted chunks, sent and put back together. No DOM.
//
// A file travels as a run of ordinary `send-message`s of type "file", one per chunk of at
// most CHUNK_BYTES of the file, each encrypted on its own like any message (same keys,
// same additional data, binary attachments). Inside the encryption each chunk carries
//   {kind: "chunk", file, i, n, name, mime, size, digest?}
// then its bytes: `file` a random id (the id of the file's message on the page: replies,
// reactions, receipts and deletions name it), `i` of `n`, and in the last chunk `digest`,
// the SHA-256 (base64url) of the SHA-256s of every chunk in order, which the receiver checks
// before it shows the file. The server sees opaque messages of one size, one after another.
//
// The sender reads the file a chunk at a time (`file.slice`), encrypts it and sends it once
// the server acked the one before (WINDOW): the page never holds more than a chunk or two
// of ciphertext, the progress is what the server has plus what has left the page of the
// chunk on its way, and when the connection drops, the chunk not acked is sent again (same
// id: the server drops a duplicate) once the page has rejoined: nothing starts over. Cancel stops and tells the others (`{kind: "file-cancel",
// file}`, a text-type message like kinds.js's), whose pages drop what they got.
//
// The receiver keeps each chunk as a Blob part until it has all of them. The server keeps
// a room's history within its bounds (32 MiB and 500 messages by default), so a page that
// replays it (a later joiner, another tab, a reload) may find only the last chunks of a
// large file: it says so and drops them.

import * as C from './crypto.js';

/** Largest file this client sends. */
export const MAX_FILE_BYTES = 100 * 1024 * 1024;
/** Plaintext bytes of one chunk (the last may be shorter). */
export const CHUNK_BYTES = 512 * 1024;
/**
 * Chunks sent and not yet acked, at most: one, which costs a round trip per 512 KiB. With
 * three, Chromium's network throttling let the chunks through at two to three times the
 * emulated uplink (a 3 MB file over 800 kbit/s in 14 s instead of 30), so what the page
 * showed and what tests measured were not what a real link does.
 */
export const WINDOW = 1;
/**
 * And the next chunk is handed to the WebSocket only once at most this many bytes wait in
 * its send buffer (whatever put them there), so that chunks leave one after the other.
 */
const LOW_WATER_BYTES = 64 * 1024;
/** How often a full send buffer is looked at again. */
const DRAIN_POLL_MS = 40;
/** Files larger than this are not kept whole for later joiners (the default history bound is 32 MiB). */
export const KEPT_BYTES = 24 * 1024 * 1024;
const MAX_CHUNKS = Math.ceil(MAX_FILE_BYTES / CHUNK_BYTES);
/** After a file's last chunk, how long chunks before it may still be decrypting. */
const PARTIAL_GRACE_MS = 2_000;
/** A chunk's ack: its bytes have left, but the server still reads and stores them. */
const ACK_TIMEOUT_MS = 30_000;
/** Refusals after which a chunk is sent again (after a wait), this many times at most. */
const RETRYABLE = new Set(['TIMEOUT', 'RATE_LIMITED']);
const MAX_RETRIES = 5;

export const IMAGE_TYPES = ['image/png', 'image/jpeg', 'image/gif', 'image/webp', 'image/avif', 'image/bmp'];
const VIDEO_TYPES = ['video/mp4', 'video/webm', 'video/ogg', 'video/quicktime'];
const AUDIO_TYPES = ['audio/mpeg', 'audio/mp3', 'audio/ogg', 'audio/webm', 'audio/wav', 'audio/x-wav', 'audio/wave',
  'audio/mp4', 'audio/aac', 'audio/flac', 'audio/x-m4a'];
const ID_RE = /^[A-Za-z0-9_.-]{1,128}$/;

/**
 * How the page may show a file of type `mime`: 'image', 'video' or 'audio' (rendered from
 * a blob URL of that type), or null (downloaded as opaque bytes: a blob URL shares this
 * page's origin, so an HTML or SVG file must never be rendered from it; PDF viewers need
 * an <object> or <iframe>, which the page's policy does not allow).
 */
export function mediaOf(mime) {
  const base = String(mime ?? '').split(';')[0].trim().toLowerCase();
  if (IMAGE_TYPES.includes(base)) return 'image';
  const probe = globalThis.document?.createElement?.(base.startsWith('video/') ? 'video' : 'audio');
  const playable = (t) => Boolean(probe?.canPlayType?.(mime));
  if (VIDEO_TYPES.includes(base) && playable()) return 'video';
  if (AUDIO_TYPES.includes(base) && playable()) return 'audio';
  return null;
}

/** A blob URL for a file's bytes: of its own type when the page shows it, else opaque. */
function urlFor(blobOrParts, mime) {
  const media = mediaOf(mime);
  const type = media ? mime : 'application/octet-stream';
  const blob = Array.isArray(blobOrParts) ? new Blob(blobOrParts, { type }) : blobOrParts.slice(0, blobOrParts.size, type);
  return URL.createObjectURL(blob);
}

async function sha256(bytes) {
  return new Uint8Array(await crypto.subtle.digest('SHA-256', bytes));
}

/** The file's digest: SHA-256 of its chunks' SHA-256s, in order. */
async function digestOf(hashes) {
  const all = new Uint8Array(hashes.length * 32);
  hashes.forEach((h, i) => all.set(h, i * 32));
  return C.toBase64Url(await sha256(all));
}

const wait = (ms) => new Promise((r) => setTimeout(r, ms));

export class FileTransfers {
  /** @param {import('./client.js').RoomClient} client */
  constructor(client) {
    this.c = client;
    /** My files being sent, by file id. */
    this.outgoing = new Map();
    /** Chunk message ids sent from this page (their `message-sent` echoes are not read again). */
    this.ownChunks = new Set();
    /** The last chunk's message id -> the file's record (its delivery receipts). */
    this.lastChunks = new Map();
    /** Files arriving (or arrived), by "<from>/<file id>". */
    this.incoming = new Map();
    this.waiters = [];
    for (const type of ['state', 'members', 'keygen']) client.addEventListener(type, () => this.wake());
  }

  wake() {
    const w = this.waiters;
    this.waiters = [];
    for (const resolve of w) resolve();
  }

  /** Resolves at the next change that may let a transfer go on (a join, keys, an ack). */
  changed() {
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  isOwnChunk(id) {
    return this.ownChunks.has(id);
  }

  /** The file record whose last chunk has message id `id` (for `message-delivered`). */
  byLastChunk(id) {
    return this.lastChunks.get(id) ?? null;
  }

  // ---- sending ----

  /** Starts sending `file`; returns its record (shown at once, with its progress). */
  send(file) {
    const c = this.c;
    const fileId = `m-${C.randomId(12)}`;
    const n = Math.max(1, Math.ceil(file.size / CHUNK_BYTES));
    const mime = file.type || 'application/octet-stream';
    const media = mediaOf(mime);
    const record = {
      key: `${c.me}/${fileId}`,
      id: fileId,
      from: c.me,
      fromName: c.displayName,
      to: null,
      type: media === 'image' ? 'image' : 'file',
      timestamp: Date.now(),
      group: c.mode === 'group',
      mine: true,
      state: 'sending',
      progress: 0,
      gen: undefined,
      content: {
        name: file.name || 'file', mime, size: file.size, image: media === 'image', media, url: urlFor(file, mime),
        complete: true, tooLargeToKeep: file.size > KEPT_BYTES,
      },
      problem: null,
      downloadedBy: [],
      deliveredTo: new Set(),
      transfer: true,
    };
    const t = {
      fileId, file, n, record, mime,
      ids: Array.from({ length: n }, () => `m-${C.randomId(12)}`),
      hashes: [], acked: new Set(), inflight: new Map(), cancelled: false, retries: 0,
    };
    for (const id of t.ids) this.ownChunks.add(id);
    this.lastChunks.set(t.ids[n - 1], record);
    this.outgoing.set(fileId, t);
    c.messages.set(record.key, record);
    c.emit('message', { record });
    this.run(t);
    return record;
  }

  async run(t) {
    const c = this.c;
    const r = t.record;
    t.running = true;
    try {
      while (!t.cancelled && !t.failed && t.acked.size < t.n) {
        if (!c.joined || c.closed) {
          if (c.closed) return;
          await this.changed();
          continue;
        }
        let i = 0;
        while (i < t.n && (t.acked.has(i) || t.inflight.has(i))) i += 1;
        if (i >= t.n || t.inflight.size >= WINDOW) {
          await this.changed();
          continue;
        }
        if (!this.drained()) {
          await Promise.race([this.changed(), wait(DRAIN_POLL_MS)]);
          continue;
        }
        const sealed = await this.sealChunk(t, i);
        if (t.cancelled) return;
        if (!sealed) {
          if (r.state !== 'waiting') {
            r.state = 'waiting';
            c.emit('message', { record: r });
          }
          await this.changed();
          continue;
        }
        if (!c.joined) continue;
        if (r.state !== 'sending') {
          r.state = 'sending';
          c.emit('message', { record: r });
        }
        this.emitChunk(t, i, sealed);
      }
      if (t.acked.size === t.n && !t.cancelled) {
        r.state = 'sent';
        r.progress = undefined;
        this.outgoing.delete(t.fileId);
        c.emit('message', { record: r });
      }
    } catch (err) {
      this.fail(t, err.code ?? 'UNKNOWN', err);
    } finally {
      t.running = false;
    }
  }

  /** Whether the socket's send buffer is (nearly) empty; true when it cannot be measured (polling). */
  drained() {
    const ws = this.c.uplink.ws();
    if (!ws) return true;
    const engine = this.c.socket?.io?.engine;
    return !engine?.writeBuffer?.length && ws.bufferedAmount <= LOW_WATER_BYTES;
  }

  emitChunk(t, i, sealed) {
    const c = this.c;
    const r = t.record;
    t.inflight.set(i, 0);
    c.request('send-message', {
      sessionId: c.sessionId,
      to: sealed.to,
      encrypted: sealed.encrypted,
      type: 'file',
      clientMessageId: t.ids[i],
    }, ACK_TIMEOUT_MS, (fraction) => {
      if (!t.inflight.has(i)) return;
      t.inflight.set(i, fraction);
      this.progress(t);
    }).then((ack) => {
      t.inflight.delete(i);
      t.acked.add(i);
      t.retries = 0;
      if (i === 0) r.timestamp = ack.timestamp ?? r.timestamp;
      r.to = sealed.to;
      this.progress(t);
      this.wake();
    }, async (err) => {
      t.inflight.delete(i);
      if (err.code !== 'CONNECTION' && !t.cancelled) {
        // A stalled link or a busy server: the same chunk again after a while, a few times.
        if (RETRYABLE.has(err.code) && t.retries < MAX_RETRIES) {
          t.retries += 1;
          await wait(Math.max(1_000, err.retryAfterMs ?? 0));
        } else {
          this.fail(t, err.code, err);
        }
      }
      // A dropped connection: the chunks not acked go again, from the first, after the rejoin.
      this.progress(t);
      this.wake();
    });
  }

  fail(t, code, err) {
    if (t.failed || t.cancelled) return;
    t.failed = true;
    t.record.state = 'failed';
    t.record.failure = code;
    t.record.progress = undefined;
    this.c.emit('message', { record: t.record });
    if (err) this.c.emit('error', { code, message: err.message });
  }

  /** Sends a failed file again, from its first chunk the server has not acked. */
  retry(record) {
    const t = this.outgoing.get(record.id);
    if (!t || !t.failed) return;
    t.failed = false;
    t.retries = 0;
    record.state = 'sending';
    record.failure = undefined;
    this.c.emit('message', { record });
    const again = () => (t.running ? setTimeout(again, 50) : this.run(t));
    again();
  }

  /** The share of the file that has left this page, in whole percent (100 once all is acked). */
  progress(t) {
    const r = t.record;
    const size = Math.max(1, t.file.size);
    let bytes = 0;
    for (const i of t.acked) bytes += this.chunkSize(t, i);
    for (const [i, f] of t.inflight) bytes += f * this.chunkSize(t, i);
    const percent = t.acked.size === t.n ? 100 : Math.min(99, Math.floor((bytes / size) * 100));
    if (percent === r.progress || r.state !== 'sending') return;
    r.progress = percent;
    this.c.emit('progress', { record: r });
  }

  chunkSize(t, i) {
    return Math.min(CHUNK_BYTES, t.file.size - i * CHUNK_BYTES);
  }

  /** Chunk `i` read from the file and encrypted for whoever it can go to now (null: wait). */
  async sealChunk(t, i) {
    const start = i * CHUNK_BYTES;
    const body = new Uint8Array(await t.file.slice(start, start + CHUNK_BYTES).arrayBuffer());
    t.hashes[i] ??= await sha256(body);
    const r = t.record;
    const meta = { kind: 'chunk', file: t.fileId, i, n: t.n, name: r.content.name, mime: t.mime, size: t.file.size };
    if (i === t.n - 1) meta.digest = await digestOf(t.hashes);
    const rec = { id: t.ids[i], type: 'file', plaintext: C.encodeContent(meta, body) };
    const sealed = await this.c.seal(rec);
    if (!sealed) r.waitingFor = rec.waitingFor;
    else r.gen = rec.gen;
    return sealed;
  }

  /** Stops sending my file; the others drop what they got of it. */
  cancel(record) {
    const t = this.outgoing.get(record.id);
    if (!t || t.cancelled || record.state === 'sent') return;
    t.cancelled = true;
    this.outgoing.delete(t.fileId);
    const started = t.acked.size > 0 || t.inflight.size > 0;
    record.state = 'cancelled';
    record.progress = undefined;
    record.content.cancelled = true;
    record.content.complete = false;
    URL.revokeObjectURL(record.content.url);
    record.content.url = null;
    this.c.emit('message', { record });
    this.wake();
    if (started) this.c.sendControl({ kind: 'file-cancel', file: t.fileId });
  }

  // ---- receiving ----

  /**
   * A decrypted message that belongs to a file (a chunk or a cancel): handled here, and
   * marked as not shown itself. Returns false for any other message.
   */
  take(r, { meta, body }) {
    if (r.type === 'text' && meta?.kind === 'file-cancel' && ID_RE.test(meta.file ?? '')) {
      r.control = true;
      r.content = { kind: 'file-cancel' };
      if (!(r.mine && this.outgoing.has(meta.file))) this.cancelled(r, meta.file);
      return true;
    }
    if (meta?.kind !== 'chunk') return false;
    r.control = true;
    r.content = { kind: 'chunk' };
    const n = meta.n;
    const i = meta.i;
    const size = meta.size;
    if (!ID_RE.test(meta.file ?? '') || !Number.isInteger(n) || n < 1 || n > MAX_CHUNKS || !Number.isInteger(i)
      || i < 0 || i >= n || !Number.isInteger(size) || size < 0 || size > MAX_FILE_BYTES
      || body.length > CHUNK_BYTES || n !== Math.max(1, Math.ceil(size / CHUNK_BYTES))) return true;
    if (r.mine && this.outgoing.has(meta.file)) return true;
    const f = this.arriving(r, meta);
    if (f.done || f.parts[i]) return true;
    f.parts[i] = new Blob([body]);
    f.got += 1;
    f.bytes += body.length;
    if (typeof meta.digest === 'string') f.digest = meta.digest;
    if (i === n - 1) f.sawLast = true;
    if (r.timestamp < f.record.timestamp) f.record.timestamp = r.timestamp;
    f.chain = f.chain.then(async () => {
      f.hashes[i] = await sha256(body);
    }).then(() => this.settle(f)).catch(() => {});
    return true;
  }

  /** The file `meta` belongs to, made (and shown) at its first chunk. */
  arriving(r, meta) {
    const key = `${r.from}/${meta.file}`;
    let f = this.incoming.get(key);
    if (f?.record) return f;
    const media = mediaOf(meta.mime);
    const record = {
      key,
      id: meta.file,
      from: r.from,
      fromName: r.fromName,
      to: r.to,
      group: r.group,
      type: media === 'image' ? 'image' : 'file',
      timestamp: r.timestamp,
      mine: r.mine,
      state: r.mine ? 'sent' : 'received',
      gen: r.gen,
      content: {
        name: String(meta.name ?? 'file').slice(0, 255), mime: String(meta.mime ?? '').slice(0, 255),
        size: meta.size, image: false, media, url: null, complete: false, received: 0,
        tooLargeToKeep: meta.size > KEPT_BYTES,
      },
      problem: null,
      downloadedBy: [],
      deliveredTo: new Set(r.mine ? this.c.savedReceipts.get(meta.file) ?? [] : []),
      incoming: true,
    };
    const cancelled = f?.cancelled;
    f = { key, record, n: meta.n, parts: [], hashes: [], got: 0, bytes: 0, digest: null, chain: Promise.resolve(), done: false };
    this.incoming.set(key, f);
    this.c.messages.set(key, record);
    if (cancelled) this.drop(f, 'cancelled');
    this.c.emit('message', { record });
    if (r.live && !r.mine) {
      record.live = true;
      this.c.tellIncoming(record);
    }
    return f;
  }

  /** After a chunk: the progress, or the whole file checked and shown, or what is missing. */
  async settle(f) {
    if (f.done) return;
    const r = f.record;
    if (f.got === f.n) {
      const whole = f.hashes.length === f.n && f.digest && (await digestOf(f.hashes)) === f.digest;
      if (!whole) {
        this.drop(f, 'damaged');
        return;
      }
      f.done = true;
      r.content.url = urlFor(f.parts, r.content.mime);
      r.content.image = r.content.media === 'image';
      r.content.complete = true;
      r.content.received = r.content.size;
      f.parts = null;
      f.hashes = null;
      this.c.emit('message', { record: r });
      return;
    }
    if (f.sawLast && !f.partialTimer) {
      // The last chunk is here and some before it are not: the server's history no longer
      // held them (or this page could not read them), unless they are still being
      // decrypted (a history's messages finish decrypting in any order). A moment later,
      // what is still missing will not come.
      f.partialTimer = setTimeout(() => {
        if (!f.done && f.got < f.n) this.drop(f, 'partial');
      }, PARTIAL_GRACE_MS);
    }
    const percent = Math.floor((f.bytes / Math.max(1, r.content.size)) * 100);
    if (percent !== r.content.received) {
      r.content.received = percent;
      this.c.emit('message', { record: r });
    }
  }

  /** Forgets what arrived of a file, saying why: cancelled, damaged or partial. */
  drop(f, why) {
    if (f.done) return;
    f.done = true;
    const r = f.record;
    r.content[why] = true;
    if (why === 'partial') r.content.parts = { got: f.got, n: f.n };
    f.parts = null;
    f.hashes = null;
    this.c.emit('message', { record: r });
  }

  /** The sender of file `fileId` cancelled it. */
  cancelled(r, fileId) {
    const key = `${r.from}/${fileId}`;
    const f = this.incoming.get(key);
    if (!f) {
      this.incoming.set(key, { key, cancelled: true });
      return;
    }
    if (f.record) this.drop(f, 'cancelled');
  }
}
