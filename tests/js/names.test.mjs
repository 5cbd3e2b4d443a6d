// Display names are text, not control (docs/protocol.md "Conventions", SECURITY.md "Display names"):
// what the other members receive for names made of control characters, bidi overrides
// and isolates, zero-width characters, line breaks and emoji sequences, in user-joined,
// public-keys-updated, user-typing, the joiner's own key list and download-notification;
// and that save-public-key does not rename. Runs in memory and, in scripts/test.sh's
// second pass, on Redis (REDIS_URL), where the name goes through storage and back.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  startServer, cleanup, connect, createSession, expectOk, nextEvent, collect, uid,
} from './lib/server.mjs';

let srv;
before(async () => { srv = await startServer(); });
after(cleanup);

const FAMILY = '\u{1F468}\u200D\u{1F469}\u200D\u{1F467}\u200D\u{1F466}';

/** [name sent, name every other member must see]. */
const CASES = [
  ['Al\u0000ice\u0007', 'Alice'],
  ['\u001b[31mRed\u001b[0m', '[31mRed[0m'],
  ['Ana\n\nLee\r\n', 'Ana Lee'],
  ['  Tab\tbed  \u2028 name ', 'Tab bed name'],
  ['invoice\u202Egpj.exe', 'invoicegpj.exe'],
  ['\u2067evil\u2069 \u200Eme\u200F\u061C', 'evil me'],
  ['\u202A\u202B\u202C\u202Dx\u2066\u2068y', 'xy'],
  ['B\u200Bo\u2060b\uFEFF', 'Bob'],
  ['x\u200Dy\u200Cz\uFE0F', 'xyz'],
  [`Zoë ${FAMILY} \u{1F3F3}\uFE0F\u200D\u{1F308}`, `Zoë ${FAMILY} \u{1F3F3}\uFE0F\u200D\u{1F308}`],
  // 30 families of 25 bytes: whole ones up to 256 bytes, never a cut inside one.
  [FAMILY.repeat(30), FAMILY.repeat(10)],
  ['\u0410lice', '\u0410lice'], // a Cyrillic А is a letter: the built-in client marks look-alikes
  ['\u202E\u200B \n\u0000', 'Someone'],
];

test('every member receives the cleaned name: user-joined, public-keys-updated, user-typing', async () => {
  const A = await createSession(srv.url, { mode: 'group', displayName: 'Alice' }, assert);
  for (const [sent, shown] of CASES) {
    const userId = uid('m');
    const joined = nextEvent(A.socket, 'user-joined', 3000, (u) => u.userId === userId);
    const keys = nextEvent(A.socket, 'public-keys-updated', 3000, (l) => l.some((k) => k.userId === userId));
    const s = await connect(srv.url);
    // The list its own join sends: the one before it may be a departure's, announced
    // after PRESENCE_GRACE for the previous joiner, whose list was read before this join.
    const own = nextEvent(s, 'public-keys-updated', 3000, (l) => l.some((k) => k.userId === userId));
    await expectOk(s, 'join-session', { sessionId: A.link, userId, displayName: sent, publicKey: `pk-${userId}` }, assert);
    const what = JSON.stringify(sent);
    assert.equal((await joined).displayName, shown, `user-joined for ${what}`);
    assert.equal((await keys).find((k) => k.userId === userId).displayName, shown, `public-keys-updated for ${what}`);
    assert.equal((await own).find((k) => k.userId === userId).displayName, shown, `the joiner's own list for ${what}`);
    // Typing names the typist by the stored name, whatever the event carries.
    const typing = nextEvent(A.socket, 'user-typing', 3000, (u) => u.userId === userId);
    await expectOk(s, 'typing', { sessionId: A.sessionId, displayName: sent }, assert);
    assert.deepEqual(await typing, { userId, displayName: shown }, `user-typing for ${what}`);
    const stopped = nextEvent(A.socket, 'user-stopped-typing', 3000, (u) => u.userId === userId);
    await expectOk(s, 'stopped-typing', { sessionId: A.sessionId, displayName: sent }, assert);
    assert.deepEqual(await stopped, { userId, displayName: shown });
    s.close();
  }
});

test('download-notification names the downloader by its cleaned name, never by downloadedBy, and cleans the file name', async () => {
  const A = await createSession(srv.url, { mode: 'private', displayName: 'Alice' }, assert);
  const B = await connect(srv.url);
  const bob = uid('bob');
  const seen = nextEvent(A.socket, 'user-joined');
  await expectOk(B, 'join-session', { sessionId: A.link, userId: bob, displayName: 'Bob\u202E\u0007', publicKey: 'pk-b' }, assert);
  await seen;
  const notice = nextEvent(A.socket, 'download-notification');
  await expectOk(B, 'file-downloaded', {
    sessionId: A.sessionId, senderId: A.userId, fileName: 'report.pdf', downloadedBy: 'Alice\u202Efdp.exe\n', timestamp: 1,
  }, assert);
  const n = await notice;
  assert.equal(n.downloadedBy, 'Bob');
  assert.equal(n.userId, bob);
  assert.equal(n.fileName, 'report.pdf', 'a plain file name is relayed as it is');

  // The file name is text too: the End2End Chat app shows it to the sender.
  for (const [sent, shown] of [['invoice\u202Egpj.exe', 'invoicegpj.exe'], ['a\u001b[31m\u0007b\n.png', 'a[31mb .png']]) {
    const next = nextEvent(A.socket, 'download-notification');
    await expectOk(B, 'file-downloaded', { sessionId: A.sessionId, senderId: A.userId, fileName: sent, timestamp: 2 }, assert);
    assert.equal((await next).fileName, shown, `fileName ${JSON.stringify(sent)}`);
  }
});

test('save-public-key does not rename: the room keeps seeing the name the member joined with', async () => {
  const A = await createSession(srv.url, { mode: 'group', displayName: 'Alice' }, assert);
  const B = await connect(srv.url);
  const bob = uid('bob');
  const seen = nextEvent(A.socket, 'user-joined');
  await expectOk(B, 'join-session', { sessionId: A.link, userId: bob, displayName: 'Bob', publicKey: 'pk-b' }, assert);
  await seen;
  const joined = collect(A.socket, 'user-joined');
  // The list that carries the new key (the join's own list may still be on its way).
  const keys = nextEvent(A.socket, 'public-keys-updated', 3000, (l) => l.some((k) => k.publicKey === 'pk-b2'));
  await expectOk(B, 'save-public-key', { sessionId: A.sessionId, publicKey: 'pk-b2', displayName: 'Alice' }, assert);
  const entry = (await keys).find((k) => k.userId === bob);
  assert.deepEqual([entry.publicKey, entry.displayName], ['pk-b2', 'Bob']);
  const typing = nextEvent(A.socket, 'user-typing');
  await expectOk(B, 'typing', { sessionId: A.sessionId }, assert);
  assert.deepEqual(await typing, { userId: bob, displayName: 'Bob' });
  const got = await expectOk(A.socket, 'get-public-keys', { sessionId: A.sessionId }, assert);
  assert.equal(got.keys.find((k) => k.userId === bob).displayName, 'Bob');
  assert.deepEqual(joined, [], 'nothing announced');
});
