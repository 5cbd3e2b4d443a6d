// What the server keeps and for how long: history replays held against the replay
// budget (REPLAY_BYTES_*), sessions nobody used expiring after UNUSED_SESSION_TTL_SECS,
// and credentials stored in Redis under a key Redis does not hold (STORE_DIGEST_KEY).

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import {
  startServer, cleanup, connect, expectOk, emitAck, nextEvent, uid, createSession, joinAs,
} from './lib/server.mjs';

after(cleanup);

const from = (ip) => ({ extraHeaders: { 'x-forwarded-for': ip } });

test('REPLAY_BYTES_PER_IP: an address\'s history replays beyond its budget wait a heartbeat round; another address joins at once', async () => {
  const srv = await startServer({
    TRUSTED_PROXIES: '127.0.0.1',
    // One heartbeat round (what a replay is held for) is 2 s.
    PING_INTERVAL_SECS: '1', PING_TIMEOUT_SECS: '1',
    REPLAY_BYTES_PER_IP: String(1500 * 1000),
  });
  const creator = await connect(srv.url, from('203.0.113.7'));
  const sessionId = uid('s');
  const authKey = uid('k');
  await expectOk(creator, 'join-session', { sessionId, userId: uid('c'), isCreator: true, authKey, publicKey: 'pk' }, assert);
  await expectOk(creator, 'send-message', { sessionId, encrypted: 'x'.repeat(1000 * 1000) }, assert);
  const link = `${sessionId}:${authKey}`;

  const timedJoin = async (ip) => {
    const s = await connect(srv.url, from(ip));
    const history = nextEvent(s, 'messages-history', 10000);
    const started = Date.now();
    const ack = await emitAck(s, 'join-session', { sessionId: link, userId: uid('j'), publicKey: 'pk' }, 10000);
    assert.equal(ack.ok, true, JSON.stringify(ack));
    assert.equal((await history).length, 1, 'the whole history arrives');
    return Date.now() - started;
  };
  const first = await timedJoin('203.0.113.7');
  // 1 MB is held for this address until the round ends: a second 1 MB waits for it.
  const second = await timedJoin('203.0.113.7');
  assert.ok(second >= 1000, `the second replay waited for the first's round (${second} ms, first ${first} ms)`);
  // Another address has its own budget.
  const other = await timedJoin('198.51.100.20');
  assert.ok(other < 1000, `another address's replay did not wait (${other} ms)`);
});

test('UNUSED_SESSION_TTL_SECS: a session only its creator joined expires soon after it empties; a used one does not', async () => {
  const srv = await startServer({
    UNUSED_SESSION_TTL_SECS: '1', SESSION_TTL_SECS: '600', REAPER_INTERVAL_SECS: '1',
    // The probes below use a wrong key on purpose.
    JOIN_FAILURES_PER_SESSION: '0', IP_JOIN_FAILURES_PER_MIN: '0',
  });
  const unused = await createSession(srv.url, { mode: 'private' }, assert);
  const used = await createSession(srv.url, { mode: 'private' }, assert);
  const bob = await joinAs(srv.url, used.link, uid('bob'), assert);
  for (const s of [bob.socket, unused.socket, used.socket]) s.close();

  // A wrong key tells whether a session still exists (INVALID_KEY) without joining it.
  const probe = async (room) => {
    const s = await connect(srv.url);
    const a = await emitAck(s, 'join-session', { sessionId: `${room.sessionId}:wrong`, userId: uid('p'), publicKey: 'pk' });
    s.close();
    return a.error;
  };
  // Expiry is the behaviour under test: poll until the unused session is gone.
  const started = Date.now();
  let answer = await probe(unused);
  while (answer === 'INVALID_KEY' && Date.now() - started < 15000) {
    await new Promise((r) => setTimeout(r, 200));
    answer = await probe(unused);
  }
  assert.ok(['SESSION_EXPIRED', 'SESSION_NOT_FOUND'].includes(answer), `${answer} after ${Date.now() - started} ms`);
  // The used session is still there (SESSION_TTL_SECS), for its members' return.
  assert.equal(await probe(used), 'INVALID_KEY');
  const back = await joinAs(srv.url, used.link, uid('carol'), assert);
  assert.equal(back.ack.ok, true);
});

const redisCli = promisify(execFile);

test('STORE_DIGEST_KEY: Redis holds no plain SHA-256 of a room key or password, only keyed digests', { skip: !process.env.REDIS_URL && 'needs REDIS_URL' }, async () => {
  const prefix = `dg-${uid('p')}:`;
  const srv = await startServer({ REDIS_URL: process.env.REDIS_URL, REDIS_PREFIX: prefix });
  const room = await createSession(srv.url, { mode: 'password', password: 'hunter2' }, assert);
  const { stdout } = await redisCli('redis-cli', ['-u', process.env.REDIS_URL, '-c', '--raw', 'HGETALL', `${prefix}s:{${room.sessionId}}`]);
  const lines = stdout.trim().split('\n');
  const meta = Object.fromEntries(lines.flatMap((v, i) => (i % 2 ? [] : [[v, lines[i + 1]]])));
  const sha = (s) => createHash('sha256').update(s).digest('hex');
  assert.match(meta.kh, /^[0-9a-f]{64}$/);
  assert.match(meta.ph, /^[0-9a-f]{64}$/);
  assert.notEqual(meta.ph, sha('hunter2'), 'the password digest is keyed');
  assert.notEqual(meta.kh, sha(room.authKey), 'the room key digest is keyed');
  assert.ok(!stdout.includes('hunter2') && !stdout.includes(room.authKey));
  // The keyed digest still admits the right password, and only it.
  const bob = await joinAs(srv.url, room.link, uid('bob'), assert);
  assert.equal(bob.ack.ok, true);
  const s = await connect(srv.url);
  const wrong = await emitAck(s, 'join-session', { sessionId: `${room.sessionId}:password:hunter3`, userId: uid('eve'), publicKey: 'pk' });
  assert.equal(wrong.error, 'INVALID_PASSWORD');
});

test('REDIS_URL without STORE_DIGEST_KEY: the start is refused with a way to make one', async () => {
  await assert.rejects(
    startServer({ REDIS_URL: 'redis://127.0.0.1:1', STORE_DIGEST_KEY: undefined }, { readyTimeoutMs: 5000 }),
    /STORE_DIGEST_KEY.*openssl rand -hex 32/s,
  );
});
