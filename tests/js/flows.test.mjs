// Original-client flows: the old app's socket.io-client usage, unchanged (plain emit
// without acks, listening to events), in every chat mode and over every transport.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import {
  startServer, cleanup, connect, nextEvent, collect, reserve, uid,
} from './lib/server.mjs';

let srv;
before(async () => { srv = await startServer(); });
after(cleanup);

const TRANSPORTS = {
  both: ['websocket', 'polling'], // what the original app passes
  websocket: ['websocket'],
  polling: ['polling'],
  default: undefined, // socket.io-client default: polling, then upgrade
};

function open(kind) {
  return connect(srv.url, kind === 'default' ? { transports: undefined } : { transports: TRANSPORTS[kind] });
}

async function upgraded(socket) {
  const engine = socket.io.engine;
  if (engine.transport.name !== 'websocket') {
    await new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error('no upgrade to websocket within 5 s')), 5000);
      engine.once('upgrade', () => { clearTimeout(t); resolve(); });
    });
  }
  assert.equal(engine.transport.name, 'websocket');
}

const byUser = (list) => [...list].sort((a, b) => a.userId.localeCompare(b.userId));

function keyEntries(users) {
  return byUser(users.map((u) => ({ userId: u.userId, publicKey: u.publicKey, displayName: u.displayName })));
}

function assertKeys(got, users, what) {
  assert.ok(Array.isArray(got), `${what}: public-keys-updated must be an array`);
  for (const k of got) assert.equal(typeof k.joinedAt, 'number', `${what}: joinedAt`);
  assert.deepEqual(
    byUser(got).map(({ userId, publicKey, displayName }) => ({ userId, publicKey, displayName })),
    keyEntries(users),
    what,
  );
}

/**
 * The old app's flow: reserve over HTTP, creator joins with isCreator + authKey, the
 * others join by link, keys are swapped, messages go both ways, typing, file download
 * notice, one member leaves. `kinds` gives each client's transport.
 */
