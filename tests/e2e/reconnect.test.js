// Reconnection: a reload of the tab comes back as the same member; after the server
// restarts on the same port (losing every room), the pages reconnect, the creators re-create
// their rooms, members rejoin, history is merged by id without duplicates, a message written
// while offline is delivered, and messages flow again (private and group rooms); the same
// after a graceful restart, which the server announces with `server-shutdown`.

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, test } from 'node:test';
import {
  Recorder,
  Server,
  assertNothingLeaked,
  createRoom,
  joinRoom,
  openPerson,
  screenshot,
  sendText,
  showPeople,
  waitForMessage,
  startSuite,
  stopSuite,
} from './harness.js';

const tag = randomBytes(4).toString('hex');
let server;
let earlierLogs = '';
let browser;
const recorder = new Recorder();
const p = {};

const waitState = (page, state) => page.locator(`#conn[data-state="${state}"]`).waitFor();

before(async () => ({ server, browser } = await startSuite()));
after(() => stopSuite({ server, browser }));

test('a private and a group room, two people each, talking', async () => {
  p.a1 = await openPerson(browser, { label: 'a1', url: `${server.origin}/`, recorder });
  p.b1 = await openPerson(browser, { label: 'b1', url: `${server.origin}/`, recorder, viewport: { width: 390, height: 844 } });
  p.a2 = await openPerson(browser, { label: 'a2', url: `${server.origin}/`, recorder });
  p.b2 = await openPerson(browser, { label: 'b2', url: `${server.origin}/`, recorder });
  const link1 = await createRoom(p.a1.page, { mode: 'private', name: 'Ann' });
  const link2 = await createRoom(p.a2.page, { mode: 'group', name: 'Gus' });
  await joinRoom(p.b1.page, link1, { name: 'Ben' });
  await joinRoom(p.b2.page, link2, { name: 'Gil' });
  await sendText(p.a1.page, `before restart, private ${tag}`);
  await waitForMessage(p.b1.page, `before restart, private ${tag}`, 'Ann');
  await sendText(p.b2.page, `before restart, group ${tag}`);
  await waitForMessage(p.a2.page, `before restart, group ${tag}`, 'Gil');
});

test('a reload of the tab rejoins as the same member with the history decrypted', async () => {
  const { b1, a1 } = p;
  await b1.page.reload();
  await b1.page.locator('#view-room').waitFor();
  await waitState(b1.page, 'joined');
  await waitForMessage(b1.page, `before restart, private ${tag}`, 'Ann');
  await showPeople(b1.page);
  await b1.page.locator('.member .name', { hasText: 'Ann' }).waitFor();
  // Same userId: a private room would refuse a third one.
  const ids = new Set(recorder.events('b1').filter((e) => e.event === 'join-session').map((e) => e.payload.userId));
  assert.equal(ids.size, 1);
  await sendText(b1.page, `after reload ${tag}`);
  await waitForMessage(a1.page, `after reload ${tag}`, 'Ben');
});

test('the server restarts on the same port; the pages reconnect and messages flow again', async () => {
  const port = server.port;
  const groupGenBefore = Number(await p.a2.page.locator('#key-generation').getAttribute('data-generation'));
  await server.kill('SIGKILL');
  earlierLogs += server.log;
  for (const { page } of Object.values(p)) await waitState(page, 'reconnecting');
  await screenshot(p.a1.page, '10-reconnecting');

  // Written while the server is down: queued, sent after the rejoin.
  await p.a1.page.fill('#message-input', `written offline ${tag}`);
  await p.a1.page.press('#message-input', 'Enter');
  await p.a1.page.locator('.msg.mine[data-state="queued"]', { hasText: `written offline ${tag}` }).waitFor();

  // A new server without the old one's snapshot (another DATA_DIR): the rooms are lost.
  server = await new Server({ port }).start();
  assert.equal(server.port, port);
  for (const { page } of Object.values(p)) await waitState(page, 'joined');
  // The creators' pages say so (never "closed by its creator").
  for (const page of [p.a1.page, p.a2.page]) {
    await page.locator('#messages .notice', { hasText: 'The server no longer had this room' }).waitFor();
  }

  await waitForMessage(p.b1.page, `written offline ${tag}`, 'Ann');
  await p.a1.page.locator('.msg.mine[data-state="sent"]', { hasText: `written offline ${tag}` }).waitFor();
  await sendText(p.b1.page, `after restart, private ${tag}`);
  await waitForMessage(p.a1.page, `after restart, private ${tag}`, 'Ben');

  await sendText(p.a2.page, `after restart, group ${tag}`);
  await waitForMessage(p.b2.page, `after restart, group ${tag}`, 'Gus');
  await sendText(p.b2.page, `group reply ${tag}`);
  await waitForMessage(p.a2.page, `group reply ${tag}`, 'Gil');
  // The restart emptied the room, so the creator rotated the key.
  assert.ok(Number(await p.a2.page.locator('#key-generation').getAttribute('data-generation')) > groupGenBefore);

  // Nothing shown twice: the earlier messages are still there once.
  for (const { page } of Object.values(p)) {
    const ids = await page.locator('.msg').evaluateAll((els) => els.map((e) => e.dataset.id));
    assert.equal(new Set(ids).size, ids.length, 'no duplicate message');
  }
  assert.equal(await p.b1.page.locator('.msg', { hasText: `before restart, private ${tag}` }).count(), 1);
  await screenshot(p.b1.page, '11-after-restart-phone');
});

test('a graceful restart (SIGTERM, server-shutdown) is announced and recovered from', async () => {
  const port = server.port;
  const stopping = server.stop(); // SIGTERM: the server drains, tells every client, then exits
  for (const { page } of Object.values(p)) await waitState(page, 'restarting');
  await stopping;
  earlierLogs += server.log;
  server = await new Server({ port }).start();
  for (const { page } of Object.values(p)) await waitState(page, 'joined');
  await sendText(p.b1.page, `after graceful restart ${tag}`);
  await waitForMessage(p.a1.page, `after graceful restart ${tag}`, 'Ben');
  await sendText(p.a2.page, `group after graceful restart ${tag}`);
  await waitForMessage(p.b2.page, `group after graceful restart ${tag}`, 'Gus');
});

test('nothing readable reached the server across reconnects', async () => {
  assertNothingLeaked(recorder, [tag], { serverLog: earlierLogs + server.log });
  // While the server was down (or draining: 503) the browser logged failed connections;
  // nothing else.
  const expected = /^console: (WebSocket connection to .*failed|Failed to load resource: (net::ERR_CONNECTION_REFUSED|the server responded with a status of 503))/;
  for (const { page } of Object.values(p)) {
    const other = page.problems.filter((x) => !expected.test(x));
    assert.deepEqual(other, []);
  }
});
