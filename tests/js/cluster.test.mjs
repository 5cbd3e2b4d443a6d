// Several blindrelay nodes on one real redis-server behave, to every client, as one
// server: rooms, keys, messages, history and notices cross nodes; the private-room cap
// holds under a cross-node race; a killed node's members leave the others' view within
// its lease; a Redis restart interrupts service (UNAVAILABLE) and it resumes on its own.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  startServer, cleanup, connect, nextEvent, reserve, uid, expectOk, emitAck, request,
  createSession, joinAs, noEvent, freePort,
} from './lib/server.mjs';
import { startRedis } from './lib/redis.mjs';
import { redisCommand } from './lib/rediscluster.mjs';

/** NODE_LEASE_SECS for these tests: a dead node is noticed within seconds. */
const LEASE_SECS = 2;

let redis;
before(async () => { redis = await startRedis(); });
after(async () => {
  await cleanup();
  await redis?.stop();
});

/** `n` nodes on the test Redis under a fresh key prefix: one deployment. */
function cluster(n, env = {}) {
  const prefix = `cluster-${uid('p')}:`;
  return Promise.all(Array.from({ length: n }, () => startServer({
    REDIS_URL: redis.url, REDIS_PREFIX: prefix, NODE_LEASE_SECS: String(LEASE_SECS), ...env,
  })));
}

const sortedKeys = (list) => list.map((k) => k.publicKey).sort();

test('three nodes serve one room: reserve, join, keys, messages, typing, history, leave and close cross nodes', async () => {
  const [n1, n2, n3] = await cluster(3);
  const sessionId = uid('room');
  const authKey = uid('key');
  const r = await reserve(n1.url, { sessionId, authKey, chatMode: 'group' });
  assert.equal(r.status, 200, r.text);
  assert.equal((await reserve(n3.url, { sessionId, authKey: 'other' })).status, 409,
    'a reservation made through node 1 exists for node 3');

  // The creator joins through node 2; a member joins by link through node 3.
  const alice = await connect(n2.url);
  const ack = await expectOk(alice, 'join-session', {
    sessionId, userId: 'alice', displayName: 'Alice', publicKey: 'pk-alice', isCreator: true, authKey,
  }, assert);
  assert.equal(ack.isCreator, true);
  const link = `${sessionId}:${authKey}`;
  const bobJoined = nextEvent(alice, 'user-joined');
  const keysAtAlice = nextEvent(alice, 'public-keys-updated', 3000, (k) => k.length === 2);
  const bob = await connect(n3.url);
  await expectOk(bob, 'join-session', {
    sessionId: link, userId: 'bob', displayName: 'Bob', publicKey: 'pk-bob',
  }, assert);
  assert.equal((await bobJoined).userId, 'bob');
  assert.deepEqual(sortedKeys(await keysAtAlice), ['pk-alice', 'pk-bob']);

  // Messages, both ways.
  const atAlice = nextEvent(alice, 'new-message');
  await expectOk(bob, 'send-message', { sessionId, encrypted: 'c1-bob', clientMessageId: 'm1' }, assert);
  const m1 = await atAlice;
  assert.deepEqual([m1.id, m1.from, m1.encrypted, m1.senderDisplayName], ['m1', 'bob', 'c1-bob', 'Bob']);
  const atBob = nextEvent(bob, 'new-message');
  await expectOk(alice, 'send-message', { sessionId, encrypted: 'c2-alice', clientMessageId: 'm2' }, assert);
  assert.equal((await atBob).encrypted, 'c2-alice');

  // Typing and a new key, node 3 -> node 2 and node 2 -> node 3.
  const typing = nextEvent(alice, 'user-typing');
  await expectOk(bob, 'typing', { sessionId }, assert);
  assert.deepEqual(await typing, { userId: 'bob', displayName: 'Bob' });
  const rekeyed = nextEvent(bob, 'public-keys-updated', 3000, (k) => k.some((e) => e.publicKey === 'pk-alice-2'));
  await expectOk(alice, 'save-public-key', { sessionId, publicKey: 'pk-alice-2' }, assert);
  assert.deepEqual(sortedKeys(await rekeyed), ['pk-alice-2', 'pk-bob']);

  // Carol joins through node 1, which neither writer touched: history comes from Redis.
  const carol = await connect(n1.url);
  const history = nextEvent(carol, 'messages-history');
  await expectOk(carol, 'join-session', { sessionId: link, userId: 'carol', publicKey: 'pk-carol' }, assert);
  assert.deepEqual((await history).map((m) => [m.id, m.from, m.encrypted]),
    [['m1', 'bob', 'c1-bob'], ['m2', 'alice', 'c2-alice']]);

  // A message to one member reaches that member only, across nodes.
  const toCarol = nextEvent(carol, 'new-message');
  const notBob = noEvent(bob, 'new-message');
  await expectOk(alice, 'send-message', { sessionId, to: 'carol', encrypted: 'c3-for-carol' }, assert);
  const m3 = await toCarol;
  assert.equal(m3.encrypted, 'c3-for-carol');
  assert.equal(m3.originalContent, '🔒', 'a copy to one member carries the placeholder across nodes too');
  await notBob;

  // A download notice, node 1 -> node 2: the downloader's stored name (none: its userId).
  const notice = nextEvent(alice, 'download-notification');
  await expectOk(carol, 'file-downloaded', { sessionId, downloadedBy: 'Carol', senderId: 'alice', fileName: 'f.png', timestamp: 9 }, assert);
  assert.deepEqual(await notice, { downloadedBy: 'carol', userId: 'carol', fileName: 'f.png', timestamp: 9 });

  // Carol leaves through node 1: nodes 2 and 3 hear it.
  const leftAtAlice = nextEvent(alice, 'user-left');
  const leftAtBob = nextEvent(bob, 'user-left');
  await expectOk(carol, 'leave-session', { sessionId }, assert);
  assert.equal((await leftAtAlice).userId, 'carol');
  assert.equal((await leftAtBob).userId, 'carol');

  // The creator closes through node 2: node 3 hears it, and the room is gone everywhere.
  const closed = nextEvent(bob, 'session-closed');
  await expectOk(alice, 'close-session', { sessionId }, assert);
  assert.equal((await closed).sessionId, sessionId);
  const late = await connect(n1.url);
  const refused = await emitAck(late, 'join-session', { sessionId: link, userId: 'dave' });
  assert.equal(refused.error, 'SESSION_NOT_FOUND');
});

