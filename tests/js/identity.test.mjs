// Identity: nobody takes over a present member's userId (README "Joining", rule 6).
// An impostor holds the room's link and the victim's userId (the End2End Chat app uses one
// userId everywhere); it comes from the same address and, through a trusted proxy's
// X-Forwarded-For, from another one. Resume tokens let a real client back in at once; the
// app, which keeps none, gets back in once its old connection is gone.
//
// The heartbeat is 1 s + 1 s here, so a join naming a present member waits 4 s at most.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  startServer, cleanup, connect, createSession, expectOk, nextEvent, noEvent,
  collect, emitAck, uid,
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

/** Creator A and member B in a fresh room of `mode`; their join acks. */
async function room(mode) {
  const A = await createSession(srv.url, { mode, publicKey: 'pk-a', userId: uid('ana') }, assert);
  const B = await from('10.0.0.2');
  const bob = uid('bob');
  const seen = nextEvent(A.socket, 'user-joined');
  const ack = await expectOk(B, 'join-session', { sessionId: A.link, userId: bob, publicKey: 'pk-b', displayName: 'Bob' }, assert);
  await seen; // so that what A collects next is only what follows
  assert.equal(typeof ack.resumeToken, 'string', 'a join ack carries a resume token');
  assert.ok(ack.resumeToken.length >= 40);
  return { A, B, bob, token: ack.resumeToken };
}

for (const [mode, ip] of [['private', '10.0.0.66'], ['group', '127.0.0.1'], ['password', '10.0.0.2']]) {
  test(`${mode} room: an impostor naming a present member is refused (address ${ip}); nothing changes for the others`, async () => {
    const { A, B, bob } = await room(mode);
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
  await refusedJoin(X, {
    sessionId: A.sessionId, authKey: A.authKey, isCreator: true, userId: A.userId, publicKey: 'pk-evil',
  }, 'FORBIDDEN');
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
  // Having proven itself once, Bob must always: a tokenless join is refused at once.
  const Y = await from('10.0.0.5');
  const t0 = Date.now();
  const refused = await refusedJoin(Y, { sessionId: A.link, userId: bob }, 'FORBIDDEN');
  assert.match(refused.message, /resume token/);
  assert.ok(Date.now() - t0 < 1000);
  assert.deepEqual([left, joined], [[], []]);
});

test('the app\'s reconnect (no token) gets in once its old socket is gone, and nobody sees it leave', async () => {
  const { A, B, bob } = await room('private');
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

test('a silently dead socket is dropped by the heartbeat, and the reconnect gets in', async () => {
  const { A, B, bob } = await room('group');
  // Freeze Bob's old socket: it stops answering pings, the server is told nothing.
  B.io.engine.transport.ws?._socket?.pause();
  const B2 = await from('10.0.0.2');
  const ack = await emitAck(B2, 'join-session', { sessionId: A.link, userId: bob, publicKey: null }, 8000);
  assert.equal(ack.ok, true, JSON.stringify(ack));
  B.close();
});

test('a member that rejoins with another public key is announced as public-key-changed', async () => {
  const { A, B, bob } = await room('group');
  B.close();
  const changed = nextEvent(A.socket, 'public-key-changed', 5000);
  const B2 = await from('10.0.0.2');
  await expectOk(B2, 'join-session', { sessionId: A.link, userId: bob, publicKey: 'pk-b-new', displayName: 'Bob' }, assert);
  assert.deepEqual(await changed, { userId: bob, displayName: 'Bob' });
});

test('with the default presence grace, a member that drops and is back 3 s later is neither announced as gone nor as joined', async () => {
  const g = await startServer({ PRESENCE_GRACE_SECS: '10' });
  const A = await createSession(g.url, { mode: 'private', userId: uid('ana') }, assert);
  const bob = uid('bob');
  const B = await connect(g.url);
  const seen = nextEvent(A.socket, 'user-joined');
  await expectOk(B, 'join-session', { sessionId: A.link, userId: bob, publicKey: 'pk-b' }, assert);
  await seen;
  const left = collect(A.socket, 'user-left');
  const joined = collect(A.socket, 'user-joined');
  B.close();
  await new Promise((r) => setTimeout(r, 3000)); // the outage is what is under test
  const B2 = await connect(g.url);
  await expectOk(B2, 'join-session', { sessionId: A.link, userId: bob, publicKey: null }, assert);
  await noEvent(A.socket, 'user-left', 8000); // past the 10 s grace
  assert.deepEqual([left, joined], [[], []]);
});
