// Rooms of an in-memory node survive its restart (docs/operations.md, "Restarts: what
// survives what"): a crash (SIGKILL) keeps what the last periodic snapshot holds; a
// snapshot that cannot be used never stops the start; the folder is owner-only and holds
// no credential in clear. The graceful stop and start with the End2End Chat app's
// reconnect is in legacy.test.mjs ("server restart").

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import {
  startServer, cleanup, connect, createSession, joinAs, expectOk, emitAck, nextEvent, noEvent, health,
} from './lib/server.mjs';

after(cleanup);

const dataDir = () => mkdtempSync(path.join(os.tmpdir(), 'blindrelay-restart-'));

/** Resolves once `server` has logged `n` more lines matching `re` than `from`. */
async function logged(server, re, from, n = 1, timeoutMs = 10000) {
  const count = () => server.output().split('\n').filter((l) => re.test(l)).length;
  const deadline = Date.now() + timeoutMs;
  while (count() < from + n) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${re} in:\n${server.output().slice(-3000)}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}
const countOf = (server, re) => server.output().split('\n').filter((l) => re.test(l)).length;

/** Kills `server` with SIGKILL: no drain, no snapshot at stop. */
async function kill9(server) {
  server.stopped = true;
  server.child.kill('SIGKILL');
  return server.exited;
}

test('kill -9: rooms come back as the last periodic snapshot holds them; members resume silently', async () => {
  const DATA_DIR = dataDir();
  // Periodic snapshots every 2 s (of a store that changed), and their log lines (debug)
  // to synchronise on.
  const env = { DATA_DIR, SNAPSHOT_INTERVAL_SECS: '2', RUST_LOG: 'info,blindrelay::store::snapshot=debug' };
  const s1 = await startServer(env);
  const alice = await createSession(s1.url, { userId: 'alice', mode: 'private' }, assert);
  const bob = await joinAs(s1.url, alice.link, 'bob', assert);
  await expectOk(alice.socket, 'send-message', { sessionId: alice.sessionId, encrypted: 'c1', to: 'bob', clientMessageId: 'kept' }, assert);
  const written = /snapshot written/;
  // A write that ends after the message was stored may have begun before it: a second
  // change after that write (any member's request counts) makes sure of one more, which
  // began after the message.
  await logged(s1, written, countOf(s1, written));
  await expectOk(bob.socket, 'get-public-keys', { sessionId: alice.sessionId }, assert);
  await logged(s1, written, countOf(s1, written));
  await expectOk(alice.socket, 'send-message', { sessionId: alice.sessionId, encrypted: 'c2', to: 'bob', clientMessageId: 'after' }, assert);
  const killed = await kill9(s1);
  assert.equal(killed.signal, 'SIGKILL');

  const s2 = await startServer(env);
  assert.match(s2.output(), /rooms restored from the snapshot.*rooms=1/);
  // Bob's client resumes with its token (no key needed), as after a network blip.
  const b2 = await connect(s2.url);
  const history = nextEvent(b2, 'messages-history');
  const back = await expectOk(b2, 'join-session', {
    sessionId: alice.sessionId, userId: 'bob', publicKey: null, resumeToken: bob.ack.resumeToken,
  }, assert);
  assert.equal(back.chatMode, 'private');
  const ids = (await history).map((m) => m.id);
  assert.ok(ids.includes('kept'), `the message before the last snapshot is kept: ${ids}`);
  assert.ok(!ids.includes('after'), 'the one after it is lost, as documented');
  // Alice comes back too: Bob hears no "joined" for her, and the private room is still
  // theirs alone.
  const noJoin = noEvent(b2, 'user-joined', 500);
  const a2 = await connect(s2.url);
  await expectOk(a2, 'join-session', {
    sessionId: alice.sessionId, userId: 'alice', publicKey: null, isCreator: true,
    authKey: alice.authKey, resumeToken: alice.resumeToken,
  }, assert);
  await noJoin;
  const third = await connect(s2.url);
  const full = await emitAck(third, 'join-session', { sessionId: alice.link, userId: 'carol', publicKey: 'pk-carol' });
  assert.equal(full.error, 'SESSION_FULL');
  const atBob = nextEvent(b2, 'new-message');
  await expectOk(a2, 'send-message', { sessionId: alice.sessionId, encrypted: 'c3', to: 'bob', clientMessageId: 'again' }, assert);
  assert.equal((await atBob).id, 'again');
});

