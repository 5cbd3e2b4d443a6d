// The real "End2End Chat" app against blindrelay, as legacy-client.md describes it: the
// app's socket layer (lib/legacy.mjs) in every room mode, with its double join, no acks,
// its sessionId rules, big files, blips, restarts and refusals. Any session-error the
// test does not expect fails it (the app would alert and throw the person out).
//
// With REDIS_URL set, each test runs on two nodes sharing one REDIS_PREFIX: the creator
// on node A, everyone else on node B, so every event crosses nodes.

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { cleanup, connect, collect, health, waitHealth, nextEvent } from './lib/server.mjs';
import {
  LegacyClient, REFUSAL, bigRef, brief, closeLegacyClients, converged, fakePublicKey,
  groupKeyEverywhere, hybridEncrypt, newPasswordRoom, newRoom, newUserId, reserveRoom,
  startDeployment,
} from './lib/legacy.mjs';

after(async () => {
  closeLegacyClients();
  await cleanup();
});

/** Reconnects take up to 5 attempts of ~1, 2, 4, 5, 5 s (±50%). */
const RECONNECT_MS = 25000;

/**
 * One test on a fresh deployment (so per-address limits and rooms never leak between
 * tests). `ctx.person(url, opts)` makes a LegacyClient (not yet entered). At the end,
 * no client may hold a session-error it did not expect.
 */
function scenario(name, fn, { timeout = 60000, env = {} } = {}) {
  test(name, { timeout }, async () => {
    const d = await startDeployment(env);
    const people = [];
    const ctx = {
      d,
      person(url, opts) {
        const c = new LegacyClient(url, opts);
        people.push(c);
        return c;
      },
    };
    try {
      await fn(ctx);
      assert.deepEqual(
        people.filter((c) => c.fatal).map((c) => `${c.label}: ${brief(c.fatal)}`), [],
        'no session-error where none is expected',
      );
    } finally {
      closeLegacyClients();
      await d.stop();
    }
  });
}

/** Reserve over HTTP (the app's "Create Session"), then the creator enters on node A. */
async function openRoom(ctx, room, { name = 'Ana', url = ctx.d.nodeA.url, transports } = {}) {
  await reserveRoom(ctx.d.nodeA.url, room);
  const creator = ctx.person(url, {
    label: name, displayName: name, joinString: room.link, isCreator: true, transports,
  }).enter();
  await creator.entered();
  return creator;
}

/** A joiner by link (or `joinString`) on node B. */
function joiner(ctx, room, name, { url = ctx.d.nodeB.url, ...opts } = {}) {
  return ctx.person(url, { label: name, displayName: name, joinString: room.link, ...opts }).enter();
}


/** `sender` sends `text`; its bubble comes from message-sent, and every receiver
 *  decrypts it. Returns the message id. */
async function deliver(sender, receivers, text, timeoutMs) {
  const id = sender.sendText(text);
  assert.ok(id, `${sender.label} could send`);
  await sender.until(() => sender.count('message-sent', (m) => m.id === id) > 0, `message-sent ${id}`, timeoutMs);
  const own = sender.messages.get(id);
  assert.equal(own.from, sender.userId, 'message-sent.from is the sender');
  assert.equal(typeof own.timestamp, 'number', 'message-sent.timestamp is a number');
  assert.equal(own.originalContent, text, 'message-sent carries the sender\'s originalContent');
  assert.equal(sender.bubble(id), text, 'the sender\'s bubble shows its text, not "Sending..."');
  await Promise.all(receivers.map((r) => r.until(() => r.messages.has(id), `${r.label} to receive "${text}"`, timeoutMs)));
  for (const r of receivers) assert.equal(r.bubble(id), text, `${r.label} decrypts "${text}"`);
  return id;
}

/** A refused entry: at least one session-error, every one with `message` (and `code`
 *  when given), and the app's clean-up (leave-session, disconnect). */
async function refused(c, message, code) {
  await c.until(() => c.errors.length > 0 && c.left, `${c.label} to be refused`);
  for (const e of c.errors) {
    assert.equal(e?.message, message, `${c.label}: session-error text, got ${brief(e)}`);
    if (code) assert.equal(e.error, code, `${c.label}: session-error code, got ${brief(e)}`);
  }
  assert.equal(c.emitted('leave-session').length, 1, 'the app sends leave-session after the alert');
}

