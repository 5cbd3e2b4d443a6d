// What travels inside the encryption besides texts and files (static/js/kinds.js): replies
// with a quote, reactions, edits and deletions for everyone, read receipts (and the switch
// that turns them off); and on the page: the unread divider with its jump button, search,
// the native share button and accessible names. Three people in a group room (two desktops
// and a touch phone at 390x844), two in a private room, real Chromium against the real server.

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, test } from 'node:test';
import { Annotations } from '../../static/js/kinds.js';
import {
  Recorder,
  assertNothingLeaked,
  confirmDialog,
  createRoom,
  joinRoom,
  menuItem,
  openPerson,
  openTab,
  screenshot,
  sendText,
  startSuite,
  stopSuite,
  waitForMessage,
  DESKTOP,
  PHONE,
} from './harness.js';

const tag = randomBytes(4).toString('hex');
const T = {
  original: `Lighthouse at nine ${tag}\nBring a torch`,
  reply: `See you at the lighthouse ${tag}`,
  planA: `Plan A is the harbour ${tag}`,
  planB: `Plan B is the old mill ${tag}`,
  oops: `Oops, wrong room ${tag}`,
  r1: `Did everyone read this ${tag}`,
  c1: `Carol reads without receipts ${tag}`,
  b1: `Bob answers Carol ${tag}`,
};

let server;
let browser;
const recorder = new Recorder();
const people = {};
let link;

before(async () => ({ server, browser } = await startSuite()));
after(() => stopSuite({ server, browser }));

/** Someone's message (the li) whose text holds `text`. */
const msg = (page, text) => page.locator('.msg', { has: page.locator('.body', { hasText: text }) });
/** On a touch phone Enter adds a line: the Send button sends. */
async function sendFromPhone(page, text) {
  await page.fill('#message-input', text);
  await page.tap('#send');
  await page.locator('.msg.mine[data-state="sent"] .body', { hasText: text }).waitFor();
}
const blur = (page) => page.evaluate(() => window.dispatchEvent(new Event('blur')));
const focus = (page) => page.evaluate(() => window.dispatchEvent(new Event('focus')));

/** Opens a message's actions ("⋯") and clicks one of them, by its accessible name. */
async function act(page, li, owner, name) {
  const toggle = li.getByRole('button', { name: `Actions for ${owner}` });
  if (await toggle.getAttribute('aria-expanded') !== 'true') await toggle.click();
  await li.getByRole('button', { name, exact: true }).click();
}

/** The page never scrolls, nor sideways; the composer is in view at the bottom. */
async function assertLayout(page, width) {
  const l = await page.evaluate(() => {
    const r = (sel) => document.querySelector(sel)?.getBoundingClientRect();
    return {
      height: innerHeight,
      scrollHeight: document.documentElement.scrollHeight,
      scrollWidth: document.documentElement.scrollWidth,
      composer: r('#composer'),
      send: r('#send'),
      log: r('#messages'),
      // What reaches below the window, if anything: said when the page grows.
      below: [...document.querySelectorAll('body *')].filter((e) => e.getBoundingClientRect().bottom > innerHeight + 1)
        .slice(0, 5).map((e) => `${e.tagName}#${e.id}.${e.className} ${Math.round(e.getBoundingClientRect().bottom)}`),
    };
  });
  assert.ok(l.scrollHeight <= l.height, `the page is ${l.scrollHeight} px tall in ${l.height}: ${l.below.join(', ')}`);
  assert.ok(l.scrollWidth <= width, `the page is ${l.scrollWidth} px wide in ${width}`);
  assert.ok(l.send.bottom <= l.height && l.composer.bottom <= l.height, 'the composer is in view');
  assert.ok(l.height - l.composer.bottom < 30, `the composer is at the bottom (${l.composer.bottom} of ${l.height})`);
  assert.ok(l.log.bottom <= l.composer.top, 'the log ends above the composer');
}

/**
 * WCAG AA contrast (4.5:1) of the text of every element matched by `selectors`, against
 * what is behind it (backgrounds composited up the tree), in light and dark.
 */
