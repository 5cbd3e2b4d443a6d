// A private redis-server for the tests: its own free port and folder, never a system
// instance. Append-only persistence, so a restart keeps the data (as a production
// Redis configured for blindrelay would).

import { spawn } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { freePort } from './server.mjs';

/** Resolves once `PING` on 127.0.0.1:port answers `+PONG`; false on any failure. */
function ping(port) {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1');
    const done = (ok) => { s.destroy(); resolve(ok); };
    s.setTimeout(500, () => done(false));
    s.on('error', () => done(false));
    s.on('connect', () => s.write('PING\r\n'));
    s.on('data', (d) => done(d.toString().startsWith('+PONG')));
  });
}

function launch(port, dir) {
  const child = spawn('redis-server', [
    '--port', String(port), '--bind', '127.0.0.1', '--dir', dir,
    '--save', '', '--appendonly', 'yes', '--appendfsync', 'always',
  ], { stdio: ['ignore', 'pipe', 'pipe'] });
  const chunks = [];
  child.stdout.on('data', (c) => chunks.push(c));
  child.stderr.on('data', (c) => chunks.push(c));
  const exited = new Promise((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })));
  const failed = new Promise((_, reject) => child.on('error', reject));
  failed.catch(() => {});
  return { child, exited, failed, output: () => Buffer.concat(chunks).toString() };
}

async function ready(port, proc) {
  const deadline = Date.now() + 10000;
  for (;;) {
    const early = await Promise.race([proc.exited, proc.failed, ping(port).then((ok) => (ok ? 'up' : null))])
      .catch((e) => {
        if (e && e.code === 'ENOENT') {
          throw new Error('redis-server not found: install it (apt-get install redis-server); scripts/test.sh does');
        }
        throw e;
      });
    if (early === 'up') return;
    if (early) throw new Error(`redis-server exited: ${JSON.stringify(early)}\n${proc.output()}`);
    if (Date.now() > deadline) throw new Error(`redis-server not ready:\n${proc.output()}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

/** Starts redis-server; returns {url, port, stop(), start()}. */
export async function startRedis() {
  const port = await freePort();
  const dir = mkdtempSync(path.join(os.tmpdir(), 'blindrelay-redis-'));
  const redis = {
    port,
    url: `redis://127.0.0.1:${port}`,
    proc: null,
    /** Stops it (SIGTERM: the append-only file is flushed) and waits for the exit. */
    async stop() {
      if (!redis.proc) return;
      const { child, exited } = redis.proc;
      redis.proc = null;
      child.kill('SIGTERM');
      await exited;
    },
    /** (Re)starts it on the same port and folder. */
    async start() {
      redis.proc = launch(port, dir);
      await ready(port, redis.proc);
    },
  };
  await redis.start();
  return redis;
}