/** Until `node` counts exactly `n` connections (its disconnect handling done). */
const connectionsAre = (node, n) => waitHealth(node.url, (h) => h.connections === n, 8000);

// ---------------------------------------------------------------------------------------

scenario('group room of three: reserve, double join, keys, group key, texts to all', async (ctx) => {
  const room = newRoom('group');
  const ana = await openRoom(ctx, room);
  const ben = joiner(ctx, room, 'Ben');
  await converged([ana, ben]);
  const cleo = joiner(ctx, room, 'Cleo');
  const all = [ana, ben, cleo];
  await converged(all);

  // The app's entry, on the wire: get-public-keys, join-session (key), join-session (null).
  for (const c of all) {
    assert.deepEqual(c.sent.slice(0, 3).map((e) => [e.name, e.payload.publicKey]),
      [['get-public-keys', undefined], ['join-session', c.publicKey], ['join-session', null]]);
  }
  for (const c of all) {
    assert.ok(c.received('session-metadata').length > 0);
    for (const meta of c.received('session-metadata')) assert.equal(meta.chatMode, 'group');
  }

  // The creator's key map reaches everyone, the creator included (it reads the echo).
  await groupKeyEverywhere(ana, all);
  assert.ok(ana.keyMapsSent.length > 0 && ana.keyMapsSent.at(-1).length === 3, 'the last map covers all three');
  assert.equal(ben.emitted('set-session-key').length + cleo.emitted('set-session-key').length, 0);

  // Texts to all; the sender sees its own through message-sent.
  for (const sender of all) {
    const id = await deliver(sender, all.filter((c) => c !== sender), `hello from ${sender.label}`);
    for (const c of all) assert.equal(c.messages.get(id).to, 'all');
  }

  // One user-joined per new member, though each entered with two join-session. Cleo's
  // message (above) left the server after any user-joined of her joins: none can trail.
  const joinedCount = (c, who) => c.count('user-joined', (p) => p.userId === who.userId);
  assert.deepEqual([joinedCount(ana, ben), joinedCount(ana, cleo), joinedCount(ben, cleo)], [1, 1, 1]);
  assert.deepEqual([joinedCount(ben, ana), joinedCount(cleo, ana), joinedCount(cleo, ben)], [0, 0, 0]);
  for (const c of all) assert.equal(joinedCount(c, c), 0, 'no user-joined about oneself');
  assert.equal(ana.received('user-joined', (p) => p.userId === cleo.userId)[0].displayName, 'Cleo');
  for (const c of all) assert.equal(c.bannerShown, false);
});

scenario('private room: both ways without plaintext to the recipient; a third is refused quietly', async (ctx) => {
  const room = newRoom('private');
  const ana = await openRoom(ctx, room);
  const ben = joiner(ctx, room, 'Ben');
  await converged([ana, ben]);
  for (const c of [ana, ben]) assert.equal(c.chatMode, 'private');

  const pairs = [[ana, ben, 'meet me at the old mill at seven'], [ben, ana, 'bring the blue umbrella please']];
  for (const [from, to, secret] of pairs) {
    const id = await deliver(from, [to], secret);
    const copy = to.received('new-message', (m) => m.id === id)[0];
    assert.ok(copy, `${to.label} got it as new-message`);
    assert.equal(copy.to, to.userId);
    assert.equal(copy.from, from.userId);
    assert.equal(typeof copy.originalContent, 'string', 'a placeholder keeps the banner away');
    assert.ok(copy.originalContent.length > 0, 'a non-empty placeholder');
    assert.notEqual(copy.originalContent, secret);
    assert.ok(!JSON.stringify(to.log).includes(secret), `the plaintext never reaches ${to.label}`);
    assert.equal(to.bannerShown, false, `no "Previous messages cannot be decrypted" for ${to.label}`);
  }

  // A third person: exactly the refusal, then the app's leave-session; nobody hears of it.
  const before = (await health(ctx.d.nodeB.url)).connections;
  const cara = joiner(ctx, room, 'Cara', { expectErrors: true });
  await refused(cara, REFUSAL.full, 'SESSION_FULL');
  await connectionsAre(ctx.d.nodeB, before);
  await Promise.all([ana, ben].map((c) => c.quietFor(300, ['user-left', 'user-joined'])));
  for (const c of [ana, ben]) {
    assert.equal(c.count('user-left'), 0, `${c.label}: no user-left`);
    assert.equal(c.count('user-joined', (p) => p.userId === cara.userId), 0, `${c.label}: no user-joined`);
    assert.equal(c.count('public-keys-updated', (l) => l.some((k) => k.userId === cara.userId)), 0);
  }
  assert.deepEqual(ana.peers.map((p) => [p.userId, p.publicKey]), [[ben.userId, ben.publicKey]]);
  assert.deepEqual(ben.peers.map((p) => [p.userId, p.publicKey]), [[ana.userId, ana.publicKey]]);
  await deliver(ana, [ben], 'still just us');
});

