// The End2End Chat app (lib/legacy.mjs) on slow real-world links: a member whose uplink
// runs at 1 or 2 Mbit/s sends one huge event without an ack (the app's 5 MiB photo is
// one ~19.4 MB frame), so its Engine.IO pongs wait behind the upload for minutes. The
// server must judge it alive by the bytes still arriving, never drop it, and deliver the
// photo whole; and a member whose link goes silent (idle, or in the middle of an upload)
// must still be dropped within PING_INTERVAL_SECS + PING_TIMEOUT_SECS (20 s by default).
//
// Each case runs in memory (one node) and on Redis (two nodes on one private
// redis-server: the sender on one, the receiver on the other), all at once: the links
// are slow, not the machine. The server's heartbeat settings are its defaults.

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { cleanup, startServer, uid } from './lib/server.mjs';
import { startRedis } from './lib/redis.mjs';
import {
  LegacyClient, bigRef, closeLegacyClients, converged, fakePublicKey, groupKeyEverywhere,
  hybridEncrypt, newRoom, reserveRoom,
} from './lib/legacy.mjs';
import { slowLink } from './lib/slowlink.mjs';

const MBIT = 1e6 / 8; // bytes per second
/** The server's defaults: PING_INTERVAL_SECS + PING_TIMEOUT_SECS. */
const DEAD_WITHIN_MS = 20000;
/** Timer and scheduling slack on a loaded 2-core machine. */
const SLACK_MS = 1500;

const redisPromise = startRedis();
const links = [];
after(async () => {
  closeLegacyClients();
  await Promise.all(links.map((l) => l.close()));
  await cleanup();
  await (await redisPromise).stop();
});

/** A deployment: one node in memory, or two nodes sharing a private Redis. */
async function deployment(kind) {
  if (kind === 'memory') {
    const node = await startServer();
    return { kind, senderNode: node, receiverNode: node };
  }
  const redis = await redisPromise;
  const env = { REDIS_URL: redis.url, REDIS_PREFIX: `uplink-${uid('p')}:` };
  const [a, b] = await Promise.all([startServer(env), startServer(env)]);
  return { kind, senderNode: a, receiverNode: b };
}

async function link(node, opts) {
  const l = await slowLink(node.port, opts);
  links.push(l);
  return l;
}

/** A room with its creator entered through `creatorUrl` and a joiner through `joinerUrl`. */
async function room(mode, d, creatorUrl, joinerUrl) {
  const r = newRoom(mode);
  await reserveRoom(d.senderNode.url, r);
  const ana = new LegacyClient(creatorUrl, {
    label: `Ana (${d.kind})`, displayName: 'Ana', joinString: r.link, isCreator: true,
  }).enter();
  await ana.entered(20000);
  const bob = new LegacyClient(joinerUrl, {
    label: `Bob (${d.kind})`, displayName: 'Bob', joinString: r.link,
  }).enter();
  await converged([ana, bob], 20000);
  if (mode === 'group') await groupKeyEverywhere(ana, [ana, bob]);
  return { ana, bob };
}

/** Ends a case: the slow sender was never dropped, and sent through one connection. */
function assertNeverDropped(sender, l) {
  assert.deepEqual([sender.connects, sender.disconnects], [1, []], `${sender.label} stayed connected`);
  assert.equal(l.conns.size, 1, 'one TCP connection through the slow link, never a reconnect');
}

/** Resolves once `pred()` holds (checked every 100 ms), or fails after `ms`. */
async function waitFor(pred, what, ms) {
  const deadline = Date.now() + ms;
  while (!pred()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => { setTimeout(r, 100); });
  }
}

const KINDS = ['memory', 'redis'];

