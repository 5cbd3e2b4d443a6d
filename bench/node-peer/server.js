'use strict';
// The Node.js peer of blindrelay's benchmark (scripts/bench.sh, server `node`).
//
// socket.io 4 relaying the events the generator (bench/load: blindrelay-bench) sends, with
// the room semantics of the End2End Chat server that blindrelay replaces, as described in
// our own words in the project's reference notes. Written for the benchmark: it is not the
// upstream server's code. What it does on each event:
//
// - join-session {sessionId, userId, displayName, publicKey, isCreator, authKey}: the
//   credential is `authKey`, else what follows the first `:` of sessionId. A creator
//   creates the session if absent (mode `chatMode`, default group) and sets its key; a
//   different key is INVALID_KEY. Others need the session (SESSION_NOT_FOUND), and the
//   key (INVALID_KEY; password rooms compare the password part, INVALID_PASSWORD);
//   private and password rooms take 2 members (SESSION_FULL). Then the socket joins the
//   room, a new member is announced to the others with `user-joined`, its public key is
//   stored, it gets `messages-history` (messages to it, to all, or from it) and
//   `session-metadata`, and the whole room, joiner included, gets `public-keys-updated`.
// - send-message {sessionId, to, encrypted, type, clientMessageId, originalContent}: the
//   message {id, from, to, encrypted, timestamp, type, senderDisplayName} is stored once
//   per id and relayed as `new-message` to the room but the sender (`to` absent or
//   `all`) or to the member `to`; the sender gets `message-sent` once per id.
// - leave-session {sessionId}, and a disconnect: the member and its key are removed, the
//   others get `user-left` and `public-keys-updated`; an empty session is deleted.
//
// Where it differs from that server, for a fair comparison with blindrelay:
// - Acks. That server sends none. This one answers an ack when the client asks for one
//   (join-session {ok, sessionId, userId, chatMode, isCreator}, send-message {ok, id,
//   timestamp}, leave-session {ok}; errors {ok: false, error, message}), as blindrelay
//   does, so that the generator measures it the same way (joins timed by their acks,
//   groupfill). A client that asks for no ack gets exactly the events above.
// - History is bounded to HISTORY_MAX_MESSAGES (default 500, blindrelay's default); that
//   server's is unbounded, which under a saturating load would measure the garbage
//   collector, not the relay.
// - `from` is the userId this socket joined with (that server trusts the payload's
//   `from`; the generator sends none). originalContent is never stored, only echoed in
//   message-sent, as blindrelay does.
// - Heartbeat: pings every 10 s with a 10 s timeout, blindrelay's defaults (that server:
//   25 s / 60 s), so that both do the same idle work.
// - Only what the benchmark uses: no HTTP API but /health, no group keys, typing or
//   download notices, no expiry timer (empty sessions go at once, as there).
//
//   node server.js [PORT]      (PORT default 3303; HOST default 127.0.0.1)

const fs = require('node:fs');
const http = require('node:http');
const path = require('node:path');
const { Server } = require('socket.io');

const port = Number(process.argv[2] || process.env.PORT || 3303);
const host = process.env.HOST || '127.0.0.1';
const historyMax = Number(process.env.HISTORY_MAX_MESSAGES || 500);
const pingInterval = Number(process.env.PING_INTERVAL_MS || 10000);
const pingTimeout = Number(process.env.PING_TIMEOUT_MS || 10000);

/** id -> {key, mode, members: Map userId -> {socketId, displayName, joinedAt},
 *  keys: Map userId -> {userId, publicKey, displayName, joinedAt}, history, ids} */
const sessions = new Map();
let messageSeq = 0;

const httpServer = http.createServer((req, res) => {
  if (req.method === 'GET' && req.url === '/health') {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ status: 'ok', sessions: sessions.size, timestamp: Date.now() }));
    return;
  }
  res.writeHead(404).end();
});

const io = new Server(httpServer, {
  maxHttpBufferSize: 20 * 1024 * 1024,
  pingInterval,
  pingTimeout,
  serveClient: false,
  cors: { origin: process.env.CLIENT_URL || 'http://localhost:5173', credentials: true },
});

/** `<id>`, `<id>:<key>` or `<id>:password:<pw>` */
function parseSessionId(raw) {
  const at = raw.indexOf(':');
  if (at < 0) return { id: raw, credential: undefined, password: undefined };
  const rest = raw.slice(at + 1);
  const password = rest.startsWith('password:') ? rest.slice('password:'.length) : undefined;
  return { id: raw.slice(0, at), credential: rest || undefined, password };
}

function isObject(p) {
  return p !== null && typeof p === 'object' && !Array.isArray(p);
}

function reply(ack, body) {
  if (typeof ack === 'function') ack(body);
}

function refuse(socket, ack, error, message) {
  socket.emit('session-error', { error, message });
  reply(ack, { ok: false, error, message });
}

function keyList(session) {
  return Array.from(session.keys.values());
}