scenario('password room: wrong password refused, right one admitted; a HEAD link is admitted too', async (ctx) => {
  const room = newPasswordRoom('s3cret-pass');
  const ana = await openRoom(ctx, room);
  assert.deepEqual(ana.sent[1].payload.sessionId, room.sessionId, 'creator: bare id');
  assert.equal(ana.sent[1].payload.authKey, room.authKey, 'creator: <16hex>:<b64>');
  assert.equal(ana.chatMode, 'password');

  // The same person (one userId) first mistypes the password in the join form.
  const benId = newUserId();
  const wrong = joiner(ctx, room, 'Ben', { userId: benId, joinString: room.formJoin('s3cret-PASS'), expectErrors: true });
  const wrongJoin = wrong.emitted('join-session')[0];
  assert.equal(wrongJoin.sessionId, `${room.sessionId}:password:${Buffer.from('s3cret-PASS').toString('base64')}`);
  assert.ok(!('authKey' in wrongJoin), 'the form sends no authKey field');
  await refused(wrong, REFUSAL.wrongPassword, 'INVALID_PASSWORD');

  const ben = joiner(ctx, room, 'Ben', { userId: benId, joinString: room.formJoin() });
  await converged([ana, ben]);
  assert.equal(ben.chatMode, 'password');
  // Every event of Ben carries `ID:password:<b64>` as sessionId.
  await deliver(ben, [ana], 'password worked');
  await deliver(ana, [ben], 'welcome in');
  assert.equal(ana.count('user-joined', (p) => p.userId === benId), 1, 'the refused attempt was never announced');
  assert.equal(ana.count('user-left'), 0);

  // HEAD's invite link to a password room: bare id plus the full <16hex>:<b64> authKey.
  const room2 = newPasswordRoom('another-pass');
  const dana = await openRoom(ctx, room2, { name: 'Dana' });
  const eli = joiner(ctx, room2, 'Eli');
  assert.equal(eli.sent[1].payload.sessionId, room2.sessionId);
  assert.equal(eli.sent[1].payload.authKey, room2.authKey);
  assert.equal(eli.sent[1].payload.isCreator, false);
  await converged([dana, eli]);
  await deliver(eli, [dana], 'came by link');
  await deliver(dana, [eli], 'hello link');
});

scenario('typing: relayed to the others only; 30 keystrokes in a second are fine', async (ctx) => {
  const room = newRoom('group');
  const ana = await openRoom(ctx, room);
  const ben = joiner(ctx, room, 'Ben');
  const cleo = joiner(ctx, room, 'Cleo');
  const all = [ana, ben, cleo];
  await converged(all);
  await groupKeyEverywhere(ana, all);

  ben.typed();
  for (const c of [ana, cleo]) await c.until(() => c.typingNames.includes('Ben'), `${c.label} to see "Ben is typing"`);
  const pick = ({ userId, displayName }) => ({ userId, displayName });
  assert.deepEqual(pick(ana.received('user-typing')[0]), { userId: ben.userId, displayName: 'Ben' });
  ben.stoppedTyping();
  for (const c of [ana, cleo]) await c.until(() => c.typingNames.length === 0, `${c.label}: typing gone`);
  assert.deepEqual(pick(cleo.received('user-stopped-typing')[0]), { userId: ben.userId, displayName: 'Ben' });

  // A fast typist: one typing per keystroke, 30 within a second (pacing, not syncing).
  const seenBefore = ana.count('user-typing');
  for (let i = 0; i < 30; i++) {
    ben.typed();
    await new Promise((r) => setTimeout(r, 33));
  }
  await deliver(ben, [ana, cleo], 'typed fast');
  for (const c of [ana, cleo]) await c.until(() => c.typingNames.length === 0, `${c.label}: typing gone after the send`);
  assert.ok(ana.count('user-typing') > seenBefore, 'the burst was relayed');
  assert.equal(ben.count('user-typing') + ben.count('user-stopped-typing'), 0, 'never echoed to the typist');
  assert.deepEqual([ben.connects, ben.disconnects], [1, []], 'the typist was never disconnected');
});

