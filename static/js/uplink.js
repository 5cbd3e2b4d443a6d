// blindrelay web client: following what this page's own uplink is doing.
//
// A 3 MB file takes 30 s to leave over an 800 kbit/s uplink, and everything the page emits
// after it (a text, an ack, typing) waits behind it in the WebSocket's send buffer. So an
// ack timeout must not run on the clock from the emit: here it runs only once the event's
// bytes, and all the bytes ahead of them, have left the browser, and while they are still
// leaving it only fails if nothing moved for a whole timeout (a stalled link, not a slow
// one). The same count gives an upload's progress.
//
// The count: WebSocket.bufferedAmount is what the page handed to its socket and the
// browser has not sent yet. The socket's `send` is wrapped to count the bytes handed to
// it; the bytes of an event still to go are then those buffered minus those handed after
// it (the buffer is first in, first out). Over HTTP long-polling (no WebSocket) nothing
// can be measured, and the timeout runs from the emit as before.

const TICK_MS = 250;

/** Bytes handed to a WebSocket through its wrapped `send`, by socket. */
const handed = new WeakMap();

function countSends(ws) {
  if (handed.has(ws)) return;
  handed.set(ws, 0);
  const send = ws.send;
  // An own property shadows the prototype's send for this socket only.
  ws.send = function countedSend(data) {
    const before = ws.bufferedAmount;
    send.call(ws, data);
    handed.set(ws, handed.get(ws) + (ws.bufferedAmount - before));
  };
}

export class Uplink {
  /** @param {() => any} socket  the Socket.IO socket (read anew: it is replaced on rejoin) */
  constructor(socket) {
    this.socket = socket;
    this.trackers = new Set();
    this.timer = null;
  }

  /** The socket's WebSocket, counting from now on; null over polling or when closed. */
  ws() {
    const transport = this.socket()?.io?.engine?.transport;
    const ws = transport?.name === 'websocket' ? transport.ws : null;
    if (!ws || ws.readyState !== 1) return null;
    countSends(ws);
    return ws;
  }

  /**
   * Follows one event from its emit to its ack. Call `begin()` right before the emit and
   * `sent()` right after it. `onProgress(fraction)` hears how much of the event itself has
   * left (for uploads); `onTimeout()` is called once if no ack is due any more: `timeoutMs`
   * after its bytes left, or after `timeoutMs` in which none of them moved.
   */
  track({ timeoutMs, onProgress, onTimeout }) {
    const t = {
      timeoutMs, onProgress, onTimeout,
      ws: null, before: 0, end: null, size: 0, left: Infinity, movedAt: 0, drainedAt: 0,
    };
    const uplink = this;
    return {
      begin() {
        t.ws = uplink.ws();
        t.before = t.ws ? handed.get(t.ws) : 0;
      },
      sent() {
        const now = Date.now();
        t.movedAt = now;
        const engine = uplink.socket()?.io?.engine;
        const handedAll = () => {
          t.end = handed.get(t.ws);
          t.size = Math.max(1, t.end - t.before);
        };
        if (!t.ws) {
          t.drainedAt = now; // nothing to measure: the plain timeout
        } else if (!engine?.writeBuffer?.length) {
          handedAll();
        } else {
          // Engine.IO hands a packet's pieces (a binary event's attachments) and whatever
          // was queued with them to the socket in batches: the event is all there once
          // its queue is empty.
          const check = () => {
            if (engine.writeBuffer?.length) return;
            engine.off('drain', check);
            if (t.end === null) handedAll();
          };
          engine.on('drain', check);
        }
        uplink.trackers.add(t);
        uplink.timer ??= setInterval(() => uplink.tick(), TICK_MS);
      },
      stop() {
        uplink.trackers.delete(t);
        if (!uplink.trackers.size) {
          clearInterval(uplink.timer);
          uplink.timer = null;
        }
      },
    };
  }

  tick() {
    const now = Date.now();
    for (const t of [...this.trackers]) {
      if (!t.drainedAt) {
        const left = this.bytesLeft(t);
        if (left === null) {
          t.drainedAt = t.movedAt; // the socket changed: back to the plain timeout
        } else {
          if (left < t.left) t.movedAt = now;
          t.left = left;
          if (t.size) t.onProgress?.(1 - Math.min(left, t.size) / t.size);
          if (left === 0) t.drainedAt = now;
        }
      }
      const since = t.drainedAt || t.movedAt;
      if (now - since >= t.timeoutMs) {
        this.trackers.delete(t);
        t.onTimeout();
      }
    }
    if (!this.trackers.size) {
      clearInterval(this.timer);
      this.timer = null;
    }
  }

  /** Bytes of the event and of those ahead of it still in the buffer; null if unknown. */
  bytesLeft(t) {
    if (t.ws !== this.ws()) return null;
    if (t.end === null) return t.ws.bufferedAmount + 1; // still waiting for its flush
    const after = handed.get(t.ws) - t.end;
    return Math.max(0, t.ws.bufferedAmount - after);
  }
}
