// A group room with three (then four) browsers: the creator wraps one room key for every
// member and makes a new one (a new generation) whenever membership changes: a late joiner
// gets only keys from its arrival on, so it cannot read earlier messages (shown as one line),
// and someone who left cannot read what follows. Leaving asks first and ends calmly.

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, test } from 'node:test';
import {
  Recorder,
  assertNothingLeaked,
  createRoom,
  joinRoom,
  openPerson,
  screenshot,
  sendText,
  waitForMessage,
  startSuite,
  stopSuite,
} from './harness.js';

const tag = randomBytes(4).toString('hex');
const PLAIN = {
  a1: `Group hello from Alice ${tag}`,
  b1: `Bob says the plan is on ${tag}`,
  c1: `Carol brings snacks ${tag}`,
  b2: `Welcome Carol ${tag}`,
  b3: `Now that Carol left: new key ${tag}`,
  a2: `Alice agrees after rotation ${tag}`,
  b4: `Hello Dave ${tag}`,
};

let server;
let browser;
const recorder = new Recorder();
const people = {};
let link;

/** Waits until my message `text` says that `n` pages showed it (read receipts). */
const seen = (page, text, n) => page.locator('.msg.mine', { hasText: text }).locator('.status', { hasText: `Seen by ${n}` }).waitFor();
const waitGeneration = (page, gen) => page.locator(`#key-generation[data-generation="${gen}"]:not([hidden])`).waitFor();
const userIdOf = (label) => recorder.events(label).find((e) => e.event === 'join-session').payload.userId;

before(async () => ({ server, browser } = await startSuite()));
after(() => stopSuite({ server, browser }));

/** The set-session-key a page sent after `since` that carries generation `gen`. */
const rotationTo = (gen, since) => recorder.events().find((e) => e.at >= since && e.event === 'set-session-key'
  && Object.values(e.payload.encryptedKeys).every((w) => w.gen === gen));

test('two people in a group room talk; each join made a new room key', async () => {
  people.alice = await openPerson(browser, { label: 'alice', url: `${server.origin}/`, recorder });
  link = await createRoom(people.alice.page, { mode: 'group', name: 'Alice' });
  assert.equal(new URLSearchParams(new URL(link).hash.slice(1)).get('mode'), 'group');
  await waitGeneration(people.alice.page, 1);
  people.bob = await openPerson(browser, { label: 'bob', url: `${server.origin}/`, recorder });
  await joinRoom(people.bob.page, link, { name: 'Bob' });
  for (const { page } of [people.alice, people.bob]) await waitGeneration(page, 2);
  assert.equal(await people.bob.page.locator('#close-room').getAttribute('hidden'), '');
  await sendText(people.alice.page, PLAIN.a1);
  await sendText(people.bob.page, PLAIN.b1);
  await waitForMessage(people.bob.page, PLAIN.a1, 'Alice');
  await waitForMessage(people.alice.page, PLAIN.b1, 'Bob');
  // Each read the other's message: a read receipt each, encrypted messages like any other.
  await seen(people.alice.page, PLAIN.a1, 1);
  await seen(people.bob.page, PLAIN.b1, 1);
});

test('a late joiner cannot read what was said before it came, and sees that as one line', async () => {
  const { alice, bob } = people;
  const before = Date.now();
  people.carol = await openPerson(browser, { label: 'carol', url: `${server.origin}/`, recorder });
  const { carol } = people;
  await joinRoom(carol.page, link, { name: 'Carol' });
  for (const { page } of Object.values(people)) {
    await waitGeneration(page, 3);
    await page.locator('#member-list .member').nth(2).waitFor();
  }
  // Generation 3 went to all three; nobody ever wrapped generation 1 or 2 for Carol.
  const rotation = rotationTo(3, before);
  assert.deepEqual(Object.keys(rotation.payload.encryptedKeys).sort(), ['alice', 'bob', 'carol'].map(userIdOf).sort());
  for (const e of recorder.events()) {
    if (e.event !== 'set-session-key') continue;
    const forCarol = e.payload.encryptedKeys[userIdOf('carol')];
    if (forCarol) assert.ok(forCarol.gen >= 3, `generation ${forCarol.gen} wrapped for the late joiner`);
  }
  const summary = carol.page.locator('.unreadable-summary');
  await summary.waitFor();
  // Two texts and the two read receipts of them: to the server, and so to a newcomer
  // without the key, a receipt is a message like any other.
  assert.equal(await summary.textContent(), '4 earlier messages were sent before you joined and cannot be read');
  assert.equal(await carol.page.locator('.unreadable-summary').count(), 1);
  const text = await carol.page.locator('#messages').innerText();
  assert.ok(!text.includes(PLAIN.a1) && !text.includes(PLAIN.b1), 'no earlier plaintext on the page');
  const saved = JSON.parse(await carol.page.evaluate(() => sessionStorage.getItem('blindrelay.room.v1')));
  assert.deepEqual(Object.keys(saved.groupKeys), ['3'], 'the late joiner holds only the newest key');

  await sendText(carol.page, PLAIN.c1);
  await waitForMessage(alice.page, PLAIN.c1, 'Carol');
  await waitForMessage(bob.page, PLAIN.c1, 'Carol');
  await sendText(bob.page, PLAIN.b2);
  await waitForMessage(carol.page, PLAIN.b2, 'Bob');
  // Older messages stay readable for those who had their key.
  await waitForMessage(bob.page, PLAIN.a1, 'Alice');
  // The read receipts of what was said meanwhile have gone out (with the generation-3 key).
  await seen(carol.page, PLAIN.c1, 2);
  await seen(bob.page, PLAIN.b2, 2);
  assert.match(await carol.page.locator('#safety-hint').textContent(), /each person/);
  await screenshot(carol.page, '09-group-chat');
  await carol.page.setViewportSize({ width: 390, height: 844 });
  await screenshot(carol.page, '09-group-chat-phone');
});

