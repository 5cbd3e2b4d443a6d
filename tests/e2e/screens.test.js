// The page at phone (390x844) and desktop (1280x800) sizes: 64-character names never make it
// scroll sideways and Send stays in view; the open invitation leaves the composer above the
// fold; unread messages count in the title while the tab is not looked at, with an opt-in
// notification that carries no message text; a link to a room that is gone says so; an
// unknown path gets a page with a way back. Every page is served under the strict policy.

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, test } from 'node:test';
import {
  CSP,
  confirmDialog,
  cspViolations,
  createRoom,
  joinRoom,
  menuItem,
  openPerson,
  screenshot,
  sendText,
  startSuite,
  stopSuite,
  waitForMessage,
  DESKTOP,
  PHONE,
} from './harness.js';

const tag = randomBytes(4).toString('hex');
/** 64 characters without a space: the longest name the server keeps, and the hardest to wrap. */
const LONG = (n) => `${n}Wolfeschlegelsteinhausenbergerdorffvoralternwarengewissenhaftschafers`.slice(0, 64);

let server;
let browser;
let alice;
let bob;
let link;

before(async () => ({ server, browser } = await startSuite()));
after(() => stopSuite({ server, browser }));

/** Nothing wider than the window, and Send fully inside it. */
async function assertFits(page, width) {
  const { scrollWidth, send } = await page.evaluate(() => ({
    scrollWidth: document.documentElement.scrollWidth,
    send: document.getElementById('send').getBoundingClientRect().toJSON(),
  }));
  assert.ok(scrollWidth <= width, `page is ${scrollWidth} px wide in a ${width} px window`);
  assert.ok(send.left >= 0 && send.right <= width && send.width > 0, `Send at ${send.left}-${send.right}`);
}

test('the start and join screens at phone size', async () => {
  alice = await openPerson(browser, { label: 'alice', url: `${server.origin}/`, viewport: PHONE });
  await alice.page.locator('#view-home').waitFor();
  await screenshot(alice.page, '01-create-phone');
  assert.ok(await alice.page.evaluate(() => document.documentElement.scrollWidth <= 390));
});

test('64-character names on a 390 px phone: no sideways scroll, Send in view', async () => {
  link = await createRoom(alice.page, { mode: 'group', name: LONG('Ann') });
  bob = await openPerson(browser, { label: 'bob', url: `${server.origin}/`, viewport: PHONE });
  await bob.page.goto(link);
  await bob.page.locator('#view-join').waitFor();
  await screenshot(bob.page, '03-join-phone');
  await joinRoom(bob.page, link, { name: LONG('Bob') });
  await alice.page.locator('.notice', { hasText: `${LONG('Bob')} joined` }).waitFor();
  await sendText(alice.page, `Hello from the long name ${tag}`);
  await waitForMessage(bob.page, `Hello from the long name ${tag}`, LONG('Ann'));
  await bob.page.fill('#message-input', 'typing…');
  await alice.page.locator('#typing', { hasText: LONG('Bob') }).waitFor();
  await sendText(bob.page, `${'unbroken'.repeat(12)} ${tag}`);
  await waitForMessage(alice.page, tag, LONG('Bob'));
  for (const { page } of [alice, bob]) {
    if (await page.locator('#share-panel').isHidden()) await page.click('#share-toggle');
    await page.locator('#share-panel:not([hidden])').waitFor();
    await assertFits(page, PHONE.width);
    // The top bar and the room's title row stay one line each.
    const rows = await page.evaluate(() => ['.topbar', '.room-actions'].map((s) => document.querySelector(s).getBoundingClientRect().height));
    assert.ok(rows[0] < 60 && rows[1] < 50, `one-line bars (${rows})`);
  }
  await screenshot(alice.page, '17-long-names-phone');
  await bob.page.emulateMedia({ colorScheme: 'dark' });
  await screenshot(bob.page, '17-long-names-phone-dark');
  await bob.page.emulateMedia({ colorScheme: 'light' });
  await menuItem(bob.page, 'sound-toggle');
  await bob.page.locator('#sound-toggle[aria-pressed="true"]').waitFor();
  await screenshot(bob.page, '22-menu-phone');
  await bob.page.click('#messages');
  await bob.page.locator('#more-menu:not([open])').waitFor();
});

test('at 1280x800 the open invitation leaves the composer in view', async () => {
  await alice.page.setViewportSize(DESKTOP);
  await alice.page.locator('#share-panel:not([hidden])').waitFor();
  await alice.page.click('#qr-toggle');
  await alice.page.locator('#share-qr svg').waitFor();
  const box = await alice.page.locator('#send').boundingBox();
  assert.ok(box.y + box.height <= DESKTOP.height, `Send ends at ${box.y + box.height}`);
  const height = await alice.page.evaluate(() => document.documentElement.scrollHeight);
  assert.ok(height <= DESKTOP.height, `page is ${height} px tall`);
  await screenshot(alice.page, '02-share-link-qr-desktop');
  await assertFits(alice.page, DESKTOP.width);
});