async function contrastProblems(page, selectors) {
  const problems = [];
  for (const scheme of ['light', 'dark']) {
    await page.emulateMedia({ colorScheme: scheme });
    const found = await page.evaluate((sels) => {
      const parse = (c) => {
        const n = c.match(/[\d.]+/g)?.map(Number) ?? [0, 0, 0, 0];
        if (c.startsWith('color(')) return [n[0] * 255, n[1] * 255, n[2] * 255, n[3] ?? 1];
        return [n[0], n[1], n[2], n[3] ?? 1];
      };
      const over = (top, below) => {
        const a = top[3];
        return [0, 1, 2].map((i) => top[i] * a + below[i] * (1 - a)).concat(1);
      };
      const background = (node) => {
        const layers = [];
        for (let e = node; e; e = e.parentElement) {
          const bg = parse(getComputedStyle(e).backgroundColor);
          if (bg[3] > 0) layers.push(bg);
          if (bg[3] >= 1) break;
        }
        let color = [255, 255, 255, 1];
        for (const layer of layers.reverse()) color = over(layer, color);
        return color;
      };
      const lum = ([r, g, b]) => {
        const f = (v) => {
          const s = v / 255;
          return s <= 0.03928 ? s / 12.92 : ((s + 0.055) / 1.055) ** 2.4;
        };
        return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b);
      };
      const out = [];
      for (const sel of sels) {
        const nodes = [...document.querySelectorAll(sel)].filter((e) => e.checkVisibility());
        if (!nodes.length) out.push({ sel, missing: true });
        for (const e of nodes.slice(0, 3)) {
          const bg = background(e);
          const fg = over(parse(getComputedStyle(e).color), bg);
          const [hi, lo] = [lum(fg), lum(bg)].sort((a, b) => b - a);
          out.push({ sel, ratio: (hi + 0.05) / (lo + 0.05) });
        }
      }
      return out;
    }, selectors);
    for (const f of found) {
      if (f.missing) problems.push(`${scheme}: nothing visible matches ${f.sel}`);
      else if (f.ratio < 4.5) problems.push(`${scheme}: ${f.sel} has contrast ${f.ratio.toFixed(2)}`);
    }
  }
  await page.emulateMedia({ colorScheme: null });
  return problems;
}

test('three people in a group room: two desktops and a touch phone', async () => {
  people.alice = await openPerson(browser, { label: 'alice', url: `${server.origin}/`, recorder, viewport: DESKTOP });
  link = await createRoom(people.alice.page, { mode: 'group', name: 'Alice' });
  people.bob = await openPerson(browser, { label: 'bob', url: `${server.origin}/`, recorder, viewport: DESKTOP });
  await joinRoom(people.bob.page, link, { name: 'Bob' });
  people.carol = await openPerson(browser, { label: 'carol', url: `${server.origin}/`, recorder, viewport: PHONE, touch: true });
  await joinRoom(people.carol.page, link, { name: 'Carol' });
  for (const { page } of Object.values(people)) {
    // Generation 3: the room key every one of the three holds.
    await page.locator('#key-generation[data-generation="3"]').waitFor({ state: 'attached' });
    await page.locator('#member-list .member').nth(2).waitFor({ state: 'attached' });
  }
});

