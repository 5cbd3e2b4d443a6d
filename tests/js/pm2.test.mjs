// The PM2 deployment of docs/deployment.md, for real, with exactly its commands: a folder
// holding ecosystem.config.js and a .env (two nodes on one Redis); `pm2 start` runs both;
// `PM2_CONCURRENT_ACTIONS=1 pm2 reload blindrelay` restarts them one after the other
// without a moment where neither answers, and clients that reconnect keep talking; a
// crashed node is restarted; `pm2 stop blindrelay` stops both, and no command starts an
// app of its own. PM2 runs with its own PM2_HOME, so a PM2 of the machine is never touched.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { copyFileSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { io } from 'socket.io-client';
import {
  REPO, BIN, request, freePort, uid, nextEvent, createSession, cleanup, TEST_DIGEST_KEY,
} from './lib/server.mjs';
import { startRedis } from './lib/redis.mjs';

const run = promisify(execFile);
const PM2_BIN = path.join(REPO, 'tests', 'js', 'node_modules', '.bin');
const ECOSYSTEM = path.join(REPO, 'ecosystem.config.js');

/** The documented two-node commands, run here word for word (checked against docs/deployment.md). */
const DOC_COMMANDS = {
  start: 'pm2 start ecosystem.config.js',
  reload: 'PM2_CONCURRENT_ACTIONS=1 pm2 reload blindrelay',
  stop: 'pm2 stop blindrelay',
};

let redis;
let env;
/** The deployment folder: a copy of ecosystem.config.js beside a .env. */
let dir;
/** Reconnecting clients made here (the harness's own clients never reconnect). */
const members = [];
let ports;
let logDir;

/** Two consecutive free ports (node i listens on PORT + i). */
async function twoFreePorts() {
  for (;;) {
    const p = await freePort();
    const free = await new Promise((resolve) => {
      const s = net.createServer().once('error', () => resolve(false));
      s.listen(p + 1, '127.0.0.1', () => s.close(() => resolve(true)));
    });
    if (free) return [p, p + 1];
  }
}

/** A pm2 command line as a person types it, in the deployment folder. */
function sh(command) {
  return run('bash', ['-c', command], { env, cwd: dir, timeout: 60000 });
}

function pm2(...args) {
  return sh(['pm2', ...args].join(' '));
}

async function jlist() {
  const { stdout } = await pm2('jlist');
  return JSON.parse(stdout.slice(stdout.indexOf('[')));
}

async function healthy(port) {
  try {
    return (await request('GET', `http://127.0.0.1:${port}/health`, { timeoutMs: 500 })).status === 200;
  } catch {
    return false;
  }
}

/** Until every port answers /health (bounded). */
async function allHealthy(timeoutMs = 15000) {
  const deadline = Date.now() + timeoutMs;
  while (!(await Promise.all(ports.map(healthy))).every(Boolean)) {
    if (Date.now() > deadline) throw new Error(`nodes not healthy within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

before(async () => {
  const doc = readFileSync(path.join(REPO, 'docs', 'deployment.md'), 'utf8');
  for (const c of Object.values(DOC_COMMANDS)) {
    assert.ok(doc.includes(`\n${c}`), `docs/deployment.md no longer shows \`${c}\``);
  }
  redis = await startRedis();
  ports = await twoFreePorts();
  dir = mkdtempSync(path.join(os.tmpdir(), 'blindrelay-pm2-deploy-'));
  copyFileSync(ECOSYSTEM, path.join(dir, 'ecosystem.config.js'));
  logDir = path.join(dir, 'logs');
  // The documented .env, with this test's Redis and ports.
  writeFileSync(path.join(dir, '.env'), [
    `REDIS_URL=${redis.url}`,
    `STORE_DIGEST_KEY=${TEST_DIGEST_KEY}`,
    'BLINDRELAY_NODES=2',
    `PORT=${ports[0]}`,
    'HOST=127.0.0.1',
    'CLIENT_URL=*',
    `REDIS_PREFIX=pm2-${uid('p')}:`,
    'NODE_LEASE_SECS=2',
    'SHUTDOWN_GRACE_SECS=4',
    '',
  ].join('\n'));
  // The shell's environment holds none of the server's settings: only the .env counts.
  env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !SERVER_VARS.has(k)));
  Object.assign(env, {
    PATH: `${PM2_BIN}:${process.env.PATH}`,
    PM2_HOME: mkdtempSync(path.join(os.tmpdir(), 'blindrelay-pm2-')),
    BLINDRELAY_BIN: BIN,
  });
  await sh(DOC_COMMANDS.start);
  await allHealthy();
});

/** Variables the server or ecosystem.config.js read: kept out of the shell's environment. */
const SERVER_VARS = new Set(['PORT', 'HOST', 'CLIENT_URL', 'REDIS_URL', 'REDIS_PREFIX',
  'STORE_DIGEST_KEY', 'BLINDRELAY_NODES', 'BLINDRELAY_LOG_DIR', 'NODE_LEASE_SECS',
  'SHUTDOWN_GRACE_SECS', 'STATIC_DIR', 'RUST_LOG', 'DEBUG', 'LOG_FORMAT']);

after(async () => {
  for (const m of members) m.close();
  await cleanup();
  if (env) await pm2('kill').catch(() => {});
  await redis?.stop();
});

