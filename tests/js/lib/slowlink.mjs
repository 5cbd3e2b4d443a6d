// A TCP proxy that behaves like a slow network link: what the client sends reaches the
// server at `upBytesPerSec` (the client's uplink), what the server sends comes back at
// `downBytesPerSec` (unpaced by default). Bytes beyond the pace wait in the proxy, and
// beyond a small buffer the proxy stops reading, so the client's own TCP stack and
// socket library queue the rest, as behind a real slow uplink: a pong written after a
// 19 MB message reaches the server only after the message.
//
// A connection can also go silent: nothing more is forwarded either way and both sockets
// stay open (a phone that lost its signal), and the test can see when the server gives
// up on it (its side of the connection closes).

import net from 'node:net';
import { listenOnLoopback } from './legacy.mjs';

/** Bytes the proxy holds per direction before it stops reading the sender. */
const HIGH_WATER = 64 * 1024;
const TICK_MS = 20;

/** Moves bytes from `from` to `to` at `bytesPerSec` (Infinity: as they come). */
class Pipe {
  constructor(from, to, bytesPerSec) {
    this.from = from;
    this.to = to;
    this.rate = bytesPerSec;
    this.queue = [];
    this.queued = 0;
    this.forwarded = 0;
    this.silent = false;
    this.timer = null;
    from.on('data', (d) => this._in(d));
    from.on('end', () => { this.ended = true; this._maybeEnd(); });
  }

  _in(d) {
    if (this.silent) return;
    if (this.rate === Infinity) {
      this.forwarded += d.length;
      this.to.write(d);
      return;
    }
    this.queue.push(d);
    this.queued += d.length;
    if (this.queued > HIGH_WATER) this.from.pause();
    if (!this.timer) {
      this.credit = 0;
      this.timer = setInterval(() => this._tick(), TICK_MS);
    }
  }

  _tick() {
    if (this.silent) return;
    // At most one tick's worth of credit carries over: no bursts after a quiet spell.
    this.credit = Math.min(this.credit + (this.rate * TICK_MS) / 1000, (this.rate * TICK_MS) / 500);
    while (this.queue.length && this.credit >= 1) {
      const head = this.queue[0];
      const n = Math.min(head.length, Math.floor(this.credit));
      this.to.write(head.subarray(0, n));
      this.credit -= n;
      this.forwarded += n;
      this.queued -= n;
      if (n === head.length) this.queue.shift();
      else this.queue[0] = head.subarray(n);
    }
    if (this.queued <= HIGH_WATER / 2) this.from.resume();
    if (!this.queue.length) {
      clearInterval(this.timer);
      this.timer = null;
      this._maybeEnd();
    }
  }

  _maybeEnd() {
    if (this.ended && !this.queue.length && !this.silent) this.to.end();
  }

  stop() {
    clearInterval(this.timer);
    this.timer = null;
  }
}

export class SlowLink {
  constructor(targetPort, { upBytesPerSec = Infinity, downBytesPerSec = Infinity } = {}) {
    this.target = targetPort;
    this.up = upBytesPerSec;
    this.down = downBytesPerSec;
    this.conns = new Set();
    this.server = net.createServer((client) => this._accept(client));
  }

  async listen() {
    return listenOnLoopback(this);
  }

  _accept(client) {
    if (this.refusing) {
      client.destroy();
      return;
    }
    const upstream = net.connect(this.target, '127.0.0.1');
    const conn = {
      client,
      upstream,
      openedAt: Date.now(),
      serverClosedAt: null,
      up: new Pipe(client, upstream, this.up),
      down: new Pipe(upstream, client, this.down),
    };
    conn.serverClosed = new Promise((resolve) => {
      const closed = () => {
        if (conn.serverClosedAt === null) conn.serverClosedAt = Date.now();
        resolve(conn.serverClosedAt);
      };
      upstream.on('end', closed);
      upstream.on('close', closed);
    });
    this.conns.add(conn);
    for (const s of [client, upstream]) s.on('error', () => {});
    const gone = () => {
      if (conn.up.silent) return; // a silent link keeps the client's side open
      conn.up.stop();
      conn.down.stop();
      client.destroy();
      upstream.destroy();
    };
    client.on('close', gone);
    upstream.on('close', gone);
  }

  /** Connections that have not closed. */
  open() {
    return [...this.conns].filter((c) => !c.client.destroyed && !c.upstream.destroyed);
  }

  /** Nothing more is forwarded either way; both sockets stay open. */
  silence(conn) {
    conn.silencedAt = Date.now();
    conn.up.silent = true;
    conn.down.silent = true;
    conn.up.stop();
    conn.down.stop();
    // Keep reading (and dropping) so neither side is held up by the proxy's buffers.
    conn.client.resume();
    conn.upstream.resume();
  }

  /** New connections are refused from now on (the phone has no signal at all). */
  refuseNew() {
    this.refusing = true;
  }

  async close() {
    for (const c of this.conns) {
      c.up.stop();
      c.down.stop();
      c.client.destroy();
      c.upstream.destroy();
    }
    await new Promise((r) => this.server.close(() => r()));
  }
}

export async function slowLink(targetPort, opts) {
  return new SlowLink(targetPort, opts).listen();
}
