// The creator's controls: remove-member and reset-link, and waits said in numbers
// (retryAfterMs, join-lockout). With REDIS_URL the creator and the others are on two
// nodes sharing one prefix, so removals and resets cross nodes.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  startServer, cleanup, connect, expectOk, expectError, emitAck, nextEvent, noEvent, uid, collect,
  createSession, joinAs, request,
} from './lib/server.mjs';

let nodes;
before(async () => {
  const env = process.env.REDIS_URL ? { REDIS_PREFIX: `ctl-${uid('p')}:` } : {};
  const a = await startServer({ ...env, JOIN_FAILURES_PER_SESSION: '3', JOIN_LOCKOUT_SECS: '60' });
  nodes = process.env.REDIS_URL
    ? [a, await startServer({ ...env, JOIN_FAILURES_PER_SESSION: '3', JOIN_LOCKOUT_SECS: '60' })]
    : [a, a];
});
after(cleanup);

test('remove-member: the room is told, the removed member hears no more and cannot come back', async () => {
  const room = await createSession(nodes[0].url, { mode: 'group' }, assert);
  const bobId = uid('bob');
  const bob = await joinAs(nodes[1].url, room.link, bobId, assert);
  const carol = await joinAs(nodes[1].url, room.link, uid('carol'), assert);

  const toBob = nextEvent(bob.socket, 'member-removed');
  const toCarol = nextEvent(carol.socket, 'member-removed');
  const keys = nextEvent(carol.socket, 'public-keys-updated', 3000, (k) => !k.some((e) => e.userId === bobId));
  await expectOk(room.socket, 'remove-member', { sessionId: room.sessionId, userId: bobId }, assert);
  for (const notice of [await toBob, await toCarol]) {
    assert.equal(notice.userId, bobId);
    assert.equal(notice.displayName, bobId);
  }
  await keys;

  // Bob is out: he hears nothing more and cannot act or return, with or without proof.
  const quiet = noEvent(bob.socket, 'new-message', 500);
  const heard = nextEvent(carol.socket, 'new-message');
  await expectOk(room.socket, 'send-message', { sessionId: room.sessionId, encrypted: 'after' }, assert);
  assert.equal((await heard).encrypted, 'after');
  await quiet;
  await expectError(bob.socket, 'send-message', { sessionId: room.sessionId, encrypted: 'x' }, 'NOT_IN_SESSION', assert);
  for (const extra of [{ resumeToken: bob.ack.resumeToken }, {}]) {
    const s = await connect(nodes[0].url);
    const told = nextEvent(s, 'session-error');
    const ack = await emitAck(s, 'join-session', { sessionId: room.link, userId: bobId, publicKey: 'pk', ...extra });
    assert.equal(ack.error, 'REMOVED', JSON.stringify(ack));
    assert.equal((await told).message, 'You were removed from this room.');
  }
});

test('remove-member: creator only, not yourself, only members', async () => {
  const room = await createSession(nodes[0].url, { mode: 'group' }, assert);
  const bob = await joinAs(nodes[1].url, room.link, uid('bob'), assert);
  await expectError(bob.socket, 'remove-member', { sessionId: room.sessionId, userId: room.userId }, 'FORBIDDEN', assert);
  await expectError(room.socket, 'remove-member', { sessionId: room.sessionId, userId: room.userId }, 'BAD_REQUEST', assert);
  await expectError(room.socket, 'remove-member', { sessionId: room.sessionId, userId: uid('nobody') }, 'NOT_IN_SESSION', assert);
  // Nothing was changed: Bob still talks.
  const heard = nextEvent(room.socket, 'new-message');
  await expectOk(bob.socket, 'send-message', { sessionId: room.sessionId, encrypted: 'still here' }, assert);
  assert.equal((await heard).encrypted, 'still here');
});

