// A slow uplink (Chromium's network throttling: 800 kbit/s up, 100,000 bytes a second, and
// 80 ms of latency): a 3 MB file sent by one person arrives whole at the other, the sender
// sees its upload progress, a text sent right behind the file is not failed by a timeout
// while the file's bytes are still leaving, and the sender's connection is never dropped.
// About 35 s: the file alone takes 30 s to leave at that rate.

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import { after, before, test } from 'node:test';
import {
  createRoom, joinRoom, openPerson, screenshot, sendFiles, startSuite, stopSuite, waitForMessage,
} from './harness.js';

let server;
let browser;
before(async () => ({ server, browser } = await startSuite()));
after(() => stopSuite({ server, browser }));

const UPLINK = { offline: false, latency: 80, uploadThroughput: 100_000, downloadThroughput: 500_000 };

test('a 3 MB file over an 800 kbit/s uplink arrives whole, with progress shown, and the sender stays connected', async () => {
  const alice = await openPerson(browser, { label: 'alice', url: `${server.origin}/` });
  const link = await createRoom(alice.page, { mode: 'private', name: 'Alice' });
  const bob = await openPerson(browser, { label: 'bob', url: `${server.origin}/` });
  await joinRoom(bob.page, link, { name: 'Bob' });
  await alice.page.locator('#member-list li.member:not(.me)').waitFor();

  // Alice's page from now on: each WebSocket it opens, each connection state and
  // message state it shows.
  const sockets = [];
  alice.page.on('websocket', (ws) => sockets.push(ws));
  await alice.page.evaluate(() => {
    window.seen = { conn: new Set(), failed: [] };
    new MutationObserver(() => {
      window.seen.conn.add(document.getElementById('conn').dataset.state);
      for (const m of document.querySelectorAll('.msg.mine[data-state="failed"]')) window.seen.failed.push(m.textContent);
    }).observe(document.body, { subtree: true, attributes: true, attributeFilter: ['data-state'] });
  });
  const cdp = await alice.page.context().newCDPSession(alice.page);
  await cdp.send('Network.enable');
  await cdp.send('Network.emulateNetworkConditions', UPLINK);

  const started = Date.now();
  // A dropped connection fails the test at once, saying when (rather than at a timeout).
  const dropped = alice.page.waitForFunction(() => [...window.seen.conn].some((s) => s !== 'joined'), null, { timeout: 0, polling: 250 })
    .then(() => { throw new Error(`the sender's connection dropped after ${(Date.now() - started) / 1000} s`); });
  dropped.catch(() => {});
  const watch = (promise) => Promise.race([promise, dropped]);

  const file = randomBytes(3_000_000);
  await sendFiles(alice.page, { name: 'slow.bin', mimeType: 'application/octet-stream', buffer: file });
  // A text right behind it: it waits for the file's bytes, and must not time out meanwhile.
  await alice.page.fill('#message-input', 'sent after the file');
  await alice.page.press('#message-input', 'Enter');

  // Progress is shown while the file leaves, part of the way.
  const mine = alice.page.locator('.msg.mine[data-type="file"]');
  await watch(mine.locator('.status progress').waitFor());
  const partway = alice.page.locator('.msg.mine[data-type="file"] .status', { hasText: /Sending… ([1-9]|[1-9]\d)%/ });
  await watch(partway.waitFor({ timeout: 60_000 }));
  await screenshot(alice.page, 'uplink-progress');

  // The file arrives whole; the text after it too, and both are acknowledged.
  const download = bob.page.locator('.msg.theirs[data-type="file"] a.download[download="slow.bin"]');
  await watch(download.waitFor({ timeout: 120_000 }));
  const [saved] = await Promise.all([bob.page.waitForEvent('download'), download.click()]);
  assert.ok((await fs.readFile(await saved.path())).equals(file), 'the file arrived whole');
  await waitForMessage(bob.page, 'sent after the file', 'Alice');
  await mine.and(alice.page.locator('[data-state="sent"]')).waitFor({ timeout: 30_000 });
  await alice.page.locator('.msg.mine[data-state="sent"] .body', { hasText: 'sent after the file' }).waitFor({ timeout: 30_000 });
  const seconds = (Date.now() - started) / 1000;
  assert.ok(seconds > 20, `the throttling held (${seconds} s for 3 MB)`);

  const seen = await alice.page.evaluate(() => ({ conn: [...window.seen.conn], failed: window.seen.failed }));
  assert.deepEqual(seen.failed, [], 'no message was shown as not sent');
  assert.deepEqual(seen.conn.filter((s) => s !== 'joined'), [], 'the connection never dropped');
  assert.equal(sockets.length, 0, 'no new connection was opened');
  for (const { page } of [alice, bob]) assert.deepEqual(page.problems, []);
});