// A 5 MiB file as the app sends it: its data URL (~6.99 MB) in clear and, Base64 twice,
// in the private-room hybrid blob (~12.43 MB): a ~19.4 MB frame. Built once per run of
// the test and reused for every send.
function bigFiles() {
  const b64 = randomBytes(5 * 1024 * 1024).toString('base64');
  const imageUrl = `data:image/png;base64,${b64}`;
  const pdfUrl = `data:application/pdf;base64,${b64}`;
  const imagePlain = `[IMAGE]${imageUrl}`;
  const filePlain = `[FILE]report.pdf:application/pdf:${pdfUrl}`;
  // The server never decrypts: one blob per kind stands for every copy.
  const someone = fakePublicKey();
  const imageEnc = hybridEncrypt(someone, imagePlain);
  const fileEnc = hybridEncrypt(someone, filePlain);
  return {
    imageUrl, pdfUrl, imageEnc, fileEnc,
    imageRef: bigRef(imagePlain), fileRef: bigRef(filePlain),
    imageEncRef: bigRef(imageEnc), fileEncRef: bigRef(fileEnc),
  };
}

scenario('5 MiB files and images in a private room: three each, back to back, all delivered', async (ctx) => {
  const f = bigFiles();
  // The sizes of legacy-client.md §4, so the test is what the app really sends.
  assert.ok(Math.abs(f.imageEnc.length - 12.43e6) < 0.01e6, `encrypted is ${f.imageEnc.length} chars`);
  const frame = 2 + JSON.stringify(['send-message', {
    sessionId: 'abcdef12', from: newUserId(), to: newUserId(), encrypted: f.imageEnc,
    originalContent: `[IMAGE]${f.imageUrl}`, type: 'image', clientMessageId: 'msg-1700000000000-abcdefghi',
  }]).length;
  assert.ok(frame > 19.3e6 && frame < 19.5e6, `the frame is ${frame} bytes`);

  const room = newRoom('private');
  const ana = await openRoom(ctx, room, { name: 'Ana Example' });
  const bob = joiner(ctx, room, 'Bob Example');
  await converged([ana, bob]);

  const sendThree = (c) => [
    c.sendImage(f.imageUrl, { encrypted: f.imageEnc }),
    c.sendFile('report.pdf', 'application/pdf', f.pdfUrl, { encrypted: f.fileEnc }),
    c.sendImage(f.imageUrl, { encrypted: f.imageEnc }),
  ];
  const sent = new Map([[ana, sendThree(ana)], [bob, sendThree(bob)]]);
  // ~116 MB in and twice that out through a debug build (and Redis): typically 20-60 s;
  // the bound only matters on a loaded machine.
  const BIG_MS = 150000;
  const other = (c) => (c === ana ? bob : ana);
  await Promise.all([...sent].flatMap(([from, ids]) => [
    from.until(() => ids.every((id) => from.count('message-sent', (m) => m.id === id) > 0), `${from.label}: message-sent x3`, BIG_MS),
    other(from).until(() => ids.every((id) => other(from).count('new-message', (m) => m.id === id) > 0), `${other(from).label}: new-message x3`, BIG_MS),
  ]));
  for (const [from, ids] of sent) {
    const to = other(from);
    const kinds = [['image', f.imageRef, f.imageEncRef], ['file', f.fileRef, f.fileEncRef], ['image', f.imageRef, f.imageEncRef]];
    ids.forEach((id, i) => {
      const [type, plainRef, encRef] = kinds[i];
      const own = from.received('message-sent', (m) => m.id === id)[0];
      assert.equal(own.originalContent, plainRef, 'the sender\'s own bubble gets its file back');
      const got = to.received('new-message', (m) => m.id === id)[0];
      assert.equal(got.encrypted, encRef, 'the recipient gets the encrypted blob intact');
      assert.equal(got.type, type);
      assert.equal(got.to, to.userId);
    });
  }
  for (const c of [ana, bob]) {
    assert.deepEqual([c.connects, c.disconnects], [1, []], `${c.label} stayed connected`);
    assert.equal(c.bannerShown, false);
  }

  // Downloads: downloadedBy is the downloader's display name; only the sender is told.
  bob.downloaded({ senderId: ana.userId, fileName: 'report.pdf' });
  await ana.until(() => ana.count('download-notification') > 0, 'download-notification');
  const note = ana.received('download-notification')[0];
  assert.equal(note.downloadedBy, 'Bob Example');
  assert.equal(note.fileName, 'report.pdf');
  const imageName = `image-${Date.now()}.png`;
  ana.downloaded({ senderId: bob.userId, fileName: imageName });
  await bob.until(() => bob.count('download-notification') > 0, 'download-notification');
  const back = bob.received('download-notification')[0];
  assert.deepEqual([back.downloadedBy, back.fileName], ['Ana Example', imageName]);
  assert.equal(ana.count('download-notification'), 1, 'one notice, to the sender only');
}, { timeout: 200000 });