test('slow uplinks: huge events arrive whole, slow senders are never dropped, silent ones are', { concurrency: true, timeout: 300000 }, async (t) => {
  // The app's 5 MiB photo in a private room (legacy-client.md §4): ~19.4 MB in one frame.
  const b64 = randomBytes(5 * 1024 * 1024).toString('base64');
  const imageUrl = `data:image/png;base64,${b64}`;
  const imageEnc = hybridEncrypt(fakePublicKey(), `[IMAGE]${imageUrl}`);
  // A 10 MB event in a group room: 5 MB of ciphertext and 5 MB of originalContent.
  const text = 't'.repeat(5e6);
  const textEnc = randomBytes(3.75e6).toString('base64');

  const cases = KINDS.flatMap((kind) => [
    t.test(`${kind}: a 5 MiB photo (one ~19.4 MB event, no ack) over a 1 Mbit/s uplink`, async () => {
      const d = await deployment(kind);
      const l = await link(d.senderNode, { upBytesPerSec: 1 * MBIT });
      const { ana, bob } = await room('private', d, l.url, d.receiverNode.url);
      const started = Date.now();
      const id = ana.sendImage(imageUrl, { encrypted: imageEnc });
      // ~155 s at 1 Mbit/s; the bound leaves room for a loaded machine.
      await bob.until(() => bob.count('new-message', (m) => m.id === id) > 0, `${bob.label}: the photo`, 240000);
      await ana.until(() => ana.count('message-sent', (m) => m.id === id) > 0, `${ana.label}: message-sent`, 30000);
      const took = Date.now() - started;
      assert.ok(took > 120000, `the link was slow (${took} ms for the photo)`);
      process.stdout.write(`# ${kind}: the photo arrived after ${took} ms\n`);
      const got = bob.received('new-message', (m) => m.id === id)[0];
      assert.equal(got.encrypted, bigRef(imageEnc), 'the photo arrived whole');
      assert.equal(got.from, ana.userId);
      assert.equal(ana.received('message-sent', (m) => m.id === id)[0].originalContent, bigRef(`[IMAGE]${imageUrl}`));
      assertNeverDropped(ana, l);
    }),

    t.test(`${kind}: a 10 MB event over a 2 Mbit/s uplink, then a text right behind it`, async () => {
      const d = await deployment(kind);
      const l = await link(d.senderNode, { upBytesPerSec: 2 * MBIT });
      const { ana, bob } = await room('group', d, l.url, d.receiverNode.url);
      const started = Date.now();
      const big = ana.sendContent(text, 'text', { encrypted: textEnc });
      const after = ana.sendText('sent while the big one was still on its way');
      await bob.until(() => bob.count('new-message', (m) => m.id === after) > 0, `${bob.label}: both messages`, 120000);
      const took = Date.now() - started;
      assert.ok(took > 30000, `the link was slow (${took} ms)`);
      process.stdout.write(`# ${kind}: the 10 MB event and the text behind it arrived after ${took} ms\n`);
      assert.deepEqual(bob.received('new-message').map((m) => m.id).filter((id) => id === big || id === after), [big, after], 'in order');
      assert.equal(bob.received('new-message', (m) => m.id === big)[0].encrypted, bigRef(textEnc), 'whole');
      await ana.until(() => ana.count('message-sent', (m) => m.id === after) > 0, `${ana.label}: message-sent`, 30000);
      assertNeverDropped(ana, l);
    }),

    t.test(`${kind}: a member whose link goes silent is dropped within ${DEAD_WITHIN_MS / 1000} s`, async () => {
      const d = await deployment(kind);
      const l = await link(d.receiverNode, {});
      const { ana, bob } = await room('private', d, d.senderNode.url, l.url);
      const [conn] = l.open();
      l.silence(conn);
      l.refuseNew(); // its reconnects cannot get through either
      await conn.serverClosed;
      const took = conn.serverClosedAt - conn.silencedAt;
      assert.ok(took <= DEAD_WITHIN_MS + SLACK_MS, `dropped ${took} ms after going silent`);
      process.stdout.write(`# ${kind}: an idle member gone silent was dropped after ${took} ms\n`);
      // The room hears of it (after the presence grace).
      await ana.until(() => ana.peers.length === 0, `${ana.label}: ${bob.label} gone`, 20000);
    }),

    t.test(`${kind}: a member whose link goes silent in the middle of an upload is dropped within ${DEAD_WITHIN_MS / 1000} s`, async () => {
      const d = await deployment(kind);
      const l = await link(d.senderNode, { upBytesPerSec: 2 * MBIT });
      const { ana, bob } = await room('group', d, l.url, d.receiverNode.url);
      const [conn] = l.open();
      const big = ana.sendContent(text, 'text', { encrypted: textEnc });
      // Well into the upload (~40 s in all), past at least one heartbeat round.
      await waitFor(() => conn.up.forwarded > 3e6, 'the upload under way', 30000);
      l.silence(conn);
      await conn.serverClosed;
      const took = conn.serverClosedAt - conn.silencedAt;
      assert.ok(took <= DEAD_WITHIN_MS + SLACK_MS, `dropped ${took} ms after going silent`);
      process.stdout.write(`# ${kind}: a member gone silent mid-upload was dropped after ${took} ms\n`);
      assert.equal(bob.count('new-message', (m) => m.id === big), 0, 'a half-sent event is never delivered');
    }),
  ]);
  await Promise.all(cases);
});
