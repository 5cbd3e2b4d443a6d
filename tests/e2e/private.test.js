// A private (1:1) room between two browsers: create, share link with QR, join, messages both
// ways with clickable links, typing, safety numbers marked as verified, files and images
// (attached, pasted, dropped) with a preview and download notification, a third person
// refused, closing the room calmly, and what the server saw.

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { ERROR_TEXT } from '../../static/js/errors.js';
import {
  Recorder,
  assertNothingLeaked,
  bannerText,
  confirmDialog,
  createRoom,
  menuItem,
  openLinkAndJoin,
  openPerson,
  screenshot,
  sendFiles,
  showPeople,
  sendText,
  waitForMessage,
  startSuite,
  stopSuite,
} from './harness.js';

const tag = randomBytes(4).toString('hex');
const PLAIN = {
  a1: `Meet me at the old lighthouse ${tag}`,
  b1: `Bring the blue umbrella ${tag}`,
  a2: `Zebra crossing at midnight ${tag}`,
  fileName: `treasure-map-${tag}.txt`,
  fileText: `The treasure is under the third palm tree ${tag}`,
  imageName: `holiday-photo-${tag}.png`,
  pastedName: `pasted-${tag}.png`,
  droppedName: `dropped-notes-${tag}.txt`,
  droppedText: `Dropped onto the chat ${tag}`,
  link: `Details at https://example.org/plan?x=${tag}.`,
};
/** A 160x100 PNG drawn by the browser itself. */
async function makePng(page) {
  const b64 = await page.evaluate(() => {
    const canvas = document.createElement('canvas');
    canvas.width = 160;
    canvas.height = 100;
    const g = canvas.getContext('2d');
    const grad = g.createLinearGradient(0, 0, 160, 100);
    grad.addColorStop(0, '#1d4ed8');
    grad.addColorStop(1, '#f59e0b');
    g.fillStyle = grad;
    g.fillRect(0, 0, 160, 100);
    g.fillStyle = '#fff';
    g.beginPath();
    g.arc(120, 30, 14, 0, Math.PI * 2);
    g.fill();
    return canvas.toDataURL('image/png').split(',')[1];
  });
  return Buffer.from(b64, 'base64');
}

let server;
let browser;
const recorder = new Recorder();
let alice;
let bob;
let link;

before(async () => ({ server, browser } = await startSuite()));
after(() => stopSuite({ server, browser }));

test('the creator makes a private room and gets a share link with a QR code', async () => {
  alice = await openPerson(browser, { label: 'alice', url: `${server.origin}/`, recorder });
  link = await createRoom(alice.page, { mode: 'private', name: 'Alice', shot: '01-create' });
  const url = new URL(link);
  const params = new URLSearchParams(url.hash.slice(1));
  assert.equal(url.origin, server.origin);
  assert.equal(params.get('mode'), 'private');
  assert.match(params.get('join'), /^[A-Za-z0-9_-]{22}$/, '128-bit room id');
  assert.match(params.get('key'), /^[A-Za-z0-9_-]{43}$/, '256-bit key');
  assert.match(params.get('s'), /^[A-Za-z0-9_-]{43}$/, '256-bit link secret');
  assert.equal(await alice.page.locator('#share-qr svg path').count(), 1, 'QR code drawn');
  assert.equal(await alice.page.locator('#room-title').textContent(), 'Private room');
  assert.equal(await alice.page.locator('#close-room').getAttribute('hidden'), null, 'the creator may close the room (in More)');
  await alice.page.locator('#people-empty:not([hidden])').waitFor();
  await screenshot(alice.page, '02-share-link-qr');
  const health = await server.waitHealthy();
  assert.equal(health.activeSessions, 1);
});

