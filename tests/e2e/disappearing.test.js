// Disappearing messages (static/js/disappear.js): the room's creator sets a timer from
// More; it travels as an encrypted `timer` message, so every page shows it in the room's
// header and the server learns nothing; every message carries the timer it was sent under
// and goes from every page (and from what the browser keeps) once older than that. Time is
// moved with Playwright's fake clock in the pages (page.clock), never waited for.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import {
  Recorder, Server, createRoom, joinRoom, launchBrowser, openPerson, openTab, screenshot, sendText, showPeople,
  stopSuite, waitForMessage,
} from './harness.js';

let server;
let browser;
const recorder = new Recorder();
const p = {};
let link;

before(async () => {
  server = await new Server().start();
  browser = await launchBrowser();
});
after(() => stopSuite({ server, browser }));

const msg = (page, text) => page.locator('#messages .msg', { has: page.locator('.body', { hasText: text }) });
const banner = (page) => page.locator('#disappear-timer');

/** A person whose page runs on a clock the test moves (installed before the page loads). */
async function person(label, opts = {}) {
  const who = await openPerson(browser, { label, url: `${server.origin}/`, recorder, ...opts });
  await who.context.clock.install();
  await who.page.reload();
  return who;
}

/**
 * Moves every fake clock forward by `ms` (each page's timers that fall due run). Socket.IO's
 * heartbeat timer falls due too: the page drops its connection and comes back (a rejoin
 * with its resume token), which is waited for, so that what is sent next arrives live.
 */
async function forward(people, ms) {
  for (const who of people) {
    await who.context.clock.fastForward(ms);
    await who.page.locator('#conn[data-state="joined"]').waitFor();
  }
}

async function setTimer(page, seconds) {
  if (!(await page.locator('#more-menu[open]').count())) await page.click('#more-menu summary');
  await page.selectOption('#timer-select', String(seconds));
  await page.keyboard.press('Escape');
}

test('the creator sets the timer from More; every page shows it in the header', async () => {
  p.alice = await person('alice');
  link = await createRoom(p.alice.page, { mode: 'group', name: 'Alice' });
  p.bob = await person('bob', { viewport: { width: 390, height: 844 } });
  await joinRoom(p.bob.page, link, { name: 'Bob' });
  await p.alice.page.locator('#member-list .member:not(.me)', { hasText: 'Bob' }).waitFor();

  // Off at first: no banner.
  for (const { page } of [p.alice, p.bob]) assert.equal(await banner(page).isVisible(), false);
  // Only the creator is offered the setting.
  await p.bob.page.click('#more-menu summary');
  assert.equal(await p.bob.page.locator('#timer-setting').isVisible(), false);
  await p.bob.page.keyboard.press('Escape');

  await p.alice.page.click('#more-menu summary');
  await p.alice.page.locator('#timer-select').waitFor();
  assert.match(await p.alice.page.locator('#timer-hint').textContent(), /30 minutes/);
  await screenshot(p.alice.page, 'disappearing-menu');
  const options = await p.alice.page.locator('#timer-select option').allTextContents();
  assert.deepEqual(options, ['Off', 'After 5 minutes', 'After 1 hour', 'After 8 hours', 'After 1 day', 'After 1 week']);
  await setTimer(p.alice.page, 3600);
  for (const { page } of [p.alice, p.bob]) {
    await banner(page).filter({ hasText: 'Messages disappear after 1 hour' }).waitFor();
  }
  await p.bob.page.locator('.notice-timer', { hasText: 'Alice set messages to disappear after 1 hour' }).waitFor();
  await screenshot(p.alice.page, 'disappearing-header-desktop');
  await screenshot(p.bob.page, 'disappearing-header-phone');
  for (const { page } of [p.alice, p.bob]) assert.deepEqual(page.problems, []);
});

test('messages go from every page once older than their timer, and stay gone after a reload', async () => {
  const { alice, bob } = p;
  await sendText(alice.page, 'Gone within the hour (A)');
  await sendText(bob.page, 'Gone within the hour (B)');
  await waitForMessage(alice.page, 'Gone within the hour (B)', 'Bob');
  await waitForMessage(bob.page, 'Gone within the hour (A)', 'Alice');
  const [id] = await msg(alice.page, 'Gone within the hour (A)').evaluateAll((els) => els.map((e) => e.dataset.id));
  // Alice's browser keeps the delivery receipt Bob's page sent for it.
  await alice.page.waitForFunction((mid) => Object.keys(localStorage).some((k) => k.startsWith('blindrelay.member.v1:')
    && JSON.parse(localStorage.getItem(k)).delivered?.[mid]), id);

  // 59 minutes on: still there.
  await forward([alice, bob], 59 * 60_000);
  for (const { page } of [alice, bob]) {
    assert.equal(await msg(page, 'Gone within the hour').count(), 2);
  }
  // Past the hour: gone from both pages.
  await forward([alice, bob], 2 * 60_000);
  for (const { page } of [alice, bob]) {
    await msg(page, 'Gone within the hour').first().waitFor({ state: 'detached' });
    assert.equal(await msg(page, 'Gone within the hour').count(), 0);
  }
  // ...and from what the browser keeps: the receipt went with it.
  assert.equal(await alice.page.evaluate((mid) => Object.keys(localStorage)
    .some((k) => (localStorage.getItem(k) ?? '').includes(mid)), id), false);
  await screenshot(alice.page, 'disappearing-after-desktop');
  await screenshot(bob.page, 'disappearing-after-phone');

  // A reload replays the server's history (it still holds the ciphertexts): they stay gone.
  await bob.page.reload();
  await bob.page.locator('#conn[data-state="joined"]').waitFor();
  await bob.page.locator('.notice', { hasText: 'You are back in the room' }).waitFor();
  await banner(bob.page).filter({ hasText: '1 hour' }).waitFor();
  try {
  await sendText(alice.page, 'After the reload'); await waitForMessage(bob.page, 'After the reload', 'Alice'); } catch (e) {
    await screenshot(bob.page, 'dbg-bob'); await screenshot(alice.page, 'dbg-alice');
    console.log(await alice.page.locator('#messages').innerText(), await alice.page.locator('#conn').getAttribute('data-state'), await alice.page.evaluate(() => Date.now() - performance.timeOrigin), bob.page.problems, alice.page.problems);
    throw e;
  }
  assert.equal(await msg(bob.page, 'Gone within the hour').count(), 0);
  for (const { page } of [alice, bob]) assert.deepEqual(page.problems, []);
});

