// Operations: logs hold no secrets even with DEBUG=true (R4), SIGTERM exits 0 (R11), and
// what a newcomer sees at start: the address to open, HOST names, what DEBUG does, and
// why Redis could not be reached.

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import net from 'node:net';
import {
  startServer, cleanup, connect, nextEvent, expectOk, expectError, reserve, request, uid,
  freePort, health,
} from './lib/server.mjs';
import { startRedis } from './lib/redis.mjs';

after(cleanup);

const hex = () => randomBytes(8).toString('hex');

test('R4: with DEBUG=true the log never holds keys, password hashes, plaintext or session ids', async () => {
  const srv = await startServer({ DEBUG: 'true', ADMIN_TOKEN: `ADMINTOKENSECRET${hex()}` });
  const secret = {
    sessionId: `SIDSECRETgroup${hex()}`,
    pwSessionId: `SIDSECRETpw${hex()}`,
    authKey: `AUTHKEYSECRET${hex()}`,
    pwKey: `PWKEYSECRET${hex()}`,
    pwHash: `PWHASHSECRET${hex()}`,
    wrongKey: `WRONGKEYSECRET${hex()}`,
    wrongPw: `WRONGPWSECRET${hex()}`,
    original: `ORIGINALSECRET ${hex()}`,
    cipher: `CIPHERSECRET${hex()}`,
    publicKey: `PUBKEYSECRET${hex()}`,
    wrapped: `WRAPPEDSECRET${hex()}`,
  };
  try {
    // Group room: HTTP reservation, creator over polling, joiner over websocket.
    assert.equal((await reserve(srv.url, { sessionId: secret.sessionId, authKey: secret.authKey })).status, 200);
    assert.equal((await reserve(srv.url, { sessionId: secret.sessionId, authKey: secret.authKey })).status, 409);
    const A = await connect(srv.url, { transports: ['polling'] });
    await expectOk(A, 'join-session', { sessionId: secret.sessionId, userId: 'alice', isCreator: true, authKey: secret.authKey, publicKey: secret.publicKey }, assert);
    const B = await connect(srv.url, { transports: ['websocket'] });
    await expectError(B, 'join-session', { sessionId: `${secret.sessionId}:${secret.wrongKey}`, userId: 'bob' }, 'INVALID_KEY', assert);
    await expectOk(B, 'join-session', { sessionId: `${secret.sessionId}:${secret.authKey}`, userId: 'bob', publicKey: secret.publicKey }, assert);
    const got = nextEvent(B, 'new-message');
    await expectOk(A, 'send-message', { sessionId: secret.sessionId, encrypted: secret.cipher, originalContent: secret.original }, assert);
    await got;
    await expectOk(B, 'send-message', { sessionId: `${secret.sessionId}:${secret.authKey}`, to: 'alice', encrypted: { ct: secret.cipher }, originalContent: secret.original }, assert);
    await expectOk(A, 'set-session-key', { sessionId: secret.sessionId, encryptedKeys: { bob: secret.wrapped } }, assert);
    await expectError(B, 'send-message', { sessionId: secret.sessionId, from: 'alice', encrypted: secret.cipher, originalContent: secret.original }, 'FORBIDDEN', assert);
    await expectError(B, 'send-message', { sessionId: secret.sessionId, originalContent: secret.original }, 'BAD_REQUEST', assert);

    // Password room.
    assert.equal((await reserve(srv.url, { sessionId: secret.pwSessionId, authKey: `${secret.pwKey}:${secret.pwHash}`, chatMode: 'password' })).status, 200);
    const C = await connect(srv.url);
    await expectOk(C, 'join-session', { sessionId: secret.pwSessionId, userId: 'carol', isCreator: true, authKey: `${secret.pwKey}:${secret.pwHash}` }, assert);
    const D = await connect(srv.url);
    await expectError(D, 'join-session', { sessionId: `${secret.pwSessionId}:password:${secret.wrongPw}`, userId: 'dave' }, 'INVALID_PASSWORD', assert);
    await expectOk(D, 'join-session', { sessionId: `${secret.pwSessionId}:password:${secret.pwHash}`, userId: 'dave' }, assert);
    await expectOk(D, 'send-message', { sessionId: secret.pwSessionId, encrypted: secret.cipher, originalContent: secret.original }, assert);

    // Refusals that name a session the socket is not in, and unknown sessions.
    const E = await connect(srv.url);
    await expectError(E, 'send-message', { sessionId: secret.sessionId, encrypted: secret.cipher, originalContent: secret.original }, 'NOT_IN_SESSION', assert);
    await expectError(E, 'join-session', { sessionId: `${secret.sessionId}x:${secret.authKey}`, userId: 'eve' }, 'SESSION_NOT_FOUND', assert);
    await expectError(E, 'join-session', { sessionId: `${secret.sessionId} bad:${secret.authKey}`, userId: 'eve' }, 'BAD_REQUEST', assert);
    await request('GET', `${srv.url}/sessions`, { headers: { authorization: `Bearer ${secret.wrongKey}` } });

    // Leave and close (paths that log).
    await expectOk(B, 'leave-session', { sessionId: secret.sessionId }, assert);
    await expectOk(A, 'close-session', { sessionId: secret.sessionId }, assert);
    for (const s of [A, B, C, D, E]) s.close();
  } finally {
    const r = await srv.stop();
    assert.equal(r.code, 0);
  }
  const log = srv.output();
  assert.ok(log.length > 0, 'the server logged something');
  assert.match(log, /DEBUG/i, 'DEBUG=true turns debug lines on');
  assert.match(log, /s-[0-9a-f]{8}/, 'sessions are named by a hash');
  const leaks = Object.entries(secret).filter(([, v]) => log.includes(v) || log.includes(v.replace(/^[A-Z]+/, '')));
  assert.deepEqual(leaks.map(([k]) => k), [], `secrets found in the log:\n${leaks.map(([k, v]) => `${k}: ${v}`).join('\n')}`);
  assert.ok(!/SECRET/.test(log), `no marker of any secret in the log: ${log.split('\n').filter((l) => l.includes('SECRET')).slice(0, 5).join('\n')}`);
});