test('a friend opens the link on a phone-sized screen and joins; both see each other', async () => {
  bob = await openPerson(browser, {
    label: 'bob', url: `${server.origin}/`, recorder, viewport: { width: 390, height: 844 },
  });
  await openLinkAndJoin(bob.page, link, { name: 'Bob', shot: '03-join' });
  // The fragment is read and removed from the address bar.
  assert.equal(new URL(bob.page.url()).hash, '');
  await bob.page.locator('#view-room').waitFor();
  await bob.page.locator('#conn[data-state="joined"]').waitFor();
  await showPeople(bob.page);
  await bob.page.locator('.member .name', { hasText: 'Alice' }).waitFor();
  await alice.page.locator('.member .name', { hasText: 'Bob' }).waitFor();
  await alice.page.locator('.notice', { hasText: 'Bob joined' }).waitFor();
  assert.equal(await bob.page.locator('#close-room').getAttribute('hidden'), '', 'only the creator may close');
  // The private room is full: no invitation is offered any more.
  await alice.page.locator('#share-toggle').waitFor({ state: 'hidden' });
  assert.equal(await bob.page.locator('#share-toggle').isHidden(), true);
});

test('safety numbers match in both browsers', async () => {
  const number = (page) => page.locator('.member:not(.me) .safety-number', { hasText: /^\d{5}( \d{5}){5}$/ });
  await number(alice.page).waitFor();
  await number(bob.page).waitFor();
  const a = await number(alice.page).textContent();
  const b = await number(bob.page).textContent();
  assert.match(a, /^\d{5}( \d{5}){5}$/);
  assert.equal(a, b);
  assert.match(await alice.page.locator('#safety-hint').textContent(), /only the two of you/);
  // Marked as verified: kept in this browser with the room (a reload or another tab keeps
  // it), per member key.
  await bob.page.click('.member:not(.me) button.verify');
  await bob.page.locator('.member:not(.me)[data-verified="true"] .verified').waitFor();
  const marks = JSON.parse(await bob.page.evaluate(() => localStorage.getItem('blindrelay.verified.v1')));
  assert.equal(Object.keys(marks).length, 1);
});

test('a member whose key changes loses its verified mark and gets a warning', async () => {
  const bobRow = alice.page.locator('.member:not(.me)');
  await bobRow.locator('button.verify').click();
  await alice.page.locator('.member:not(.me)[data-verified="true"]').waitFor();
  const before = await bobRow.locator('.safety-number').textContent();
  // Bob's tab comes back with another key pair (as a swapped key would look to Alice).
  await bob.page.evaluate(async () => {
    const saved = JSON.parse(sessionStorage.getItem('blindrelay.room.v1'));
    const pair = await crypto.subtle.generateKey({ name: 'ECDH', namedCurve: 'P-256' }, true, ['deriveBits']);
    const spki = new Uint8Array(await crypto.subtle.exportKey('spki', pair.publicKey));
    saved.identity = { privateJwk: await crypto.subtle.exportKey('jwk', pair.privateKey), publicKey: btoa(String.fromCharCode(...spki)) };
    sessionStorage.setItem('blindrelay.room.v1', JSON.stringify(saved));
  });
  await bob.page.reload();
  await bob.page.locator('#conn[data-state="joined"]').waitFor();
  await alice.page.locator('.member:not(.me) .safety-changed').waitFor();
  await alice.page.locator('.notice-key', { hasText: 'Bob' }).waitFor();
  assert.equal(await alice.page.locator('.member:not(.me)[data-verified]').count(), 0, 'the mark is gone');
  await alice.page.waitForFunction((old) => {
    const n = document.querySelector('.member:not(.me) .safety-number').textContent;
    return /^\d{5}( \d{5}){5}$/.test(n) && n !== old;
  }, before);
  await screenshot(alice.page, '24-key-changed');
  await bobRow.locator('button.verify').click();
  await alice.page.locator('.member:not(.me)[data-verified="true"]').waitFor();
  assert.equal(await alice.page.locator('.safety-changed').count(), 0);
});

test('messages go both ways and are shown decrypted with sender, time and delivery state', async () => {
  await sendText(alice.page, PLAIN.a1);
  const atBob = await waitForMessage(bob.page, PLAIN.a1, 'Alice');
  assert.match(await atBob.locator('time').getAttribute('datetime'), /^\d{4}-\d\d-\d\dT/);
  await sendText(bob.page, PLAIN.b1);
  await waitForMessage(alice.page, PLAIN.b1, 'Bob');
  // Bob's page said it got it: Alice's bubble goes from "Sent" to "Delivered".
  await alice.page.locator('.msg.mine .status', { hasText: /^Delivered/ }).first().waitFor();
  // Addresses become links that open elsewhere, without a referrer; the full stop stays text.
  await sendText(alice.page, PLAIN.link);
  const a = (await waitForMessage(bob.page, PLAIN.link, 'Alice')).locator('.body a');
  assert.equal(await a.getAttribute('href'), `https://example.org/plan?x=${tag}`);
  assert.equal(await a.getAttribute('target'), '_blank');
  assert.equal(await a.getAttribute('rel'), 'noopener noreferrer');
});

