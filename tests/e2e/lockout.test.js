// Wrong passwords lock a person out of a room for a while (JOIN_FAILURES_PER_SESSION,
// JOIN_LOCKOUT_SECS): the page says so in plain words, with how long to wait, counting down,
// and keeps the Join button off meanwhile; the room's creator is told why.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { Server, bannerText, createRoom, launchBrowser, openPerson, screenshot, stopSuite } from './harness.js';

const PASSWORD = 'the right password';
const WAIT_RE = /^Too many wrong passwords\. Try again in (\d+) minutes?(?: (\d+) seconds?)?\.$/;

let server;
let browser;

before(async () => {
  server = await new Server({ env: { JOIN_FAILURES_PER_SESSION: '2', JOIN_LOCKOUT_SECS: '300' } }).start();
  browser = await launchBrowser();
});
after(() => stopSuite({ server, browser }));

test('after too many wrong passwords the page says how long to wait', async () => {
  const alice = await openPerson(browser, { label: 'alice', url: `${server.origin}/` });
  const link = await createRoom(alice.page, { mode: 'password', name: 'Alice', password: PASSWORD });
  const bob = await openPerson(browser, { label: 'bob', url: `${server.origin}/`, viewport: { width: 390, height: 844 } });
  await bob.page.goto(link);
  await bob.page.fill('#join-name', 'Bob');
  // The second wrong password starts the lockout, and its refusal already says how long.
  for (let i = 0; i < 2; i++) {
    await bob.page.fill('#join-password', `wrong guess ${i}`);
    await bob.page.click('#join-submit');
    await bob.page.locator('#banner:not([hidden])').waitFor();
    await bob.page.locator('#join-submit:not([aria-busy])').waitFor();
  }
  const text = await bannerText(bob.page);
  const m = WAIT_RE.exec(text);
  assert.ok(m, `a wait in plain words: ${JSON.stringify(text)}`);
  const seconds = Number(m[1]) * 60 + Number(m[2] ?? 0);
  assert.ok(seconds > 240 && seconds <= 300, `${seconds} s of a 300 s lockout`);
  assert.equal(await bob.page.locator('#join-submit').isDisabled(), true, 'no pointless retries meanwhile');
  // The wait counts down.
  await bob.page.waitForFunction((t) => document.getElementById('banner-text').textContent !== t, text);
  await screenshot(bob.page, '19-lockout-phone');
  await alice.page.locator('.notice-lockout', { hasText: /wrong passwords too often and is locked out for \d+ minutes?/ }).waitFor();
  await screenshot(alice.page, '19-lockout-creator');
  assert.deepEqual([...alice.page.problems, ...bob.page.problems], []);
});