async function originalFlow({ mode, kinds }) {
  const n = kinds.length;
  const sessionId = uid('flow');
  const key = randomBytes(16).toString('hex');
  const pw = randomBytes(16).toString('hex');
  const authKey = mode === 'password' ? `${key}:${pw}` : key;
  const link = mode === 'password' ? `${sessionId}:password:${pw}` : `${sessionId}:${authKey}`;

  const r = await reserve(srv.url, { sessionId, authKey, chatMode: mode });
  assert.equal(r.status, 200, r.text);
  assert.equal(r.json.success, true);
  assert.equal(r.json.sessionId, sessionId);
  assert.equal(r.json.chatMode, mode);
  assert.equal(typeof r.json.message, 'string');

  const users = ['alice', 'bob', 'carol'].slice(0, n).map((name) => ({
    userId: uid(name),
    displayName: name,
    publicKey: { kty: 'RSA', e: 'AQAB', n: randomBytes(24).toString('base64url') },
  }));
  const sockets = await Promise.all(kinds.map(open));
  const [A, B, C] = sockets;
  const [alice, bob, carol] = users;

  // Things that must never arrive, checked at the end.
  const ownEcho = sockets.map((s) => collect(s, 'new-message'));
  const typingSeenByB = collect(B, 'user-typing');
  const errors = sockets.map((s) => collect(s, 'session-error'));

  // Creator joins (the reservation becomes active).
  {
    const hist = nextEvent(A, 'messages-history');
    const meta = nextEvent(A, 'session-metadata');
    const keys = nextEvent(A, 'public-keys-updated');
    A.emit('join-session', { sessionId, userId: alice.userId, displayName: 'alice', publicKey: alice.publicKey, isCreator: true, authKey });
    assert.deepEqual(await hist, []);
    assert.deepEqual(await meta, { chatMode: mode, encryptedSessionKey: null, sessionKey: null });
    assertKeys(await keys, [alice], 'creator keys');
  }

  // Joiners by link: sessionId carries the credential, no authKey field.
  for (let i = 1; i < n; i++) {
    const J = sockets[i];
    const u = users[i];
    const joined = sockets.slice(0, i).map((s) => nextEvent(s, 'user-joined'));
    const keys = sockets.slice(0, i + 1).map((s) => nextEvent(s, 'public-keys-updated'));
    const hist = nextEvent(J, 'messages-history');
    const meta = nextEvent(J, 'session-metadata');
    J.emit('join-session', { sessionId: link, userId: u.userId, displayName: u.displayName, publicKey: u.publicKey });
    for (const p of joined) {
      const ev = await p;
      assert.equal(ev.userId, u.userId);
      assert.equal(ev.displayName, u.displayName);
      assert.equal(typeof ev.timestamp, 'number');
    }
    for (const p of keys) assertKeys(await p, users.slice(0, i + 1), `keys after ${u.displayName} joined`);
    assert.deepEqual(await hist, []);
    assert.deepEqual(await meta, { chatMode: mode, encryptedSessionKey: null, sessionKey: null });
  }

  // Old clients re-ask for keys (no ack): they get everyone's key but their own.
  {
    const keys = nextEvent(B, 'public-keys-updated');
    B.emit('get-public-keys', { sessionId: link, userId: bob.userId });
    assertKeys(await keys, users.filter((u) => u !== bob), 'get-public-keys');
  }

  // Alice -> everyone (group: no `to`; private/password: to bob, as the old app does).
  const toBob = mode !== 'group';
  {
    const id = uid('m');
    const encrypted = { iv: randomBytes(12).toString('base64'), data: randomBytes(40).toString('base64') };
    const recv = sockets.slice(1).map((s) => nextEvent(s, 'new-message'));
    const sent = nextEvent(A, 'message-sent');
    A.emit('send-message', {
      sessionId, from: alice.userId, ...(toBob ? { to: bob.userId } : {}), encrypted,
      originalContent: 'hello from alice', type: 'text', clientMessageId: id,
    });
    const s = await sent;
    assert.equal(typeof s.timestamp, 'number');
    const expected = {
      id, from: alice.userId, ...(toBob ? { to: bob.userId } : {}), encrypted,
      timestamp: s.timestamp, type: 'text', senderDisplayName: 'alice',
    };
    assert.deepEqual(s, { ...expected, originalContent: 'hello from alice' });
    // The copy to one member carries a placeholder, never the plaintext; one to all none.
    for (const p of recv) assert.deepEqual(await p, toBob ? { ...expected, originalContent: '🔒' } : expected);
  }

  // Bob -> Alice (private: to alice; group: to "all"), with the composite sessionId.
  {
    const id = uid('m');
    const encrypted = randomBytes(30).toString('base64');
    const to = toBob ? alice.userId : 'all';
    const recv = sockets.filter((s) => s !== B).map((s) => nextEvent(s, 'new-message'));
    const sent = nextEvent(B, 'message-sent');
    B.emit('send-message', { sessionId: link, from: bob.userId, to, encrypted, originalContent: 'hi alice', type: 'text', clientMessageId: id });
    const s = await sent;
    const expected = { id, from: bob.userId, to, encrypted, timestamp: s.timestamp, type: 'text', senderDisplayName: 'bob' };
    assert.deepEqual(s, { ...expected, originalContent: 'hi alice' });
    for (const p of recv) assert.deepEqual(await p, toBob ? { ...expected, originalContent: '🔒' } : expected);
  }

  // Group of three: a private message from Bob to Alice only; then Carol to "all", a file.
  if (C) {
    const id = uid('m');
    const gotA = nextEvent(A, 'new-message');
    B.emit('send-message', { sessionId: link, to: alice.userId, encrypted: 'for-alice-only', clientMessageId: id });
    const m = await gotA;
    assert.equal(m.id, id);
    assert.equal(m.to, alice.userId);
    assert.equal(m.from, bob.userId);
    assert.equal(m.originalContent, '🔒');

    const id2 = uid('m');
    const recv = [nextEvent(A, 'new-message'), nextEvent(B, 'new-message')];
    C.emit('send-message', { sessionId: link, from: carol.userId, encrypted: { f: 'file-bytes' }, type: 'file', clientMessageId: id2 });
    for (const p of recv) {
      const ev = await p;
      assert.equal(ev.id, id2);
      assert.equal(ev.type, 'file');
      assert.equal(ev.senderDisplayName, 'carol');
      assert.ok(!('to' in ev), 'to omitted when absent');
    }
  }

  // Typing indicators go to the others, not back to the typist.
  {
    const recv = sockets.filter((s) => s !== B).map((s) => nextEvent(s, 'user-typing'));
    B.emit('typing', { sessionId: link, userId: bob.userId, displayName: 'bob' });
    for (const p of recv) assert.deepEqual(await p, { userId: bob.userId, displayName: 'bob' });
    const stop = sockets.filter((s) => s !== B).map((s) => nextEvent(s, 'user-stopped-typing'));
    B.emit('stopped-typing', { sessionId: link, userId: bob.userId, displayName: 'bob' });
    for (const p of stop) assert.deepEqual(await p, { userId: bob.userId, displayName: 'bob' });
  }

  // Bob downloaded Alice's file: Alice (only) is told, by Bob's stored name and userId
  // (the app sends its display name as downloadedBy; the server does not read it).
  const otherNotices = sockets.filter((s) => s !== A).map((s) => collect(s, 'download-notification'));
  {
    const notice = nextEvent(A, 'download-notification');
    B.emit('file-downloaded', { sessionId: link, downloadedBy: 'Bobby', senderId: alice.userId, fileName: 'photo.png', timestamp: 1700000000123 });
    assert.deepEqual(await notice, { downloadedBy: bob.displayName, userId: bob.userId, fileName: 'photo.png', timestamp: 1700000000123 });
  }

  // Bob leaves: the others get user-left and the keys without his.
  {
    const left = sockets.filter((s) => s !== B).map((s) => nextEvent(s, 'user-left'));
    const keys = sockets.filter((s) => s !== B).map((s) => nextEvent(s, 'public-keys-updated'));
    B.emit('leave-session', { sessionId: link, userId: bob.userId });
    for (const p of left) {
      const ev = await p;
      assert.equal(ev.userId, bob.userId);
      assert.equal(typeof ev.timestamp, 'number');
    }
    for (const p of keys) assertKeys(await p, users.filter((u) => u !== bob), 'keys after bob left');
  }

  // Transports really are what was asked; after an upgrade the flow still works.
  kinds.forEach((k, i) => {
    if (k === 'polling') assert.equal(sockets[i].io.engine.transport.name, 'polling');
    if (k === 'websocket' || k === 'both') assert.equal(sockets[i].io.engine.transport.name, 'websocket');
  });
  for (let i = 0; i < n; i++) if (kinds[i] === 'default') await upgraded(sockets[i]);

  // A last message after the leave: it reaches those still there, not Bob.
  const bobAfterLeave = collect(B, 'new-message');
  const last = uid('m');
  const sentLast = nextEvent(A, 'message-sent');
  const recvLast = C ? nextEvent(C, 'new-message') : null;
  A.emit('send-message', { sessionId, from: alice.userId, encrypted: 'bye', clientMessageId: last });
  assert.equal((await sentLast).id, last);
  if (recvLast) assert.equal((await recvLast).id, last);
  // Bob's socket, Alice's own echo: a short bounded wait for what must not arrive.
  await new Promise((r) => setTimeout(r, 200));
  assert.deepEqual(bobAfterLeave, [], 'a member who left must not get messages');
  assert.deepEqual(typingSeenByB, [], 'the typist must not get its own user-typing');
  assert.deepEqual(ownEcho[0].filter((m) => m.from === alice.userId), [], 'sender must not get its own new-message');
  for (const l of otherNotices) assert.deepEqual(l, [], 'download-notification only to senderId');
  errors.forEach((e, i) => assert.deepEqual(e, [], `client ${i} got session-error`));
  for (const s of sockets) s.close();
}

