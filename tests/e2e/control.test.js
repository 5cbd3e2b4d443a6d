// The creator's control over a room: removing a member (which also resets the link, so the
// removed person cannot come back with it) and resetting the link on its own. The removed
// member and the old link can neither read nor join; the members still in keep talking.

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, test } from 'node:test';
import {
  Recorder,
  assertNothingLeaked,
  confirmDialog,
  createRoom,
  joinRoom,
  menuItem,
  openPerson,
  screenshot,
  sendText,
  startSuite,
  stopSuite,
  waitForMessage,
} from './harness.js';

const tag = randomBytes(4).toString('hex');
const PLAIN = {
  before: `Before the removal ${tag}`,
  after: `Mallory must not read this ${tag}`,
  reply: `Bob still here ${tag}`,
  eve: `Eve came with the new link ${tag}`,
  afterReset: `After the second reset ${tag}`,
};

let server;
let browser;
const recorder = new Recorder();
const p = {};
const links = [];

const userIdOf = (label) => recorder.events(label).find((e) => e.event === 'join-session').payload.userId;
const keyOf = (link) => new URLSearchParams(new URL(link).hash.slice(1)).get('key');
const shownLink = (page) => page.inputValue('#share-link');

before(async () => ({ server, browser } = await startSuite()));
after(() => stopSuite({ server, browser }));

test('a group room with Alice (creator), Bob and Mallory', async () => {
  p.alice = await openPerson(browser, { label: 'alice', url: `${server.origin}/`, recorder });
  links.push(await createRoom(p.alice.page, { mode: 'group', name: 'Alice' }));
  p.bob = await openPerson(browser, { label: 'bob', url: `${server.origin}/`, recorder });
  p.mallory = await openPerson(browser, { label: 'mallory', url: `${server.origin}/`, recorder, viewport: { width: 390, height: 844 } });
  await joinRoom(p.bob.page, links[0], { name: 'Bob' });
  await joinRoom(p.mallory.page, links[0], { name: 'Mallory' });
  await sendText(p.alice.page, PLAIN.before);
  await waitForMessage(p.mallory.page, PLAIN.before, 'Alice');
  await waitForMessage(p.bob.page, PLAIN.before, 'Alice');
  assert.equal(await p.bob.page.locator('.member button.remove').count(), 0, 'only the creator may remove');
});

test('Alice removes Mallory: Mallory is told calmly, the link is reset, the key rotates without Mallory', async () => {
  const { alice, bob, mallory } = p;
  const malloryId = userIdOf('mallory');
  const saved = await mallory.page.evaluate(() => sessionStorage.getItem('blindrelay.room.v1'));
  const since = Date.now();
  await alice.page.click(`.member[data-user-id="${malloryId}"] button.remove`);
  await alice.page.locator('#confirm-dialog[open]', { hasText: 'link is reset' }).waitFor();
  await screenshot(alice.page, '20-remove-confirm');
  await confirmDialog(alice.page);

  await mallory.page.locator('#end-panel:not([hidden])', { hasText: 'You were removed from this room' }).waitFor();
  assert.equal(await mallory.page.locator('#banner').isHidden(), true, 'not an error');
  assert.equal(await mallory.page.locator('#composer').isHidden(), true);
  // Nothing more is read or sent here: no claim about who can read new messages.
  assert.equal(await mallory.page.locator('#key-generation').isHidden(), true, 'no key pill once removed');
  await screenshot(mallory.page, '21-removed-phone');
  await bob.page.locator('.notice', { hasText: 'Mallory was removed from the room' }).waitFor();
  await alice.page.locator('#share-panel:not([hidden])').waitFor();
  await alice.page.waitForFunction((old) => document.getElementById('share-link').value !== old, links[0]);
  links.push(await shownLink(alice.page));
  assert.notEqual(keyOf(links[1]), keyOf(links[0]));
  assert.equal(await alice.page.locator(`.member[data-user-id="${malloryId}"]`).count(), 0);
  await screenshot(alice.page, '20-removed-new-link');

  // The next room key went to Alice and Bob only; their messages use it.
  await alice.page.waitForFunction(() => {
    const saved = JSON.parse(sessionStorage.getItem('blindrelay.room.v1'));
    return saved.distributedTo.length === 2;
  });
  const rotation = recorder.events('alice').findLast((e) => e.at >= since && e.event === 'set-session-key');
  assert.deepEqual(Object.keys(rotation.payload.encryptedKeys).sort(), [userIdOf('alice'), userIdOf('bob')].sort());
  await sendText(alice.page, PLAIN.after);
  await waitForMessage(bob.page, PLAIN.after, 'Alice');
  await sendText(bob.page, PLAIN.reply);
  await waitForMessage(alice.page, PLAIN.reply, 'Bob');
  assert.ok(!(await mallory.page.locator('#messages').innerText()).includes(PLAIN.after));

  // Mallory's tab, restored as it was before the removal, is refused and told so.
  await mallory.page.evaluate((s) => sessionStorage.setItem('blindrelay.room.v1', s), saved);
  await mallory.page.reload();
  await mallory.page.locator('#view-ended', { hasText: 'You were removed from this room' }).waitFor();
  assert.equal(await mallory.page.locator('#banner').isHidden(), true);
});

