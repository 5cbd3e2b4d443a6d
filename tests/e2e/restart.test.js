// Restarts of an in-memory node that keep the rooms (its snapshot in DATA_DIR,
// docs/operations.md "Restarts: what survives what"): after a graceful stop and start the
// pages go on in the same room with nothing false said (no "joined" again, history kept
// across a reload, a quiet line); after a kill -9 the page states which messages the
// server did not keep. Restarts that lose the room are in reconnect.test.js.

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, test } from 'node:test';
import {
  Server,
  createRoom,
  joinRoom,
  launchBrowser,
  openPerson,
  screenshot,
  sendText,
  stopSuite,
  waitForMessage,
} from './harness.js';

const tag = randomBytes(4).toString('hex');
// Periodic snapshots every 3 s, and their (debug) log lines to synchronise on.
const env = { SNAPSHOT_INTERVAL_SECS: '3', RUST_LOG: 'info,blindrelay::store::snapshot=debug' };
let server;
let browser;
const p = {};
let roomLink;

const waitState = (page, state) => page.locator(`#conn[data-state="${state}"]`).waitFor();
const notices = (page, text) => page.locator('#messages .notice', { hasText: text }).count();
const writes = () => (server.log.match(/snapshot written/g) ?? []).length;
async function snapshotWritten(from) {
  const deadline = Date.now() + 15_000;
  while (writes() <= from) {
    if (Date.now() > deadline) throw new Error(`no snapshot written:\n${server.log.slice(-2000)}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

before(async () => {
  server = await new Server({ env }).start();
  browser = await launchBrowser();
});
after(() => stopSuite({ server, browser }));

test('a private room of two, talking', async () => {
  p.ann = await openPerson(browser, { label: 'ann', url: `${server.origin}/` });
  p.ben = await openPerson(browser, { label: 'ben', url: `${server.origin}/`, viewport: { width: 390, height: 844 } });
  const link = await createRoom(p.ann.page, { mode: 'private', name: 'Ann' });
  roomLink = link;
  await joinRoom(p.ben.page, link, { name: 'Ben' });
  await sendText(p.ann.page, `before, from Ann ${tag}`);
  await waitForMessage(p.ben.page, `before, from Ann ${tag}`, 'Ann');
  await sendText(p.ben.page, `before, from Ben ${tag}`);
  await waitForMessage(p.ann.page, `before, from Ben ${tag}`, 'Ben');
});

test('a graceful restart keeps the room: no "joined" again, a quiet line, the history survives a reload', async () => {
  const joinedBefore = await notices(p.ann.page, 'Ben joined');
  const stopping = server.stop();
  for (const { page } of Object.values(p)) await waitState(page, 'restarting');
  await stopping;
  assert.match(server.log, /"snapshot written at stop","rooms":1/);
  server = await new Server({ port: server.port, env, dataDir: server.dataDir }).start();
  assert.match(server.log, /rooms restored from the snapshot/);
  for (const { page } of Object.values(p)) {
    await waitState(page, 'joined');
    await page.locator('#messages .notice', { hasText: 'The server restarted; this room was kept.' }).waitFor();
  }
  assert.equal(await notices(p.ann.page, 'Ben joined'), joinedBefore, 'nobody joined: no notice says so');
  assert.equal(await notices(p.ann.page, 'Ben left'), 0);
  await sendText(p.ben.page, `after, from Ben ${tag}`);
  await waitForMessage(p.ann.page, `after, from Ben ${tag}`, 'Ben');
  // A reload after the restart: the server still has the history from before it.
  await p.ben.page.reload();
  await waitState(p.ben.page, 'joined');
  await waitForMessage(p.ben.page, `before, from Ann ${tag}`, 'Ann');
  await p.ben.page.locator('.msg.mine', { hasText: `after, from Ben ${tag}` }).waitFor();
  await screenshot(p.ann.page, '30-restart-kept');
  await screenshot(p.ben.page, '30-restart-kept-phone');
});

test('kill -9: the room comes back from the last snapshot, and the page says which messages were not kept', async () => {
  // One message certainly in a snapshot: a write that began after it was stored.
  await sendText(p.ann.page, `kept, from Ann ${tag}`);
  await waitForMessage(p.ben.page, `kept, from Ann ${tag}`, 'Ann');
  const mark = writes();
  await snapshotWritten(mark);
  await sendText(p.ben.page, `nudge ${tag}`); // a change after that write: one more write
  await waitForMessage(p.ann.page, `nudge ${tag}`, 'Ben');
  await snapshotWritten(writes());
  // Sent after the last snapshot, then the process dies before the next one (3 s).
  await sendText(p.ann.page, `lost, from Ann ${tag}`);
  await waitForMessage(p.ben.page, `lost, from Ann ${tag}`, 'Ann');
  await server.kill('SIGKILL');
  for (const { page } of Object.values(p)) await waitState(page, 'reconnecting');
  server = await new Server({ port: server.port, env, dataDir: server.dataDir }).start();
  for (const { page } of Object.values(p)) {
    await waitState(page, 'joined');
    await page.locator('#messages .notice', { hasText: 'did not keep the last message of this room' }).waitFor();
    await page.locator('.msg[data-not-kept="true"]', { hasText: `lost, from Ann ${tag}` }).waitFor();
    assert.equal(await page.locator('.msg[data-not-kept="true"]').count(), 1, 'only that one');
  }
  await sendText(p.ben.page, `after the crash ${tag}`);
  await waitForMessage(p.ann.page, `after the crash ${tag}`, 'Ben');
  await screenshot(p.ann.page, '31-crash-not-kept');
  await screenshot(p.ben.page, '31-crash-not-kept-phone');
});

test('the creator away during a restart: the other member is in, sees her as away, and she comes back unannounced', async () => {
  const { ann, ben } = p;
  const joinedBefore = await notices(ben.page, 'Ann joined');
  const keptBefore = await notices(ben.page, 'The server restarted; this room was kept.');
  const stopping = server.stop();
  await waitState(ben.page, 'restarting');
  await stopping;
  // Ann closes her page while the server is down.
  await ann.page.goto('about:blank');
  server = await new Server({ port: server.port, env, dataDir: server.dataDir }).start();
  await waitState(ben.page, 'joined');
  await ben.page.locator('#messages .notice', { hasText: 'The server restarted; this room was kept.' }).nth(keptBefore).waitFor();
  const listed = () => ben.page.locator('#member-list .member:not(.me) .name', { hasText: 'Ann' }).count();
  assert.equal(await listed(), 0, 'Ann is not listed as here');
  // A reload in that state is still in the room, with its history (Ann's messages wait
  // for her key, which the server hands out while she is here).
  await ben.page.reload();
  await waitState(ben.page, 'joined');
  await ben.page.locator(`.msg[data-id]`).first().waitFor();
  assert.equal(await ben.page.locator('#view-ended').isVisible(), false);
  await screenshot(ben.page, '32-creator-away-phone');
  // Ann opens the room's link again: the same member, back without a "joined" notice.
  await ann.page.goto(roomLink);
  await waitState(ann.page, 'joined');
  await ben.page.locator('#member-list .member:not(.me) .name', { hasText: 'Ann' }).waitFor({ state: 'attached' });
  await sendText(ann.page, `back, from Ann ${tag}`);
  await waitForMessage(ben.page, `back, from Ann ${tag}`, 'Ann');
  await waitForMessage(ben.page, `before, from Ann ${tag}`, 'Ann');
  assert.equal(await notices(ben.page, 'Ann joined'), joinedBefore, 'no "Ann joined"');
  await screenshot(ann.page, '32-creator-back');
});
