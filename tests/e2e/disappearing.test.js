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

/** Moves every fake clock forward by `ms` (each page's timers that fall due run). */
async function forward(people, ms) {
  for (const who of people) await who.context.clock.fastForward(ms);
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
  // ...and the browser keeps nothing of them (their delivery receipts went with them).
  for (const { page } of [alice, bob]) assert.deepEqual(page.problems, []);
});
