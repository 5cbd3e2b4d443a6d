// Two people whose names look the same ("Alice" and "Аlice" with a Cyrillic А): the page
// cannot tell who is who, so it marks both names wherever they appear (the member list,
// messages) with ⚠ and the first block of the safety number that tells them apart. A name
// typed with invisible characters comes back cleaned by the server, on the typist's page too.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import {
  createRoom, joinRoom, openPerson, screenshot, sendText, startSuite, stopSuite, waitForMessage,
} from './harness.js';

let server;
let browser;
before(async () => ({ server, browser } = await startSuite()));
after(() => stopSuite({ server, browser }));

const LATIN = 'Alice';
const CYRILLIC = '\u0410lice';

/** The look-alike member's entry on `page`: its label, and its safety number once computed. */
async function markedMember(page, name) {
  const li = page.locator('#member-list li.member[data-alike="true"]:not(.me)');
  await li.locator('.safety-number', { hasText: /^\d{5}( \d{5}){5}$/ }).waitFor();
  const safety = await li.locator('.safety-number').textContent();
  const label = `${name} ⚠ ${safety.slice(0, 5)}`;
  await li.locator('.name', { hasText: label }).waitFor();
  assert.match(await li.locator('.lookalike').textContent(), /looks like/);
  return label;
}

test('a look-alike name is marked with the safety number in the member list and on messages', async () => {
  const alice = await openPerson(browser, { label: 'alice', url: `${server.origin}/` });
  const link = await createRoom(alice.page, { mode: 'group', name: LATIN });
  const mallory = await openPerson(browser, { label: 'mallory', url: `${server.origin}/` });
  // Typed with a bidi override and a zero-width space: the server keeps the text only,
  // and the joiner's own page then shows its name as the others see it.
  await joinRoom(mallory.page, link, { name: `${CYRILLIC}\u202E\u200B` });
  await mallory.page.locator('#room-me', { hasText: `You are ${CYRILLIC}.` }).waitFor();

  // Each side sees the other marked; nobody's own entry is.
  const onAlice = await markedMember(alice.page, CYRILLIC);
  const onMallory = await markedMember(mallory.page, LATIN);
  for (const { page } of [alice, mallory]) {
    assert.equal(await page.locator('#member-list li.me[data-alike]').count(), 0);
  }

  await sendText(mallory.page, 'It is me, Alice');
  const msg = await waitForMessage(alice.page, 'It is me, Alice', onAlice);
  assert.equal(await msg.locator('.who').getAttribute('data-alike'), 'true');
  assert.match(await msg.locator('.who').getAttribute('title'), /looks like another person/);
  await sendText(alice.page, 'Who are you?');
  await waitForMessage(mallory.page, 'Who are you?', onMallory);
  await screenshot(alice.page, 'names-lookalike');
  for (const { page } of [alice, mallory]) assert.deepEqual(page.problems, []);
});
