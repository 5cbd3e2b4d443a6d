// UNAVAILABLE means "nothing was changed", even when Redis stalls and then resumes: the
// operations the node gave up on are fenced and never applied (lua/common.lua). Redis is
// frozen with SIGSTOP mid-send and mid-join; after SIGCONT, the outcomes are counted.
// Starts its own redis-server (so it runs in the in-memory pass only).

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startRedis } from './lib/redis.mjs';
import {
  startServer, cleanup, connect, createSession, expectOk, emitAck, collect, request, uid,
} from './lib/server.mjs';

let redis;
let srv;
before(async () => {
  redis = await startRedis();
  srv = await startServer({ REDIS_URL: redis.url, REDIS_PREFIX: `fence-${uid('p')}:` });
});
after(async () => {
  redis.proc?.child.kill('SIGCONT');
  await cleanup();
  await redis.stop();
});

async function ready() {
  const deadline = Date.now() + 15000;
  while (Date.now() < deadline) {
    const r = await request('GET', `${srv.url}/ready`).catch(() => null);
    if (r?.status === 200) return;
    await new Promise((res) => setTimeout(res, 100));
  }
  throw new Error('the node did not become ready again');
}

test('Redis frozen mid-send and mid-join: every UNAVAILABLE was true once it resumes', async () => {
  const A = await createSession(srv.url, { mode: 'group', userId: uid('ana') }, assert);
  const B = await connect(srv.url);
  const bob = uid('bob');
  await expectOk(B, 'join-session', { sessionId: A.link, userId: bob, publicKey: 'pk-b' }, assert);
  const gotByBob = collect(B, 'new-message');

  // Freeze Redis for 10 s: the node gives up on each operation after 2 s, answering
  // UNAVAILABLE; what it sent waits in Redis's socket and runs when Redis resumes.
  redis.proc.child.kill('SIGSTOP');
  const frozenAt = Date.now();
  const pending = [];
  for (const id of ['m1', 'm2', 'm3', 'm4']) {
    pending.push(emitAck(A.socket, 'send-message', {
      sessionId: A.sessionId, to: 'all', encrypted: `frozen ${id}`, clientMessageId: id,
    }, 20000));
    await new Promise((r) => setTimeout(r, 700)); // the freeze is what is under test
  }
  // A third person joins meanwhile, then goes.
  const C = await connect(srv.url);
  const cy = uid('cy');
  pending.push(emitAck(C, 'join-session', { sessionId: A.link, userId: cy, publicKey: 'pk-c' }, 20000));
  const outcomes = (await Promise.all(pending)).map((a) => a.error ?? 'ok');
  C.close();
  await new Promise((r) => setTimeout(r, Math.max(0, 10000 - (Date.now() - frozenAt))));
  redis.proc.child.kill('SIGCONT');
  await ready();

  const unavailable = outcomes.filter((o) => o === 'UNAVAILABLE').length;
  assert.equal(unavailable, 5, `every operation during the freeze was UNAVAILABLE: ${outcomes}`);
  // None of them happened: no message reached Bob or the history, and Cy is no member.
  await expectOk(B, 'typing', { sessionId: A.sessionId }, assert); // Bob's socket still works
  assert.deepEqual(gotByBob, []);
  const D = await connect(srv.url);
  const history = collect(D, 'messages-history');
  await expectOk(D, 'join-session', { sessionId: A.link, userId: uid('dee'), publicKey: 'pk-d' }, assert);
  assert.deepEqual(history.flat().map((m) => m.id), [], 'no message sent during the freeze is stored');
  const keys = await expectOk(A.socket, 'get-public-keys', { sessionId: A.sessionId }, assert);
  assert.ok(!keys.keys.some((k) => k.userId === cy), 'the join answered UNAVAILABLE left no member');
  // And the room works: a message now is delivered.
  await expectOk(A.socket, 'send-message', { sessionId: A.sessionId, encrypted: 'after' }, assert);
  await new Promise((r) => { if (gotByBob.length) r(); else B.once('new-message', r); });
  assert.deepEqual(gotByBob.map((m) => m.encrypted), ['after']);
});