// A long presence grace: only a handled leave-session (the app closes at once after it)
// makes user-left come now rather than when the grace ends.
scenario('leave: the others get user-left at once (the app closes right after leave-session) and a list without the leaver; the room outlives its people', async (ctx) => {
  const room = newRoom('group');
  const ana = await openRoom(ctx, room);
  const ben = joiner(ctx, room, 'Ben');
  const cleo = joiner(ctx, room, 'Cleo');
  await converged([ana, ben, cleo]);
  await groupKeyEverywhere(ana, [ana, ben, cleo]);

  cleo.leave();
  assert.deepEqual(cleo.emitted('leave-session').at(-1), { sessionId: room.sessionId, userId: cleo.userId });
  await converged([ana, ben]);
  for (const c of [ana, ben]) {
    await c.until(() => c.count('user-left', (p) => p.userId === cleo.userId) > 0, `${c.label}: user-left Cleo`);
    const lists = c.received('public-keys-updated');
    assert.ok(!lists.at(-1).some((k) => k.userId === cleo.userId), 'the last list is without Cleo');
  }
  // The creator re-keys for who is left.
  await ana.until(() => ana.keyMapsSent.at(-1)?.length === 2, 'a key map for the two left');
  await deliver(ana, [ben], 'two of us now');
  await deliver(ben, [ana], 'yes');
  for (const c of [ana, ben]) assert.equal(c.count('user-left'), 1, `${c.label}: one user-left`);
  assert.ok(!cleo.messages.has([...ana.messages.keys()].at(-1)), 'the leaver gets nothing more');

  // The creator leaves: the member stays, with nobody left in its list.
  ana.leave();
  await ben.until(() => ben.count('user-left', (p) => p.userId === ana.userId) > 0 && ben.peers.length === 0, 'Ben alone');
  assert.equal(ben.connected, true);

  // The last one leaves; then, like reloads, the creator comes back first, then Ben.
  ben.leave();
  await Promise.all([connectionsAre(ctx.d.nodeA, 0), connectionsAre(ctx.d.nodeB, 0)]);
  const ana2 = ctx.person(ctx.d.nodeA.url, { label: 'Ana again', userId: ana.userId, joinString: room.link, isCreator: true }).enter();
  await ana2.entered();
  const ben2 = joiner(ctx, room, 'Ben again', { userId: ben.userId });
  await converged([ana2, ben2]);
  await groupKeyEverywhere(ana2, [ana2, ben2]);
  await deliver(ben2, [ana2], 'back again');
}, { env: { PRESENCE_GRACE_SECS: '30' } });

