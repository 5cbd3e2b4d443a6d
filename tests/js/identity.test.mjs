// Identity: nobody takes over a member's userId (docs/protocol.md "Joining", rule 6).
// An impostor holds the room's link and the victim's userId (the End2End Chat app uses one
// userId everywhere); it comes from the same address and, through a trusted proxy's
// X-Forwarded-For, from another one. A member whose join asked for an ack was sent a
// resume token in it: from then on only that token admits a join as that member, present
// or not. The app asks for no ack, keeps no token, and gets back in once its old
// connection is gone.
//
// The heartbeat is 1 s + 1 s here, so a join naming a present member waits 4 s at most.

import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  startServer, cleanup, connect, createSession, expectOk, nextEvent, noEvent,
  collect, emitAck, uid, barrier, waitHealth, health,
} from './lib/server.mjs';

let srv;
before(async () => {
  srv = await startServer({
    PING_INTERVAL_SECS: '1', PING_TIMEOUT_SECS: '1', TRUSTED_PROXIES: '127.0.0.1',
  });
});
after(cleanup);

/** A refused join: the ack and the session-error, after up to the 4 s wait. */
async function refusedJoin(socket, payload, code) {
  const event = nextEvent(socket, 'session-error', 8000);
  const ack = await emitAck(socket, 'join-session', payload, 8000);
  assert.equal(ack.ok, false, JSON.stringify(ack));
  assert.equal(ack.error, code, JSON.stringify(ack));
  assert.deepEqual(await event, { error: code, message: ack.message });
  return ack;
}

/** A socket that presents itself as coming from `ip` (through the trusted proxy). */
const from = (ip) => connect(srv.url, { extraHeaders: { 'x-forwarded-for': ip } });

/**
 * Creator A and member B in a fresh room of `mode`. B joins with an ack (a client that
 * keeps its resume token), or with `app` as the End2End Chat app does: no ack, so no token.
 */
async function room(mode, { app = false } = {}) {
  const A = await createSession(srv.url, { mode, publicKey: 'pk-a', userId: uid('ana') }, assert);
  const B = await from('10.0.0.2');
  const bob = uid('bob');
  const seen = nextEvent(A.socket, 'user-joined');
  const payload = { sessionId: A.link, userId: bob, publicKey: 'pk-b', displayName: 'Bob' };
  if (app) {
    const inside = nextEvent(B, 'public-keys-updated', 3000, (keys) => keys.some((k) => k.userId === bob));
    B.emit('join-session', payload);
    await inside;
    await seen;
    return { A, B, bob, token: undefined };
  }
  const ack = await expectOk(B, 'join-session', payload, assert);
  await seen; // so that what A collects next is only what follows
  assert.equal(typeof ack.resumeToken, 'string', 'a join ack carries a resume token');
  assert.ok(ack.resumeToken.length >= 40);
  return { A, B, bob, token: ack.resumeToken };
}

/** Cuts B's transport without a word (no leave, no close frame), as a lost network does. */
function cut(socket) {
  const raw = socket.io.engine.transport.ws?._socket;
  assert.ok(raw, 'a WebSocket transport');
  raw.destroy();
}

for (const [mode, ip] of [['private', '10.0.0.66'], ['group', '127.0.0.1'], ['password', '10.0.0.2']]) {
  test(`${mode} room: an impostor naming a present member without a token is refused (address ${ip}); nothing changes for the others`, async () => {
    const { A, B, bob } = await room(mode, { app: true });
    const joined = collect(A.socket, 'user-joined');
    const keys = collect(A.socket, 'public-keys-updated');
    const X = await from(ip);
    const started = Date.now();
    const ack = await refusedJoin(X, {
      sessionId: A.link, userId: bob, publicKey: 'pk-evil', displayName: 'Bob',
    }, 'FORBIDDEN');
    assert.match(ack.message, /already in the room/);
    assert.ok(Date.now() - started < 6000, 'refused within the heartbeat wait');
    // It is no member: its events are refused, it receives nothing sent to Bob.
    const stolen = noEvent(X, 'new-message', 300);
    const toBob = nextEvent(B, 'new-message');
    await expectOk(A.socket, 'send-message', { sessionId: A.sessionId, to: bob, encrypted: 'for bob' }, assert);
    assert.equal((await toBob).encrypted, 'for bob');
    await stolen;
    const denied = await emitAck(X, 'send-message', { sessionId: A.sessionId, encrypted: 'as bob' });
    assert.equal(denied.error, 'NOT_IN_SESSION');
    // The others saw nothing and Bob keeps his key.
    assert.deepEqual(joined, []);
    assert.ok(keys.every((list) => list.find((k) => k.userId === bob)?.publicKey === 'pk-b'));
    const got = await expectOk(A.socket, 'get-public-keys', { sessionId: A.sessionId }, assert);
    assert.deepEqual(got.keys.map((k) => [k.userId, k.publicKey]), [[bob, 'pk-b']]);
  });
}

