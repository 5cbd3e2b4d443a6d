// What a page knew stays true across a reload and a new tab of the same browser: a reload
// still shows "Delivered" where the others' pages said they got a message; the same person
// opening the room's link in a new tab comes back as the same member (same userId, same
// key: the others' verified mark stays), not as a second one with the same name; a group
// room's creator in two tabs hands out one room key, not two. Two different people who
// chose the same name are told apart in the member list.

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, test } from 'node:test';
import {
  Recorder,
  createRoom,
  joinRoom,
  openPerson,
  openTab,
  screenshot,
  sendText,
  showPeople,
  startSuite,
  stopSuite,
  waitForMessage,
} from './harness.js';

const tag = randomBytes(4).toString('hex');
let server;
let browser;
const recorder = new Recorder();
const p = {};
let link;

const joins = (label) => recorder.events(label).filter((e) => e.event === 'join-session').map((e) => e.payload);
const delivered = (page, text) => page.locator('.msg.mine', { hasText: text }).locator('.status');

before(async () => ({ server, browser } = await startSuite()));
after(() => stopSuite({ server, browser }));

test('a group room of three: Alice, Bob and Carol', async () => {
  p.alice = await openPerson(browser, { label: 'alice', url: `${server.origin}/`, recorder });
  link = await createRoom(p.alice.page, { mode: 'group', name: 'Alice' });
  p.bob = await openPerson(browser, { label: 'bob', url: `${server.origin}/`, recorder });
  p.carol = await openPerson(browser, { label: 'carol', url: `${server.origin}/`, recorder });
  await joinRoom(p.bob.page, link, { name: 'Bob' });
  await joinRoom(p.carol.page, link, { name: 'Carol' });
  for (const { page } of Object.values(p)) await page.locator('#member-list .member').nth(2).waitFor();
});

test('a reload keeps the Delivered marks the page had', async () => {
  const { alice, bob, carol } = p;
  const text = `Delivered before the reload ${tag}`;
  await sendText(alice.page, text);
  await waitForMessage(bob.page, text, 'Alice');
  await waitForMessage(carol.page, text, 'Alice');
  // Both pages showed it too: their read receipts (encrypted messages, kept in the history).
  await delivered(alice.page, text).filter({ hasText: 'Delivered to 2 · Seen by 2' }).waitFor();
  await alice.page.reload();
  await alice.page.locator('#conn[data-state="joined"]').waitFor();
  await alice.page.locator('.msg.mine', { hasText: text }).waitFor();
  // The delivery marks from what the page kept, the receipts from the history it replays.
  assert.match(await delivered(alice.page, text).textContent(), /^Delivered to 2( · Seen by 2)?$/);
  await delivered(alice.page, text).filter({ hasText: 'Delivered to 2 · Seen by 2' }).waitFor();
  await screenshot(alice.page, 'tabs-delivered-after-reload');
});

test('the same person opening the link in a new tab comes back as the same member', async () => {
  const { bob, carol } = p;
  const mine = `Bob's message before the new tab ${tag}`;
  await sendText(bob.page, mine);
  await delivered(bob.page, mine).filter({ hasText: 'Delivered to 2 · Seen by 2' }).waitFor();
  // Carol compares Bob's safety number and marks it as verified.
  const bobRow = carol.page.locator('.member:not(.me)', { hasText: 'Bob' });
  await bobRow.locator('.safety-number', { hasText: /^\d{5}( \d{5}){5}$/ }).waitFor();
  const safety = await bobRow.locator('.safety-number').textContent();
  await bobRow.locator('button.verify').click();
  await carol.page.locator('.member[data-verified="true"]', { hasText: 'Bob' }).waitFor();

  const notices = await carol.page.locator('.notice').count();
  // Bob opens the same link in a new tab of the same browser: no name asked, same member.
  p.bob2 = await openTab(bob.context, { label: 'bob2', url: link, recorder });
  const tab = p.bob2.page;
  await tab.locator('#view-room').waitFor();
  await tab.locator('#conn[data-state="joined"]').waitFor();
  const [first] = joins('bob');
  const [again] = joins('bob2');
  assert.equal(again.userId, first.userId, 'the same userId');
  assert.equal(again.publicKey, first.publicKey, 'the same identity key');
  assert.ok(again.resumeToken, 'proved with the resume token');
  assert.equal(await tab.locator('#room-me').textContent(), 'You are Bob.');
  // The new tab knows what Bob's first tab knew: his message was delivered.
  await tab.locator('.msg.mine', { hasText: mine }).waitFor();
  assert.match(await delivered(tab, mine).textContent(), /^Delivered to 2( · Seen by 2)?$/);
  await delivered(tab, mine).filter({ hasText: 'Delivered to 2 · Seen by 2' }).waitFor();

  const fromTab = `From Bob's new tab ${tag}`;
  await sendText(tab, fromTab);
  await waitForMessage(carol.page, fromTab, 'Bob');
  // Carol still sees one Bob, with the same safety number, still verified by her.
  assert.equal(await carol.page.locator('#member-list .member').count(), 3);
  assert.equal(await bobRow.locator('.safety-number').textContent(), safety);
  assert.equal(await bobRow.getAttribute('data-verified'), 'true');
  assert.equal(await carol.page.locator('.notice').count(), notices, 'nobody joined, left or changed keys meanwhile');
  assert.equal(await carol.page.locator('.safety-changed').count(), 0);
  await screenshot(tab, 'tabs-new-tab-same-member');
  await screenshot(carol.page, 'tabs-verified-stays');
});