test('a reply shows a quote of the original at the others; clicking it goes to the original', async () => {
  const { alice, bob, carol } = people;
  await sendText(alice.page, T.original);
  const original = await waitForMessage(bob.page, `Lighthouse at nine ${tag}`, 'Alice');
  await waitForMessage(carol.page, `Lighthouse at nine ${tag}`, 'Alice');
  // Enough after it that the phone's log has scrolled it away.
  for (let i = 0; i < 8; i++) await sendText(alice.page, `Filler ${i} ${tag}`);
  await waitForMessage(carol.page, `Filler 7 ${tag}`, 'Alice');

  await act(bob.page, original, "Alice's message", "Reply to Alice's message");
  await bob.page.locator('#compose-context:not([hidden])', { hasText: `Replying to Alice: Lighthouse at nine ${tag}` }).waitFor();
  assert.ok(!(await bob.page.locator('#compose-context').innerText()).includes('Bring a torch'), 'the first line only');
  await sendText(bob.page, T.reply);
  await bob.page.locator('#compose-context').waitFor({ state: 'hidden' });

  for (const [page, who] of [[alice.page, 'You'], [carol.page, 'Alice']]) {
    const reply = await waitForMessage(page, T.reply, 'Bob');
    const quote = reply.locator('.quote');
    await quote.locator('.quote-who', { hasText: who }).waitFor();
    assert.equal(await quote.locator('.quote-text').textContent(), `Lighthouse at nine ${tag}`);
  }
  await alice.page.locator('#announcer', { hasText: 'New message from Bob' }).waitFor({ state: 'attached' });

  // On the phone, the original is out of view; a tap on the quote brings it back.
  const inView = (text) => carol.page.evaluate((t) => {
    const li = [...document.querySelectorAll('#messages .msg')].find((e) => e.querySelector('.body')?.textContent.includes(t));
    const a = li.getBoundingClientRect();
    const b = document.getElementById('messages').getBoundingClientRect();
    return a.top >= b.top - 1 && a.bottom <= b.bottom + 1;
  }, text);
  assert.equal(await inView(`Lighthouse at nine ${tag}`), false, 'the original is scrolled away on the phone');
  const quote = carol.page.getByRole('button', { name: `In reply to Alice: Lighthouse at nine ${tag}` });
  await quote.tap();
  await carol.page.waitForFunction((t) => {
    const li = [...document.querySelectorAll('#messages .msg')].find((e) => e.querySelector('.body')?.textContent.includes(t));
    const a = li.getBoundingClientRect();
    const b = document.getElementById('messages').getBoundingClientRect();
    return li.classList.contains('flash') && a.top >= b.top - 1 && a.bottom <= b.bottom + 1;
  }, `Lighthouse at nine ${tag}`);
  await screenshot(carol.page, 'features-reply-phone');
});

test('reactions: counts at every page, who reacted in the name, toggled off again', async () => {
  const { alice, bob, carol } = people;
  const atBob = msg(bob.page, `Lighthouse at nine ${tag}`);
  await act(bob.page, atBob, "Alice's message", "React to Alice's message with thumbs up");
  await alice.page.getByRole('button', { name: "👍 1: thumbs up from Bob, on your message" }).waitFor();

  const atCarol = msg(carol.page, `Lighthouse at nine ${tag}`);
  await atCarol.getByRole('button', { name: "Actions for Alice's message" }).tap();
  await atCarol.getByRole('button', { name: "React to Alice's message with thumbs up" }).tap();
  await atCarol.getByRole('button', { name: "Actions for Alice's message" }).tap();
  await atCarol.getByRole('button', { name: "React to Alice's message with heart" }).tap();

  const atAlice = msg(alice.page, `Lighthouse at nine ${tag}`);
  await atAlice.getByRole('button', { name: '👍 2: thumbs up from Bob and Carol, on your message' }).waitFor();
  await atAlice.getByRole('button', { name: '❤️ 1: heart from Carol, on your message' }).waitFor();
  const mine = atBob.getByRole('button', { name: "👍 2: thumbs up from Carol and you, on Alice's message" });
  await mine.waitFor();
  assert.equal(await mine.getAttribute('aria-pressed'), 'true');
  assert.equal(await mine.getAttribute('title'), 'thumbs up: Carol and you');
  await screenshot(bob.page, 'features-reactions-desktop');

  // Bob takes his back (the chip toggles it).
  await mine.click();
  await atAlice.getByRole('button', { name: '👍 1: thumbs up from Carol, on your message' }).waitFor();
  const after = atBob.getByRole('button', { name: "👍 1: thumbs up from Carol, on Alice's message" });
  await after.waitFor();
  assert.equal(await after.getAttribute('aria-pressed'), 'false');
  await atCarol.getByRole('button', { name: "👍 1: thumbs up from you, on Alice's message" }).waitFor();
});