test('large messages cross nodes without filling Redis\'s pub/sub buffers: a node is never cut off for them', async () => {
  // Redis cuts off a subscriber whose unread output passes client-output-buffer-limit
  // pubsub (32 MiB by default: two of the End2End Chat app's photos). Here the limit is
  // 1 MiB, so one 1.5 MB message published as it is would cut node 2 off at once, and
  // what its member sent while the link was down would be refused.
  const limits = await redisCommand(redis.port, ['CONFIG', 'GET', 'client-output-buffer-limit']);
  await redisCommand(redis.port, ['CONFIG', 'SET', 'client-output-buffer-limit', 'pubsub 1mb 256kb 5']);
  try {
    const [n1, n2] = await cluster(2);
    const { sessionId, link, socket: alice } = await createSession(n1.url, { userId: 'alice' }, assert);
    const { socket: bob } = await joinAs(n2.url, link, 'bob', assert);
    const big = (i) => `${i}`.padEnd(1.5e6, 'x');
    const seen = [];
    bob.on('new-message', (m) => seen.push(m));
    // Three back to back without acks, as the app sends photos; then one from Bob.
    for (let i = 0; i < 3; i += 1) alice.emit('send-message', { sessionId, encrypted: big(i), clientMessageId: `big-${i}` });
    // Bob's reply reaching Alice says nothing of what is still on its way to Bob: the
    // last message sent to him is what says all before it arrived (or was lost).
    const lastAtBob = nextEvent(bob, 'new-message', 20000, (m) => m.id === 'small');
    const fromBob = nextEvent(alice, 'new-message', 20000);
    await expectOk(alice, 'send-message', { sessionId, encrypted: 'small', clientMessageId: 'small' }, assert);
    await expectOk(bob, 'send-message', { sessionId, encrypted: 'reply', clientMessageId: 'reply' }, assert);
    assert.equal((await fromBob).encrypted, 'reply');
    await lastAtBob;
    assert.deepEqual(seen.map((m) => [m.id, m.encrypted.length, m.encrypted[0]]),
      [['big-0', 1.5e6, '0'], ['big-1', 1.5e6, '1'], ['big-2', 1.5e6, '2'], ['small', 5, 's']],
      'every message reached Bob, in order, whole');
    for (const n of [n1, n2]) assert.doesNotMatch(n.output(), /pub\/sub is back/, 'no node lost its link');
  } finally {
    await redisCommand(redis.port, ['CONFIG', 'SET', 'client-output-buffer-limit', limits[1]]);
  }
});

test('the private-room cap holds when six joiners race through three nodes', async () => {
  const nodes = await cluster(3);
  for (let round = 0; round < 5; round += 1) {
    const { link } = await createSession(nodes[0].url, { mode: 'private' }, assert);
    const sockets = await Promise.all(nodes.flatMap((n) => [connect(n.url), connect(n.url)]));
    const acks = await Promise.all(sockets.map((s, i) => emitAck(s, 'join-session', {
      sessionId: link, userId: `racer-${i}`, publicKey: `pk-${i}`,
    })));
    assert.equal(acks.filter((a) => a.ok).length, 1, `round ${round}: ${JSON.stringify(acks)}`);
    assert.deepEqual([...new Set(acks.filter((a) => !a.ok).map((a) => a.error))], ['SESSION_FULL']);
    for (const s of sockets) s.close();
  }
});