test('typing shows on the other side and stops', async () => {
  await bob.page.fill('#message-input', 'a draft');
  await alice.page.locator('#typing', { hasText: 'Bob is typing…' }).waitFor();
  await bob.page.fill('#message-input', '');
  await alice.page.locator('#typing:empty').waitFor();
});

test('a file and an image travel encrypted; the download notifies the sender', async () => {
  await sendFiles(alice.page, {
    name: PLAIN.fileName, mimeType: 'text/plain', buffer: Buffer.from(PLAIN.fileText),
  });
  await alice.page.locator('.msg.mine[data-type="file"][data-state="sent"]').waitFor();
  const link = bob.page.locator('.msg.theirs[data-type="file"] a.download');
  await link.waitFor();
  assert.equal(await link.getAttribute('download'), PLAIN.fileName);
  const [download] = await Promise.all([bob.page.waitForEvent('download'), link.click()]);
  assert.equal(download.suggestedFilename(), PLAIN.fileName);
  assert.equal(await fs.readFile(await download.path(), 'utf8'), PLAIN.fileText);
  await alice.page.locator('.msg.mine[data-type="file"] .status', { hasText: 'Downloaded by Bob' }).waitFor();
  await alice.page.locator('.notice', { hasText: `Bob downloaded ${PLAIN.fileName}` }).waitFor();

  await sendFiles(alice.page, { name: PLAIN.imageName, mimeType: 'image/png', buffer: await makePng(alice.page) });
  const img = bob.page.locator(`.msg.theirs[data-type="image"] img[alt="Image: ${PLAIN.imageName}"]`);
  await img.waitFor();
  await bob.page.waitForFunction((name) => {
    const el = document.querySelector(`img[alt="Image: ${name}"]`);
    return el && el.complete && el.naturalWidth === 160;
  }, PLAIN.imageName);
  // The name is shown once (the download link), not twice.
  const shown = await bob.page.locator('.msg.theirs[data-type="image"]').last().innerText();
  assert.equal(shown.split(PLAIN.imageName).length - 1, 1);
});

/** A File made in the page, in a DataTransfer (what a paste or a drop carries). */
function dataTransfer(page, { name, type, base64 }) {
  return page.evaluateHandle(({ name, type, base64 }) => {
    const bytes = Uint8Array.from(atob(base64), (ch) => ch.charCodeAt(0));
    const dt = new DataTransfer();
    dt.items.add(new File([bytes], name, { type }));
    return dt;
  }, { name, type, base64 });
}

test('a pasted image shows a preview (cancel, then send) and arrives', async () => {
  const png = (await makePng(bob.page)).toString('base64');
  const paste = async () => {
    const dt = await dataTransfer(bob.page, { name: PLAIN.pastedName, type: 'image/png', base64: png });
    await bob.page.focus('#message-input');
    await bob.page.evaluate((clipboardData) => {
      document.activeElement.dispatchEvent(new ClipboardEvent('paste', { clipboardData, bubbles: true, cancelable: true }));
    }, dt);
    await bob.page.locator('#attach-preview:not([hidden])').waitFor();
  };
  await paste();
  await bob.page.locator('#attach-list img').waitFor();
  assert.match(await bob.page.locator('#attach-list').innerText(), new RegExp(`${PLAIN.pastedName}[\\s\\S]*B`));
  await screenshot(bob.page, '12-paste-preview-phone');
  await bob.page.click('#attach-cancel');
  await bob.page.locator('#attach-preview').waitFor({ state: 'hidden' });
  assert.equal(await bob.page.locator(`.msg img[alt="Image: ${PLAIN.pastedName}"]`).count(), 0, 'cancelled: nothing sent');
  await paste();
  await bob.page.click('#attach-send');
  await alice.page.locator(`.msg.theirs img[alt="Image: ${PLAIN.pastedName}"]`).waitFor();
});