scenario('network blip: reconnect with a null key is invisible; the old socket\'s late close removes nobody', async (ctx) => {
  const { d } = ctx;
  const room = newRoom('private');
  const ana = await openRoom(ctx, room);
  const proxy = await d.proxy(d.nodeB.port);
  const ben = joiner(ctx, room, 'Ben', { url: proxy.url });
  await converged([ana, ben]);
  await deliver(ana, [ben], 'before the blip');
  await deliver(ben, [ana], 'before, too');

  // Ben's Wi-Fi drops: nothing passes any more, but the server's socket stays open.
  const conns = proxy.openConns();
  assert.equal(conns.length, 1, 'Ben has one connection through the proxy');
  const [old] = conns;
  proxy.blackhole(old);
  const gapId = ana.sendText('sent during the gap');
  await ana.until(() => ana.count('message-sent', (m) => m.id === gapId) > 0, 'message-sent during the gap');

  // Ben's socket.io-client notices (its close frame is swallowed) and reconnects.
  const sentMark = ben.sent.length;
  const keysMark = ana.count('public-keys-updated');
  const metaMark = ben.count('session-metadata');
  ben.socket.io.engine.close();
  await ben.until(() => ben.connects === 2 && ben.count('session-metadata') > metaMark, 'Ben back in', RECONNECT_MS);
  assert.deepEqual(ben.sent.slice(sentMark).map((e) => [e.name, e.payload.publicKey]), [['join-session', null]],
    'on reconnect the app sends only join-session with a null key');

  // The missed message came in the history; Ben decrypts it.
  await ben.until(() => ben.messages.has(gapId), 'the missed message via messages-history');
  assert.equal(ben.bubble(gapId), 'sent during the gap');
  await converged([ana, ben]);
  await deliver(ben, [ana], 'after the blip');
  await deliver(ana, [ben], 'welcome back');
  assert.ok(ana.count('public-keys-updated') > keysMark, 'the room was told the key list again');
  for (const l of ana.received('public-keys-updated').slice(keysMark)) {
    assert.equal(l.find((k) => k.userId === ben.userId)?.publicKey, ben.publicKey, 'Ben kept his key in every list');
  }

  // Much later the old connection finally closes: Ben must stay.
  const liveOnB = d.redis ? 1 : 2;
  proxy.destroy(old);
  await connectionsAre(d.nodeB, liveOnB);
  await ana.quietFor(500, ['user-left']);
  assert.equal(ana.count('user-left'), 0, 'no user-left for Ben, ever');
  assert.equal(ana.peer(ben.userId)?.publicKey, ben.publicKey);
  await deliver(ana, [ben], 'still there?');
  await deliver(ben, [ana], 'still here');
  assert.equal(ben.bannerShown, false);
});

scenario('server restart: both go on talking in the same room, with no session-error and no false notice', async (ctx) => {
  const { d } = ctx;
  const room = newRoom('private');
  await reserveRoom(d.nodeA.url, room);
  const pa = await d.proxy(d.nodeA.port);
  const pb = await d.proxy(d.nodeB.port);
  const ana = ctx.person(pa.url, { label: 'Ana', displayName: 'Ana', joinString: room.link, isCreator: true }).enter();
  await ana.entered();
  const ben = joiner(ctx, room, 'Ben', { url: pb.url });
  await converged([ana, ben]);
  const before = await deliver(ana, [ben], 'before the restart');

  const metaMark = [ana, ben].map((c) => c.count('session-metadata'));
  const noticeMark = [ana, ben].map((c) => c.count('user-joined') + c.count('user-left'));
  const historyMark = ben.count('messages-history');
  const back = (c, i) => c.until(
    () => c.connects === 2 && c.count('session-metadata') > metaMark[i],
    `${c.label} to reconnect and rejoin`, RECONNECT_MS,
  );

  // With Redis, rooms, members and keys live in Redis; in memory, in the node's
  // snapshot (DATA_DIR, written at SIGTERM and read at start). Either way the stop and
  // start of every node (the same command, the same folder) is a network blip.
  pa.down('refuse');
  pb.down('refuse');
  const stopped = [...new Set([d.nodeA, d.nodeB])];
  await Promise.all(stopped.map((n) => n.stop()));
  const started = await Promise.all(stopped.map(() => d.startNode()));
  pa.retarget(started[0].port);
  pb.retarget(started[started.length - 1].port);
  await Promise.all([back(ana, 0), back(ben, 1)]);
  await converged([ana, ben], RECONNECT_MS);
  await deliver(ana, [ben], 'after the restart');
  await deliver(ben, [ana], 'after the restart, too');
  [ana, ben].forEach((c, i) => {
    assert.equal(c.reconnectFailed, false);
    assert.deepEqual(c.errors, [], `${c.label}: no session-error`);
    // In memory (the node's own snapshot); on Redis a stopped node's members are
    // announced as gone once the presence grace (1 s here) has passed, as before.
    if (!d.redis) {
      assert.equal(c.count('user-joined') + c.count('user-left'), noticeMark[i],
        `${c.label}: nobody joined or left, so no notice says so`);
    }
    assert.equal(c.chatMode, 'private');
  });
  // The history from before the restart is still there for a rejoin.
  // Ben's rejoin brings Ana's message back (a rejoin without a new key omits one's own:
  // the app kept them).
  const since = ben.received('messages-history').slice(historyMark);
  assert.ok(since.some((h) => h.some((m) => m.id === before)), 'Ben\'s rejoin brings the history back');
  assert.equal((await health(started[0].url)).status, 'ok');
});