test('edit and delete for everyone: shown at the others and replayed for a new tab', async () => {
  const { alice, bob, carol } = people;
  await sendText(alice.page, T.planA);
  await sendText(alice.page, T.oops);
  for (const { page } of [bob, carol]) await waitForMessage(page, T.oops, 'Alice');

  await act(alice.page, msg(alice.page, T.planA), 'your message', 'Edit your message');
  await alice.page.locator('#compose-context:not([hidden])', { hasText: 'Editing your message' }).waitFor();
  assert.equal(await alice.page.inputValue('#message-input'), T.planA);
  await alice.page.fill('#message-input', T.planB);
  await alice.page.press('#message-input', 'Enter');
  await alice.page.locator('#compose-context').waitFor({ state: 'hidden' });

  await act(alice.page, msg(alice.page, T.oops), 'your message', 'Delete your message for everyone…');
  await confirmDialog(alice.page);

  for (const { page } of [alice, bob, carol]) {
    await msg(page, T.planB).locator('.edited', { hasText: 'edited' }).waitFor();
    await page.locator('.msg[data-deleted="true"] .body', { hasText: 'This message was deleted' }).waitFor();
    const text = await page.locator('#messages').innerText();
    assert.ok(!text.includes(T.planA) && !text.includes(T.oops), 'neither the old text nor the deleted one is shown');
  }
  // Only the sender may: Bob is offered neither on Alice's message.
  const atBob = msg(bob.page, T.planB);
  await atBob.getByRole('button', { name: "Actions for Alice's message" }).click();
  await atBob.getByRole('button', { name: "Reply to Alice's message" }).waitFor();
  assert.equal(await atBob.getByRole('button', { name: /^(Edit|Delete)/ }).count(), 0);
  await bob.page.keyboard.press('Escape');
  await atBob.locator('.msg-actions').waitFor({ state: 'detached' });
  // ...and an edit or deletion names a message of its own sender only: another member's
  // "edit" of Alice's message id lands on a message of that member (which does not exist).
  const notes = new Annotations('me');
  assert.deepEqual(notes.apply({ kind: 'edit', id: 'm-x', text: 'forged' }, 'mallory', 1), ['mallory/m-x']);
  assert.equal(notes.editOf('alice/m-x'), undefined);
  await screenshot(carol.page, 'features-edit-delete-phone');

  // Bob opens the room in a new tab (the same member, a fresh page): the history replays
  // in order, the edit, the deletion, the reactions and the reply with it.
  people.bob2 = await openTab(bob.context, { label: 'bob2', url: link, recorder });
  const tab = people.bob2.page;
  await tab.locator('#conn[data-state="joined"]').waitFor();
  await msg(tab, T.planB).locator('.edited').waitFor();
  await tab.locator('.msg[data-deleted="true"] .body', { hasText: 'This message was deleted' }).waitFor();
  await msg(tab, `Lighthouse at nine ${tag}`).getByRole('button', { name: "👍 1: thumbs up from Carol, on Alice's message" }).waitFor();
  await msg(tab, T.reply).locator('.quote-text', { hasText: `Lighthouse at nine ${tag}` }).waitFor();
  const text = await tab.locator('#messages').innerText();
  assert.ok(!text.includes(T.planA) && !text.includes(T.oops));
  assert.equal(await tab.locator('.msg .body', { hasText: /^Decrypting/ }).count(), 0);
  await screenshot(tab, 'features-new-tab-replay');
  await tab.close();
});

