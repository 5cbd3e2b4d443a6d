// Voice notes (static/js/voice.js): the server's `Permissions-Policy: microphone=(self)`
// lets the page's own origin ask for the microphone (and nothing else: no camera, no
// location); a press records (Chromium's fake microphone) and the next sends,
// or holding records until the release; the note travels as an audio file in encrypted
// chunks and plays in the other page's audio player.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import {
  Server, createRoom, joinRoom, launchBrowser, openPerson, screenshot, stopSuite,
} from './harness.js';

let server;
let browser;
before(async () => {
  server = await new Server().start();
  browser = await launchBrowser({
    args: ['--use-fake-ui-for-media-stream', '--use-fake-device-for-media-stream'],
  });
});
after(() => stopSuite({ server, browser }));

test('the server\'s policy: the microphone for the page\'s own origin only, and the page offers recording', async () => {
  const res = await fetch(`${server.origin}/`);
  assert.equal(res.headers.get('permissions-policy'), 'camera=(), microphone=(self), geolocation=()');
  const { page, context } = await openPerson(browser, { label: 'carol', url: `${server.origin}/` });
  await createRoom(page, { mode: 'private', name: 'Carol' });
  await page.locator('#record').waitFor();
  assert.equal(await page.evaluate(() => document.featurePolicy?.allowsFeature('camera') ?? false), false);
  assert.deepEqual(page.problems, []);
  await context.close();
});

test('a voice note: press to record, press to send; or hold and release; it plays at the other end', async () => {
  const alice = await openPerson(browser, { label: 'alice', url: `${server.origin}/` });
  const link = await createRoom(alice.page, { mode: 'private', name: 'Alice' });
  const bob = await openPerson(browser, { label: 'bob', url: `${server.origin}/`, viewport: { width: 390, height: 844 }, touch: true });
  await joinRoom(bob.page, link, { name: 'Bob' });
  await alice.page.locator('#member-list li.member:not(.me)').waitFor();

  const record = alice.page.locator('#record');
  await record.waitFor();
  await record.click();
  await alice.page.locator('#record-status', { hasText: /Recording a voice note… 0:0[1-9]/ }).waitFor();
  assert.equal(await record.getAttribute('aria-pressed'), 'true');
  assert.equal(await record.textContent(), 'Stop and send');
  await screenshot(alice.page, 'voice-recording');
  await record.click();
  await alice.page.locator('#record-status').waitFor({ state: 'hidden' });
  const note = bob.page.locator('.msg.theirs audio[aria-label^="Audio: voice-note-"]');
  await note.first().waitFor({ timeout: 30_000 });
  await bob.page.waitForFunction(() => document.querySelector('.msg.theirs audio')?.readyState >= 1);
  await alice.page.locator('.msg.mine[data-type="file"][data-state="sent"] audio').first().waitFor();
  await screenshot(bob.page, 'voice-note-phone');

  // Held down, it records until the release, which sends it.
  const box = await record.boundingBox();
  await alice.page.mouse.move(box.x + box.width / 2, box.y + box.height / 2);
  await alice.page.mouse.down();
  await alice.page.locator('#record-status', { hasText: /0:0[1-9]/ }).waitFor();
  await alice.page.mouse.up();
  await alice.page.locator('#record-status').waitFor({ state: 'hidden' });
  await bob.page.locator('.msg.theirs audio[aria-label^="Audio: voice-note-"]').nth(1).waitFor({ timeout: 30_000 });
  assert.equal(await record.textContent(), 'Record');

  // Discard drops a note unsent.
  await record.click();
  await alice.page.locator('#record-status', { hasText: /Recording/ }).waitFor();
  await alice.page.click('#record-discard');
  await alice.page.locator('#record-status').waitFor({ state: 'hidden' });
  assert.equal(await alice.page.locator('.msg.mine[data-type="file"]').count(), 2);
  for (const { page } of [alice, bob]) assert.deepEqual(page.problems, []);
});
