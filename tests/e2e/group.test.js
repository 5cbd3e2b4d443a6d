// A group room with three (then four) browsers: the creator wraps one room key for every
// member; when someone leaves the key is rotated (a new generation, wrapped for the remaining
// members only) and the remaining members still read each other.

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
  b2: `Now that Carol left: new key ${tag}`,
  a2: `Alice agrees after rotation ${tag}`,
};

let server;
let browser;
const recorder = new Recorder();
const people = {};
let link;

const generation = async (page) => Number(await page.locator('#key-generation').getAttribute('data-generation'));
const waitGeneration = (page, gen) => page.locator(`#key-generation[data-generation="${gen}"]:not([hidden])`).waitFor();
const userIdOf = (label) => recorder.events(label).find((e) => e.event === 'join-session').payload.userId;

before(async () => ({ server, browser } = await startSuite()));
after(() => stopSuite({ server, browser }));

test('three people in a group room share generation 1 of the room key', async () => {
  people.alice = await openPerson(browser, { label: 'alice', url: `${server.origin}/`, recorder });
  link = await createRoom(people.alice.page, { mode: 'group', name: 'Alice' });
  assert.equal(new URLSearchParams(new URL(link).hash.slice(1)).get('mode'), 'group');
  await waitGeneration(people.alice.page, 1);
  people.bob = await openPerson(browser, { label: 'bob', url: `${server.origin}/`, recorder });
  people.carol = await openPerson(browser, { label: 'carol', url: `${server.origin}/`, recorder });
  await joinRoom(people.bob.page, link, { name: 'Bob' });
  await joinRoom(people.carol.page, link, { name: 'Carol' });
  for (const { page } of Object.values(people)) {
    await waitGeneration(page, 1);
    await page.locator('#member-list .member').nth(2).waitFor();
  }
  assert.equal(await people.bob.page.locator('#close-room').isVisible(), false);
});

test('everyone reads everyone', async () => {
  const { alice, bob, carol } = people;
  await sendText(alice.page, PLAIN.a1);
  await sendText(bob.page, PLAIN.b1);
  await sendText(carol.page, PLAIN.c1);
  await waitForMessage(bob.page, PLAIN.a1, 'Alice');
  await waitForMessage(carol.page, PLAIN.a1, 'Alice');
  await waitForMessage(alice.page, PLAIN.b1, 'Bob');
  await waitForMessage(carol.page, PLAIN.b1, 'Bob');
  await waitForMessage(alice.page, PLAIN.c1, 'Carol');
  await waitForMessage(bob.page, PLAIN.c1, 'Carol');
  for (const { page } of Object.values(people)) {
    assert.equal(await page.locator('.msg[data-gen="1"]').count(), 3);
  }
  await screenshot(carol.page, '09-group-chat');
});

test('when Carol leaves, the key is rotated for Alice and Bob only, and they still read each other', async () => {
  const { alice, bob, carol } = people;
  const carolId = userIdOf('carol');
  const before = Date.now();
  await carol.page.click('#leave-room');
  await carol.page.locator('#view-home').waitFor();
  await alice.page.locator('.notice', { hasText: 'Carol left' }).waitFor();
  await waitGeneration(alice.page, 2);
  await waitGeneration(bob.page, 2);
  assert.ok((await generation(bob.page)) > 1, 'the key generation increased');

  await sendText(bob.page, PLAIN.b2);
  const atAlice = await waitForMessage(alice.page, PLAIN.b2, 'Bob');
  assert.equal(await atAlice.getAttribute('data-gen'), '2');
  await sendText(alice.page, PLAIN.a2);
  const atBob = await waitForMessage(bob.page, PLAIN.a2, 'Alice');
  assert.equal(await atBob.getAttribute('data-gen'), '2');
  // Older messages (generation 1) stay readable for those who had it.
  await waitForMessage(bob.page, PLAIN.c1, 'Carol');

  // What went over the wire after the leave: the new key wrapped for Alice and Bob (not
  // Carol), and only generation 2 used.
  const after = recorder.events().filter((e) => e.at >= before);
  const rotation = after.find((e) => e.event === 'set-session-key'
    && Object.values(e.payload.encryptedKeys).every((w) => w.gen === 2));
  assert.ok(rotation, 'a set-session-key with generation 2');
  assert.deepEqual(Object.keys(rotation.payload.encryptedKeys).sort(), [userIdOf('alice'), userIdOf('bob')].sort());
  assert.ok(!(carolId in rotation.payload.encryptedKeys));
  const sends = after.filter((e) => e.event === 'send-message');
  assert.equal(sends.length, 2);
  for (const s of sends) assert.equal(s.payload.encrypted.gen, 2, 'the old key is no longer used');
});

test('a newcomer after the rotation reads new messages, not those of the old key', async () => {
  people.dave = await openPerson(browser, { label: 'dave', url: `${server.origin}/`, recorder });
  const { dave, alice } = people;
  await joinRoom(dave.page, link, { name: 'Dave' });
  await waitGeneration(dave.page, 2);
  await waitForMessage(dave.page, PLAIN.b2, 'Bob');
  await waitForMessage(dave.page, PLAIN.a2, 'Alice');
  // Generation-1 history is there but unreadable for Dave.
  await dave.page.locator('.msg[data-gen="1"] .body.problem').first().waitFor();
  assert.equal(await dave.page.locator('.msg[data-gen="1"] .body.problem').count(), 3);
  await sendText(dave.page, `Dave here ${tag}`);
  await waitForMessage(alice.page, `Dave here ${tag}`, 'Dave');
});

test('the server saw no plaintext, no room key and no private key', async () => {
  // The page keeps its keys in sessionStorage (this tab only) to survive a reload.
  const saved = JSON.parse(await people.alice.page.evaluate(() => sessionStorage.getItem('blindrelay.room.v1')));
  const roomKeys = Object.values(saved.groupKeys);
  assert.equal(roomKeys.length, 2, 'generations 1 and 2');
  const secrets = [...roomKeys, saved.identity.privateJwk.d, saved.roomSecret];
  for (const s of secrets) assert.match(s, /^[A-Za-z0-9_-]{43}$/);
  assertNothingLeaked(recorder, [...Object.values(PLAIN), tag, ...secrets], { serverLog: server.log });
  for (const { page } of Object.values(people)) assert.deepEqual(page.problems, []);
});