test('R11: SIGTERM with clients connected: exit code 0 within a few seconds', async () => {
  // The real default SHUTDOWN_GRACE_SECS here (the harness shortens it elsewhere).
  const srv = await startServer({ SHUTDOWN_GRACE_SECS: undefined });
  const key = hex();
  const sessionId = uid('term');
  const A = await connect(srv.url, { transports: ['websocket'] });
  await expectOk(A, 'join-session', { sessionId, userId: 'alice', isCreator: true, authKey: key }, assert);
  const B = await connect(srv.url, { transports: ['polling'] });
  await expectOk(B, 'join-session', { sessionId: `${sessionId}:${key}`, userId: 'bob' }, assert);
  const C = await connect(srv.url, { transports: undefined });
  await expectOk(C, 'join-session', { sessionId: `${sessionId}:${key}`, userId: 'carol' }, assert);
  const gone = [A, B, C].map((s) => nextEvent(s, 'disconnect', 8000));
  const r = await srv.stop();
  assert.equal(r.signal, null, 'exited by itself, not killed by the signal');
  assert.equal(r.code, 0);
  assert.ok(r.ms < 5000, `exit took ${r.ms} ms`);
  await Promise.all(gone);
});

test('start-up: HOST=localhost is taken (a loopback bind) and the address to open is printed', async () => {
  const srv = await startServer({ HOST: 'localhost' });
  assert.equal((await health(srv.url)).status, 'ok', 'listening on 127.0.0.1');
  assert.match(srv.output(), new RegExp(`open http://localhost:${srv.port} in a browser`));
  assert.doesNotMatch(srv.output(), /0\.0\.0\.0/);
  // Not an address or a name: refused at start, naming HOST (exit code 2).
  await assert.rejects(startServer({ HOST: 'local host' }),
    (e) => /exited early \(\{"code":2/.test(e.message) && /HOST/.test(e.message));
});

test('DEBUG: yes turns debug logs on and says so; a value it does not know stops the start with the spellings it takes', async () => {
  const srv = await startServer({ DEBUG: 'yes', RUST_LOG: undefined });
  await request('GET', `${srv.url}/health`);
  const log = srv.output();
  assert.match(log, /debug logs on \(DEBUG\)/);
  assert.match(log, /DEBUG http\{method=GET path=\/health\}.*finished processing request.*status=200/);
  const quiet = await startServer({ DEBUG: 'no' });
  await request('GET', `${quiet.url}/health`);
  assert.doesNotMatch(quiet.output(), /DEBUG|processing request/);
  await assert.rejects(startServer({ DEBUG: 'verbose' }),
    (e) => /exited early \(\{"code":2/.test(e.message) && /DEBUG/.test(e.message) && /yes/.test(e.message));
});

/** One Redis command on a raw connection (RESP inline), resolving with the reply line. */
function redisCommand(port, line) {
  return new Promise((resolve, reject) => {
    const s = net.connect(port, '127.0.0.1', () => s.write(`${line}\r\n`));
    s.once('data', (d) => { s.destroy(); resolve(d.toString()); });
    s.once('error', reject);
  });
}

test('REDIS_URL out of reach: exit 1 naming the cause and host:port, never the password', async () => {
  const pw = `PWSECRET${hex()}`;
  const nobody = await freePort();
  const failure = async (url) => {
    const err = await startServer({ REDIS_URL: url }).then(() => null, (e) => e);
    assert.ok(err, `${url} should not start`);
    assert.match(err.message, /exited early \(\{"code":1/);
    assert.doesNotMatch(err.message, new RegExp(pw), 'the password is never printed');
    return err.message;
  };
  const refused = await failure(`redis://:${pw}@127.0.0.1:${nobody}`);
  assert.match(refused, new RegExp(`cannot reach Redis at 127\\.0\\.0\\.1:${nobody}: connection refused`));

  const redis = await startRedis();
  try {
    assert.match(await redisCommand(redis.port, 'CONFIG SET requirepass rightpassword'), /^\+OK/);
    const wrong = await failure(`redis://:${pw}@127.0.0.1:${redis.port}`);
    assert.match(wrong, new RegExp(`at 127\\.0\\.0\\.1:${redis.port}: authentication failed`));
    const none = await failure(`redis://127.0.0.1:${redis.port}`);
    assert.match(none, /authentication failed/);
    // The right password: it serves.
    const ok = await startServer({ REDIS_URL: `redis://:rightpassword@127.0.0.1:${redis.port}`, REDIS_PREFIX: `ops-${uid('p')}:` });
    assert.equal((await health(ok.url)).status, 'ok');
    assert.doesNotMatch(ok.output(), /rightpassword/);
    await ok.stop();
  } finally {
    await redis.stop();
  }
});
