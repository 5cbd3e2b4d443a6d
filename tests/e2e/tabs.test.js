// What a page knew stays true across a reload: a reload still shows "Delivered" where the
// others' pages said they got a message (the server keeps no receipts).

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, test } from 'node:test';
import {
  Recorder,
  createRoom,
  joinRoom,
  openPerson,
  screenshot,
  sendText,
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
  await delivered(alice.page, text).filter({ hasText: 'Delivered to 2' }).waitFor();
  await alice.page.reload();
  await alice.page.locator('#conn[data-state="joined"]').waitFor();
  await alice.page.locator('.msg.mine', { hasText: text }).waitFor();
  assert.equal(await delivered(alice.page, text).textContent(), 'Delivered to 2');
  await screenshot(alice.page, 'tabs-delivered-after-reload');
});