scenario('polling only: a quick group exchange', async (ctx) => {
  const room = newRoom('group');
  const polling = ['polling'];
  const ana = await openRoom(ctx, room, { transports: polling });
  const ben = joiner(ctx, room, 'Ben', { transports: polling });
  await converged([ana, ben]);
  await groupKeyEverywhere(ana, [ana, ben]);
  for (const c of [ana, ben]) assert.equal(c.socket.io.engine.transport.name, 'polling');
  await deliver(ana, [ben], 'over polling');
  await deliver(ben, [ana], 'over polling, too');
  ben.typed();
  await ana.until(() => ana.typingNames.includes('Ben'), 'typing over polling');
});

scenario('refusals: the exact texts people see, and only join-session is ever refused', async (ctx) => {
  const { d } = ctx;
  // A room nobody reserved.
  const ghost = newRoom('group');
  const lost = joiner(ctx, ghost, 'Lost', { expectErrors: true });
  await refused(lost, REFUSAL.notFound);

  // An active room, the wrong key.
  const room = newRoom('group');
  const ana = await openRoom(ctx, room);
  const wrongKey = joiner(ctx, room, 'Wrong key', {
    joinString: `${room.sessionId}:${'0'.repeat(12)}4bad`, expectErrors: true,
  });
  await refused(wrongKey, REFUSAL.invalidKey);

  // Reserved, the creator not in yet.
  const early = newRoom('private');
  await reserveRoom(d.nodeA.url, early);
  const tooSoon = joiner(ctx, early, 'Too soon', { expectErrors: true });
  await refused(tooSoon, REFUSAL.notActive);

  // Reserved, the creator arriving with another key.
  const mismatch = newRoom('group');
  await reserveRoom(d.nodeA.url, mismatch);
  const badCreator = ctx.person(d.nodeA.url, {
    label: 'Creator with another key', joinString: `${mismatch.sessionId}:${newRoom().authKey}`,
    isCreator: true, expectErrors: true,
  }).enter();
  await refused(badCreator, REFUSAL.keyMismatch);

  // Nobody in the active room heard of the refused entry.
  assert.equal(ana.count('user-joined') + ana.count('user-left'), 0);
  assert.deepEqual(ana.peers, []);
  // The reserved room still works for its real creator.
  const realCreator = ctx.person(d.nodeA.url, { label: 'Real creator', joinString: mismatch.link, isCreator: true }).enter();
  await realCreator.entered();
});