test('read receipts: "Seen by" only once the page shows the message; none with receipts off', async () => {
  const { alice, bob, carol } = people;
  // Both had scrolled up to the messages they acted on: back at the end, where R1 will show.
  for (const { page } of [bob, carol]) {
    await page.locator('#messages').evaluate((log) => { log.scrollTop = log.scrollHeight; });
  }
  await blur(bob.page);
  await blur(carol.page);
  await sendText(alice.page, T.r1);
  await waitForMessage(bob.page, T.r1, 'Alice');
  await waitForMessage(carol.page, T.r1, 'Alice');
  const status = msg(alice.page, T.r1).locator('.status');
  await status.filter({ hasText: 'Delivered to 2' }).waitFor();
  assert.equal(await msg(bob.page, T.r1).getAttribute('data-seen'), null, 'not seen on a page not looked at');
  assert.equal(await status.textContent(), 'Delivered to 2');

  await focus(bob.page);
  await msg(bob.page, T.r1).and(bob.page.locator('[data-seen="true"]')).waitFor();
  await status.filter({ hasText: 'Delivered to 2 · Seen by 1' }).waitFor();

  // Carol switches receipts off (More), then looks: she sends none...
  await menuItem(carol.page, 'receipts-toggle');
  await carol.page.locator('#receipts-toggle[aria-pressed="false"]', { hasText: 'Read receipts: off' }).waitFor();
  await carol.page.keyboard.press('Escape');
  assert.equal(await carol.page.evaluate(() => localStorage.getItem('blindrelay.receipts.v1')), '"off"');
  await focus(carol.page);
  await msg(carol.page, T.r1).and(carol.page.locator('[data-seen="true"]')).waitFor();
  // (a receipt waiting would go out before her next message)
  await sendFromPhone(carol.page, T.c1);
  await waitForMessage(alice.page, T.c1, 'Carol');
  assert.equal(await status.textContent(), 'Delivered to 2 · Seen by 1');

  // ...and sees none: Bob reads her message (his receipt goes before his answer).
  await msg(bob.page, T.c1).and(bob.page.locator('[data-seen="true"]')).waitFor();
  await sendText(bob.page, T.b1);
  await waitForMessage(carol.page, T.b1, 'Bob');
  const carolStatus = msg(carol.page, T.c1).locator('.status');
  await carolStatus.filter({ hasText: /^Delivered to \d$/ }).waitFor();
  // Switched on again, Carol's page shows what it heard.
  await menuItem(carol.page, 'receipts-toggle');
  await carol.page.locator('#receipts-toggle[aria-pressed="true"]').waitFor();
  await carolStatus.filter({ hasText: /Seen by [12]$/ }).waitFor();
  await carol.page.keyboard.press('Escape');
});

test('search filters the conversation to the matches, marked; Escape clears it', async () => {
  const { bob } = people;
  const all = await bob.page.locator('#messages .msg').count();
  await bob.page.getByRole('button', { name: 'Search this conversation' }).click();
  const field = bob.page.getByRole('searchbox', { name: 'Search this conversation' });
  await field.fill('LIGHTHOUSE');
  await bob.page.locator('#search-count', { hasText: '2 messages match' }).waitFor();
  assert.equal(await bob.page.locator('#messages .msg:visible').count(), 2);
  assert.deepEqual(await bob.page.locator('#messages .msg:visible mark').allTextContents(), ['Lighthouse', 'lighthouse']);
  assert.equal(await bob.page.locator('#messages .notice:visible').count(), 0);
  await screenshot(bob.page, 'features-search-desktop');
  await field.press('Escape');
  await bob.page.locator('#search-bar').waitFor({ state: 'hidden' });
  assert.equal(await bob.page.locator('#messages .msg:visible').count(), all);
  assert.equal(await bob.page.locator('#messages mark').count(), 0);
  assert.equal(await bob.page.evaluate(() => document.activeElement.id), 'search-toggle');
});