test('a file dropped on the chat is sent; a drop anywhere never leaves the page', async () => {
  const base64 = Buffer.from(PLAIN.droppedText).toString('base64');
  const dt = await dataTransfer(alice.page, { name: PLAIN.droppedName, type: 'text/plain', base64 });
  await alice.page.dispatchEvent('#messages', 'dragenter', { dataTransfer: dt });
  await alice.page.locator('#chat.dropping').waitFor();
  await screenshot(alice.page, '13-drop-desktop');
  await alice.page.dispatchEvent('#messages', 'drop', { dataTransfer: dt });
  await alice.page.locator('#attach-preview:not([hidden])', { hasText: PLAIN.droppedName }).waitFor();
  await alice.page.click('#attach-send');
  const link = bob.page.locator(`.msg.theirs a.download[download="${PLAIN.droppedName}"]`);
  await link.waitFor();
  // A drop elsewhere on the page (the header) is the page's too, not the browser's to open.
  const prevented = await alice.page.evaluate((d) => {
    const e = new DragEvent('drop', { dataTransfer: d, bubbles: true, cancelable: true });
    document.querySelector('.topbar').dispatchEvent(e);
    return e.defaultPrevented;
  }, await dataTransfer(alice.page, { name: 'elsewhere.txt', type: 'text/plain', base64 }));
  assert.equal(prevented, true);
  await alice.page.locator('#attach-preview:not([hidden])', { hasText: 'elsewhere.txt' }).waitFor();
  await alice.page.click('#attach-cancel');
  await alice.page.locator('#attach-preview').waitFor({ state: 'hidden' });
});

test('a 4 MiB binary file arrives intact', async () => {
  const big = randomBytes(4 * 1024 * 1024);
  await sendFiles(alice.page, { name: 'big.bin', mimeType: 'application/octet-stream', buffer: big });
  await alice.page.locator('.msg.mine[data-type="file"][data-state="sent"]', { hasText: 'big.bin' }).waitFor({ timeout: 60_000 });
  const link = bob.page.locator('.msg.theirs[data-type="file"] a.download[download="big.bin"]');
  await link.waitFor({ timeout: 60_000 });
  const [download] = await Promise.all([bob.page.waitForEvent('download'), link.click()]);
  assert.ok((await fs.readFile(await download.path())).equals(big));
});

test('a file over the size limit is refused in the page', async () => {
  // 100 MiB and one byte (a sparse file on disk: the picker gets its path, not its bytes).
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'blindrelay-e2e-'));
  const file = path.join(dir, 'big.bin');
  await fs.writeFile(file, '');
  await fs.truncate(file, 100 * 1024 * 1024 + 1);
  await alice.page.setInputFiles('#file-input', file);
  // Just over the limit: in bytes, where "100.0 MiB" would be said of both.
  assert.equal(await bannerText(alice.page), '“big.bin” is 104,857,601 bytes; files up to 104,857,600 bytes can be sent.');
  await fs.rm(dir, { recursive: true });
  assert.equal(await alice.page.locator('#attach-preview').isHidden(), true, 'not offered for sending');
  await alice.page.click('#banner-close');
});

test('a third person is refused from the private room with a readable error', async () => {
  const carol = await openPerson(browser, { label: 'carol', url: `${server.origin}/`, recorder });
  await openLinkAndJoin(carol.page, link, { name: 'Carol' });
  const text = await bannerText(carol.page);
  assert.equal(await carol.page.locator('#banner').getAttribute('data-code'), 'SESSION_FULL');
  // The page shows its own sentence for the code (static/js/errors.js), not the server's
  // message (the original server's words, "This room is full. Only 2 members allowed.").
  assert.equal(text, ERROR_TEXT.SESSION_FULL);
  assert.equal(await carol.page.locator('#view-join').isVisible(), true, 'still on the join form');
  await screenshot(carol.page, '06-error-banner');
  // The room is untouched.
  await sendText(alice.page, PLAIN.a2);
  await waitForMessage(bob.page, PLAIN.a2, 'Alice');
  assert.equal(await carol.page.locator('.msg').count(), 0);
  await carol.context.close();
});

