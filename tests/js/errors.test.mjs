// Every error code, each as the ack {ok:false, error, message}. A refused join-session is
// ALSO answered with session-error {error, message} (the same message, in the original
// server's words, which the End2End Chat app shows verbatim); every other refused event
// is answered in the ack alone, never with session-error (expectError checks both).

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import {
  startServer, cleanup, connect, emitAck, expectError, expectOk, createSession, joinAs,
  reserve, health, uid, closeClient, nextEvent, collect,
} from './lib/server.mjs';

// The join refusals' messages: the original server's words.
const TEXT = {
  SESSION_NOT_FOUND: 'Session not found. Please check the session link.',
  INVALID_KEY: 'Invalid authentication key. Please check your link and try again.',
  CREATOR_KEY_MISMATCH: 'Session key mismatch. This should not happen.',
  INVALID_PASSWORD: 'Incorrect password. Please check and try again.',
  SESSION_NOT_ACTIVE: 'Room not active yet. Please wait for the creator to join first.',
  SESSION_FULL: 'This room is full. Only 2 members allowed.',
  SESSION_EXPIRED: 'This session has expired. Please start a new one.',
};

/** A refused join-session (ack and session-error) with the original server's `text`. */
async function expectJoinError(socket, payload, code, text) {
  const ack = await expectError(socket, 'join-session', payload, code, assert);
  assert.equal(ack.message, text, `${code} message`);
  return ack;
}

let srv;
before(async () => { srv = await startServer(); });
after(cleanup);

const hex = () => randomBytes(16).toString('hex');

test('SESSION_NOT_FOUND: joining a session that does not exist', async () => {
  const s = await connect(srv.url);
  await expectJoinError(s, { sessionId: `${uid('nope')}:${hex()}`, userId: 'bob', displayName: 'B' }, 'SESSION_NOT_FOUND', TEXT.SESSION_NOT_FOUND);
  await expectJoinError(s, { sessionId: uid('nope'), userId: 'bob', authKey: hex() }, 'SESSION_NOT_FOUND', TEXT.SESSION_NOT_FOUND);
});

test('INVALID_KEY: wrong key from a joiner, wrong or missing key, wrong key from a creator', async () => {
  const { sessionId, authKey } = await createSession(srv.url, {}, assert);
  const s = await connect(srv.url);
  await expectJoinError(s, { sessionId: `${sessionId}:${hex()}`, userId: 'bob' }, 'INVALID_KEY', TEXT.INVALID_KEY);
  await expectJoinError(s, { sessionId, userId: 'bob' }, 'INVALID_KEY', TEXT.INVALID_KEY);
  // An explicit authKey wins over the one in sessionId.
  await expectJoinError(s, { sessionId: `${sessionId}:${authKey}`, authKey: hex(), userId: 'bob' }, 'INVALID_KEY', TEXT.INVALID_KEY);
  // A creator's key must equal the stored one (active and reserved sessions alike): the
  // original server's words for a creator are its own.
  await expectJoinError(s, { sessionId, userId: 'mallory', isCreator: true, authKey: hex() }, 'INVALID_KEY', TEXT.CREATOR_KEY_MISMATCH);
  const reserved = uid('res');
  assert.equal((await reserve(srv.url, { sessionId: reserved, authKey: hex() })).status, 200);
  await expectJoinError(s, { sessionId: reserved, userId: 'mallory', isCreator: true, authKey: hex() }, 'INVALID_KEY', TEXT.CREATOR_KEY_MISMATCH);
  // The right key still works afterwards.
  const ok = await expectOk(s, 'join-session', { sessionId: `${sessionId}:${authKey}`, userId: 'bob' }, assert);
  assert.equal(ok.isCreator, false);
});

test('INVALID_PASSWORD: wrong hash in a password room (a missing one too)', async () => {
  const { sessionId, pw } = await createSession(srv.url, { mode: 'password', reserveFirst: true }, assert);
  const s = await connect(srv.url);
  await expectJoinError(s, { sessionId: `${sessionId}:password:${hex()}`, userId: 'bob' }, 'INVALID_PASSWORD', TEXT.INVALID_PASSWORD);
  await expectJoinError(s, { sessionId: `${sessionId}:password:${pw}x`, userId: 'bob' }, 'INVALID_PASSWORD', TEXT.INVALID_PASSWORD);
  await expectOk(s, 'join-session', { sessionId: `${sessionId}:password:${pw}`, userId: 'bob' }, assert);
});