test('each message keeps the timer it was sent under: a later, shorter one does not cut it short', async () => {
  const { alice, bob } = p;
  await setTimer(alice.page, 24 * 3600);
  await banner(bob.page).filter({ hasText: 'after 1 day' }).waitFor();
  await sendText(alice.page, 'Sent under a day');
  await waitForMessage(bob.page, 'Sent under a day', 'Alice');
  await setTimer(alice.page, 300);
  await banner(bob.page).filter({ hasText: 'after 5 minutes' }).waitFor();
  await sendText(bob.page, 'Sent under five minutes');
  await waitForMessage(alice.page, 'Sent under five minutes', 'Bob');

  await forward([alice, bob], 6 * 60_000);
  for (const { page } of [alice, bob]) {
    await msg(page, 'Sent under five minutes').waitFor({ state: 'detached' });
    assert.equal(await msg(page, 'Sent under a day').count(), 1, 'the day-long message stays');
    assert.equal(await msg(page, 'After the reload').count(), 1, 'the hour-long message stays');
  }
  for (const { page } of [alice, bob]) assert.deepEqual(page.problems, []);
});

test('a timer message from anyone but the creator is ignored, by every page', async () => {
  const { alice, bob } = p;
  const sentBefore = recorder.events('bob').filter((e) => e.event === 'send-message').length;
  // Bob's page does not offer the setting; forced into view, its choice goes out encrypted
  // like the creator's would, and nobody follows it.
  await bob.page.evaluate(() => { document.getElementById('timer-setting').hidden = false; });
  await bob.page.click('#more-menu summary');
  await bob.page.selectOption('#timer-select', String(7 * 24 * 3600));
  await bob.page.keyboard.press('Escape');
  await sendText(bob.page, 'Marker after the forged timer');
  await waitForMessage(alice.page, 'Marker after the forged timer', 'Bob');
  assert.equal(recorder.events('bob').filter((e) => e.event === 'send-message').length, sentBefore + 2,
    'the forged timer went out (then the marker)');
  for (const { page } of [alice, bob]) {
    assert.equal(await banner(page).textContent(), 'Messages disappear after 5 minutes');
  }
  assert.equal(await alice.page.locator('.notice-timer', { hasText: '1 week' }).count(), 0);
  for (const { page } of [alice, bob]) assert.deepEqual(page.problems, []);
});

test('a new tab replaying the history shows no expired message; a newcomer learns the timer', async () => {
  const { bob } = p;
  // The same member in a new tab of Bob's browser: it holds the room keys, so it reads the
  // history the server replays, which still holds the expired ciphertexts.
  const tab = await openTab(bob.context, { label: 'bob2', url: link, recorder });
  await tab.page.locator('#conn[data-state="joined"]').waitFor();
  // (Only the pages' clocks moved, not the server's: a replayed message's age counts from
  // its server timestamp, so those sent after the clocks were moved look an hour older to
  // the new tab than they are. The day-long one is far from its end either way.)
  await waitForMessage(tab.page, 'Sent under a day', 'Alice');
  assert.equal(await msg(tab.page, 'Gone within the hour').count(), 0);
  assert.equal(await msg(tab.page, 'Sent under five minutes').count(), 0);
  await banner(tab.page).filter({ hasText: 'after 5 minutes' }).waitFor();
  assert.deepEqual(tab.page.problems, []);
  await tab.page.close();

  // A newcomer cannot read what was said before (a new room key), so the creator's page
  // sends the timer again under the new key.
  p.carol = await person('carol', { viewport: { width: 390, height: 844 }, touch: true });
  await joinRoom(p.carol.page, link, { name: 'Carol' });
  await banner(p.carol.page).filter({ hasText: 'Messages disappear after 5 minutes' }).waitFor();
  await showPeople(p.carol.page);
  await screenshot(p.carol.page, 'disappearing-newcomer-phone');
  for (const who of [p.alice, p.bob, p.carol]) assert.deepEqual(who.page.problems, []);
});
