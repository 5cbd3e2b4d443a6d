// The web client under the server's limits (SECURITY.md): a connection the server refuses
// shows the refusal's own sentence, not "cannot reach the server". And under its own: a file
// over the size limit is refused with a sentence naming the file, its size and the limit.

import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { ERROR_TEXT } from '../../static/js/errors.js';
import { Server, bannerText, createRoom, launchBrowser, openLinkAndJoin, openPerson, screenshot, stopSuite } from './harness.js';

let server;
let browser;
let alice;

before(async () => {
  server = await new Server({ env: { MAX_CONNECTIONS: '1' } }).start();
  browser = await launchBrowser();
});
after(() => stopSuite({ server, browser }));

test('a joiner refused by MAX_CONNECTIONS sees LIMIT_REACHED; the creator stays in its room', async () => {
  alice = await openPerson(browser, { label: 'alice', url: `${server.origin}/` });
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

test('a file over the limit is refused by name, with its size and the limit', async () => {
  const { page } = alice;
  // 120 MB, over the 100 MiB the page sends (a sparse file: the picker gets its path).
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'blindrelay-e2e-'));
  const file = path.join(dir, 'holiday-video.mov');
  await fs.writeFile(file, '');
  await fs.truncate(file, 120_000_000);
  await page.setInputFiles('#file-input', file);
  await fs.rm(dir, { recursive: true });
  const text = await bannerText(page);
  assert.equal(await page.locator('#banner').getAttribute('data-code'), 'FILE_TOO_LARGE');
  assert.notEqual(text, ERROR_TEXT.FILE_TOO_LARGE, 'not the generic sentence');
  assert.match(text, /holiday-video\.mov/);
  assert.match(text, /114\.4 MiB/);
  assert.match(text, /100\.0 MiB/);
  assert.equal(await page.locator('#attach-preview').isHidden(), true, 'nothing waits to be sent');
  await screenshot(page, 'file-too-large');
  assert.deepEqual(page.problems, []);
});
