// No log level prints a secret: with RUST_LOG=trace, a tagged value in every field that
// carries one (room key, password, ciphertext, plaintext, wrapped group key) and the
// Engine.IO session id (the polling transport's credential) never reach the server's
// output. Runs in memory, and on Redis in the suite's Redis pass.

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  startServer, cleanup, connect, reserve, expectOk, nextEvent, uid,
} from './lib/server.mjs';

after(cleanup);

test('RUST_LOG=trace: no key, password, ciphertext, plaintext or Engine.IO sid in the logs', async () => {
  const srv = await startServer({ RUST_LOG: 'trace' });
  const tag = (what) => `SECRET${what}${uid('t').slice(2)}`;
  const secrets = {
    key: tag('KEY'),
    password: tag('PW'),
    pkey: tag('PRIV'),
    cipher: tag('CIPHER'),
    plain: tag('PLAIN'),
    groupKey: tag('GROUPKEY'),
  };
  // A password room reserved over HTTP, the creator on WebSocket, a joiner on polling.
  const room = uid('room');
  const password = Buffer.from(secrets.password).toString('base64');
  const authKey = `${secrets.key}:${password}`;
  assert.equal((await reserve(srv.url, { sessionId: room, authKey, chatMode: 'password' })).status, 200);
  const A = await connect(srv.url, { transports: ['websocket'] });
  await expectOk(A, 'join-session', { sessionId: room, userId: 'alice', isCreator: true, authKey, publicKey: 'pk-a' }, assert);
  const B = await connect(srv.url, { transports: ['polling'] });
  const sids = [A.io.engine.id, B.io.engine.id];
  await expectOk(B, 'join-session', { sessionId: `${room}:password:${password}`, userId: 'bob', publicKey: 'pk-b' }, assert);
  // A private room, joined with the key in sessionId.
  const priv = uid('priv');
  const C = await connect(srv.url, { transports: ['polling'] });
  sids.push(C.io.engine.id);
  await expectOk(C, 'join-session', { sessionId: `${priv}:${secrets.pkey}`, userId: 'cy', isCreator: true, chatMode: 'private', publicKey: 'pk-c' }, assert);

  const got = nextEvent(B, 'new-message');
  await expectOk(A, 'send-message', { sessionId: room, to: 'bob', encrypted: secrets.cipher, originalContent: secrets.plain }, assert);
  assert.equal((await got).encrypted, secrets.cipher);
  const fromB = nextEvent(A, 'new-message');
  await expectOk(B, 'send-message', { sessionId: `${room}:password:${password}`, to: 'alice', encrypted: { c: secrets.cipher }, originalContent: secrets.plain }, assert);
  await fromB;
  // Refused events are logged too: their payloads must not be.
  await B.timeout(3000).emitWithAck('set-session-key', { sessionId: room, encryptedKeys: { bob: secrets.groupKey } });
  await B.timeout(3000).emitWithAck('join-session', { sessionId: `${room}:password:${Buffer.from('wrong').toString('base64')}${secrets.password}`, userId: 'bob2' });
  await A.timeout(3000).emitWithAck('join-session', { sessionId: `${priv}:${secrets.key}`, userId: 'alice' });

  await srv.stop();
  const out = srv.output();
  assert.ok(out.length > 0, 'the server logged something');
  for (const [what, value] of Object.entries(secrets)) {
    assert.ok(!out.includes(value), `${what} reached the logs`);
  }
  assert.ok(!out.includes(password), 'the password (as the app encodes it) reached the logs');
  for (const sid of sids) assert.ok(!out.includes(sid), `an Engine.IO sid (${sid}) reached the logs`);
  assert.ok(!out.includes(room) && !out.includes(priv), 'a session id reached the logs');
});
