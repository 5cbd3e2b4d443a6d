// The room on a phone (390x844, a touch screen): the page itself never scrolls; the message
// log takes what is left between the room's head and the composer, which stays pinned at
// the bottom; the members and safety numbers are one tap away above the log, never below
// the composer; Enter adds a line (a phone keyboard has no Shift to hold) and Send sends;
// the invitation's QR code is large enough to scan from another phone. The desktop keeps
// Enter to send and shows a QR code larger than before.

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, test } from 'node:test';
import {
  createRoom, joinRoom, openPerson, screenshot, sendText, startSuite, stopSuite, waitForMessage,
  DESKTOP, PHONE,
} from './harness.js';

const tag = randomBytes(4).toString('hex');
let server;
let browser;
let alice;
let bob;
let link;

before(async () => ({ server, browser } = await startSuite()));
after(() => stopSuite({ server, browser }));

/** Where things are on the page, and whether the page itself can scroll. */
function layout(page) {
  return page.evaluate(() => {
    const box = (sel) => {
      const e = document.querySelector(sel);
      if (!e || !e.checkVisibility()) return null;
      const r = e.getBoundingClientRect();
      return { top: r.top, bottom: r.bottom, left: r.left, right: r.right, width: r.width, height: r.height };
    };
    return {
      viewport: { width: innerWidth, height: innerHeight },
      scrollHeight: document.documentElement.scrollHeight,
      scrollWidth: document.documentElement.scrollWidth,
      composer: box('#composer'),
      send: box('#send'),
      messages: box('#messages'),
      people: box('#people'),
      peopleToggle: box('#people-toggle'),
      footer: box('.footer'),
      qr: box('#share-qr svg'),
      modules: (() => {
        const svg = document.querySelector('#share-qr svg');
        return svg ? svg.viewBox.baseVal.width : 0;
      })(),
    };
  });
}

/** The QR code's size on the page and the size of one of its modules, in CSS pixels. */
async function qrSize(page) {
  const l = await layout(page);
  return { size: l.qr.width, module: l.qr.width / l.modules };
}

test('a phone joins a group room: composer pinned, log between, nothing below it', async () => {
  alice = await openPerson(browser, { label: 'alice', url: `${server.origin}/`, viewport: DESKTOP });
  link = await createRoom(alice.page, { mode: 'group', name: 'Alice' });
  bob = await openPerson(browser, { label: 'bob', url: `${server.origin}/`, viewport: PHONE, touch: true });
  await joinRoom(bob.page, link, { name: 'Bob' });
  for (let i = 0; i < 12; i++) await sendText(alice.page, `Line ${i} of a long conversation ${tag}`);
  await waitForMessage(bob.page, `Line 11 of a long conversation ${tag}`, 'Alice');
  const l = await layout(bob.page);
  assert.ok(l.scrollHeight <= l.viewport.height, `the page is ${l.scrollHeight} px tall in ${l.viewport.height}`);
  assert.ok(l.scrollWidth <= PHONE.width);
  assert.ok(l.composer.bottom <= l.viewport.height && l.send.bottom <= l.viewport.height, 'the composer is in view');
  assert.ok(l.viewport.height - l.composer.bottom < 24, `the composer sits at the bottom (${l.composer.bottom})`);
  assert.ok(l.messages.bottom <= l.composer.top, 'the log ends above the composer');
  assert.equal(l.footer, null, 'no footer under the composer');
  // The members are not under the composer: a toggle above the log shows them.
  assert.ok(l.peopleToggle && l.peopleToggle.bottom <= l.messages.top, 'the members toggle is above the log');
  assert.equal(l.people, null, 'the member list is folded away');
  await screenshot(bob.page, 'phone-room');
});

test('on the phone the members and safety numbers open above the log', async () => {
  await bob.page.tap('#people-toggle');
  await bob.page.locator('#people .safety-number', { hasText: /^\d{5}( \d{5}){5}$/ }).waitFor();
  assert.equal(await bob.page.locator('#people-toggle').getAttribute('aria-expanded'), 'true');
  const l = await layout(bob.page);
  assert.ok(l.people.bottom <= l.messages.top, 'the members are above the log');
  assert.ok(l.people.bottom <= l.composer.top, 'and above the composer');
  assert.ok(l.scrollHeight <= l.viewport.height, `the page is ${l.scrollHeight} px tall`);
  assert.ok(l.send.bottom <= l.viewport.height, 'Send still in view');
  await screenshot(bob.page, 'phone-people-open');
  await bob.page.tap('#people-toggle');
  await bob.page.locator('#people').waitFor({ state: 'hidden' });
});

test('on a phone Enter adds a line and Send sends', async () => {
  const { page } = bob;
  await page.tap('#message-input');
  await page.keyboard.type('First line');
  await page.keyboard.press('Enter');
  await page.keyboard.type(`second line ${tag}`);
  assert.equal(await page.inputValue('#message-input'), `First line\nsecond line ${tag}`);
  assert.equal(await page.locator('.msg.mine').count(), 0, 'Enter sent nothing');
  await page.tap('#send');
  await page.locator('.msg.mine[data-state="sent"] .body', { hasText: `second line ${tag}` }).waitFor();
  const msg = await waitForMessage(alice.page, `second line ${tag}`, 'Bob');
  assert.equal(await msg.locator('.body').innerText(), `First line\nsecond line ${tag}`);
  assert.equal(await page.inputValue('#message-input'), '');
  // The desktop keeps Enter to send.
  await sendText(alice.page, `Enter still sends on the desktop ${tag}`);
});

test('the QR code is large on the phone, and larger than before on the desktop', async () => {
  if (await bob.page.locator('#share-panel').isHidden()) await bob.page.tap('#share-toggle');
  await bob.page.tap('#qr-toggle');
  await bob.page.locator('#share-qr svg').waitFor();
  await bob.page.locator('#share-qr svg').scrollIntoViewIfNeeded();
  const phone = await qrSize(bob.page);
  assert.ok(phone.size >= 250, `${phone.size} px wide on the phone`);
  assert.ok(phone.module >= 4, `${phone.module.toFixed(1)} px per module on the phone`);
  const l = await layout(bob.page);
  assert.ok(l.qr.right <= PHONE.width && l.qr.left >= 0, 'inside the screen');
  assert.ok(l.scrollHeight <= l.viewport.height, 'the page still does not scroll');
  assert.ok(l.send.bottom <= l.viewport.height, 'Send still in view');
  await screenshot(bob.page, 'phone-qr');

  if (await alice.page.locator('#share-panel').isHidden()) await alice.page.click('#share-toggle');
  await alice.page.click('#qr-toggle');
  await alice.page.locator('#share-qr svg').waitFor();
  const desktop = await qrSize(alice.page);
  assert.ok(desktop.size >= 200, `${desktop.size} px wide on the desktop`);
  assert.ok(desktop.module >= 3.5, `${desktop.module.toFixed(1)} px per module on the desktop`);
  const d = await layout(alice.page);
  assert.ok(d.send.bottom <= DESKTOP.height && d.scrollHeight <= DESKTOP.height, 'the composer stays in view');
  await screenshot(alice.page, 'desktop-qr');
  for (const { page } of [alice, bob]) assert.deepEqual(page.problems, []);
});