test('an impostor cannot take the creator\'s place either (isCreator, the right key)', async () => {
  const { A } = await room('group');
  const X = await from('10.0.0.77');
  const t0 = Date.now();
  await refusedJoin(X, {
    sessionId: A.sessionId, authKey: A.authKey, isCreator: true, userId: A.userId, publicKey: 'pk-evil',
  }, 'RESUME_TOKEN_REQUIRED');
  assert.ok(Date.now() - t0 < 1000, 'a token holder\'s impostor is refused without a wait');
  const closed = await emitAck(X, 'close-session', { sessionId: A.sessionId });
  assert.equal(closed.ok, false);
  // The real creator still holds the room.
  await expectOk(A.socket, 'set-session-key', { sessionId: A.sessionId, encryptedKeys: { [A.userId]: 'k' } }, assert);
});

test('with its resume token a member joins again at once beside its live socket; a wrong token is refused', async () => {
  const { A, bob, token } = await room('private');
  const left = collect(A.socket, 'user-left');
  const joined = collect(A.socket, 'user-joined');
  const B2 = await from('10.0.0.3');
  const started = Date.now();
  const ack = await expectOk(B2, 'join-session', { sessionId: A.link, userId: bob, resumeToken: token, publicKey: null }, assert);
  assert.ok(Date.now() - started < 1000, 'no wait with a valid token');
  assert.equal(ack.resumeToken, undefined, 'a proven member keeps its token');
  const X = await from('10.0.0.4');
  await refusedJoin(X, { sessionId: A.link, userId: bob, resumeToken: 'forged' }, 'FORBIDDEN');
  // Bob holds a token: a tokenless join naming him is refused at once.
  const Y = await from('10.0.0.5');
  const t0 = Date.now();
  const refused = await refusedJoin(Y, { sessionId: A.link, userId: bob }, 'RESUME_TOKEN_REQUIRED');
  assert.match(refused.message, /resume token/);
  assert.ok(Date.now() - t0 < 1000);
  assert.deepEqual([left, joined], [[], []]);
});

test('the app\'s reconnect (no token) gets in once its old socket is gone, and nobody sees it leave', async () => {
  const { A, B, bob } = await room('private', { app: true });
  const left = collect(A.socket, 'user-left');
  const B2 = await from('10.0.0.2');
  const rejoin = emitAck(B2, 'join-session', { sessionId: A.link, userId: bob, publicKey: null }, 8000);
  // The old socket dies (here: it closes; a silent death is dropped by the heartbeat).
  B.close();
  const ack = await rejoin;
  assert.equal(ack.ok, true, JSON.stringify(ack));
  const got = await expectOk(A.socket, 'get-public-keys', { sessionId: A.sessionId }, assert);
  assert.deepEqual(got.keys.map((k) => [k.userId, k.publicKey]), [[bob, 'pk-b']], 'Bob kept his key');
  await noEvent(A.socket, 'user-left', 2000);
  assert.deepEqual(left, []);
  const toBob = nextEvent(B2, 'new-message');
  await expectOk(A.socket, 'send-message', { sessionId: A.sessionId, to: bob, encrypted: 'welcome back' }, assert);
  assert.equal((await toBob).encrypted, 'welcome back');
});

test('a silently dead socket is dropped by the heartbeat, and the app\'s reconnect gets in', async () => {
  const { A, B, bob } = await room('group', { app: true });
  // Freeze Bob's old socket: it stops answering pings, the server is told nothing.
  B.io.engine.transport.ws?._socket?.pause();
  const B2 = await from('10.0.0.2');
  const ack = await emitAck(B2, 'join-session', { sessionId: A.link, userId: bob, publicKey: null }, 8000);
  assert.equal(ack.ok, true, JSON.stringify(ack));
  B.close();
});