/** A member that rejoins whenever socket.io-client reconnects it, as apps do. */
async function member(port, link, userId) {
  const socket = io(`http://127.0.0.1:${port}`, {
    transports: ['websocket'], forceNew: true, reconnectionDelay: 200, reconnectionDelayMax: 500,
  });
  members.push(socket);
  // As the built-in client does: the resume token from the first join's ack comes back
  // with every rejoin (a member that holds one is refused without it).
  let joins = 0;
  let resumeToken;
  socket.on('connect', () => {
    socket.emit('join-session', { sessionId: link, userId, publicKey: `pk-${userId}`, resumeToken }, (ack) => {
      if (ack?.ok) {
        joins += 1;
        resumeToken = ack.resumeToken ?? resumeToken;
      }
    });
  });
  await nextEvent(socket, 'messages-history', 5000);
  return { socket, joins: () => joins };
}

test('PM2 runs two nodes; pm2 reload restarts them in turn without dropping the service', async () => {
  const apps = await jlist();
  assert.deepEqual(apps.map((a) => [a.name, a.pm2_env.status]).sort(),
    [['blindrelay-1', 'online'], ['blindrelay-2', 'online']]);

  // A room across the two nodes, through its members' own reconnecting clients.
  const c = await createSession(`http://127.0.0.1:${ports[0]}`, {}, assert);
  const alice = await member(ports[0], c.link, 'alice');
  const bob = await member(ports[1], c.link, 'bob');

  // Probe both nodes through the reload: at every probe one of them must answer.
  let probing = true;
  const gaps = [];
  let probes = 0;
  const prober = (async () => {
    while (probing) {
      const up = await Promise.all(ports.map(healthy));
      probes += 1;
      if (!up.some(Boolean)) gaps.push(Date.now());
      await new Promise((r) => setTimeout(r, 20));
    }
  })();
  const restartsBefore = (await jlist()).map((a) => a.pm2_env.restart_time);
  await sh(DOC_COMMANDS.reload);
  await allHealthy();
  probing = false;
  await prober;

  assert.ok(probes > 20, `probed ${probes} times`);
  assert.deepEqual(gaps, [], 'a moment where neither node answered');
  const afterReload = await jlist();
  assert.deepEqual(afterReload.map((a) => a.name).sort(), ['blindrelay-1', 'blindrelay-2'], 'the reload started no app of its own');
  const restartsAfter = afterReload.map((a) => a.pm2_env.restart_time);
  assert.ok(restartsAfter.every((n, i) => n > restartsBefore[i]), `restarts ${restartsBefore} -> ${restartsAfter}`);

  // Both members were moved off their draining node, reconnected and rejoined; the
  // room lives on in Redis, so they still talk.
  const deadline = Date.now() + 15000;
  while (alice.joins() < 2 || bob.joins() < 2) {
    if (Date.now() > deadline) throw new Error(`rejoins: alice ${alice.joins()}, bob ${bob.joins()}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  const got = nextEvent(alice.socket, 'new-message', 5000, (m) => m.id === 'after-reload');
  bob.socket.emit('send-message', { sessionId: c.sessionId, encrypted: 'still', clientMessageId: 'after-reload' });
  assert.equal((await got).encrypted, 'still');
  alice.socket.close();
  bob.socket.close();
});

test('PM2 restarts a crashed node; logs go to the configured files; pm2 stop blindrelay stops both', async () => {
  const [first] = (await jlist()).filter((a) => a.name === 'blindrelay-1');
  const before = first.pm2_env.restart_time;
  process.kill(first.pid, 'SIGKILL');
  const deadline = Date.now() + 15000;
  for (;;) {
    const [now] = (await jlist()).filter((a) => a.name === 'blindrelay-1');
    if (now.pm2_env.restart_time > before && now.pm2_env.status === 'online' && now.pid !== first.pid) break;
    if (Date.now() > deadline) throw new Error('PM2 did not restart the killed node');
    await new Promise((r) => setTimeout(r, 100));
  }
  await allHealthy();

  const logs = readdirSync(logDir).sort();
  assert.deepEqual(logs, [
    'blindrelay-1.err.log', 'blindrelay-1.out.log', 'blindrelay-2.err.log', 'blindrelay-2.out.log',
  ]);
  const out = readFileSync(path.join(logDir, 'blindrelay-1.out.log'), 'utf8')
    + readFileSync(path.join(logDir, 'blindrelay-1.err.log'), 'utf8');
  assert.match(out, /listening on (http:\/\/)?127\.0\.0\.1/);
  assert.match(out, new RegExp(`open http://127\\.0\\.0\\.1:${ports[0]} in a browser`), 'the address to open');

  await sh(DOC_COMMANDS.stop);
  assert.deepEqual((await jlist()).map((a) => [a.name, a.pm2_env.status]).sort(),
    [['blindrelay-1', 'stopped'], ['blindrelay-2', 'stopped']]);
  assert.deepEqual(await Promise.all(ports.map(healthy)), [false, false]);
});

test('ecosystem.config.js refuses REDIS_URL without STORE_DIGEST_KEY, and several nodes without Redis', async () => {
  const bare = mkdtempSync(path.join(os.tmpdir(), 'blindrelay-pm2-conf-'));
  copyFileSync(ECOSYSTEM, path.join(bare, 'ecosystem.config.js'));
  const load = (vars) => run(process.execPath, ['-e', "require('./ecosystem.config.js')"], {
    cwd: bare, env: { PATH: process.env.PATH, ...vars },
  }).then(() => 'loaded', (e) => e.stderr);
  assert.match(await load({ REDIS_URL: 'redis://127.0.0.1:6379' }), /STORE_DIGEST_KEY/);
  assert.match(await load({ BLINDRELAY_NODES: '2' }), /needs REDIS_URL/);
  assert.equal(await load({ REDIS_URL: 'redis://127.0.0.1:6379', STORE_DIGEST_KEY: TEST_DIGEST_KEY, BLINDRELAY_NODES: '2' }), 'loaded');
  assert.equal(await load({}), 'loaded');
});
