// Session ids cannot be enumerated faster one way than another: a failed join, a
// creator's join that creates the session, and a reservation of a taken id (409) all
// draw on one per-address budget (IP_JOIN_FAILURES_*, 30 a minute by default); an empty
// budget refuses every join and reservation from that address, nobody else's.

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  startServer, cleanup, connect, emitAck, reserve, createSession, request, uid,
} from './lib/server.mjs';

after(cleanup);

const from = (ip) => ({ extraHeaders: { 'x-forwarded-for': ip } });

test('creating sessions by creator joins probes ids: the 31st from one address is refused; others are not', async () => {
  const srv = await startServer({ TRUSTED_PROXIES: '127.0.0.1', IP_RESERVES_BURST: '1000' });
  const X = await connect(srv.url, from('203.0.113.40'));
  const outcomes = [];
  for (let i = 0; i < 40; i++) {
    const ack = await emitAck(X, 'join-session', {
      sessionId: uid('probe'), userId: 'x', isCreator: true, authKey: 'k'.repeat(16), publicKey: 'pk',
    });
    outcomes.push(ack.ok ? 'created' : ack.error);
  }
  const created = outcomes.filter((o) => o === 'created').length;
  assert.ok(created >= 30 && created <= 31, `created ${created}: ${outcomes}`);
  assert.ok(outcomes.slice(31).every((o) => o === 'RATE_LIMITED'), `${outcomes}`);
  // Reservations from that address are refused too; another address is served.
  assert.equal((await reserve(srv.url, { sessionId: uid('r'), authKey: 'k'.repeat(16) })).status, 200,
    'the test client itself (127.0.0.1, a trusted proxy without X-Forwarded-For) is another address');
  const Y = await connect(srv.url, from('203.0.113.41'));
  const ok = await emitAck(Y, 'join-session', { sessionId: uid('s'), userId: 'y', isCreator: true, authKey: 'k'.repeat(16) });
  assert.equal(ok.ok, true, JSON.stringify(ok));
});

test('reservations of taken ids count as probes: after the budget, 429 for that address', async () => {
  const srv = await startServer({ TRUSTED_PROXIES: '127.0.0.1', IP_RESERVES_BURST: '1000', IP_RESERVES_PER_SEC: '1000' });
  const taken = await createSession(srv.url, {}, assert);
  const post = (ip) => request('POST', `${srv.url}/api/reserve-session`, {
    headers: { 'x-forwarded-for': ip },
    body: { sessionId: taken.sessionId, authKey: 'x'.repeat(16) },
  });
  const codes = [];
  for (let i = 0; i < 40; i++) codes.push((await post('203.0.113.50')).status);
  const conflicts = codes.filter((c) => c === 409).length;
  assert.ok(conflicts >= 30 && conflicts <= 31, `${codes}`);
  assert.ok(codes.slice(31).every((c) => c === 429), `${codes}`);
  assert.equal((await post('203.0.113.51')).status, 409, 'another address still gets its answer');
});