test('a member that rejoins with another public key is announced as public-key-changed', async () => {
  const { A, B, bob, token } = await room('group');
  B.close();
  const changed = nextEvent(A.socket, 'public-key-changed', 5000);
  const B2 = await from('10.0.0.2');
  await expectOk(B2, 'join-session', { sessionId: A.link, userId: bob, resumeToken: token, publicKey: 'pk-b-new', displayName: 'Bob' }, assert);
  assert.deepEqual(await changed, { userId: bob, displayName: 'Bob' });
});

test('with the default presence grace, a member that drops and is back 3 s later is neither announced as gone nor as joined', async () => {
  const g = await startServer({ PRESENCE_GRACE_SECS: '10' });
  const A = await createSession(g.url, { mode: 'private', userId: uid('ana') }, assert);
  const bob = uid('bob');
  const B = await connect(g.url);
  const seen = nextEvent(A.socket, 'user-joined');
  const { resumeToken } = await expectOk(B, 'join-session', { sessionId: A.link, userId: bob, publicKey: 'pk-b' }, assert);
  await seen;
  const left = collect(A.socket, 'user-left');
  const joined = collect(A.socket, 'user-joined');
  B.close();
  await new Promise((r) => setTimeout(r, 3000)); // the outage is what is under test
  const B2 = await connect(g.url);
  await expectOk(B2, 'join-session', { sessionId: A.link, userId: bob, resumeToken, publicKey: null }, assert);
  await noEvent(A.socket, 'user-left', 8000); // past the 10 s grace
  assert.deepEqual([left, joined], [[], []]);
});

// Issue 22, item 3: a member whose join ack carried a resume token is protected from that
// first join on, whatever became of its connection, and always gets back in with it.
describe('a token holder whose connection is lost', () => {
  let g; // a long presence grace: the impostor comes while Bob's departure is unannounced
  before(async () => {
    g = await startServer({ PING_INTERVAL_SECS: '1', PING_TIMEOUT_SECS: '1', PRESENCE_GRACE_SECS: '30' });
  });

  /** Creator Ana and Bob (acked, so holding a token) in a fresh room of `mode` on `g`. */
  async function roomOnG(mode) {
    const A = await createSession(g.url, { mode, publicKey: 'pk-a', userId: uid('ana') }, assert);
    const bob = uid('bob');
    const B = await connect(g.url);
    const seen = nextEvent(A.socket, 'user-joined');
    const ack = await expectOk(B, 'join-session', { sessionId: A.link, userId: bob, publicKey: 'pk-b', displayName: 'Bob' }, assert);
    await seen;
    assert.equal(typeof ack.resumeToken, 'string');
    return { A, B, bob, token: ack.resumeToken };
  }

  /** An impostor naming `bob` without a token: as a client with acks, then as the app. */
  async function impostorsRefused(A, bob) {
    const X = await connect(g.url);
    const got = [collect(X, 'messages-history'), collect(X, 'new-message'), collect(X, 'public-keys-updated')];
    const t0 = Date.now();
    const event = nextEvent(X, 'session-error');
    const ack = await emitAck(X, 'join-session', { sessionId: A.link, userId: bob, publicKey: 'pk-evil', displayName: 'Bob' });
    assert.equal(ack.ok, false, JSON.stringify(ack));
    assert.equal(ack.error, 'RESUME_TOKEN_REQUIRED');
    assert.deepEqual(await event, { error: 'RESUME_TOKEN_REQUIRED', message: ack.message });
    assert.ok(Date.now() - t0 < 1000, 'refused at once, not after a heartbeat');
    // The End2End Chat app's way: no ack, one session-error.
    const Y = await connect(g.url);
    got.push(collect(Y, 'messages-history'), collect(Y, 'new-message'));
    const refusal = nextEvent(Y, 'session-error');
    Y.emit('join-session', { sessionId: A.link, userId: bob, publicKey: 'pk-evil', displayName: 'Bob' });
    Y.emit('join-session', { sessionId: A.link, userId: bob, publicKey: null, displayName: 'Bob' });
    assert.equal((await refusal).error, 'RESUME_TOKEN_REQUIRED');
    return { X, Y, got };
  }

  for (const mode of ['group', 'private', 'password']) {
    test(`${mode} room: cut without a leave, an impostor is refused at once and Bob is back with his token`, async () => {
      const { A, B, bob, token } = await roomOnG(mode);
      const changed = collect(A.socket, 'public-key-changed');
      const joined = collect(A.socket, 'user-joined');
      await expectOk(A.socket, 'send-message', { sessionId: A.sessionId, to: bob, encrypted: 'before the cut' }, assert);
      const before = (await health(g.url)).connections;
      cut(B);
      // Both before and after the server has seen the drop.
      const early = await impostorsRefused(A, bob);
      await waitHealth(g.url, (h) => h.connections <= before + 1); // X and Y came, Bob's drop is handled
      const late = await impostorsRefused(A, bob);
      await expectOk(A.socket, 'send-message', { sessionId: A.sessionId, to: bob, encrypted: 'during the gap' }, assert);
      // The real Bob, with the token the server gave him.
      const B2 = await connect(g.url);
      const history = nextEvent(B2, 'messages-history');
      const back = await expectOk(B2, 'join-session', { sessionId: A.link, userId: bob, resumeToken: token, publicKey: null }, assert);
      assert.equal(back.resumeToken, undefined, 'he keeps his token');
      const texts = (await history).map((m) => m.encrypted);
      assert.ok(texts.includes('before the cut') && texts.includes('during the gap'), JSON.stringify(texts));
      const live = nextEvent(B2, 'new-message');
      await expectOk(A.socket, 'send-message', { sessionId: A.sessionId, to: bob, encrypted: 'live' }, assert);
      assert.equal((await live).encrypted, 'live');
      await barrier(A.socket);
      await Promise.all([early, late].flatMap(({ X, Y }) => [barrier(X), barrier(Y)]));
      for (const list of [...early.got, ...late.got]) assert.deepEqual([...list], [], 'the impostors received nothing');
      assert.deepEqual([changed, joined], [[], []], 'Ana saw no impostor, and no return');
      const keys = await expectOk(A.socket, 'get-public-keys', { sessionId: A.sessionId }, assert);
      assert.deepEqual(keys.keys.map((k) => [k.userId, k.publicKey]), [[bob, 'pk-b']]);
    });
  }

  test('a silent death (no pongs): the impostor meets the present holder and is refused without a wait; Bob gets back beside it', async () => {
    const { A, B, bob, token } = await roomOnG('private');
    B.io.engine.transport.ws._socket.pause();
    const { got, X, Y } = await impostorsRefused(A, bob);
    const B2 = await connect(g.url);
    const t0 = Date.now();
    await expectOk(B2, 'join-session', { sessionId: A.link, userId: bob, resumeToken: token, publicKey: null }, assert);
    assert.ok(Date.now() - t0 < 1000);
    await Promise.all([barrier(X), barrier(Y)]);
    for (const list of got) assert.deepEqual([...list], []);
    B.close();
  });
});

