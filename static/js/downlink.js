// blindrelay web client: a connection that is receiving is alive.
//
// socket.io-client closes its connection when no ping from the server reached it within
// the server's ping interval and timeout (20 s by default), and a ping queued behind a long
// download arrives too late: a history of file chunks (32 MiB at most, one packet) over a
// 2 Mbit/s downlink takes minutes, so the page would drop the connection, rejoin, ask for
// the whole history again, and never get in (docs/configuration.md, "Slow links"). Each
// chunk arrives as binary frames of its own, so while frames keep arriving the ping clock
// is started again, as the server does for its own side ("liveness is progress"). A
// connection that receives nothing is still dropped after the same 20 s.

/**
 * The Engine.IO socket's "start the ping clock again" method: its name is minified in the
 * vendored bundle, so it is found by what it does (clears its timer, and fails with
 * "ping timeout"). Null if this version has none: then nothing changes.
 */
function pingClockReset(engine) {
  for (let proto = Object.getPrototypeOf(engine); proto && proto !== Object.prototype; proto = Object.getPrototypeOf(proto)) {
    for (const name of Object.getOwnPropertyNames(proto)) {
      const f = Object.getOwnPropertyDescriptor(proto, name)?.value;
      if (typeof f !== 'function' || f.length !== 0 || name === 'constructor') continue;
      const body = String(f);
      if (body.includes('ping timeout') && body.includes('clearTimeoutFn') && body.includes('setTimeoutFn')) return f;
    }
  }
  return null;
}

/** Keeps `socket`'s connection while its frames keep arriving (each new transport too). */
export function aliveWhileReceiving(socket) {
  socket.io.on('open', () => {
    const engine = socket.io.engine;
    const reset = engine && pingClockReset(engine);
    if (!reset) return;
    engine.on('packet', (packet) => {
      if (packet?.type === 'message' && engine.readyState === 'open') reset.call(engine);
    });
  });
}