test('reset-link: the old link stops admitting; members come back with their resume token', async () => {
  const room = await createSession(nodes[0].url, { mode: 'private' }, assert);
  const bobId = uid('bob');
  const bob = await joinAs(nodes[1].url, room.link, bobId, assert);
  await expectError(bob.socket, 'reset-link', { sessionId: room.sessionId, authKey: 'mine' }, 'FORBIDDEN', assert);

  const newKey = uid('newkey');
  const told = nextEvent(bob.socket, 'link-reset');
  await expectOk(room.socket, 'reset-link', { sessionId: room.sessionId, authKey: newKey }, assert);
  assert.equal(typeof (await told).timestamp, 'number');

  // Bob drops and returns with the old link and his token: admitted.
  bob.socket.close();
  const back = await connect(nodes[0].url);
  await expectOk(back, 'join-session', {
    sessionId: room.link, userId: bobId, publicKey: `pk-${bobId}`, resumeToken: bob.ack.resumeToken,
  }, assert);
  back.close();
  // A stranger with the old link is refused as with a wrong key; the new link admits.
  const stranger = await connect(nodes[1].url);
  await expectError(stranger, 'join-session', { sessionId: room.link, userId: uid('eve'), publicKey: 'pk' }, 'INVALID_KEY', assert);
  await joinAs(nodes[1].url, `${room.sessionId}:${newKey}`, uid('dave'), assert);
});

test('reset-link in a password room: the new password admits, the old one does not', async () => {
  const room = await createSession(nodes[0].url, { mode: 'password', password: 'old-digest' }, assert);
  await expectError(room.socket, 'reset-link', { sessionId: room.sessionId, authKey: 'no-password-part' }, 'BAD_REQUEST', assert);
  await expectOk(room.socket, 'reset-link', { sessionId: room.sessionId, authKey: `${uid('k')}:new-digest` }, assert);
  const s = await connect(nodes[1].url);
  await expectError(s, 'join-session', { sessionId: `${room.sessionId}:password:old-digest`, userId: uid('eve'), publicKey: 'pk' }, 'INVALID_PASSWORD', assert);
  await joinAs(nodes[1].url, `${room.sessionId}:password:new-digest`, uid('bob'), assert);
});

test('wrong passwords: the try that starts a lockout says how long, so do later ones, and the room is told', async () => {
  const room = await createSession(nodes[0].url, { mode: 'password', password: 'right' }, assert);
  const s = await connect(nodes[1].url);
  const wrong = { sessionId: `${room.sessionId}:password:wrong`, userId: uid('friend'), publicKey: 'pk' };
  const first = await emitAck(s, 'join-session', wrong);
  assert.equal(first.error, 'INVALID_PASSWORD');
  assert.equal(first.retryAfterMs, undefined, 'no wait before the lockout');
  await emitAck(s, 'join-session', wrong);
  const creatorTold = nextEvent(room.socket, 'join-lockout');
  const third = await emitAck(s, 'join-session', wrong);
  assert.equal(third.error, 'INVALID_PASSWORD');
  assert.equal(third.retryAfterMs, 60000);
  assert.equal((await creatorTold).retryAfterMs, 60000);

  // Even the right password waits now, and both the ack and session-error say how long.
  const told = nextEvent(s, 'session-error');
  const locked = await emitAck(s, 'join-session', { ...wrong, sessionId: room.link });
  assert.equal(locked.error, 'RATE_LIMITED');
  assert.ok(locked.retryAfterMs > 50000 && locked.retryAfterMs <= 60000, String(locked.retryAfterMs));
  assert.ok((await told).retryAfterMs > 50000);
});

test('POST /api/session-status: what a join would answer, without joining, and counted like one', async () => {
  const status = (url, body, ip) => request('POST', `${url}/api/session-status`, {
    body, headers: ip ? { 'x-forwarded-for': ip } : {},
  });
  const room = await createSession(nodes[0].url, { mode: 'private' }, assert);
  let r = await status(nodes[1].url, { sessionId: room.link });
  assert.equal(r.status, 200, r.text);
  assert.deepEqual(r.json, { status: 'open', chatMode: 'private', credentialChecked: true });
  r = await status(nodes[1].url, { sessionId: `${room.sessionId}:wrong` });
  assert.equal(r.json.status, 'refused');
  assert.equal(r.json.code, 'INVALID_KEY');
  r = await status(nodes[1].url, { sessionId: uid('nowhere') });
  assert.deepEqual([r.status, r.json.status, r.json.code], [200, 'gone', 'SESSION_NOT_FOUND']);
  // Nothing was joined: the room is still the creator's alone, and a friend gets in.
  await joinAs(nodes[1].url, room.link, uid('bob'), assert);

  const pw = await createSession(nodes[0].url, { mode: 'password', password: 'pw-digest' }, assert);
  r = await status(nodes[1].url, { sessionId: pw.sessionId });
  assert.deepEqual(r.json, { status: 'open', chatMode: 'password', credentialChecked: false });
  r = await status(nodes[1].url, { sessionId: pw.link });
  assert.equal(r.json.credentialChecked, true);

  await expectOk(room.socket, 'close-session', { sessionId: room.sessionId }, assert);
  r = await status(nodes[1].url, { sessionId: room.link });
  assert.equal(r.json.status, 'gone');
});

