// Binary attachments: socket.io clients may put a Buffer or ArrayBuffer inside a message.
// They are relayed intact (live, across nodes on Redis, and in history); the bytes of a
// binary originalContent come back to the sender only.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  startServer, cleanup, connect, collect, nextEvent, createSession, joinAs, expectOk, uid,
} from './lib/server.mjs';

let nodes;
before(async () => {
  // On Redis, two nodes on one prefix: the message crosses nodes.
  const env = process.env.REDIS_URL ? { REDIS_PREFIX: `test-${uid('p')}:` } : {};
  const a = await startServer(env);
  nodes = process.env.REDIS_URL ? [a, await startServer(env)] : [a, a];
});
after(cleanup);

test('a Buffer inside encrypted is relayed as bytes, live and in history; originalContent bytes reach the sender only', async () => {
  const [one, two] = nodes;
  const room = await createSession(one.url, {}, assert);
  const { socket: B } = await joinAs(two.url, room.link, uid('bob'), assert);
  const bytes = Buffer.from([0, 1, 2, 255, 254, 0]);
  const got = nextEvent(B, 'new-message');
  const echo = nextEvent(room.socket, 'message-sent');
  await expectOk(room.socket, 'send-message', {
    sessionId: room.sessionId,
    to: 'all',
    encrypted: { iv: 'iv-text', data: bytes, parts: [Buffer.from('x'), 'y'] },
    originalContent: Buffer.from('plain words'),
  }, assert);

  const m = await got;
  assert.ok(Buffer.isBuffer(m.encrypted.data), `data should be bytes, got ${JSON.stringify(m.encrypted.data)}`);
  assert.deepEqual([...m.encrypted.data], [...bytes]);
  assert.equal(m.encrypted.iv, 'iv-text');
  assert.deepEqual(m.encrypted.parts[0], Buffer.from('x'));
  assert.equal(m.encrypted.parts[1], 'y');
  assert.equal(m.originalContent, undefined, 'plaintext bytes must not reach others');

  const sent = await echo;
  assert.ok(Buffer.isBuffer(sent.originalContent), 'the sender gets its own bytes back');
  assert.equal(sent.originalContent.toString(), 'plain words');
  assert.deepEqual([...sent.encrypted.data], [...bytes]);

  // A later joiner reads the same bytes from history (sent before its join's ack).
  const C = await connect(two.url);
  const history = collect(C, 'messages-history');
  await expectOk(C, 'join-session', { sessionId: room.link, userId: uid('cy'), publicKey: 'pk-cy' }, assert);
  assert.equal(history.length, 1);
  const stored = history.flat().find((e) => e.encrypted?.iv === 'iv-text');
  assert.ok(stored, 'the message is in history');
  assert.deepEqual([...stored.encrypted.data], [...bytes]);
  assert.equal(stored.originalContent, undefined);
});
