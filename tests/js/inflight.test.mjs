// Many sockets of one address sending large messages at once: their bytes waiting to be
// handled are capped per address and in all (INFLIGHT_BYTES_*); beyond it sends are
// refused RATE_LIMITED in the ack, never a crash, while a pair from another address talks.

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  startServer, cleanup, connect, expectOk, nextEvent, emitAck, uid,
} from './lib/server.mjs';

after(cleanup);

const from = (ip) => ({ extraHeaders: { 'x-forwarded-for': ip } });

async function room(url, ip) {
  const A = await connect(url, from(ip));
  const sessionId = uid('s');
  const authKey = uid('k');
  await expectOk(A, 'join-session', { sessionId, userId: uid('a'), isCreator: true, authKey, publicKey: 'pk' }, assert);
  return { A, sessionId, link: `${sessionId}:${authKey}` };
}

test('INFLIGHT_BYTES_PER_IP: 12 sockets of one address each send 1 MB at once; the excess is RATE_LIMITED; another address talks', async () => {
  const srv = await startServer({
    TRUSTED_PROXIES: '127.0.0.1',
    INFLIGHT_BYTES_PER_IP: String(4 * 1024 * 1024),
    // Slow handling (each second message waits ~4 s), so that the bytes are still
    // waiting when the others arrive, however slowly a loaded machine sends them.
    SOCKET_BYTES_PER_SEC: '250000', SOCKET_BYTES_BURST: '1100000',
  });
  const honest = await room(srv.url, '198.51.100.50');
  const B = await connect(srv.url, from('198.51.100.51'));
  await expectOk(B, 'join-session', { sessionId: honest.link, userId: uid('b'), publicKey: 'pk' }, assert);

  const flooders = [];
  for (let i = 0; i < 12; i++) flooders.push(await room(srv.url, '203.0.113.9'));
  const big = 'x'.repeat(1000 * 1000);
  // Two each: the second waits (paced) behind the first, holding its bytes.
  const acks = await Promise.all(flooders.flatMap((f) => [1, 2].map(() => emitAck(f.A, 'send-message', {
    sessionId: f.sessionId, encrypted: big,
  }, 20000))));
  const ok = acks.filter((a) => a.ok).length;
  const limited = acks.filter((a) => a.error === 'RATE_LIMITED').length;
  assert.equal(ok + limited, acks.length, JSON.stringify(acks.filter((a) => !a.ok && a.error !== 'RATE_LIMITED')));
  assert.ok(limited > 0, 'the address went over its in-flight budget');
  assert.ok(ok >= 4, `some were admitted: ${ok}`);

  const got = nextEvent(B, 'new-message');
  await expectOk(honest.A, 'send-message', { sessionId: honest.sessionId, encrypted: 'hello' }, assert);
  assert.equal((await got).encrypted, 'hello');
  // Once the bytes are handled, the address may send again.
  await expectOk(flooders[0].A, 'send-message', { sessionId: flooders[0].sessionId, encrypted: 'later' }, assert);
});
