// Nothing in Redis lets its reader act (issue 22, item 4). Rooms in use (group, private
// and password rooms; members on WebSocket and on long-polling, with resume tokens, and
// one joined as the End2End Chat app does; messages to everyone and to one member), then
// every key of Redis is read back with the command of its type, and no
// transport credential (the Engine.IO sid and Socket.IO id each client got), room key,
// password or resume token may appear in it: not as sent, not Base64- or hex-encoded, not
// as its plain SHA-256.
//
// It uses REDIS_URL when set (the suite's Redis pass), else a private redis-server.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import {
  startServer, cleanup, connect, createSession, expectOk, nextEvent, uid, barrier,
} from './lib/server.mjs';
import { startRedis } from './lib/redis.mjs';
import { redisCommand } from './lib/rediscluster.mjs';

let redis; // {port, url, stop?}
before(async () => {
  if (process.env.REDIS_URL) {
    const { port, hostname } = new URL(process.env.REDIS_URL);
    assert.equal(hostname, '127.0.0.1', 'a private Redis on this machine');
    redis = { port: Number(port), url: process.env.REDIS_URL };
  } else {
    redis = await startRedis();
  }
});
after(async () => {
  await cleanup();
  await redis.stop?.();
});

/** Every key of this Redis (other tests' too, and whatever the adapter keeps) with
 *  everything it holds. */
async function dump() {
  const keys = [];
  let cursor = '0';
  do {
    const [next, batch] = await redisCommand(redis.port, ['SCAN', cursor, 'COUNT', '1000']);
    keys.push(...batch);
    cursor = next;
  } while (cursor !== '0');
  const out = new Map();
  for (const key of new Set(keys)) {
    const type = await redisCommand(redis.port, ['TYPE', key]);
    const read = {
      string: ['GET', key],
      hash: ['HGETALL', key],
      list: ['LRANGE', key, '0', '-1'],
      set: ['SMEMBERS', key],
      zset: ['ZRANGE', key, '0', '-1', 'WITHSCORES'],
      stream: ['XRANGE', key, '-', '+'],
    }[type];
    if (!read) {
      if (type === 'none') continue; // expired between SCAN and TYPE
      assert.fail(`a key of a type this dump cannot read: ${type} ${key}`);
    }
    out.set(key, { type, value: await redisCommand(redis.port, read) });
  }
  return out;
}

/** The forms in which a secret could sit in a dump without being a keyed digest. */
function forms(secret) {
  const s = String(secret);
  const b = Buffer.from(s);
  const sha = createHash('sha256').update(s).digest();
  const list = [
    s, b.toString('base64'), b.toString('base64url'), b.toString('hex'),
    sha.toString('hex'), sha.toString('base64'), sha.toString('base64url'),
  ];
  // A Base64url token's own bytes, in other encodings.
  if (/^[A-Za-z0-9_-]{20,}$/.test(s)) {
    const raw = Buffer.from(s, 'base64url');
    list.push(raw.toString('hex'), raw.toString('base64'));
  }
  return list.filter((f) => f.length >= 8);
}

test('a Redis dump of rooms in use holds no sid, key, password or resume token', async () => {
  const prefix = `dump-${uid('p')}:`;
  const srv = await startServer({ REDIS_URL: redis.url, REDIS_PREFIX: prefix, PRESENCE_GRACE_SECS: '30' });
  const secrets = []; // [what, value]
  const sockets = [];
  const keep = (what, socket) => {
    sockets.push(socket);
    secrets.push([`${what}: Engine.IO sid`, socket.io.engine.id], [`${what}: Socket.IO id`, socket.id]);
  };
  const polling = { transports: ['polling'] };
  const members = [];

  for (const mode of ['group', 'private', 'password']) {
    const password = mode === 'password' ? `pw-${uid('x')}` : undefined;
    const A = await createSession(srv.url, { mode, password, publicKey: 'pk-ana' }, assert);
    keep(`${mode} creator`, A.socket);
    secrets.push([`${mode} authKey`, A.authKey], [`${mode} creator token`, A.resumeToken]);
    if (password) secrets.push([`${mode} password`, password], [`${mode} link credential`, A.pw]);
    // Bob over long-polling, with an ack (so a resume token).
    const bob = uid('bob');
    const B = await connect(srv.url, polling);
    assert.equal(B.io.engine.transport.name, 'polling');
    const ack = await expectOk(B, 'join-session', { sessionId: A.link, userId: bob, publicKey: 'pk-bob', displayName: 'Bob' }, assert);
    assert.equal(typeof ack.resumeToken, 'string');
    keep(`${mode} Bob (polling)`, B);
    secrets.push([`${mode} Bob's token`, ack.resumeToken]);
    members.push(bob);
    // A second tab of Bob's on WebSocket, with his token.
    const B2 = await connect(srv.url, { transports: ['websocket'] });
    await expectOk(B2, 'join-session', { sessionId: A.link, userId: bob, resumeToken: ack.resumeToken, publicKey: null }, assert);
    keep(`${mode} Bob's second tab (websocket)`, B2);
    await expectOk(A.socket, 'send-message', { sessionId: A.sessionId, to: bob, encrypted: `cipher-to-bob-${mode}` }, assert);
    await expectOk(B, 'send-message', { sessionId: A.sessionId, to: 'all', encrypted: `cipher-all-${mode}` }, assert);
    if (mode === 'group') {
      // Carol as the End2End Chat app joins: no ack, so no token; on polling.
      const carol = uid('carol');
      const C = await connect(srv.url, polling);
      const inside = nextEvent(C, 'public-keys-updated', 3000, (keys) => keys.some((k) => k.userId === carol));
      C.emit('join-session', { sessionId: A.link, userId: carol, publicKey: 'pk-carol', displayName: 'Carol' });
      await inside;
      keep('group Carol (the app, polling)', C);
      members.push(carol);
    }
  }
  await Promise.all(sockets.map((s) => barrier(s)));
  for (const [what, value] of secrets) {
    assert.equal(typeof value, 'string', what);
    assert.ok(value.length >= 8, `${what} looks like a secret: ${value}`);
  }

  const data = await dump();
  const text = [...data].map(([k, { value }]) => `${k}\n${JSON.stringify(value)}`).join('\n');
  // The dump read what is there: members, messages, and one bound connection per socket.
  assert.ok(data.size >= 20, `${data.size} keys`);
  for (const user of members) assert.ok(text.includes(user), `the dump holds member ${user}`);
  for (const mode of ['group', 'private', 'password']) {
    assert.ok(text.includes(`cipher-to-bob-${mode}`) && text.includes(`cipher-all-${mode}`), `messages of the ${mode} room`);
  }
  const bound = [...data].filter(([k, v]) => k.startsWith(`${prefix}s:{`) && k.endsWith(':c') && v.type === 'hash');
  const connections = bound.reduce((n, [, v]) => n + v.value.length / 2, 0);
  assert.equal(connections, sockets.length, 'every socket is bound in its session');
  const found = [];
  for (const [what, secret] of secrets) {
    for (const form of forms(secret)) {
      for (const [key, { value }] of data) {
        if (`${key}\n${JSON.stringify(value)}`.includes(form)) found.push(`${what} as ${form} in ${key}`);
      }
    }
  }
  assert.deepEqual(found, []);
  for (const [, { value }] of bound) {
    for (let i = 0; i < value.length; i += 2) assert.match(value[i], /^[0-9a-f]{64}$/, 'a connection is named by a keyed digest');
  }
});