for (const mode of ['group', 'private', 'password']) {
  test(`original client flow, ${mode} room, transports ['websocket','polling']`, async () => {
    await originalFlow({ mode, kinds: mode === 'group' ? ['both', 'both', 'both'] : ['both', 'both'] });
  });
}

test('group flow, three clients, websocket only', async () => {
  await originalFlow({ mode: 'group', kinds: ['websocket', 'websocket', 'websocket'] });
});

test('group flow, three clients, polling only', async () => {
  await originalFlow({ mode: 'group', kinds: ['polling', 'polling', 'polling'] });
});

test('group flow, three clients, default transports (polling then upgrade)', async () => {
  await originalFlow({ mode: 'group', kinds: ['default', 'default', 'default'] });
});

test('group flow, two clients, mixed transports (polling creator, websocket joiner)', async () => {
  await originalFlow({ mode: 'group', kinds: ['polling', 'websocket'] });
});

test('private flow, polling only', async () => {
  await originalFlow({ mode: 'private', kinds: ['polling', 'polling'] });
});

test('password flow, default transports', async () => {
  await originalFlow({ mode: 'password', kinds: ['default', 'default'] });
});

test('password room: wrong hash is INVALID_PASSWORD (old client: session-error event)', async () => {
  const sessionId = uid('pw');
  const authKey = `${randomBytes(16).toString('hex')}:${randomBytes(16).toString('hex')}`;
  const r = await reserve(srv.url, { sessionId, authKey, chatMode: 'password' });
  assert.equal(r.status, 200);
  const A = await open('both');
  const ready = nextEvent(A, 'session-metadata');
  A.emit('join-session', { sessionId, userId: 'alice', displayName: 'A', publicKey: 'pk', isCreator: true, authKey });
  await ready;
  const B = await open('both');
  const err = nextEvent(B, 'session-error');
  B.emit('join-session', { sessionId: `${sessionId}:password:${'0'.repeat(32)}`, userId: 'bob', displayName: 'B', publicKey: 'pk' });
  const e = await err;
  assert.equal(e.error, 'INVALID_PASSWORD');
  assert.equal(e.message, 'Incorrect password. Please check and try again.', 'the original server\'s words');
  A.close(); B.close();
});