test('SESSION_NOT_ACTIVE: a joiner before the creator of a reserved session', async () => {
  const sessionId = uid('res');
  const authKey = hex();
  assert.equal((await reserve(srv.url, { sessionId, authKey, chatMode: 'private' })).status, 200);
  const s = await connect(srv.url);
  await expectJoinError(s, { sessionId: `${sessionId}:${authKey}`, userId: 'bob' }, 'SESSION_NOT_ACTIVE', TEXT.SESSION_NOT_ACTIVE);
  const creator = await connect(srv.url);
  const ack = await expectOk(creator, 'join-session', { sessionId, userId: 'alice', isCreator: true, authKey }, assert);
  assert.equal(ack.chatMode, 'private', 'a reserved session keeps its mode');
  await expectOk(s, 'join-session', { sessionId: `${sessionId}:${authKey}`, userId: 'bob' }, assert);
});

// A join naming a member present on another socket, without its resume token, waits up
// to PING_INTERVAL_SECS + PING_TIMEOUT_SECS + 2 s: this server makes that 4 s.
let quick;
const quickServer = async () => (quick ??= await startServer({ PING_INTERVAL_SECS: '1', PING_TIMEOUT_SECS: '1' }));

for (const mode of ['private', 'password']) {
  test(`SESSION_FULL: a third user in a ${mode} room; a present userId may rejoin with its resume token`, async () => {
    const url = (await quickServer()).url;
    const alice = await createSession(url, { mode, reserveFirst: true, userId: 'alice' }, assert);
    const { ack: bob } = await joinAs(url, alice.link, 'bob', assert);
    assert.equal(typeof alice.resumeToken, 'string');
    assert.equal(typeof bob.resumeToken, 'string');
    const third = await connect(url);
    await expectJoinError(third, { sessionId: alice.link, userId: 'carol' }, 'SESSION_FULL', TEXT.SESSION_FULL);
    // Bob's userId on a second socket without his token: not a third member but not Bob
    // either (Bob's join ack carried a token, which alone admits a join as Bob).
    const stranger = await connect(url);
    const refusal = nextEvent(stranger, 'session-error', 8000);
    const no = await emitAck(stranger, 'join-session', { sessionId: alice.link, userId: 'bob' }, 8000);
    assert.equal(no.ok, false, JSON.stringify(no));
    assert.equal(no.error, 'RESUME_TOKEN_REQUIRED', JSON.stringify(no));
    assert.match(no.message, /resume token/);
    assert.deepEqual(await refusal, { error: 'RESUME_TOKEN_REQUIRED', message: no.message });
    // Bob on a second socket (another tab) with his token: admitted at once (within the
    // ack timeout, shorter than that wait), not a third member.
    const { ack } = await joinAs(url, alice.link, 'bob', assert, { resumeToken: bob.resumeToken });
    assert.equal(ack.isCreator, false);
    // The creator's userId too.
    await joinAs(url, alice.link, 'alice', assert, { publicKey: null, resumeToken: alice.resumeToken });
    await expectJoinError(third, { sessionId: alice.link, userId: 'dave' }, 'SESSION_FULL', TEXT.SESSION_FULL);
  });
}

test('BAD_REQUEST: missing userId, invalid ids, creator without authKey, wrong types', async () => {
  const s = await connect(srv.url);
  const { sessionId, link } = await createSession(srv.url, {}, assert);
  await expectError(s, 'join-session', { sessionId: link }, 'BAD_REQUEST', assert);
  await expectError(s, 'join-session', { userId: 'bob' }, 'BAD_REQUEST', assert);
  await expectError(s, 'join-session', { sessionId: link, userId: 'bad user!' }, 'BAD_REQUEST', assert);
  await expectError(s, 'join-session', { sessionId: 'bad/session', userId: 'bob', isCreator: true, authKey: hex() }, 'BAD_REQUEST', assert);
  await expectError(s, 'join-session', { sessionId: uid('new'), userId: 'bob', isCreator: true }, 'BAD_REQUEST', assert);
  await expectError(s, 'join-session', { sessionId: link, userId: 42 }, 'BAD_REQUEST', assert);
  await expectError(s, 'join-session', 'not an object', 'BAD_REQUEST', assert);
  await expectError(s, 'send-message', { sessionId, encrypted: 'x', from: 7 }, 'BAD_REQUEST', assert);
});