test('POST /api/session-status is no faster an oracle of ids than a join', async () => {
  const srv = await startServer({ TRUSTED_PROXIES: '127.0.0.1', IP_JOIN_FAILURES_PER_MIN: '5', IP_JOIN_FAILURES_BURST: '5' });
  const codes = [];
  for (let i = 0; i < 8; i++) {
    const r = await request('POST', `${srv.url}/api/session-status`, {
      body: { sessionId: uid('probe') }, headers: { 'x-forwarded-for': '203.0.113.77' },
    });
    codes.push(r.json.status ?? r.status);
  }
  assert.deepEqual(codes.slice(0, 5), ['gone', 'gone', 'gone', 'gone', 'gone']);
  assert.ok(codes.slice(5).every((c) => c === 429), codes.join(','));
  // Another address is not affected.
  const other = await request('POST', `${srv.url}/api/session-status`, {
    body: { sessionId: uid('probe') }, headers: { 'x-forwarded-for': '198.51.100.77' },
  });
  assert.equal(other.json.status, 'gone');
});

test('leave-session and the transport\'s close in the same breath: the others hear user-left at once, not after the grace', async () => {
  const srv = await startServer({ PRESENCE_GRACE_SECS: '30' });
  const room = await createSession(srv.url, { mode: 'group' }, assert);
  const leaverId = uid('leaver');
  const { default: WebSocket } = await import('ws');
  const ws = new WebSocket(`${srv.url.replace('http', 'ws')}/socket.io/?EIO=4&transport=websocket`);
  await new Promise((resolve, reject) => {
    ws.on('message', (data) => {
      const text = data.toString();
      if (text.startsWith('0')) ws.send('40');
      else if (text.startsWith('40')) {
        ws.send(`420["join-session",${JSON.stringify({ sessionId: room.link, userId: leaverId, publicKey: 'pk' })}]`);
      } else if (text.startsWith('430')) resolve();
    });
    ws.on('error', reject);
  });
  const left = nextEvent(room.socket, 'user-left', 5000, (p) => p.userId === leaverId);
  // As the apps do on Leave: the event, the namespace's disconnect, the close, at once.
  ws.send(`42["leave-session",${JSON.stringify({ sessionId: room.sessionId, userId: leaverId })}]`);
  ws.send('41');
  ws.close();
  await left;
});

test('message-delivered: a member\'s page tells the sender which messages arrived; only members, only ids', async () => {
  const room = await createSession(nodes[0].url, { mode: 'private' }, assert);
  const bob = await joinAs(nodes[1].url, room.link, uid('bob'), assert);
  const got = nextEvent(bob.socket, 'new-message');
  const sent = await expectOk(room.socket, 'send-message', { sessionId: room.sessionId, to: bob.ack.userId, encrypted: 'c', clientMessageId: 'm-1' }, assert);
  assert.equal((await got).id, 'm-1');
  const told = nextEvent(room.socket, 'message-delivered');
  await expectOk(bob.socket, 'message-delivered', { sessionId: room.sessionId, senderId: room.userId, ids: [sent.id] }, assert);
  const notice = await told;
  assert.deepEqual([notice.ids, notice.userId], [['m-1'], bob.ack.userId]);
  await expectError(bob.socket, 'message-delivered', { sessionId: room.sessionId, senderId: room.userId, ids: [] }, 'BAD_REQUEST', assert);
  const stranger = await connect(nodes[1].url);
  await expectError(stranger, 'message-delivered', { sessionId: room.sessionId, senderId: room.userId, ids: ['m-1'] }, 'NOT_IN_SESSION', assert);
});