test('old client without acks: a creator join with isCreator creates the session', async () => {
  const sessionId = uid('noreserve');
  const authKey = randomBytes(16).toString('hex');
  const A = await open('both');
  const meta = nextEvent(A, 'session-metadata');
  A.emit('join-session', { sessionId, userId: 'alice', displayName: 'A', publicKey: 'pkA', isCreator: true, authKey });
  assert.equal((await meta).chatMode, 'group');
  const B = await open('both');
  const joined = nextEvent(A, 'user-joined');
  const keys = nextEvent(B, 'public-keys-updated');
  B.emit('join-session', { sessionId: `${sessionId}:${authKey}`, userId: 'bob', displayName: 'B', publicKey: 'pkB' });
  assert.equal((await joined).userId, 'bob');
  assert.equal((await keys).length, 2);
  A.close(); B.close();
});

test('old client entry as the End2End Chat app makes it: get-public-keys, join (key), join (null), no acks and no session-error', async () => {
  const sessionId = uid('entry');
  const authKey = randomBytes(16).toString('hex');
  const A = await open('both');
  const aHist = collect(A, 'messages-history');
  const aKeys = collect(A, 'public-keys-updated');
  const aErrors = collect(A, 'session-error');
  const creator = { sessionId, userId: 'alice', displayName: 'A', isCreator: true, authKey };
  A.emit('get-public-keys', { sessionId, userId: 'alice' });
  A.emit('join-session', { ...creator, publicKey: 'pkA' });
  A.emit('join-session', { ...creator, publicKey: null });
  // Each join's last answer is public-keys-updated: wait for the second join's.
  await nextEvent(A, 'public-keys-updated', 3000, () => aKeys.length >= 2);
  assert.deepEqual(aHist, [[], []]);
  for (const keys of aKeys) assert.deepEqual(keys.map((k) => [k.userId, k.publicKey]), [['alice', 'pkA']]);
  const secret = `PLAIN-${randomBytes(8).toString('hex')}`;
  const sent = nextEvent(A, 'message-sent');
  A.emit('send-message', { sessionId, from: 'alice', to: 'all', encrypted: 'c1', originalContent: secret, type: 'text', clientMessageId: uid('m') });
  assert.equal((await sent).originalContent, secret);

  const B = await open('both');
  const bHist = collect(B, 'messages-history');
  const bKeys = collect(B, 'public-keys-updated');
  const bErrors = collect(B, 'session-error');
  const joined = collect(A, 'user-joined');
  const link = `${sessionId}:${authKey}`;
  const joiner = { sessionId: link, userId: 'bob', displayName: 'B', isCreator: false };
  B.emit('get-public-keys', { sessionId: link, userId: 'bob' });
  B.emit('join-session', { ...joiner, publicKey: 'pkB' });
  B.emit('join-session', { ...joiner, publicKey: null });
  await nextEvent(B, 'public-keys-updated', 3000, () => bKeys.length >= 2);
  // History once (the message to all, no originalContent), then empty.
  assert.deepEqual(bHist.map((h) => h.map((m) => [m.encrypted, 'originalContent' in m])), [[['c1', false]], []]);
  for (const keys of bKeys) assert.deepEqual(keys.map((k) => [k.userId, k.publicKey]).sort(), [['alice', 'pkA'], ['bob', 'pkB']]);
  assert.equal(bKeys.length, 2);
  // Bob's message reaches Alice after anything his joins sent her.
  const got = nextEvent(A, 'new-message');
  B.emit('send-message', { sessionId: link, from: 'bob', to: 'all', encrypted: 'c2', type: 'text', clientMessageId: uid('m') });
  assert.equal((await got).encrypted, 'c2');
  assert.deepEqual(joined.map((j) => j.userId), ['bob'], 'user-joined once');
  assert.deepEqual([...aErrors, ...bErrors], [], 'no session-error on entry');
  A.close(); B.close();
});