test('the creator of a group room in two tabs: one hands out the room keys, the other takes over when it closes', async () => {
  const first = await openPerson(browser, { label: 'gus', url: `${server.origin}/`, recorder });
  const room = await createRoom(first.page, { mode: 'group', name: 'Gus' });
  const second = await openTab(first.context, { label: 'gus2', url: room, recorder });
  await second.page.locator('#conn[data-state="joined"]').waitFor();
  assert.equal(await second.page.locator('#room-me').textContent(), 'You are Gus (you created this room).');
  const since = Date.now();
  const hal = await openPerson(browser, { label: 'hal', url: `${server.origin}/`, recorder });
  await joinRoom(hal.page, room, { name: 'Hal' });
  // Both tabs write with the one key Hal got.
  await sendText(first.page, `Gus's first tab ${tag}`);
  await waitForMessage(hal.page, `Gus's first tab ${tag}`, 'Gus');
  await sendText(second.page, `Gus's second tab ${tag}`);
  await waitForMessage(hal.page, `Gus's second tab ${tag}`, 'Gus');
  const rotations = () => recorder.events().filter((e) => e.at >= since && e.event === 'set-session-key');
  assert.deepEqual(rotations().map((e) => e.label), ['gus'], 'one key for Hal\'s arrival, from one tab');
  // The first tab closes: the second hands out the next key, for Ivy's arrival.
  await first.page.close();
  const ivy = await openPerson(browser, { label: 'ivy', url: `${server.origin}/`, recorder });
  await joinRoom(ivy.page, room, { name: 'Ivy' });
  await sendText(second.page, `After the takeover ${tag}`);
  await waitForMessage(ivy.page, `After the takeover ${tag}`, 'Gus');
  await waitForMessage(hal.page, `After the takeover ${tag}`, 'Gus');
  assert.ok(rotations().slice(1).every((e) => e.label === 'gus2'), 'the second tab took over');
  for (const { page } of [second, hal, ivy]) assert.deepEqual(page.problems, []);
  await Promise.all([first.context.close(), hal.context.close(), ivy.context.close()]);
});

test('two different people with the same name are told apart in the member list', async () => {
  const { carol } = p;
  p.dave = await openPerson(browser, { label: 'dave', url: `${server.origin}/`, recorder });
  p.erin = await openPerson(browser, { label: 'erin', url: `${server.origin}/`, recorder, viewport: { width: 390, height: 844 } });
  await joinRoom(p.dave.page, link, { name: 'Sam' });
  await joinRoom(p.erin.page, link, { name: 'Sam' });
  const sams = carol.page.locator('#member-list .member', { hasText: 'Sam' });
  await sams.nth(1).waitFor();
  await carol.page.waitForFunction(() => [...document.querySelectorAll('#member-list .member .name')]
    .filter((n) => n.textContent.startsWith('Sam')).every((n) => /⚠ \d{5}$/.test(n.textContent)));
  const labels = await sams.locator('.name').allTextContents();
  assert.equal(labels.length, 2);
  assert.notEqual(labels[0], labels[1], `told apart: ${labels}`);
  // Each Sam's own page tells the other Sam apart from itself too (on a phone, once unfolded).
  await showPeople(p.erin.page);
  await p.erin.page.locator('#member-list .member:not(.me) .name', { hasText: /^Sam ⚠ \d{5}$/ }).waitFor();
  await screenshot(carol.page, 'tabs-same-name');
  await screenshot(p.erin.page, 'tabs-same-name-phone');
  for (const { page } of Object.values(p)) assert.deepEqual(page.problems, []);
});