test('every control is labelled and keyboard focus is visible', async () => {
  for (const { page } of [alice, bob]) {
    const unlabelled = await page.evaluate(() => {
      const bad = [];
      for (const c of document.querySelectorAll('input, textarea, select, button, a[href]')) {
        if (c.getAttribute('aria-hidden') === 'true' || c.type === 'hidden') continue;
        const text = (c.labels?.length ? [...c.labels].map((l) => l.textContent).join(' ') : '')
          + (c.getAttribute('aria-label') ?? '') + (c.matches('button, a') ? c.textContent : '');
        if (!text.trim()) bad.push(c.outerHTML.slice(0, 80));
      }
      return bad;
    });
    assert.deepEqual(unlabelled, []);
  }
  await alice.page.focus('#message-input');
  await alice.page.keyboard.press('Tab');
  const focused = await alice.page.evaluate(() => {
    const el = document.activeElement;
    const style = getComputedStyle(el);
    return { id: el.id, outline: style.outlineStyle, width: parseFloat(style.outlineWidth) };
  });
  // From the message: Record (voice notes, where the page may use the microphone), then Attach.
  assert.equal(focused.id, 'record');
  assert.notEqual(focused.outline, 'none');
  assert.ok(focused.width >= 2, 'a visible focus ring');
});

test('chat screens in both browsers', async () => {
  await screenshot(alice.page, '04-chat-creator');
  await screenshot(bob.page, '05-chat-phone');
});

test('the creator closes the room; both see it closed, calmly, with no error', async () => {
  await menuItem(alice.page, 'close-room');
  await screenshot(alice.page, '14-close-confirm');
  await confirmDialog(alice.page);
  await alice.page.locator('#end-panel:not([hidden])', { hasText: 'You closed this room' }).waitFor();
  await bob.page.locator('#end-panel:not([hidden])', { hasText: 'The room was closed' }).waitFor();
  assert.equal(await bob.page.locator('#composer').isHidden(), true);
  await alice.page.locator('#conn[data-state="closed"]').waitFor();
  for (const { page } of [alice, bob]) {
    assert.equal(await page.locator('#banner').isHidden(), true, 'no error banner');
    assert.doesNotMatch(await page.locator('body').innerText(), /Cannot reach the server/);
  }
  // The conversation stays readable on the page until it is left, scrolled to its end.
  await waitForMessage(bob.page, PLAIN.a2, 'Alice');
  await alice.page.waitForFunction(() => {
    const log = document.getElementById('messages');
    return log.scrollHeight - log.scrollTop - log.clientHeight < 2;
  });
  await screenshot(bob.page, '07-room-closed');
  await screenshot(alice.page, '07-room-closed-creator');
  const health = await server.waitHealthy();
  assert.equal(health.sessions, 0, 'the session is deleted');
});

test('the server saw no plaintext, no file name, no link secret and no originalContent', async () => {
  const secret = new URLSearchParams(new URL(link).hash.slice(1)).get('s');
  const sends = recorder.events().filter((e) => e.event === 'send-message');
  assert.ok(sends.length >= 5, `send-message frames recorded (${sends.length})`);
  for (const { payload } of sends) {
    assert.deepEqual(Object.keys(payload).sort(), ['clientMessageId', 'encrypted', 'sessionId', 'to', 'type']);
    assert.deepEqual(Object.keys(payload.encrypted).sort(), ['alg', 'ct', 'gen', 'iv', 'v']);
  }
  // Socket.IO started on HTTP long-polling, then upgraded to WebSocket: both were recorded.
  assert.ok(recorder.sent.some((f) => f.kind === 'ws'), 'WebSocket frames recorded');
  assert.ok(recorder.sent.some((f) => f.kind === 'http' && f.url.includes('/socket.io/')), 'polling bodies recorded');
  const downloaded = recorder.events().filter((e) => e.event === 'file-downloaded');
  assert.equal(downloaded.length, 2);
  assert.match(downloaded[0].payload.fileName, /^m-/, 'the message id stands for the file name');
  const words = [PLAIN.a1, PLAIN.b1, PLAIN.a2, PLAIN.fileText, PLAIN.fileName, PLAIN.imageName, PLAIN.pastedName,
    PLAIN.droppedName, PLAIN.droppedText, 'a draft', tag, secret];
  assertNothingLeaked(recorder, words, { serverLog: server.log });
  assert.deepEqual([...alice.page.problems, ...bob.page.problems], []);
});