test('message-delivered is checked: only ids the sender sent to the claimant (or to all) are relayed, once to each of the sender\'s sockets', async () => {
  const room = await createSession(nodes[0].url, { mode: 'group' }, assert);
  const { sessionId } = room;
  const bob = await joinAs(nodes[1].url, room.link, uid('bob'), assert);
  const carol = await joinAs(nodes[1].url, room.link, uid('carol'), assert);
  const bobId = bob.ack.userId;
  // Ana on two more tabs (one per node), Bob on three more.
  const anaTabs = [room.socket];
  for (const node of [nodes[0], nodes[1]]) {
    anaTabs.push((await joinAs(node.url, room.link, room.userId, assert, { resumeToken: room.resumeToken, publicKey: null })).socket);
  }
  const bobTabs = [bob.socket];
  for (let i = 0; i < 3; i += 1) {
    bobTabs.push((await joinAs(nodes[i % 2].url, room.link, bobId, assert, { resumeToken: bob.ack.resumeToken, publicKey: null })).socket);
  }
  const arrived = nextEvent(carol.socket, 'new-message', 3000, (m) => m.id === 'b-1');
  const dm = nextEvent(bob.socket, 'new-message', 3000, (m) => m.id === 'd-1');
  await expectOk(room.socket, 'send-message', { sessionId, to: 'all', encrypted: 'c', clientMessageId: 'g-1' }, assert);
  await expectOk(room.socket, 'send-message', { sessionId, to: bobId, encrypted: 'c', clientMessageId: 'd-1' }, assert);
  await expectOk(room.socket, 'send-message', { sessionId, encrypted: 'c', clientMessageId: 'n-1' }, assert);
  await expectOk(bob.socket, 'send-message', { sessionId, to: 'all', encrypted: 'c', clientMessageId: 'b-1' }, assert);
  await Promise.all([arrived, dm]);

  const everyone = [...anaTabs, ...bobTabs, carol.socket];
  const seen = everyone.map((s) => collect(s, 'message-delivered'));
  const refused = (socket, senderId, ids) => expectError(socket, 'message-delivered', { sessionId, senderId, ids }, 'UNKNOWN_MESSAGE', assert);
  await refused(carol.socket, room.userId, ['d-1']); // a direct message to Bob: Carol was no recipient
  await refused(carol.socket, room.userId, ['never-sent']);
  await refused(carol.socket, room.userId, ['b-1']); // Bob's message, not Ana's
  await refused(bob.socket, bobId, ['b-1']); // his own message: no receipt to himself
  await refused(bobTabs[2], room.userId, ['never-sent', 'x-2']);
  // Bob's receipt: the ids that check out are relayed, the others dropped (the ack says which).
  const fromBob = anaTabs.map((s) => nextEvent(s, 'message-delivered', 3000, (n) => n.userId === bobId));
  const ack = await expectOk(bob.socket, 'message-delivered', { sessionId, senderId: room.userId, ids: ['d-1', 'never-sent', 'g-1', 'n-1'] }, assert);
  assert.deepEqual(ack.relayed, ['d-1', 'g-1', 'n-1']);
  for (const notice of await Promise.all(fromBob)) assert.deepEqual([notice.ids, notice.userId], [['d-1', 'g-1', 'n-1'], bobId]);
  // Carol's receipt for the message to all.
  const fromCarol = anaTabs.map((s) => nextEvent(s, 'message-delivered', 3000, (n) => n.userId === carol.ack.userId));
  await expectOk(carol.socket, 'message-delivered', { sessionId, senderId: room.userId, ids: ['g-1'] }, assert);
  await Promise.all(fromCarol);
  // Nothing else arrives anywhere: one event per receipt on each of Ana's sockets, none elsewhere.
  await Promise.all(everyone.map((s) => noEvent(s, 'message-delivered', 500)));
  assert.deepEqual(seen.map((list) => list.length), [...anaTabs.map(() => 2), ...bobTabs.map(() => 0), 0]);
});
