// A member's identity key (static/js/identity.js): kept non-extractable in IndexedDB, it
// survives a reload and a new tab of the same browser, with the same safety number and the
// mark "verified" still set; no private key is left in localStorage or sessionStorage.
// A person who comes back with another key is a loud warning and one member, not a second:
//   - the browser lost only its key (IndexedDB cleared): the same member to the server (its
//     userId and resume token), which tells the room `public-key-changed`;
//   - the browser was cleared and the link opened again with the same name: a new member to
//     the server (a new userId). Its key list no longer holds the old one (its page went
//     away), so the newcomer takes its place on the pages: one member, with the warning;
//     the old one's departure (after the server's presence grace) is named as the earlier one;
//   - someone else joins under the name of a member who is still here: two members, both
//     named with the first block of their safety numbers, and the warning names the newcomer.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import {
  Recorder, Server, createRoom, joinRoom, launchBrowser, openPerson, openTab, screenshot, showPeople, stopSuite,
} from './harness.js';

let server;
let browser;
const recorder = new Recorder();
const p = {};
let link;

before(async () => {
  // A short presence grace: a member whose page went away is gone after 3 s, not 20.
  server = await new Server({ env: { PRESENCE_GRACE_SECS: '3' } }).start();
  browser = await launchBrowser();
});
after(() => stopSuite({ server, browser }));

const SAFETY = /^\d{5}( \d{5}){5}$/;
const bobs = (page) => page.locator('#member-list .member:not(.me)', { hasText: 'Bob' });

async function safetyOf(row) {
  const n = row.locator('.safety-number', { hasText: SAFETY });
  await n.waitFor();
  return n.textContent();
}

/** What this page's browser keeps of identity keys: IndexedDB entries and both storages. */
function inspectKeys(page) {
  return page.evaluate(async () => {
    const db = await new Promise((resolve, reject) => {
      const req = indexedDB.open('blindrelay');
      req.onsuccess = () => resolve(req.result);
      req.onerror = () => reject(req.error);
    });
    const entries = await new Promise((resolve, reject) => {
      const req = db.transaction('identities').objectStore('identities').getAll();
      req.onsuccess = () => resolve(req.result);
      req.onerror = () => reject(req.error);
    });
    db.close();
    const out = [];
    for (const e of entries) {
      let exported = 'exported';
      try {
        await crypto.subtle.exportKey('jwk', e.privateKey);
      } catch (err) {
        exported = `refused: ${err.name}`;
      }
      let pkcs8 = 'exported';
      try {
        await crypto.subtle.exportKey('pkcs8', e.privateKey);
      } catch (err) {
        pkcs8 = `refused: ${err.name}`;
      }
      out.push({
        isKey: e.privateKey instanceof CryptoKey,
        type: e.privateKey.type,
        extractable: e.privateKey.extractable,
        usages: e.privateKey.usages,
        publicKey: e.publicKey,
        exported,
        pkcs8,
      });
    }
    const stored = [...Object.keys(localStorage).map((k) => localStorage.getItem(k)),
      ...Object.keys(sessionStorage).map((k) => sessionStorage.getItem(k))].join('\n');
    return { entries: out, stored };
  });
}