test('long after the grace, when the others were told Bob left, a tokenless join naming him is still refused; his token still admits him', async () => {
  const { A, B, bob, token } = await room('group');
  const left = nextEvent(A.socket, 'user-left', 8000);
  cut(B);
  assert.equal((await left).userId, bob);
  const X = await from('10.0.0.9');
  await refusedJoin(X, { sessionId: A.link, userId: bob, publicKey: 'pk-evil' }, 'RESUME_TOKEN_REQUIRED');
  const joined = nextEvent(A.socket, 'user-joined');
  const B2 = await from('10.0.0.2');
  await expectOk(B2, 'join-session', { sessionId: A.link, userId: bob, resumeToken: token, publicKey: 'pk-b' }, assert);
  assert.equal((await joined).userId, bob);
});

test('a member whose join sent no ack holds no token: the app keeps today\'s rule, and a later acked takeover does not make the userId its own', async () => {
  const { A, B, bob } = await room('group', { app: true });
  const left = nextEvent(A.socket, 'user-left', 8000);
  B.close();
  await left;
  // Someone (the app after a reload, or a stranger: the server cannot tell) takes it back.
  const X = await from('10.0.0.9');
  const ack = await expectOk(X, 'join-session', { sessionId: A.link, userId: bob, publicKey: 'pk-x' }, assert);
  assert.equal(ack.resumeToken, undefined, 'no token for taking back a member that holds none');
  X.close();
  const leftAgain = nextEvent(A.socket, 'user-left', 8000);
  await leftAgain;
  // The app's own reconnect (no ack) still gets in.
  const B2 = await from('10.0.0.2');
  const inside = nextEvent(B2, 'public-keys-updated', 3000, (keys) => keys.some((k) => k.userId === bob));
  const errors = collect(B2, 'session-error');
  B2.emit('join-session', { sessionId: A.link, userId: bob, publicKey: 'pk-b' });
  B2.emit('join-session', { sessionId: A.link, userId: bob, publicKey: null });
  await inside;
  await barrier(B2);
  assert.deepEqual([...errors], []);
});
