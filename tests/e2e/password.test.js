// A password room: the link carries no key; a wrong password is refused with a readable
// error, the right one admits; the password never leaves the browser. The joiner uses the
// keyboard only. Removing the other person means choosing a new password: the old one stops
// working, the new one admits, and the room's secret changes with it.

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, test } from 'node:test';
import { ERROR_TEXT } from '../../static/js/errors.js';
import {
  Recorder,
  assertNothingLeaked,
  bannerText,
  confirmDialog,
  createRoom,
  openLinkAndJoin,
  openPerson,
  screenshot,
  sendText,
  waitForMessage,
  startSuite,
  stopSuite,
} from './harness.js';

const tag = randomBytes(4).toString('hex');
const PASSWORD = `correct horse battery ${tag}`;
const WRONG = `wrong pony stapler ${tag}`;
const NEW_PASSWORD = `a new password ${tag}`;
const PLAIN = { a: `The eagle lands at dawn ${tag}`, b: `Copy that, dawn it is ${tag}`, c: `Carol with the new password ${tag}` };

let server;
let browser;
const recorder = new Recorder();
let alice;
let bob;
let link;

before(async () => ({ server, browser } = await startSuite()));
after(() => stopSuite({ server, browser }));

test('the creator makes a password room; its link holds no key', async () => {
  alice = await openPerson(browser, { label: 'alice', url: `${server.origin}/`, recorder });
  link = await createRoom(alice.page, { mode: 'password', name: 'Alice', password: PASSWORD });
  const params = new URLSearchParams(new URL(link).hash.slice(1));
  assert.equal(params.get('mode'), 'password');
  assert.equal(params.has('key'), false);
  assert.equal(params.has('s'), false);
  assert.match(await alice.page.locator('#share-note').textContent(), /does not contain the password/);
  // The creator's authKey is "<random>:<digest>".
  const reserve = recorder.sent.find((f) => f.kind === 'http' && f.url.endsWith('/api/reserve-session'));
  const body = JSON.parse(reserve.data);
  assert.equal(body.chatMode, 'password');
  assert.match(body.authKey, /^[A-Za-z0-9_-]{43}:[A-Za-z0-9_-]{43}$/);
});

test('a wrong password is refused, then the right one admits (keyboard only)', async () => {
  bob = await openPerson(browser, { label: 'bob', url: `${server.origin}/`, recorder });
  await bob.page.goto(link);
  await bob.page.locator('#view-join').waitFor();
  await bob.page.locator('#join-password').waitFor();
  // The name field has focus; Tab to the password; Enter submits.
  assert.equal(await bob.page.evaluate(() => document.activeElement.id), 'join-name');
  await bob.page.keyboard.type('Bob');
  await bob.page.keyboard.press('Tab');
  assert.equal(await bob.page.evaluate(() => document.activeElement.id), 'join-password');
  await bob.page.keyboard.type(WRONG);
  await bob.page.keyboard.press('Enter');
  const text = await bannerText(bob.page);
  assert.equal(await bob.page.locator('#banner').getAttribute('data-code'), 'INVALID_PASSWORD');
  // The page shows its own sentence for the code (static/js/errors.js), not the server's
  // message (the original server's words, "Incorrect password. Please check and try again.").
  assert.equal(text, ERROR_TEXT.INVALID_PASSWORD);
  assert.equal(await bob.page.locator('#view-join').isVisible(), true);
  // The password field is selected again for a retry.
  await bob.page.waitForFunction(() => document.activeElement.id === 'join-password');
  await bob.page.keyboard.type(PASSWORD);
  await bob.page.keyboard.press('Enter');
  await bob.page.locator('#view-room').waitFor();
  await bob.page.locator('#conn[data-state="joined"]').waitFor();
  await bob.page.locator('.member .name', { hasText: 'Alice' }).waitFor();
  assert.equal(await bob.page.locator('#banner').isHidden(), true, 'the banner is gone after success');
});

test('messages flow both ways in the password room', async () => {
  await sendText(alice.page, PLAIN.a);
  await waitForMessage(bob.page, PLAIN.a, 'Alice');
  await sendText(bob.page, PLAIN.b);
  await waitForMessage(alice.page, PLAIN.b, 'Bob');
  const a = await alice.page.locator('.member:not(.me) .safety-number', { hasText: /^\d/ }).textContent();
  const b = await bob.page.locator('.member:not(.me) .safety-number', { hasText: /^\d/ }).textContent();
  assert.equal(a, b);
  await screenshot(bob.page, '08-password-room');
});

test('the password (right or wrong) and the plaintexts never reached the server', async () => {
  const joins = recorder.events('bob').filter((e) => e.event === 'join-session');
  assert.equal(joins.length, 2);
  for (const { payload } of joins) assert.match(payload.sessionId, /^[A-Za-z0-9_-]+:password:[A-Za-z0-9_-]{43}$/);
  assert.notEqual(joins[0].payload.sessionId, joins[1].payload.sessionId);
  assertNothingLeaked(recorder, [PASSWORD, WRONG, PLAIN.a, PLAIN.b, tag], { serverLog: server.log });
  assert.deepEqual([...alice.page.problems, ...bob.page.problems], []);
});

test('removing Bob asks for a new password; the old one is refused, the new one admits', async () => {
  await alice.page.click('.member:not(.me) button.remove');
  await alice.page.locator('#confirm-password').waitFor();
  await screenshot(alice.page, '20-remove-password-room');
  await confirmDialog(alice.page, { password: NEW_PASSWORD });
  await bob.page.locator('#end-panel:not([hidden])', { hasText: 'You were removed' }).waitFor();
  await alice.page.locator('#people-empty:not([hidden])').waitFor();
  const carol = await openPerson(browser, { label: 'carol', url: `${server.origin}/`, recorder });
  await openLinkAndJoin(carol.page, link, { name: 'Carol', password: PASSWORD });
  assert.equal(await bannerText(carol.page), ERROR_TEXT.INVALID_PASSWORD, 'the old password no longer admits');
  await carol.page.fill('#join-password', NEW_PASSWORD);
  await carol.page.click('#join-submit');
  await carol.page.locator('#conn[data-state="joined"]').waitFor();
  await sendText(carol.page, PLAIN.c);
  await waitForMessage(alice.page, PLAIN.c, 'Carol');
  const a = await alice.page.locator('.member:not(.me) .safety-number', { hasText: /^\d/ }).textContent();
  const c = await carol.page.locator('.member:not(.me) .safety-number', { hasText: /^\d/ }).textContent();
  assert.equal(a, c);
  assertNothingLeaked(recorder, [NEW_PASSWORD, PLAIN.c], { serverLog: server.log });
  assert.deepEqual([...alice.page.problems, ...carol.page.problems], []);
});