test('a snapshot that cannot be used: the node starts empty, says why, and keeps the file aside', async () => {
  const DATA_DIR = dataDir();
  const cases = [
    ['not ours', Buffer.from('{"sessions": []}'), /is not a blindrelay snapshot/],
    ['truncated', Buffer.concat([Buffer.from('blindrelay-snap\n'), Buffer.alloc(10)]), /truncated/],
  ];
  for (const [what, bytes, says] of cases) {
    writeFileSync(path.join(DATA_DIR, 'sessions.snapshot'), bytes);
    const s = await startServer({ DATA_DIR });
    assert.match(s.output(), says, what);
    assert.match(s.output(), /starting with no rooms/, what);
    assert.equal((await health(s.url)).status, 'ok', what);
    const aside = readdirSync(DATA_DIR).filter((f) => f.startsWith('sessions.snapshot.refused-'));
    assert.equal(aside.length, 1, `${what}: moved aside (${readdirSync(DATA_DIR)})`);
    assert.deepEqual(readFileSync(path.join(DATA_DIR, aside[0])), bytes, `${what}: kept as it was`);
    await s.stop();
    // The stop wrote a good (empty) snapshot in its place: the next case starts afresh.
    for (const f of readdirSync(DATA_DIR)) rmSync(path.join(DATA_DIR, f));
  }
  // A future format version.
  const s1 = await startServer({ DATA_DIR });
  await s1.stop();
  const file = path.join(DATA_DIR, 'sessions.snapshot');
  const good = readFileSync(file);
  const future = Buffer.from(good);
  future.writeUInt32LE(99, 16);
  writeFileSync(file, future);
  const s2 = await startServer({ DATA_DIR });
  assert.match(s2.output(), /format version 99; this build reads version 1/);
  // Another digest key: its rooms would admit nobody.
  await s2.stop();
  const s3 = await startServer({ DATA_DIR, STORE_DIGEST_KEY: 'another-digest-key-0123456789abcdef' });
  assert.match(s3.output(), /written under another digest key/);
});

test('the data folder is owner-only, and the snapshot holds no key, password or plaintext', async () => {
  const DATA_DIR = dataDir();
  // No STORE_DIGEST_KEY: the node makes its own, beside the snapshot.
  const s = await startServer({ DATA_DIR, STORE_DIGEST_KEY: undefined });
  const password = 'correct-horse-battery-staple';
  const room = await createSession(s.url, { userId: 'alice', mode: 'password', password }, assert);
  const joiner = await joinAs(s.url, room.link, 'bob', assert);
  const plaintext = 'meet me at the usual place at nine';
  await expectOk(room.socket, 'send-message', {
    sessionId: room.sessionId, encrypted: 'ciphertext-only', originalContent: plaintext, clientMessageId: 'm1',
  }, assert);
  await s.stop();
  assert.match(s.output(), /snapshot written at stop rooms=1/);
  assert.equal(statSync(DATA_DIR).mode & 0o777, 0o700);
  for (const f of ['sessions.snapshot', 'digest.key']) {
    assert.equal(statSync(path.join(DATA_DIR, f)).mode & 0o777, 0o600, f);
  }
  const snapshot = readFileSync(path.join(DATA_DIR, 'sessions.snapshot')).toString('latin1');
  assert.ok(snapshot.includes('ciphertext-only'), 'the history is in it');
  for (const secret of [password, room.authKey, room.authKey.split(':')[0], plaintext,
    room.resumeToken, joiner.ack.resumeToken]) {
    assert.ok(!snapshot.includes(secret), `the snapshot does not hold ${secret.slice(0, 12)}...`);
  }
  // And the same key (the one kept in the folder) admits with the password after a start.
  const again = await startServer({ DATA_DIR, STORE_DIGEST_KEY: undefined });
  assert.match(again.output(), /rooms restored from the snapshot.*rooms=1/);
  await joinAs(again.url, room.link, 'carol', assert);
});