test('Carol leaves (after confirming): the key is rotated for Alice and Bob only', async () => {
  const { alice, bob, carol } = people;
  const carolId = userIdOf('carol');
  const before = Date.now();
  await carol.page.click('#leave-room');
  await carol.page.locator('#confirm-dialog[open]', { hasText: 'Leave this room?' }).waitFor();
  await screenshot(carol.page, '15-leave-confirm-phone');
  await carol.page.click('#confirm-ok');
  await carol.page.locator('#view-ended', { hasText: 'You left the room' }).waitFor();
  await screenshot(carol.page, '16-left-phone');
  assert.equal(await carol.page.locator('#banner').isHidden(), true);
  await alice.page.locator('.notice', { hasText: 'Carol left' }).waitFor();
  await waitGeneration(alice.page, 4);
  await waitGeneration(bob.page, 4);

  await sendText(bob.page, PLAIN.b3);
  const atAlice = await waitForMessage(alice.page, PLAIN.b3, 'Bob');
  assert.equal(await atAlice.getAttribute('data-gen'), '4');
  await sendText(alice.page, PLAIN.a2);
  const atBob = await waitForMessage(bob.page, PLAIN.a2, 'Alice');
  assert.equal(await atBob.getAttribute('data-gen'), '4');

  const rotation = rotationTo(4, before);
  assert.ok(rotation, 'a set-session-key with generation 4');
  assert.deepEqual(Object.keys(rotation.payload.encryptedKeys).sort(), [userIdOf('alice'), userIdOf('bob')].sort());
  assert.ok(!(carolId in rotation.payload.encryptedKeys));
  const sends = recorder.events().filter((e) => e.at >= before && e.event === 'send-message');
  // The two texts (and the read receipts of them, which look the same to the server).
  const texts = [await atAlice.getAttribute('data-id'), await atBob.getAttribute('data-id')];
  assert.deepEqual(sends.filter((s) => texts.includes(s.payload.clientMessageId)).length, 2);
  for (const s of sends) assert.equal(s.payload.encrypted.gen, 4, 'the old key is no longer used');
  // Back to the start from the end screen.
  await carol.page.click('#ended-new');
  await carol.page.locator('#view-home').waitFor();
});

test('a newcomer after the rotation reads only what follows its arrival', async () => {
  people.dave = await openPerson(browser, { label: 'dave', url: `${server.origin}/`, recorder });
  const { dave, alice, bob } = people;
  await joinRoom(dave.page, link, { name: 'Dave' });
  await waitGeneration(dave.page, 5);
  await waitGeneration(alice.page, 5);
  await dave.page.locator('.unreadable-summary', { hasText: /^\d+ earlier messages were sent before you joined/ }).waitFor();
  assert.equal(await dave.page.locator('.msg:not(.unreadable)').count(), 0);
  await sendText(dave.page, `Dave here ${tag}`);
  await waitForMessage(alice.page, `Dave here ${tag}`, 'Dave');
  await sendText(bob.page, PLAIN.b4);
  await waitForMessage(dave.page, PLAIN.b4, 'Bob');
});

test('the server saw no plaintext, no room key and no private key', async () => {
  // The page keeps its room keys in sessionStorage to survive a reload (and in localStorage
  // for the browser's other tabs). Its private key is not there: a non-extractable key in
  // IndexedDB (identity.test.js), which no script can read, so no page could send it.
  const saved = JSON.parse(await people.alice.page.evaluate(() => sessionStorage.getItem('blindrelay.room.v1')));
  const roomKeys = Object.values(saved.groupKeys);
  assert.equal(roomKeys.length, 5, 'generations 1 to 5');
  assert.deepEqual(Object.keys(saved.identity).sort(), ['publicKey', 'store']);
  const secrets = [...roomKeys, saved.roomSecret];
  for (const s of secrets) assert.match(s, /^[A-Za-z0-9_-]{43}$/);
  assertNothingLeaked(recorder, [...Object.values(PLAIN), tag, ...secrets], { serverLog: server.log });
  for (const { page } of Object.values(people)) assert.deepEqual(page.problems, []);
});