test('unread messages count in the title while the tab is not looked at; the notification has no text of theirs', async () => {
  const { page } = alice;
  // A stand-in for the browser's notifications, granted: what the page would show.
  await page.evaluate(() => {
    window.shown = [];
    window.Notification = class {
      static permission = 'default';
      static async requestPermission() { this.permission = 'granted'; return 'granted'; }
      constructor(title, options) { window.shown.push({ title, ...options }); }
      addEventListener() {}
      close() {}
    };
  });
  await menuItem(page, 'notify-toggle');
  await page.locator('#notify-toggle[aria-pressed="true"]').waitFor();
  await page.click('#messages');
  const base = await page.title();
  await page.evaluate(() => window.dispatchEvent(new Event('blur')));
  await sendText(bob.page, `first unseen ${tag}`);
  await sendText(bob.page, `second unseen ${tag}`);
  await page.waitForFunction((t) => document.title === `(2) ${t}`, base);
  const shown = await page.evaluate(() => window.shown);
  assert.equal(shown.length, 2);
  for (const n of shown) {
    assert.equal(n.body, 'New message in your room');
    assert.ok(!JSON.stringify(n).includes(tag), 'no message text in a notification');
  }
  await page.evaluate(() => window.dispatchEvent(new Event('focus')));
  await page.waitForFunction((t) => document.title === t, base);
});

test('the creator closes the room; a link to it then says the room is gone before asking for a name', async () => {
  const carol = await openPerson(browser, { label: 'carol', url: `${server.origin}/`, viewport: DESKTOP });
  await carol.page.goto(link);
  await carol.page.locator('#view-join').waitFor();
  await screenshot(carol.page, '03-join-desktop');
  await menuItem(alice.page, 'close-room');
  await confirmDialog(alice.page);
  await alice.page.locator('#end-panel:not([hidden])', { hasText: 'You closed this room' }).waitFor();
  await bob.page.locator('#end-panel:not([hidden])', { hasText: 'The room was closed' }).waitFor();
  // Nobody reads new messages in a closed room: the pill that says who can is gone.
  for (const { page } of [alice, bob]) assert.equal(await page.locator('#key-generation').isHidden(), true, 'no key pill once closed');
  await screenshot(bob.page, '18-room-closed-phone');
  // A fresh visit of the link: the page asks the server first, and no name is asked for.
  await carol.page.goto(`${server.origin}/`);
  await carol.page.goto(link);
  await carol.page.locator('#view-ended', { hasText: 'This room is not on the server' }).waitFor();
  assert.equal(await carol.page.locator('#join-name').isVisible(), false);
  assert.equal(await carol.page.locator('#banner').isHidden(), true, 'an end screen, not an error');
  await screenshot(carol.page, '18-room-gone');
  await carol.page.click('#ended-new');
  await carol.page.locator('#view-home').waitFor();
  for (const p of [alice, bob, carol]) assert.deepEqual(p.page.problems, []);
});

test('every answer carries the strict policy; an unknown path gets a page with a way back', async () => {
  for (const path of ['/', '/js/app.js', '/no/such/page']) {
    const res = await fetch(`${server.origin}${path}`);
    assert.equal(res.headers.get('content-security-policy'), CSP, path);
    assert.equal(res.headers.get('x-content-type-options'), 'nosniff');
    assert.equal(res.headers.get('referrer-policy'), 'no-referrer');
  }
  // The browser enforces it, and the harness notices a violation (taken back here).
  const seen = cspViolations.length;
  await bob.page.evaluate(() => {
    const s = document.createElement('script');
    s.textContent = 'window.injected = true';
    document.body.append(s);
  });
  await bob.page.waitForFunction(() => true);
  assert.equal(await bob.page.evaluate(() => window.injected), undefined, 'an inline script does not run');
  assert.ok(cspViolations.length > seen, 'the violation was recorded');
  cspViolations.splice(seen);
  bob.page.problems.length = 0;
  const lost = await openPerson(browser, { label: 'lost', url: `${server.origin}/no/such/page`, viewport: PHONE });
  await lost.page.locator('h1', { hasText: 'Page not found' }).waitFor();
  await screenshot(lost.page, '23-not-found-phone');
  await lost.page.click('a[href="/"]');
  await lost.page.locator('#view-home').waitFor();
  // The browser logs the 404 of the page itself; nothing else may go wrong.
  assert.deepEqual(lost.page.problems.filter((x) => !/status of 404/.test(x)), []);
});
