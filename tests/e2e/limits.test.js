// The web client under the server's limits (SECURITY.md): a connection the server refuses
// shows the refusal's own sentence, not "cannot reach the server".

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { ERROR_TEXT } from '../../static/js/errors.js';
import { Server, bannerText, createRoom, launchBrowser, openLinkAndJoin, openPerson, screenshot, stopSuite } from './harness.js';

let server;
let browser;

before(async () => {
  server = await new Server({ env: { MAX_CONNECTIONS: '1' } }).start();
  browser = await launchBrowser();
});
after(() => stopSuite({ server, browser }));

test('a joiner refused by MAX_CONNECTIONS sees LIMIT_REACHED; the creator stays in its room', async () => {
  const alice = await openPerson(browser, { label: 'alice', url: `${server.origin}/` });
  const link = await createRoom(alice.page, { mode: 'private', name: 'Alice' });
  const bob = await openPerson(browser, { label: 'bob', url: `${server.origin}/` });
  await openLinkAndJoin(bob.page, link, { name: 'Bob' });
  const text = await bannerText(bob.page);
  assert.equal(await bob.page.locator('#banner').getAttribute('data-code'), 'LIMIT_REACHED');
  assert.equal(text, ERROR_TEXT.LIMIT_REACHED);
  await screenshot(bob.page, '11-limit-reached');
  assert.equal(await alice.page.locator('#conn').getAttribute('data-state'), 'joined');
  assert.deepEqual([...alice.page.problems, ...bob.page.problems], []);
});