/**
 * Opens a link made stale by a reset: the page says before it asks for a name that its key
 * does not match (as for a mis-copied link: the server cannot tell the two apart).
 */
async function expectStaleLink(page, link) {
  await page.goto(link);
  await page.locator('#view-ended', { hasText: 'This link’s key does not match' }).waitFor();
  assert.equal(await page.locator('#join-name').isVisible(), false);
  assert.equal(await page.locator('#banner').isHidden(), true, 'an end screen, not an error');
}

test('the old link no longer opens the room, even under a new name', async () => {
  const { mallory } = p;
  await mallory.page.goto(`${server.origin}/`);
  await expectStaleLink(mallory.page, links[0]);
  // Asked directly, the server refuses the old key all the same.
  const answer = await mallory.page.evaluate(async (sessionId) => {
    const res = await fetch('/api/session-status', {
      method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ sessionId }),
    });
    return res.json();
  }, `${new URLSearchParams(new URL(links[0]).hash.slice(1)).get('join')}:${keyOf(links[0])}`);
  assert.equal(answer.code, 'INVALID_KEY');
});

test('the new link admits a newcomer, who reads only what follows', async () => {
  p.eve = await openPerson(browser, { label: 'eve', url: `${server.origin}/`, recorder });
  await joinRoom(p.eve.page, links[1], { name: 'Eve' });
  await sendText(p.eve.page, PLAIN.eve);
  await waitForMessage(p.alice.page, PLAIN.eve, 'Eve');
  await waitForMessage(p.bob.page, PLAIN.eve, 'Eve');
  const text = await p.eve.page.locator('#messages').innerText();
  for (const old of [PLAIN.before, PLAIN.after, PLAIN.reply]) assert.ok(!text.includes(old));
});

test('Escape from the reset dialog gives the focus back to the menu that opened it', async () => {
  const { page } = p.alice;
  await page.click('#messages');
  await page.focus('#more-menu > summary');
  await page.keyboard.press('Enter');
  await page.locator('#more-menu[open] #reset-link').focus();
  await page.keyboard.press('Enter');
  await page.locator('#confirm-dialog[open]', { hasText: 'Reset the link?' }).waitFor();
  await page.keyboard.press('Escape');
  await page.locator('#confirm-dialog:not([open])').waitFor({ state: 'attached' });
  const focused = await page.evaluate(() => {
    const a = document.activeElement;
    return { summary: a?.matches('#more-menu > summary'), tag: a?.tagName, visible: Boolean(a?.checkVisibility()) };
  });
  assert.deepEqual(focused, { summary: true, tag: 'SUMMARY', visible: true }, `focus on ${focused.tag}`);
  assert.equal(await page.locator('#more-menu[open]').count(), 0, 'the menu is closed');
  // Nothing was reset.
  assert.equal(await shownLink(page), links[1]);
});

test('resetting the link alone: who is in stays (even through a reload), the previous link stops working', async () => {
  const { alice, bob, eve } = p;
  await menuItem(alice.page, 'reset-link');
  await confirmDialog(alice.page);
  await alice.page.waitForFunction((old) => document.getElementById('share-link').value !== old, links[1]);
  links.push(await shownLink(alice.page));
  // The second reset Bob hears of (the removal made the first).
  await bob.page.locator('.notice', { hasText: 'link was reset' }).nth(1).waitFor();
  // Members do not know the new link, so they no longer offer the old one.
  await bob.page.locator('#share-toggle').waitFor({ state: 'hidden' });
  // A member's reload comes back in with its resume token, without the new link.
  await bob.page.reload();
  await bob.page.locator('#conn[data-state="joined"]').waitFor();
  await sendText(bob.page, PLAIN.afterReset);
  await waitForMessage(eve.page, PLAIN.afterReset, 'Bob');
  const zoe = await openPerson(browser, { label: 'zoe', url: `${server.origin}/`, recorder });
  await expectStaleLink(zoe.page, links[1]);
  await joinRoom(zoe.page, links[2], { name: 'Zoe' });
  await zoe.page.locator('.member .name', { hasText: 'Eve' }).waitFor();
});

test('a reload of the creator keeps the new link; the server saw no plaintext', async () => {
  await p.alice.page.reload();
  await p.alice.page.locator('#conn[data-state="joined"]').waitFor();
  assert.equal(await shownLink(p.alice.page), links[2]);
  assertNothingLeaked(recorder, [...Object.values(PLAIN), tag], { serverLog: server.log });
  for (const { page } of Object.values(p)) assert.deepEqual(page.problems, []);
});