function join(socket, p, ack) {
  if (!isObject(p) || typeof p.sessionId !== 'string' || typeof p.userId !== 'string') {
    return refuse(socket, ack, 'BAD_REQUEST', 'sessionId and userId are required');
  }
  const { id, credential, password } = parseSessionId(p.sessionId);
  const key = typeof p.authKey === 'string' && p.authKey !== '' ? p.authKey : credential;
  const userId = p.userId;
  let session = sessions.get(id);
  if (p.isCreator === true) {
    if (!session) {
      session = {
        key: undefined,
        mode: typeof p.chatMode === 'string' ? p.chatMode : 'group',
        members: new Map(),
        keys: new Map(),
        history: [],
        ids: new Set(),
      };
      sessions.set(id, session);
    } else if (session.key !== undefined && session.key !== key) {
      return refuse(socket, ack, 'INVALID_KEY', 'Invalid session key');
    }
    if (session.key === undefined) session.key = key;
  } else {
    if (!session) return refuse(socket, ack, 'SESSION_NOT_FOUND', 'Session not found');
    if (session.mode === 'password') {
      const stored = session.key === undefined ? '' : session.key;
      if (password === undefined || password !== stored.slice(stored.indexOf(':') + 1)) {
        return refuse(socket, ack, 'INVALID_PASSWORD', 'Invalid password');
      }
    } else if (session.key !== key) {
      return refuse(socket, ack, 'INVALID_KEY', 'Invalid session key');
    }
  }
  const known = session.members.has(userId);
  if ((session.mode === 'private' || session.mode === 'password') && !known && session.members.size >= 2) {
    return refuse(socket, ack, 'SESSION_FULL', 'Session is full');
  }

  socket.join(id);
  socket.data.joined.set(id, userId);
  const displayName = typeof p.displayName === 'string' ? p.displayName : '';
  const joinedAt = Date.now();
  session.members.set(userId, { socketId: socket.id, displayName, joinedAt });
  if (!known) {
    socket.to(id).emit('user-joined', { userId, displayName, timestamp: joinedAt });
  }
  if (p.publicKey !== undefined && p.publicKey !== null) {
    session.keys.set(userId, { userId, publicKey: p.publicKey, displayName, joinedAt });
  }
  socket.emit(
    'messages-history',
    session.history.filter((m) => !m.to || m.to === 'all' || m.to === userId || m.from === userId),
  );
  socket.emit('session-metadata', { chatMode: session.mode, encryptedSessionKey: null });
  io.to(id).emit('public-keys-updated', keyList(session));
  reply(ack, { ok: true, sessionId: id, userId, chatMode: session.mode, isCreator: p.isCreator === true });
}

function sendMessage(socket, p, ack) {
  if (!isObject(p) || typeof p.sessionId !== 'string') {
    return refuse(socket, ack, 'BAD_REQUEST', 'sessionId is required');
  }
  const { id: sid } = parseSessionId(p.sessionId);
  const session = sessions.get(sid);
  if (!session) return refuse(socket, ack, 'SESSION_NOT_FOUND', 'Session not found');
  const from = socket.data.joined.get(sid) ?? p.from;
  const member = session.members.get(from);
  const id = typeof p.clientMessageId === 'string' && p.clientMessageId !== ''
    ? p.clientMessageId
    : `msg-${Date.now()}-${++messageSeq}`;
  const message = {
    id,
    from,
    to: p.to,
    encrypted: p.encrypted,
    timestamp: Date.now(),
    type: typeof p.type === 'string' ? p.type : 'text',
    senderDisplayName: member ? member.displayName : undefined,
  };
  const first = !session.ids.has(id);
  if (first) {
    session.ids.add(id);
    session.history.push(message);
    if (session.history.length > historyMax) session.ids.delete(session.history.shift().id);
  }
  if (!p.to || p.to === 'all') {
    socket.to(sid).emit('new-message', message);
  } else {
    const to = session.members.get(p.to);
    if (to) io.to(to.socketId).emit('new-message', message);
  }
  if (first) {
    socket.emit(
      'message-sent',
      p.originalContent === undefined ? message : { ...message, originalContent: p.originalContent },
    );
  }
  reply(ack, { ok: true, id, timestamp: message.timestamp });
}

/** Removes this socket's membership of `sid`; tells the others if it was the member's socket. */
function depart(socket, sid) {
  const userId = socket.data.joined.get(sid);
  if (userId === undefined) return;
  socket.data.joined.delete(sid);
  socket.leave(sid);
  const session = sessions.get(sid);
  const member = session && session.members.get(userId);
  if (!member || member.socketId !== socket.id) return;
  session.members.delete(userId);
  session.keys.delete(userId);
  if (session.members.size === 0) {
    sessions.delete(sid);
    return;
  }
  io.to(sid).emit('user-left', { userId, timestamp: Date.now() });
  io.to(sid).emit('public-keys-updated', keyList(session));
}

io.on('connection', (socket) => {
  socket.data.joined = new Map();
  // Last argument is the ack callback when the client asked for one.
  const on = (event, handler) => {
    socket.on(event, (p, ack) => {
      try {
        handler(socket, p, ack);
      } catch (e) {
        refuse(socket, ack, 'INTERNAL', String(e && e.message));
      }
    });
  };
  on('join-session', join);
  on('send-message', sendMessage);
  on('leave-session', (s, p, ack) => {
    if (isObject(p) && typeof p.sessionId === 'string') depart(s, parseSessionId(p.sessionId).id);
    reply(ack, { ok: true });
  });
  socket.on('disconnect', () => {
    for (const sid of Array.from(socket.data.joined.keys())) depart(socket, sid);
  });
});

for (const signal of ['SIGTERM', 'SIGINT']) {
  process.on(signal, () => {
    io.close();
    process.exit(0);
  });
}

// The backlog blindrelay listens with (bursts of connects were dropped at 128); Node's
// HTTP server already sets TCP_NODELAY on accepted sockets.
httpServer.listen({ port, host, backlog: 4096 }, () => {
  const pkg = path.join(__dirname, 'node_modules', 'socket.io', 'package.json');
  const version = JSON.parse(fs.readFileSync(pkg, 'utf8')).version;
  console.error(`node peer (socket.io ${version}, node ${process.version}) listening on ${host}:${port}`);
});