test('NOT_IN_SESSION: events for a session this socket has not joined', async () => {
  const { sessionId, link } = await createSession(srv.url, {}, assert);
  const s = await connect(srv.url);
  await expectError(s, 'send-message', { sessionId, encrypted: 'x' }, 'NOT_IN_SESSION', assert);
  await expectError(s, 'send-message', { sessionId: link, from: 'bob', encrypted: 'x' }, 'NOT_IN_SESSION', assert);
  await expectError(s, 'typing', { sessionId: uid('unknown') }, 'NOT_IN_SESSION', assert);
});

test('FORBIDDEN: acting as another userId, creator-only events, a second userId on one socket', async () => {
  const { sessionId, link, socket: A } = await createSession(srv.url, { userId: 'alice' }, assert);
  const { socket: B } = await joinAs(srv.url, link, 'bob', assert);
  await expectError(B, 'send-message', { sessionId, from: 'alice', encrypted: 'x' }, 'FORBIDDEN', assert);
  await expectError(B, 'set-session-key', { sessionId, encryptedKeys: { bob: 'k' } }, 'FORBIDDEN', assert);
  await expectError(B, 'close-session', { sessionId }, 'FORBIDDEN', assert);
  await expectError(B, 'join-session', { sessionId: link, userId: 'carol' }, 'FORBIDDEN', assert);
  // downloadedBy is free text (the app sends a display name) and is not read: not
  // FORBIDDEN; the notice names the downloader the connection joined as.
  const notice = nextEvent(B, 'download-notification');
  await expectOk(A, 'file-downloaded', { sessionId, downloadedBy: 'bob', senderId: 'bob', fileName: 'f', timestamp: 5 }, assert);
  assert.deepEqual(await notice, { downloadedBy: 'Creator', userId: 'alice', fileName: 'f', timestamp: 5 });
});

test('PAYLOAD_TOO_LARGE: publicKey over 16 KiB in join-session and save-public-key', async () => {
  const { sessionId, link, socket: A } = await createSession(srv.url, {}, assert);
  const big = 'k'.repeat(17 * 1024);
  const s = await connect(srv.url);
  await expectError(s, 'join-session', { sessionId: link, userId: 'bob', publicKey: big }, 'PAYLOAD_TOO_LARGE', assert);
  await expectError(s, 'join-session', { sessionId: link, userId: 'bob', publicKey: { n: big } }, 'PAYLOAD_TOO_LARGE', assert);
  await expectError(A, 'save-public-key', { sessionId, publicKey: big }, 'PAYLOAD_TOO_LARGE', assert);
  // Under the limit is fine.
  await expectOk(A, 'save-public-key', { sessionId, publicKey: 'k'.repeat(15 * 1024) }, assert);
  await expectError(A, 'file-downloaded', { sessionId, senderId: 'bob', fileName: 'f'.repeat(2048) }, 'PAYLOAD_TOO_LARGE', assert);
});

