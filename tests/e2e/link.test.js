// A link whose key is wrong (mis-copied, or replaced by a reset): the page says plainly that
// the key does not match, without claiming a reset. Opening such a link is no failed join:
// however often it is opened, the right link still lets the same address in. Only joins with
// a wrong key lock an address out (JOIN_FAILURES_PER_SESSION), and then the room's creator
// is told; the status the page asks for on opening answers the key only while the
// address has failed attempts left, so it is no faster a way of guessing keys than a join.
// A reload during a lockout keeps counting down with Join off.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { ERROR_TEXT } from '../../static/js/errors.js';
import { Server, bannerText, createRoom, joinRoom, launchBrowser, openPerson, screenshot, stopSuite } from './harness.js';

const FAILURES = 3;
const WAIT_RE = /^Too many failed attempts to join this room\. Try again in (\d+) minutes?(?: (\d+) seconds?)?\.$/;

let server;
let browser;
let alice;
let link;
let wrong;

before(async () => {
  server = await new Server({ env: { JOIN_FAILURES_PER_SESSION: String(FAILURES), JOIN_LOCKOUT_SECS: '300' } }).start();
  browser = await launchBrowser();
});
after(() => stopSuite({ server, browser }));

/** The link with one character of its key changed, as a mis-copy would. */
function miscopied(good) {
  const url = new URL(good);
  const params = new URLSearchParams(url.hash.slice(1));
  const key = params.get('key');
  params.set('key', `${key.slice(0, -1)}${key.endsWith('A') ? 'B' : 'A'}`);
  url.hash = params.toString();
  return url.href;
}

/** Asks the server what opening `sessionId` with `key` would show (as the page does). */
async function status(sessionId, key) {
  const res = await fetch(`${server.origin}/api/session-status`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ sessionId, authKey: key }),
  });
  return { http: res.status, ...(await res.json()) };
}

const mismatch = (page) => page.locator('#view-ended:not([hidden])', { hasText: 'does not match' });

test('a mis-copied key is named as such, never as a reset', async () => {
  alice = await openPerson(browser, { label: 'alice', url: `${server.origin}/` });
  link = await createRoom(alice.page, { mode: 'group', name: 'Alice' });
  wrong = miscopied(link);
  const bob = await openPerson(browser, { label: 'bob', url: `${server.origin}/`, viewport: { width: 390, height: 844 } });
  await bob.page.goto(wrong);
  await mismatch(bob.page).waitFor();
  const text = await bob.page.locator('#view-ended').innerText();
  assert.match(text, /copied/, 'mis-copying is named');
  assert.doesNotMatch(text, /has reset/, 'no reset is claimed');
  assert.doesNotMatch(ERROR_TEXT.INVALID_KEY, /has reset/);
  await screenshot(bob.page, 'link-key-mismatch-phone');
  assert.deepEqual(bob.page.problems, []);
  await bob.context.close();
});

test('opening a wrong link again and again locks nobody out; the right link still joins', async () => {
  const bob = await openPerson(browser, { label: 'bob', url: `${server.origin}/` });
  // With the first test's, as many opens as failed joins lock an address out, and then one more.
  for (let i = 1; i < FAILURES; i++) {
    await bob.page.goto(`${server.origin}/`);
    await bob.page.goto(wrong);
    await mismatch(bob.page).waitFor();
  }
  // Its failed-attempt allowance spent on opens, the page is no longer told about the key
  // (that would make opening a free way of guessing): it asks for a name, as for any link.
  await bob.page.goto(`${server.origin}/`);
  await bob.page.goto(wrong);
  await bob.page.locator('#view-join:not([hidden])').waitFor();
  await bob.page.goto(`${server.origin}/`);
  await joinRoom(bob.page, link, { name: 'Bob' });
  await alice.page.locator('.notice', { hasText: 'Bob joined' }).waitFor();
  assert.equal(await alice.page.locator('.notice-lockout').count(), 0, 'nobody was locked out');
  assert.deepEqual(bob.page.problems, []);
});

test('the status answers a wrong key only while failed attempts are left; a wrong join then locks out and the creator is told', async () => {
  const params = new URLSearchParams(new URL(wrong).hash.slice(1));
  const id = params.get('join');
  // Bob's successful join cleared the address's strikes: the allowance is whole again.
  for (let i = 0; i < FAILURES; i++) {
    const answer = await status(id, params.get('key'));
    assert.deepEqual([answer.http, answer.status, answer.code], [200, 'refused', 'INVALID_KEY'], `probe ${i}`);
  }
  const spent = await status(id, params.get('key'));
  assert.deepEqual([spent.http, spent.status, spent.credentialChecked], [200, 'open', false], 'no key check beyond the allowance');

  // A real join with the wrong key now locks the address out, and the room hears of it.
  const carol = await openPerson(browser, { label: 'carol', url: `${server.origin}/`, viewport: { width: 390, height: 844 } });
  await carol.page.goto(wrong);
  await carol.page.locator('#view-join:not([hidden])').waitFor();
  await carol.page.fill('#join-name', 'Carol');
  await carol.page.click('#join-submit');
  await carol.page.locator('#banner:not([hidden])').waitFor();
  const text = await bannerText(carol.page);
  assert.match(text, WAIT_RE);
  await carol.page.locator('#join-submit:disabled').waitFor();
  await alice.page.locator('.notice-lockout', { hasText: /a wrong link too often and is locked out for \d+ minutes?/ }).waitFor();
  await screenshot(alice.page, 'link-lockout-creator');

  // A reload keeps the lockout: the countdown goes on and Join stays off.
  await carol.page.reload();
  await carol.page.locator('#view-join:not([hidden])').waitFor();
  const again = await bannerText(carol.page);
  const m = WAIT_RE.exec(again);
  assert.ok(m, `the wait after a reload: ${JSON.stringify(again)}`);
  const seconds = Number(m[1]) * 60 + Number(m[2] ?? 0);
  assert.ok(seconds > 240 && seconds <= 300, `${seconds} s of a 300 s lockout`);
  assert.equal(await carol.page.locator('#join-submit').isDisabled(), true, 'Join waits with the countdown');
  await carol.page.waitForFunction((t) => document.getElementById('banner-text').textContent !== t, again);
  await screenshot(carol.page, 'link-lockout-reload-phone');
  assert.deepEqual([...alice.page.problems, ...carol.page.problems], []);
});