scenario('events from a socket that has not joined: never a session-error, never relayed', async (ctx) => {
  const { d } = ctx;
  const room = newRoom('group');
  const ana = await openRoom(ctx, room);
  const ben = joiner(ctx, room, 'Ben');
  await converged([ana, ben]);
  await groupKeyEverywhere(ana, [ana, ben]);

  // An old client's socket, plain emits (no acks), never joined.
  const raw = await connect(d.nodeB.url);
  const errors = collect(raw, 'session-error');
  const keyLists = collect(raw, 'public-keys-updated');
  const me = newUserId();
  const garbage = [null, 42, 'x', [], {}, { sessionId: 7 }, { sessionId: '' }];
  const events = [
    ['get-public-keys', { sessionId: room.sessionId, userId: me }],
    ['get-public-keys', { sessionId: room.link, userId: me }],
    ['get-public-keys', { sessionId: newRoom().sessionId, userId: me }],
    ['typing', { sessionId: room.sessionId, userId: me, displayName: 'Mallory' }],
    ['stopped-typing', { sessionId: room.sessionId, userId: me, displayName: 'Mallory' }],
    ['send-message', {
      sessionId: room.sessionId, from: ana.userId, to: 'all', encrypted: 'AAAA', originalContent: 'spoofed',
      type: 'text', clientMessageId: 'msg-1700000000000-spoofed1',
    }],
    ['send-message', { sessionId: room.sessionId, from: me, to: ben.userId, encrypted: 'AAAA', type: 'text' }],
    ['set-session-key', { sessionId: room.sessionId, encryptedKeys: { [ben.userId]: 'garbage' } }],
    ['set-session-key', { sessionId: room.sessionId, encryptedKeys: 'garbage' }],
    ['file-downloaded', { sessionId: room.sessionId, downloadedBy: 'Mallory', senderId: ana.userId, fileName: 'x.pdf', timestamp: 1 }],
    ['file-downloaded', { sessionId: room.sessionId, downloadedBy: 12, senderId: null }],
    ['leave-session', { sessionId: room.sessionId, userId: me }],
    ['leave-session', { sessionId: room.sessionId, userId: ana.userId }],
  ];
  for (const name of ['get-public-keys', 'typing', 'stopped-typing', 'send-message', 'set-session-key', 'file-downloaded', 'leave-session']) {
    raw.emit(name);
    for (const g of garbage) events.push([name, g]);
  }
  for (const [name, payload] of events) raw.emit(name, payload);

  // Barrier: the socket's events are handled in order, so once its own room's metadata
  // arrives, everything above has been handled.
  const own = newRoom('group');
  await reserveRoom(d.nodeA.url, own);
  const meta = nextEvent(raw, 'session-metadata', 8000);
  raw.emit('join-session', { sessionId: own.sessionId, userId: me, displayName: 'M', publicKey: fakePublicKey(), isCreator: true, authKey: own.authKey });
  await meta;
  assert.deepEqual(errors, [], 'no session-error for events before a join');
  const beforeJoin = keyLists.filter((l) => !(Array.isArray(l) && l.some((k) => k.userId === me)));
  for (const l of beforeJoin) assert.deepEqual(l, [], 'get-public-keys before a join: an empty list at most');

  // Nothing reached the room.
  await Promise.all([ana, ben].map((c) => c.quietFor(300, ['new-message'])));
  for (const c of [ana, ben]) {
    assert.equal(c.count('new-message'), 0, `${c.label}: no spoofed message`);
    assert.equal(c.count('user-typing') + c.count('user-stopped-typing'), 0, `${c.label}: no typing`);
    assert.equal(c.count('user-left'), 0, `${c.label}: nobody left`);
    assert.equal(c.count('download-notification'), 0, `${c.label}: no download notice`);
    assert.equal(c.count('session-key-available', (p) => p?.encryptedKeys?.[ben.userId] === 'garbage'), 0);
  }
  assert.ok(ana.peer(ben.userId) && ben.peer(ana.userId), 'both still in');

  // A member's garbage is dropped silently too (old clients have no ack to read).
  for (const [name, payload] of [
    ['send-message', {}], ['send-message', 'x'], ['typing', 42], ['get-public-keys', null],
    ['set-session-key', { sessionId: room.sessionId, encryptedKeys: 'nope' }],
    ['file-downloaded', { sessionId: room.sessionId, senderId: 'nobody', downloadedBy: 'Ben', fileName: 1 }],
  ]) ben.socket.emit(name, payload);
  await deliver(ben, [ana], 'after the garbage'); // handled after it, in order
  raw.close();
});
