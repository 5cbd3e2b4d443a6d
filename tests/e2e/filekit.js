// Shared by the e2e tests of files in chunks (files.test.js, files-resume.test.js): files of
// random bytes on disk, a TCP proxy whose connections a test can cut, throttling, memory.

import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { createRoom, joinRoom, openPerson, startSuite, stopSuite } from './harness.js';

export const MiB = 1024 * 1024;
/** 2 Mbit/s up (250,000 bytes a second), 40 ms of latency. */
export const UPLINK_2M = { offline: false, latency: 40, uploadThroughput: 250_000, downloadThroughput: 2_500_000 };
export const NO_THROTTLE = { offline: false, latency: 0, uploadThroughput: -1, downloadThroughput: -1 };

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'blindrelay-e2e-files-'));
export const removeFiles = () => fs.rmSync(tmp, { recursive: true, force: true });

export class CuttableProxy {
  constructor(port) {
    this.port = port;
    this.pairs = new Set();
    this.refuseUntil = 0;
  }

  async start() {
    this.srv = net.createServer((client) => {
      if (Date.now() < this.refuseUntil) {
        client.resetAndDestroy();
        return;
      }
      const upstream = net.connect(this.port, '127.0.0.1');
      const pair = { client, upstream };
      this.pairs.add(pair);
      const end = () => {
        this.pairs.delete(pair);
        client.destroy();
        upstream.destroy();
      };
      for (const s of [client, upstream]) {
        s.on('error', end);
        s.on('close', end);
      }
      client.pipe(upstream);
      upstream.pipe(client);
    });
    this.srv.listen(0, '127.0.0.1');
    await new Promise((r) => this.srv.once('listening', r));
    return this;
  }

  get origin() {
    return `http://127.0.0.1:${this.srv.address().port}`;
  }

  /** Resets every open connection and refuses new ones for `ms`. */
  cut(ms) {
    this.refuseUntil = Date.now() + ms;
    for (const { client, upstream } of this.pairs) {
      client.resetAndDestroy();
      upstream.destroy();
    }
  }

  close() {
    this.srv.close();
    for (const { client, upstream } of this.pairs) {
      client.destroy();
      upstream.destroy();
    }
  }
}

/** A file of `size` random bytes on disk (the picker gets its path), with its SHA-256. */
export function randomFile(name, size) {
  const file = path.join(tmp, name);
  const fd = fs.openSync(file, 'w');
  const hash = createHash('sha256');
  for (let left = size; left > 0;) {
    const block = randomBytes(Math.min(left, 4 * MiB));
    fs.writeSync(fd, block);
    hash.update(block);
    left -= block.length;
  }
  fs.closeSync(fd);
  return { file, sha256: hash.digest('hex') };
}

export function sha256File(file) {
  const hash = createHash('sha256');
  const fd = fs.openSync(file, 'r');
  const buf = Buffer.alloc(4 * MiB);
  for (let n; (n = fs.readSync(fd, buf, 0, buf.length)) > 0;) hash.update(buf.subarray(0, n));
  fs.closeSync(fd);
  return hash.digest('hex');
}

/**
 * Alice creates a private room through the proxy (her connection can be cut) and Bob joins
 * it straight at the server. Returns the link at the server.
 */
export async function privateRoom({ browser, server, proxy }, { recorder, bobPhone = false } = {}) {
  const alice = await openPerson(browser, { label: 'alice', url: `${proxy.origin}/`, recorder });
  const viaProxy = await createRoom(alice.page, { mode: 'private', name: 'Alice' });
  const link = `${server.origin}/${new URL(viaProxy).hash}`;
  const bob = await openPerson(browser, {
    label: 'bob', url: `${server.origin}/`, recorder,
    ...(bobPhone ? { viewport: { width: 390, height: 844 }, touch: true } : {}),
  });
  await joinRoom(bob.page, link, { name: 'Bob' });
  await alice.page.locator('#member-list li.member:not(.me)').waitFor();
  return { alice, bob, link };
}

export async function throttle(page, conditions) {
  const cdp = await page.context().newCDPSession(page);
  await cdp.send('Network.enable');
  await cdp.send('Network.emulateNetworkConditions', conditions);
  return cdp;
}

/** Saves the file Bob's page offers under `name` and returns its SHA-256. */
export async function downloadedSha(page, name) {
  const link = page.locator(`.msg.theirs a.download[download="${name}"]`);
  const [saved] = await Promise.all([page.waitForEvent('download'), link.click()]);
  return sha256File(await saved.path());
}

/** VmRSS of a process, in bytes. */
export function rss(pid) {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) * 1024 : 0;
  } catch {
    return 0; // gone meanwhile
  }
}

/** `pid` and all its descendants (from /proc). */
export function processTree(pid) {
  const parents = new Map();
  for (const d of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const stat = fs.readFileSync(`/proc/${d}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      parents.set(Number(d), ppid);
    } catch {
      // gone meanwhile
    }
  }
  const tree = new Set([pid]);
  for (let grew = true; grew;) {
    grew = false;
    for (const [p, pp] of parents) if (!tree.has(p) && tree.has(pp)) { tree.add(p); grew = true; }
  }
  return [...tree];
}

/**
 * Samples the VmRSS of the processes `pids()` every 250 ms until stopped: the peak of their
 * sum over the first sample's, and the largest peak growth of any one of them.
 */
export function sampler(pids) {
  const first = new Map(pids().map((p) => [p, rss(p)]));
  const s = { first: [...first.values()].reduce((a, b) => a + b, 0), peak: 0, onePeak: 0 };
  s.peak = s.first;
  const sample = () => {
    let sum = 0;
    for (const p of pids()) {
      const now = rss(p);
      sum += now;
      if (!first.has(p)) first.set(p, 0);
      s.onePeak = Math.max(s.onePeak, now - first.get(p));
    }
    s.peak = Math.max(s.peak, sum);
  };
  const timer = setInterval(sample, 250);
  s.stop = () => {
    clearInterval(timer);
    sample();
  };
  return s;
}

/** Records every value the sender's upload progress bar shows, with when. */
export async function watchProgress(page) {
  await page.evaluate(() => {
    window.progressLog = [];
    new MutationObserver(() => {
      const p = document.querySelector('.msg.mine[data-type="file"] .status progress');
      const v = p ? Number(p.value) : null;
      const last = window.progressLog.at(-1);
      if (v !== null && v !== last?.v) window.progressLog.push({ at: Date.now(), v });
    }).observe(document.getElementById('messages'), { subtree: true, childList: true, attributes: true });
  });
}

/** A file test's server, browser and the proxy its sender goes through. */
export async function startFileSuite() {
  const { server, browser } = await startSuite();
  const proxy = await new CuttableProxy(server.port).start();
  return { server, browser, proxy };
}

export async function stopFileSuite({ server, browser, proxy }) {
  proxy?.close();
  removeFiles();
  await stopSuite({ server, browser });
}
