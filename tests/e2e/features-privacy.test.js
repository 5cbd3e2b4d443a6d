// The new kinds of content (static/js/kinds.js) are encrypted like any text: after a
// conversation with a reply, reactions, an edit, a deletion and read receipts, neither what
// the pages sent nor the server's stored state (its snapshot, written when it stops) holds
// a plaintext, a reaction's emoji or even the name of a kind; nor the disappearing-messages
// timer the creator set, nor the one each text carries.

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, test } from 'node:test';
import {
  Recorder,
  Server,
  assertNothingLeaked,
  confirmDialog,
  createRoom,
  joinRoom,
  launchBrowser,
  openPerson,
  sendText,
  stopSuite,
  waitForMessage,
} from './harness.js';

const tag = randomBytes(4).toString('hex');
const T = {
  original: `Secret rendezvous under the clock ${tag}`,
  reply: `Counting on it, the clock it is ${tag}`,
  before: `Draft wording before the edit ${tag}`,
  edited: `Final wording after the edit ${tag}`,
  deleted: `Regrettable words to delete ${tag}`,
  timed: `Words that disappear after eight hours ${tag}`,
};
/** What a timer would look like in plaintext: its kind, its fields with their value (8 h = 28800 s), its words. */
const TIMER = ['"timer"', '"ttl"', '"seconds":28800', '"ttl":28800', 'Messages disappear', '8 hours'];
/** The reactions used: 🙏 and 😮 appear nowhere else in this conversation. */
const EMOJI = ['🙏', '😮'];

let server;
let browser;
const recorder = new Recorder();

before(async () => {
  server = await new Server().start();
  browser = await launchBrowser();
});
after(() => stopSuite({ server, browser }));

const msg = (page, text) => page.locator('.msg', { has: page.locator('.body', { hasText: text }) });

async function act(page, li, owner, name) {
  await li.getByRole('button', { name: `Actions for ${owner}` }).click();
  await li.getByRole('button', { name, exact: true }).click();
}

/** Every file under `dir`, as bytes. */
function filesUnder(dir) {
  return fs.readdirSync(dir, { withFileTypes: true, recursive: true })
    .filter((e) => e.isFile())
    .map((e) => ({ name: path.join(e.parentPath ?? e.path, e.name), bytes: fs.readFileSync(path.join(e.parentPath ?? e.path, e.name)) }));
}

/** The ways a string may be stored: UTF-8, and JSON's \u escapes (either case). */
function forms(s) {
  const escaped = [...s].map((ch) => {
    const code = ch.codePointAt(0);
    if (code < 0x80) return ch;
    return ch.split('').map((u) => `\\u${u.charCodeAt(0).toString(16).padStart(4, '0')}`).join('');
  }).join('');
  return [...new Set([s, escaped, escaped.toUpperCase().replace(/\\U/g, '\\u')])];
}

test('a conversation using every new kind, then the server stops and writes its snapshot', async () => {
  const alice = await openPerson(browser, { label: 'alice', url: `${server.origin}/`, recorder });
  const link = await createRoom(alice.page, { mode: 'private', name: 'Alice' });
  const bob = await openPerson(browser, { label: 'bob', url: `${server.origin}/`, recorder });
  await joinRoom(bob.page, link, { name: 'Bob' });

  await sendText(alice.page, T.original);
  await sendText(alice.page, T.before);
  await sendText(alice.page, T.deleted);
  await waitForMessage(bob.page, T.deleted, 'Alice');
  // Receipts: Bob's page showed them.
  await msg(alice.page, T.deleted).locator('.status', { hasText: 'Seen' }).waitFor();

  // A reply (its quote carries the original's first line, encrypted).
  await act(bob.page, msg(bob.page, T.original), "Alice's message", "Reply to Alice's message");
  await sendText(bob.page, T.reply);
  await msg(alice.page, T.reply).locator('.quote-text', { hasText: T.original }).waitFor();
  // Reactions.
  await act(bob.page, msg(bob.page, T.original), "Alice's message", "React to Alice's message with thank you");
  await act(alice.page, msg(alice.page, T.reply), "Bob's message", "React to Bob's message with surprised");
  await msg(alice.page, T.original).getByRole('button', { name: /^🙏 1: thank you from Bob/ }).waitFor();
  await msg(bob.page, T.reply).getByRole('button', { name: /^😮 1: surprised from Alice/ }).waitFor();
  // An edit and a deletion.
  await act(alice.page, msg(alice.page, T.before), 'your message', 'Edit your message');
  await alice.page.fill('#message-input', T.edited);
  await alice.page.press('#message-input', 'Enter');
  await act(alice.page, msg(alice.page, T.deleted), 'your message', 'Delete your message for everyone…');
  await confirmDialog(alice.page);
  await msg(bob.page, T.edited).locator('.edited').waitFor();
  await bob.page.locator('.msg[data-deleted="true"]').waitFor();
  await msg(bob.page, T.reply).locator('.status', { hasText: 'Seen' }).waitFor();
  // A disappearing-messages timer (an encrypted `timer` message), and a text sent under it
  // (its header carries the timer).
  await alice.page.click('#more-menu summary');
  await alice.page.selectOption('#timer-select', String(8 * 3600));
  await alice.page.keyboard.press('Escape');
  await bob.page.locator('#disappear-timer', { hasText: 'Messages disappear after 8 hours' }).waitFor();
  await sendText(alice.page, T.timed);
  await waitForMessage(bob.page, T.timed, 'Alice');
  const ids = await alice.page.locator('#messages .msg').evaluateAll((els) => els.map((e) => e.dataset.id));
  assert.deepEqual([...alice.page.problems, ...bob.page.problems], []);

  // What the pages sent: ciphertext only.
  assertNothingLeaked(recorder, [...Object.values(T), ...EMOJI.flatMap(forms), 'thank you', 'surprised',
    '"reaction"', '"receipt"', '"edit"', '"delete"', '"reply"', ...TIMER], { serverLog: server.log });

  // The server stops (SIGTERM) and writes its snapshot of the room.
  await server.stop();
  assert.match(server.log, /snapshot written at stop/);
  const files = filesUnder(server.dataDir);
  const all = Buffer.concat(files.map((f) => f.bytes));
  assert.ok(files.length > 0 && all.length > 0, 'the data folder holds a snapshot');
  // The messages are in it (as ciphertext), so the search below means something.
  for (const id of ids) assert.ok(all.includes(Buffer.from(id)), `the snapshot holds message ${id}`);
  assert.ok(all.includes(Buffer.from('"ct":"')), 'ciphertexts are in the snapshot');
  const secrets = [...Object.values(T), ...EMOJI.flatMap(forms), 'thank you', 'surprised',
    '"kind"', 'reaction', 'receipt', '"reply"', 'This message was deleted', ...TIMER];
  for (const s of secrets) {
    for (const f of files) assert.ok(!f.bytes.includes(Buffer.from(s)), `${path.basename(f.name)} holds ${JSON.stringify(s)}`);
  }
});