test('a node killed with SIGKILL: its members leave the others\' view within the lease', async () => {
  const [n1, n2, n3] = await cluster(3);
  const c = await createSession(n1.url, { userId: 'alice' }, assert);
  const { socket: bob } = await joinAs(n2.url, c.link, 'bob', assert);
  await joinAs(n3.url, c.link, 'carol', assert, {}, { reconnection: false });

  const bound = (LEASE_SECS * 2 + 1) * 1000;
  const left = nextEvent(c.socket, 'user-left', bound, (e) => e.userId === 'carol');
  const keys = nextEvent(bob, 'public-keys-updated', bound, (k) => !k.some((e) => e.userId === 'carol'));
  n3.stopped = true; // an expected death: the harness stays quiet about it
  const killedAt = Date.now();
  n3.child.kill('SIGKILL');
  await left;
  const tookMs = Date.now() - killedAt;
  assert.deepEqual(sortedKeys(await keys), [`pk-alice`, 'pk-bob']);
  assert.ok(tookMs <= LEASE_SECS * 2000, `noticed after ${tookMs} ms`);

  // The survivors keep talking.
  const atBob = nextEvent(bob, 'new-message');
  await expectOk(c.socket, 'send-message', { sessionId: c.sessionId, encrypted: 'still-here' }, assert);
  assert.equal((await atBob).encrypted, 'still-here');
});

test('Redis restarted: events answer UNAVAILABLE while it is down, then service resumes on its own', async () => {
  const [n1, n2] = await cluster(2);
  const c = await createSession(n1.url, { userId: 'alice' }, assert);
  const { socket: bob } = await joinAs(n2.url, c.link, 'bob', assert);

  await redis.stop();
  const during = await emitAck(bob, 'send-message', { sessionId: c.sessionId, encrypted: 'x', clientMessageId: 'during' }, 15000);
  assert.equal(during.ok, false);
  assert.equal(during.error, 'UNAVAILABLE');
  const notReady = await request('GET', `${n2.url}/ready`);
  assert.equal(notReady.status, 503, notReady.text);
  assert.equal((await request('GET', `${n2.url}/health`)).status, 200, 'the process stays alive');

  await redis.start();
  // The message sent after the restart reaches Alice live, or, when it was published
  // before her node had resubscribed, in the history her node sends again once its
  // pub/sub link is back.
  const reachedAlice = new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('message "after" never reached Alice')), 30000);
    const done = (how) => { clearTimeout(timer); resolve(how); };
    c.socket.on('new-message', (m) => { if (m.id === 'after') done('live'); });
    c.socket.on('messages-history', (h) => { if (h.some((m) => m.id === 'after')) done('history'); });
  });
  // Recovery is the behaviour under test: retry, bounded, until the store answers.
  const deadline = Date.now() + 20000;
  let ack;
  for (;;) {
    ack = await emitAck(bob, 'send-message', { sessionId: c.sessionId, encrypted: 'back', clientMessageId: 'after' }, 15000);
    if (ack.ok || Date.now() > deadline) break;
    assert.equal(ack.error, 'UNAVAILABLE');
    await new Promise((r) => setTimeout(r, 250));
  }
  assert.equal(ack.ok, true, JSON.stringify(ack));
  await reachedAlice;
  assert.equal((await request('GET', `${n2.url}/ready`)).status, 200);
  // Each node finds its link back at its own keepalive (within a second of the other's):
  // Alice may hear "after" live on n1 before n1 has marked its link up. Both must be
  // ready again on their own, within a bound.
  const readyBy = Date.now() + 10000;
  while ((await request('GET', `${n1.url}/ready`)).status !== 200) {
    assert.ok(Date.now() < readyBy, 'node 1 ready again after the restart');
    await new Promise((r) => setTimeout(r, 100));
  }
  // New rooms work too.
  const fresh = await createSession(n2.url, {}, assert);
  await joinAs(n1.url, fresh.link, 'zed', assert);
});

test('REDIS_URL that cannot be reached: a clear error and a non-zero exit at start', async () => {
  const port = await freePort(); // nobody listens there
  await assert.rejects(
    startServer({ REDIS_URL: `redis://127.0.0.1:${port}` }, { readyTimeoutMs: 15000 }),
    (e) => /exited early \(\{"code":1/.test(e.message) && /cannot reach Redis/.test(e.message),
  );
});