test('accessible names say whose each control is; new colours pass WCAG AA in light and dark', async () => {
  const { alice, bob, carol } = people;
  await alice.page.getByRole('button', { name: 'Mark Bob as verified' }).waitFor();
  await alice.page.getByRole('button', { name: 'Remove Carol…' }).waitFor();
  const atAlice = msg(alice.page, T.reply);
  await atAlice.getByRole('button', { name: "Actions for Bob's message" }).click();
  await atAlice.getByRole('group', { name: "React to Bob's message" }).waitFor();
  await atAlice.getByRole('button', { name: "Reply to Bob's message" }).waitFor();
  assert.equal(await atAlice.getByRole('button', { name: /^React to Bob's message with / }).count(), 6);
  // Keyboard: Escape closes the actions and gives the focus back to their "⋯".
  await atAlice.getByRole('button', { name: "React to Bob's message with sad" }).focus();
  await alice.page.keyboard.press('Escape');
  await atAlice.locator('.msg-actions').waitFor({ state: 'detached' });
  assert.equal(await alice.page.evaluate(() => document.activeElement.getAttribute('aria-label')), "Actions for Bob's message");
  // The log itself is not read out whole; the announcer says who wrote.
  assert.equal(await alice.page.locator('#messages').getAttribute('aria-live'), 'off');
  assert.equal(await alice.page.locator('#announcer').getAttribute('aria-live'), 'polite');

  // A reply being written and the actions open, with the colours of everything new.
  await act(carol.page, msg(carol.page, T.b1), "Bob's message", "Reply to Bob's message");
  await carol.page.getByRole('button', { name: "Cancel the reply to Bob's message" }).waitFor();
  await assertLayout(carol.page, PHONE.width);
  await screenshot(carol.page, 'features-reply-composing-phone');
  await carol.page.getByRole('button', { name: "Actions for Bob's message" }).last().tap();
  await assertLayout(carol.page, PHONE.width);
  await screenshot(carol.page, 'features-actions-phone');

  const problems = [
    ...await contrastProblems(bob.page, ['.msg .edited', '.msg .body.deleted', '.msg .quote-who', '.msg .quote-text',
      '.reactions .chip', '.msg.mine .status', '.msg.theirs .meta time', '.msg-actions-toggle']),
    ...await contrastProblems(carol.page, ['.compose-context p', '.msg-actions .react-row .react', '.msg-actions .row button']),
  ];
  await bob.page.getByRole('button', { name: 'Search this conversation' }).click();
  await bob.page.fill('#search-input', 'plan');
  await bob.page.locator('#search-count', { hasText: '1 message matches' }).waitFor();
  problems.push(...await contrastProblems(bob.page, ['.msg mark', '.search-count']));
  await bob.page.emulateMedia({ colorScheme: 'dark' });
  await screenshot(bob.page, 'features-search-dark');
  await bob.page.emulateMedia({ colorScheme: null });
  await bob.page.keyboard.press('Escape');
  assert.deepEqual(problems, []);
});

test('a private room: "Seen" once read; the unread line and the jump button when scrolled up or away', async () => {
  const dan = await openPerson(browser, { label: 'dan', url: `${server.origin}/`, recorder, viewport: DESKTOP });
  const privateLink = await createRoom(dan.page, { mode: 'private', name: 'Dan' });
  const eve = await openPerson(browser, { label: 'eve', url: `${server.origin}/`, recorder, viewport: PHONE, touch: true });
  await joinRoom(eve.page, privateLink, { name: 'Eve' });
  people.dan = dan;
  people.eve = eve;
  for (let i = 0; i < 14; i++) await sendText(dan.page, `Earlier line ${i} ${tag}`);
  await waitForMessage(eve.page, `Earlier line 13 ${tag}`, 'Dan');
  const last = msg(dan.page, `Earlier line 13 ${tag}`).locator('.status');
  await last.filter({ hasText: 'Delivered · Seen' }).waitFor();
  assert.equal(await last.textContent(), 'Delivered · Seen', 'a private room says "Seen", without a count');

  // Eve scrolls up; two new messages arrive below, out of her view.
  await eve.page.locator('#messages').evaluate((log) => { log.scrollTop = 0; });
  await eve.page.locator('#messages').evaluate((log) => new Promise((resolve) => requestAnimationFrame(() => resolve(log.scrollTop))));
  await sendText(dan.page, `New below one ${tag}`);
  await sendText(dan.page, `New below two ${tag}`);
  const jump = eve.page.getByRole('button', { name: 'Jump to new messages' });
  await jump.waitFor();
  await waitForMessage(eve.page, `New below two ${tag}`, 'Dan');
  const divider = eve.page.getByRole('separator', { name: 'New messages' });
  assert.equal(await divider.count(), 1);
  assert.equal(await divider.evaluate((d) => d.nextElementSibling.querySelector('.body').textContent), `New below one ${tag}`);
  const newStatus = msg(dan.page, `New below one ${tag}`).locator('.status');
  await newStatus.filter({ hasText: 'Delivered' }).waitFor();
  assert.equal(await msg(eve.page, `New below one ${tag}`).getAttribute('data-seen'), null);
  assert.equal(await newStatus.textContent(), 'Delivered', 'not seen while scrolled away');
  await assertLayout(eve.page, PHONE.width);
  await screenshot(eve.page, 'features-jump-phone');

  await jump.tap();
  await jump.waitFor({ state: 'hidden' });
  await divider.waitFor();
  await newStatus.filter({ hasText: 'Delivered · Seen' }).waitFor();
  await msg(dan.page, `New below two ${tag}`).locator('.status', { hasText: 'Delivered · Seen' }).waitFor();
  await screenshot(eve.page, 'features-unread-divider-phone');

  // At the bottom but looking elsewhere: the line moves to the next unread message, and
  // nothing is "Seen" until she looks again.
  await eve.page.locator('#messages').evaluate((log) => { log.scrollTop = log.scrollHeight; });
  await blur(eve.page);
  await sendText(dan.page, `While away ${tag}`);
  await waitForMessage(eve.page, `While away ${tag}`, 'Dan');
  await eve.page.waitForFunction((t) => {
    const d = document.querySelector('#messages .unread-divider');
    return d?.nextElementSibling?.querySelector('.body')?.textContent === t;
  }, `While away ${tag}`);
  assert.equal(await eve.page.locator('#messages .unread-divider').count(), 1);
  assert.equal(await jump.isHidden(), true, 'no jump button at the bottom');
  await focus(eve.page);
  await msg(dan.page, `While away ${tag}`).locator('.status', { hasText: 'Delivered · Seen' }).waitFor();
  // Writing clears the line.
  await sendFromPhone(eve.page, `Back ${tag}`);
  await eve.page.locator('#messages .unread-divider').waitFor({ state: 'detached' });
});

test('the native share button: hidden where the browser has no share sheet, else it shares the link', async () => {
  const { alice } = people;
  const hasShare = await alice.page.evaluate(() => typeof navigator.share === 'function');
  if (await alice.page.locator('#share-panel').isHidden()) await alice.page.click('#share-toggle');
  await alice.page.locator('#share-copy').waitFor();
  assert.equal(await alice.page.locator('#share-native').isVisible(), hasShare);

  // A browser with a share sheet (a stand-in recording what it is given).
  const context = await browser.newContext({ viewport: PHONE, hasTouch: true, isMobile: true });
  await context.addInitScript(() => {
    window.shared = [];
    Object.defineProperty(navigator, 'share', { value: async (data) => { window.shared.push(data); } });
  });
  const { page } = await openTab(context, { label: 'frank', url: `${server.origin}/`, recorder });
  const own = await createRoom(page, { mode: 'group', name: 'Frank' });
  const share = page.getByRole('button', { name: 'Share…' });
  await share.waitFor();
  await screenshot(page, 'features-share-phone');
  await share.tap();
  await page.waitForFunction(() => window.shared.length === 1);
  assert.equal(await page.evaluate(() => window.shared[0].url), own);
  assert.deepEqual(page.problems, []);
  await context.close();
});

test('desktop and phone screens; no console error and nothing readable left the pages', async () => {
  const { alice, carol } = people;
  await screenshot(alice.page, 'features-desktop');
  await screenshot(carol.page, 'features-phone');
  await assertLayout(alice.page, DESKTOP.width);
  await assertLayout(carol.page, PHONE.width);
  for (const { page } of Object.values(people)) assert.deepEqual(page.problems, []);
  const words = [...Object.values(T).flatMap((t) => t.split('\n')), 'Bring a torch', '👍', '❤️', 'thumbs up',
    '"reaction"', '"receipt"', '"edit"', '"delete"', '\\ud83d\\udc4d'];
  assertNothingLeaked(recorder, words, { serverLog: server.log });
});