test('the identity key survives a reload and a new tab, non-extractable, and "verified" stays', async () => {
  p.alice = await openPerson(browser, { label: 'alice', url: `${server.origin}/`, recorder });
  link = await createRoom(p.alice.page, { mode: 'group', name: 'Alice' });
  p.bob = await openPerson(browser, { label: 'bob', url: `${server.origin}/`, recorder });
  await joinRoom(p.bob.page, link, { name: 'Bob' });
  p.carol = await openPerson(browser, { label: 'carol', url: `${server.origin}/`, recorder, viewport: { width: 390, height: 844 }, touch: true });
  await joinRoom(p.carol.page, link, { name: 'Carol' });
  const { alice } = p;

  const bobRow = bobs(alice.page);
  const before = await safetyOf(bobRow);
  await bobRow.getByRole('button', { name: 'Mark Bob as verified' }).click();
  await alice.page.locator('#member-list .member[data-verified="true"]', { hasText: 'Bob' }).waitFor();

  // Reload: the same member, the same key, the same number, still verified.
  await alice.page.reload();
  await alice.page.locator('#conn[data-state="joined"]').waitFor();
  await alice.page.locator('.notice', { hasText: 'You are back in the room' }).waitFor();
  assert.equal(await safetyOf(bobs(alice.page)), before);
  await alice.page.locator('#member-list .member[data-verified="true"]', { hasText: 'Bob' }).waitFor();

  // A new tab of the same browser, by the room's link: the same again.
  const tab = await openTab(alice.context, { label: 'alice2', url: link, recorder });
  await tab.page.locator('#conn[data-state="joined"]').waitFor();
  await tab.page.locator('#room-me', { hasText: 'You are Alice (you created this room).' }).waitFor();
  assert.equal(await safetyOf(bobs(tab.page)), before);
  await tab.page.locator('#member-list .member[data-verified="true"]', { hasText: 'Bob' }).waitFor();
  assert.equal(await tab.page.locator('#member-list .member', { hasText: 'Alice' }).count(), 1);
  // Bob still sees one Alice, with the number he had.
  await bobs(p.carol.page).waitFor({ state: 'attached' });
  assert.equal(await p.bob.page.locator('#member-list .member:not(.me)', { hasText: 'Alice' }).count(), 1);
  assert.equal(await safetyOf(p.bob.page.locator('#member-list .member:not(.me)', { hasText: 'Alice' })), before);
  await screenshot(tab.page, 'identity-new-tab-verified');

  // The private key: a CryptoKey in IndexedDB that no script can export; no JWK anywhere.
  const { entries, stored } = await inspectKeys(tab.page);
  assert.equal(entries.length, 1, 'one identity for the one room');
  const [key] = entries;
  assert.deepEqual({ ...key, publicKey: undefined }, {
    isKey: true, type: 'private', extractable: false, usages: ['deriveBits'], publicKey: undefined,
    exported: 'refused: InvalidAccessError', pkcs8: 'refused: InvalidAccessError',
  });
  assert.ok(stored.includes(key.publicKey), 'the snapshot names the public key');
  assert.doesNotMatch(stored, /privateJwk|"d":"|"kty"/, 'no private key in localStorage or sessionStorage');
  await tab.page.close();
  for (const who of Object.values(p)) assert.deepEqual(who.page.problems, []);
});

test('an older page’s exportable key is moved to IndexedDB once, non-extractable', async () => {
  const { alice } = p;
  // What a page before this change kept: the key pair as a JWK in the snapshot (a new pair
  // here, since the real one cannot be exported: the others will see a changed key).
  const publicKey = await alice.page.evaluate(async () => {
    const pair = await crypto.subtle.generateKey({ name: 'ECDH', namedCurve: 'P-256' }, true, ['deriveBits']);
    const spki = new Uint8Array(await crypto.subtle.exportKey('spki', pair.publicKey));
    const identity = { privateJwk: await crypto.subtle.exportKey('jwk', pair.privateKey), publicKey: btoa(String.fromCharCode(...spki)) };
    const room = JSON.parse(sessionStorage.getItem('blindrelay.room.v1'));
    room.identity = identity;
    sessionStorage.setItem('blindrelay.room.v1', JSON.stringify(room));
    const k = `blindrelay.member.v1:${room.sessionId}`;
    localStorage.setItem(k, JSON.stringify({ ...JSON.parse(localStorage.getItem(k)), identity }));
    return identity.publicKey;
  });
  await alice.page.reload();
  await alice.page.locator('#conn[data-state="joined"]').waitFor();
  const { entries, stored } = await inspectKeys(alice.page);
  assert.equal(entries.length, 1);
  assert.equal(entries[0].publicKey, publicKey);
  assert.equal(entries[0].extractable, false);
  assert.doesNotMatch(stored, /privateJwk|"d":"/);
  // The others were told: Alice's key changed (the same member, per the server).
  await p.bob.page.locator('.notice-key', { hasText: "Alice's safety number changed — verify again" }).waitFor();
  assert.equal(await p.bob.page.locator('#member-list .member:not(.me)', { hasText: 'Alice' }).count(), 1);
  // Alice's own mark on Bob went too: a safety number is of both keys, and hers changed.
  await bobs(alice.page).locator('.safety-number', { hasText: SAFETY }).waitFor();
  assert.notEqual(await bobs(alice.page).getAttribute('data-verified'), 'true');
  for (const who of Object.values(p)) assert.deepEqual(who.page.problems, []);
});

test('a member whose browser lost only its key: the same member, a loud warning, "verified" gone', async () => {
  const { alice, bob, carol } = p;
  const bobRow = bobs(alice.page);
  const before = await safetyOf(bobRow);
  await bobRow.getByRole('button', { name: 'Mark Bob as verified' }).click();
  await alice.page.locator('#member-list .member[data-verified="true"]', { hasText: 'Bob' }).waitFor();
  const bobId = await bobRow.getAttribute('data-user-id');

  // Bob's IndexedDB is cleared (a browser's cleanup); his userId and resume token are kept.
  await bob.page.evaluate(() => new Promise((resolve, reject) => {
    const req = indexedDB.deleteDatabase('blindrelay');
    req.onsuccess = () => resolve();
    req.onerror = () => reject(req.error);
  }));
  await bob.page.reload();
  await bob.page.locator('#conn[data-state="joined"]').waitFor();
  await bob.page.locator('.notice-key', { hasText: 'no longer had your key' }).waitFor();

  for (const page of [alice.page, carol.page]) {
    await page.locator('.notice-key', { hasText: "Bob's safety number changed — verify again" }).waitFor();
  }
  await bobRow.locator('.safety-changed', { hasText: "Bob's safety number changed — verify again" }).waitFor();
  assert.equal(await bobs(alice.page).count(), 1, 'one Bob');
  assert.equal(await bobRow.getAttribute('data-user-id'), bobId, 'the same member');
  assert.notEqual(await bobRow.getAttribute('data-verified'), 'true', 'the mark is gone');
  await alice.page.waitForFunction((old) => {
    const n = document.querySelector('#member-list .member:not(.me)[data-user-id] .safety-number')?.textContent;
    return /^\d{5}( \d{5}){5}$/.test(n ?? '') && n !== old;
  }, before);
  await screenshot(alice.page, 'identity-key-lost-desktop');
  await showPeople(carol.page);
  await bobs(carol.page).locator('.safety-changed').waitFor();
  await screenshot(carol.page, 'identity-key-lost-phone');
  // The warning stays through a reload until the number is compared and marked again.
  await alice.page.reload();
  await alice.page.locator('#conn[data-state="joined"]').waitFor();
  await bobRow.locator('.safety-changed', { hasText: "Bob's safety number changed — verify again" }).waitFor();
  assert.notEqual(await bobRow.getAttribute('data-verified'), 'true');
  // Verified again after comparing.
  await bobRow.getByRole('button', { name: 'Mark Bob as verified' }).click();
  await alice.page.locator('#member-list .member[data-verified="true"]', { hasText: 'Bob' }).waitFor();
  assert.equal(await bobRow.locator('.safety-changed').count(), 0);
  for (const who of Object.values(p)) assert.deepEqual(who.page.problems, []);
});

test('a person who cleared the browser and joins again with the same name: a new member to the server, one member with a warning on the page', async () => {
  const { alice, bob } = p;
  const oldId = await bobs(alice.page).getAttribute('data-user-id');
  await alice.page.locator('#member-list .member[data-verified="true"]', { hasText: 'Bob' }).waitFor();
  // Alice's page reloads first: what it knew of Bob (his name and key) is in what her
  // browser keeps for the room, so it still recognises him coming back.
  await alice.page.reload();
  await alice.page.locator('#conn[data-state="joined"]').waitFor();
  await alice.page.locator('#member-list .member[data-verified="true"]', { hasText: 'Bob' }).waitFor();

  // Bob clears everything this origin kept, and opens the link again.
  await bob.page.evaluate(() => new Promise((resolve, reject) => {
    localStorage.clear();
    sessionStorage.clear();
    const req = indexedDB.deleteDatabase('blindrelay');
    req.onsuccess = () => resolve();
    req.onerror = () => reject(req.error);
  }));
  await joinRoom(bob.page, link, { name: 'Bob' });

  // To the server this is a new member; the old one is no longer in its key list (its page
  // went away), so the newcomer takes its place at once: one Bob, with the warning.
  await alice.page.locator('.notice-key', { hasText: "Bob's safety number changed — verify again: “Bob” came back as a new member" }).waitFor();
  await alice.page.waitForFunction(() => [...document.querySelectorAll('#member-list .member:not(.me)')]
    .filter((m) => m.textContent.includes('Bob')).length === 1);
  // The old one's departure, once the server's presence grace is over, names it as such.
  await alice.page.locator('.notice-leave', { hasText: 'The earlier “Bob” left' }).waitFor();
  assert.equal(await alice.page.locator('.notice-leave', { hasText: /^Bob/ }).count(), 0);
  const row = bobs(alice.page);
  const newId = await row.getAttribute('data-user-id');
  assert.notEqual(newId, oldId, 'a new member to the server');
  await row.locator('.safety-changed', { hasText: 'came back as a new member' }).waitFor();
  assert.notEqual(await row.getAttribute('data-verified'), 'true');
  assert.equal(await row.locator('.name').textContent(), 'Bob', 'not marked as a look-alike of the one it replaced');
  // The old key's mark is gone from the browser too.
  const marks = await alice.page.evaluate(() => JSON.parse(localStorage.getItem('blindrelay.verified.v1') ?? '{}'));
  assert.equal(Object.keys(marks).some((k) => k.endsWith(`/${oldId}`)), false);
  await screenshot(alice.page, 'identity-came-back-desktop');
  await showPeople(p.carol.page);
  await bobs(p.carol.page).locator('.safety-changed').waitFor();
  assert.equal(await bobs(p.carol.page).count(), 1);
  await screenshot(p.carol.page, 'identity-came-back-phone');
  for (const who of Object.values(p)) assert.deepEqual(who.page.problems, []);
});

test('someone else joining under a present member’s name: two members, told apart, and the warning names the newcomer', async () => {
  const { alice } = p;
  p.dave = await openPerson(browser, { label: 'dave', url: `${server.origin}/`, recorder });
  await joinRoom(p.dave.page, link, { name: 'Bob' });
  const warning = alice.page.locator('.notice-key', { hasText: /Another “Bob” joined, with a different safety number \(\d{5}…\)/ });
  await warning.waitFor();
  await bobs(alice.page).nth(1).waitFor();
  await alice.page.waitForFunction(() => [...document.querySelectorAll('#member-list .member:not(.me) .name')]
    .filter((n) => n.textContent.startsWith('Bob')).every((n) => /^Bob ⚠ \d{5}$/.test(n.textContent)));
  const daveId = await p.dave.page.evaluate(() => JSON.parse(sessionStorage.getItem('blindrelay.room.v1')).userId);
  const dave = alice.page.locator(`#member-list .member[data-user-id="${daveId}"]`);
  const tag = /\((\d{5})…\)/.exec(await warning.textContent())[1];
  assert.equal(await dave.locator('.name').textContent(), `Bob ⚠ ${tag}`, 'the warning names the newcomer');
  assert.equal((await safetyOf(dave)).slice(0, 5), tag);
  // Neither took the other's place.
  assert.equal(await dave.locator('.safety-changed').count(), 0);
  await screenshot(alice.page, 'identity-two-bobs-desktop');
  for (const who of Object.values(p)) assert.deepEqual(who.page.problems, []);
});