test('LIMIT_REACHED: MAX_SESSIONS and MAX_GROUP_MEMBERS', async () => {
  const lim = await startServer({ MAX_SESSIONS: '2', MAX_GROUP_MEMBERS: '2' });
  try {
    // Session 1 reserved over HTTP, session 2 created by a creator's join.
    assert.equal((await reserve(lim.url, { sessionId: uid('s1'), authKey: hex() })).status, 200);
    const { link } = await createSession(lim.url, { userId: 'alice' }, assert);
    assert.equal((await health(lim.url)).sessions, 2);
    const c = await connect(lim.url);
    await expectError(c, 'join-session', { sessionId: uid('s3'), userId: 'x', isCreator: true, authKey: hex() }, 'LIMIT_REACHED', assert);
    const r = await reserve(lim.url, { sessionId: uid('s3'), authKey: hex() });
    assert.equal(r.status, 503, r.text);
    assert.equal(r.json?.code, 'LIMIT_REACHED');
    assert.equal(typeof r.json?.error, 'string');
    assert.equal((await health(lim.url)).sessions, 2);
    // A refusal is an answer, not a fault: refused reservations, however many, write no
    // ERROR line (one each would be a log any client could multiply).
    for (let i = 0; i < 10; i += 1) {
      assert.equal((await reserve(lim.url, { sessionId: uid('s3'), authKey: hex() })).status, 503);
    }
    assert.doesNotMatch(lim.output(), /ERROR/);

    // Group of at most 2 present members.
    const { socket: B, ack: bob } = await joinAs(lim.url, link, 'bob', assert);
    await expectError(c, 'join-session', { sessionId: link, userId: 'carol' }, 'LIMIT_REACHED', assert);
    // A present member on another socket (with its resume token) is not a new member.
    await joinAs(lim.url, link, 'bob', assert, { publicKey: null, resumeToken: bob.resumeToken });
    await expectOk(B, 'send-message', { sessionId: link, encrypted: 'still works' }, assert);
  } finally {
    await lim.stop();
  }
});

test('LIMIT_REACHED: MAX_GROUP_MEMBERS counts present members only', async () => {
  const lim = await startServer({ MAX_GROUP_MEMBERS: '2' });
  try {
    const { link } = await createSession(lim.url, { userId: 'alice' }, assert);
    const { socket: B } = await joinAs(lim.url, link, 'bob', assert);
    const c = await connect(lim.url);
    await expectError(c, 'join-session', { sessionId: link, userId: 'carol' }, 'LIMIT_REACHED', assert);
    await expectOk(B, 'leave-session', { sessionId: link }, assert);
    await expectOk(c, 'join-session', { sessionId: link, userId: 'carol' }, assert);
    // Disconnected members are not present either.
    await closeClient(lim.url, c);
    const d = await connect(lim.url);
    await expectOk(d, 'join-session', { sessionId: link, userId: 'dave' }, assert);
  } finally {
    await lim.stop();
  }
});

test('SESSION_EXPIRED: joining after SESSION_TTL_SECS of inactivity (before any sweep)', async () => {
  const ttl = await startServer({ SESSION_TTL_SECS: '1', REAPER_INTERVAL_SECS: '3600' });
  try {
    const { link, socket: A } = await createSession(ttl.url, {}, assert);
    await closeClient(ttl.url, A); // the session is now empty, kept for TTL
    // A reservation never joined expires too.
    const reserved = uid('res');
    const key = hex();
    assert.equal((await reserve(ttl.url, { sessionId: reserved, authKey: key })).status, 200);
    // The lifetime under test: wait past the 1 s TTL.
    await new Promise((r) => setTimeout(r, 1250));
    const s = await connect(ttl.url);
    await expectJoinError(s, { sessionId: link, userId: 'bob' }, 'SESSION_EXPIRED', TEXT.SESSION_EXPIRED);
    await expectJoinError(s, { sessionId: `${reserved}:${key}`, userId: 'bob' }, 'SESSION_EXPIRED', TEXT.SESSION_EXPIRED);
  } finally {
    await ttl.stop();
  }
});

test('errors leave the socket usable: acks still come after many refusals', async () => {
  const { sessionId, socket: A } = await createSession(srv.url, {}, assert);
  const errors = collect(A, 'session-error');
  for (let i = 0; i < 20; i++) {
    const ack = await emitAck(A, 'send-message', { sessionId, from: 'someone-else', encrypted: 'x' });
    assert.equal(ack.error, 'FORBIDDEN');
  }
  const ok = await expectOk(A, 'send-message', { sessionId, encrypted: 'x' }, assert);
  assert.equal(typeof ok.id, 'string');
  // The ok ack came after anything sent for the refusals: none was a session-error.
  assert.deepEqual([...errors], []);
});
