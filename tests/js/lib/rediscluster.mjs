// A private Redis Cluster for the tests: `primaries` x (1 + `replicas`) redis-server
// processes on free loopback ports, each in its own folder, joined with
// `redis-cli --cluster create`. Never a system instance, never --daemonize: the
// processes are children of the test, and a watchdog kills them if the test process
// dies without stopping them (even by SIGKILL).
//
// Synchronisation is by polling the nodes' own view (CLUSTER INFO, CLUSTER NODES,
// INFO replication) under a deadline; there is no fixed sleep.
//
// Also a command-line entry, for scripts/test.sh:
//   node tests/js/lib/rediscluster.mjs [--primaries 3] [--replicas 1] [--node-timeout-ms 1000] [--url-file F]
// starts a cluster, prints (and writes to F) one node's redis:// URL, and runs until
// SIGTERM or SIGINT, when it stops every node.

import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort } from './server.mjs';

const POLL_MS = 50;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// ---------------------------------------------------------------------------------------
// RESP over a raw socket: one connection per command.

class RedisReplyError extends Error {}

/** Encodes a command as a RESP array of bulk strings. */
function encode(args) {
  const parts = [`*${args.length}\r\n`];
  for (const a of args) {
    const b = Buffer.from(String(a));
    parts.push(`$${b.length}\r\n`, b, '\r\n');
  }
  return Buffer.concat(parts.map((p) => (Buffer.isBuffer(p) ? p : Buffer.from(p))));
}

/** Parses one RESP2 value at `i`; {value, next}, or null when `buf` is incomplete. */
function parse(buf, i) {
  const eol = buf.indexOf('\r\n', i);
  if (eol < 0) return null;
  const type = String.fromCharCode(buf[i]);
  const line = buf.toString('utf8', i + 1, eol);
  const next = eol + 2;
  switch (type) {
    case '+': return { value: line, next };
    case '-': return { value: new RedisReplyError(line), next };
    case ':': return { value: Number(line), next };
    case '$': {
      const n = Number(line);
      if (n < 0) return { value: null, next };
      if (buf.length < next + n + 2) return null;
      return { value: buf.toString('utf8', next, next + n), next: next + n + 2 };
    }
    case '*': {
      const n = Number(line);
      if (n < 0) return { value: null, next };
      const list = [];
      let at = next;
      for (let k = 0; k < n; k += 1) {
        const r = parse(buf, at);
        if (!r) return null;
        list.push(r.value);
        at = r.next;
      }
      return { value: list, next: at };
    }
    default: throw new Error(`RESP: unexpected type byte ${JSON.stringify(type)}`);
  }
}

/** Sends one command to 127.0.0.1:port; resolves its reply, rejects on a Redis error
 *  reply (RedisReplyError), a connection error or `timeoutMs` without an answer. */
export function redisCommand(port, args, { timeoutMs = 2000 } = {}) {
  return new Promise((resolve, reject) => {
    const s = net.connect(port, '127.0.0.1');
    let buf = Buffer.alloc(0);
    let settled = false;
    const done = (fn, v) => {
      if (settled) return;
      settled = true;
      s.destroy();
      fn(v);
    };
    s.setTimeout(timeoutMs, () => done(reject, new Error(`redis :${port} ${args[0]}: no answer within ${timeoutMs} ms`)));
    s.on('error', (e) => done(reject, e));
    s.on('close', () => done(reject, new Error(`redis :${port} ${args[0]}: connection closed`)));
    s.on('connect', () => s.write(encode(args)));
    s.on('data', (d) => {
      buf = Buffer.concat([buf, d]);
      let r;
      try { r = parse(buf, 0); } catch (e) { done(reject, e); return; }
      if (!r) return;
      if (r.value instanceof RedisReplyError) done(reject, r.value);
      else done(resolve, r.value);
    });
  });
}

/** `key:value` lines of INFO or CLUSTER INFO as an object. */
export function parseInfo(text) {
  const out = {};
  for (const line of String(text).split(/\r?\n/)) {
    const i = line.indexOf(':');
    if (i > 0 && !line.startsWith('#')) out[line.slice(0, i)] = line.slice(i + 1).trim();
  }
  return out;
}

/** CLUSTER NODES text -> [{id, port, flags: Set, master (id or null), linkState, slots: [[from, to]]}]. */
export function parseClusterNodes(text) {
  return String(text).trim().split('\n').filter(Boolean).map((line) => {
    const f = line.trim().split(' ');
    const addr = f[1].split(',')[0]; // ip:port@cport[,hostname]
    const port = Number(addr.split('@')[0].split(':').pop());
    const slots = [];
    for (const s of f.slice(8)) {
      if (s.startsWith('[')) continue; // a slot being migrated or imported
      const [a, b] = s.split('-').map(Number);
      slots.push([a, b ?? a]);
    }
    return {
      id: f[0],
      port,
      flags: new Set(f[2].split(',')),
      master: f[3] === '-' ? null : f[3],
      linkState: f[7],
      slots,
    };
  });
}

// ---------------------------------------------------------------------------------------
// Key slots, as Redis Cluster computes them: CRC16 (XMODEM) of the key, or of its hash
// tag (what is between the first '{' and the next '}', when not empty), mod 16384.

const CRC16_TABLE = (() => {
  const t = new Uint16Array(256);
  for (let i = 0; i < 256; i += 1) {
    let c = i << 8;
    for (let k = 0; k < 8; k += 1) c = (c & 0x8000) ? ((c << 1) ^ 0x1021) & 0xffff : (c << 1) & 0xffff;
    t[i] = c;
  }
  return t;
})();

function crc16(buf) {
  let crc = 0;
  for (const byte of buf) crc = ((crc << 8) & 0xffff) ^ CRC16_TABLE[((crc >> 8) ^ byte) & 0xff];
  return crc;
}

/** The hash slot of `key` (0..16383). */
export function keySlot(key) {
  let b = Buffer.from(String(key));
  const open = b.indexOf('{');
  if (open >= 0) {
    const close = b.indexOf('}', open + 1);
    if (close > open + 1) b = b.subarray(open + 1, close);
  }
  return crc16(b) % 16384;
}

// ---------------------------------------------------------------------------------------
// Processes.

function requireBinary(name) {
  const r = spawnSync(name, ['--version'], { stdio: 'ignore' });
  if (r.error && r.error.code === 'ENOENT') {
    throw new Error(`${name} not found: install it (apt-get install redis-server, which brings redis-tools' redis-cli); scripts/test.sh does`);
  }
  if (r.error) throw r.error;
}

/** A free TCP port on 127.0.0.1 other than those in `taken`. */
async function freshPort(taken) {
  for (;;) {
    const p = await freePort();
    if (!taken.has(p)) {
      taken.add(p);
      return p;
    }
  }
}

async function ping(port) {
  try {
    return (await redisCommand(port, ['PING'], { timeoutMs: 500 })) === 'PONG';
  } catch {
    return false;
  }
}

/** Starts one cluster-enabled redis-server; resolves once it answers PING. */
async function launchNode(port, busPort, { nodeTimeoutMs }) {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'blindrelay-rcluster-'));
  const child = spawn('redis-server', [
    '--port', String(port), '--cluster-port', String(busPort), '--bind', '127.0.0.1',
    '--dir', dir, '--save', '', '--appendonly', 'no',
    '--cluster-enabled', 'yes', '--cluster-config-file', 'nodes.conf',
    '--cluster-node-timeout', String(nodeTimeoutMs),
    // A replica takes over however long it was cut off from its primary, and its
    // initial copy starts at once (no diskless-sync wait), so a failover is quick.
    '--cluster-replica-validity-factor', '0',
    '--repl-diskless-sync', 'yes', '--repl-diskless-sync-delay', '0',
    '--repl-ping-replica-period', '1',
    '--loglevel', 'notice', '--logfile', '',
  ], { stdio: ['ignore', 'pipe', 'pipe'] });
  const chunks = [];
  child.stdout.on('data', (c) => chunks.push(c));
  child.stderr.on('data', (c) => chunks.push(c));
  const exited = new Promise((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })));
  const failed = new Promise((_, reject) => child.on('error', reject));
  failed.catch(() => {});
  const proc = { port, busPort, dir, child, exited, output: () => Buffer.concat(chunks).toString() };

  const deadline = Date.now() + 10000;
  for (;;) {
    const r = await Promise.race([exited, failed, ping(port).then((ok) => (ok ? 'up' : null))]);
    if (r === 'up') return proc;
    if (r) {
      rmSync(dir, { recursive: true, force: true });
      const err = new Error(`redis-server on :${port} exited at start: ${JSON.stringify(r)}\n${proc.output()}`);
      err.addressInUse = /Address already in use/i.test(proc.output());
      throw err;
    }
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      rmSync(dir, { recursive: true, force: true });
      throw new Error(`redis-server on :${port} not answering PING within 10 s:\n${proc.output()}`);
    }
    await sleep(25);
  }
}

/** A process outside the test's own that SIGKILLs `pids` once the test process is gone
 *  (its stdin, a pipe from us, reaches EOF); it ignores the signals a terminal sends to
 *  the whole group, so it outlives a Ctrl-C long enough to do so. */
function watchdog(pids) {
  const w = spawn('sh', ['-c', 'trap "" INT TERM HUP; while read -r _; do :; done; kill -9 "$@" 2>/dev/null; exit 0', 'sh', ...pids.map(String)], {
    stdio: ['pipe', 'ignore', 'ignore'],
    detached: true,
  });
  w.on('error', () => {});
  w.stdin.on('error', () => {});
  w.unref();
  w.stdin.unref?.();
  return w;
}

const clusters = new Set();
process.on('exit', () => {
  for (const c of clusters) for (const n of c.nodes) if (n.alive) { try { process.kill(n.pid, 'SIGKILL'); } catch { /* gone */ } }
});

// ---------------------------------------------------------------------------------------

/** One view of the slot map: "from-to:ownerId" of every owned range, sorted. */
function slotSignature(table) {
  const ranges = [];
  for (const n of table) {
    if (!n.flags.has('master')) continue;
    for (const [a, b] of n.slots) ranges.push(`${a}-${b}:${n.id}`);
  }
  return ranges.sort((x, y) => Number(x.split('-')[0]) - Number(y.split('-')[0])).join(' ');
}

/**
 * Starts a Redis Cluster of `primaries` primaries with `replicas` replicas each, all on
 * 127.0.0.1, and resolves once every node says cluster_state:ok, every node has the same
 * slot map, and every replica's link to its primary is up.
 *
 * Returns {url, urls, nodes: [{port, busPort, id, role, pid, url, alive, kill(signal),
 * output()}], primaries(), replicasOf(id), waitFailover(killedPort), waitHealthy(),
 * killNode(port, signal), command(port, ...args), primaryForSlot(slot), primaryForKey(key), scan(port, pattern),
 * shardChannels(pattern), describe(), stop()}.
 */
export async function startRedisCluster({
  primaries = 3, replicas = 1, nodeTimeoutMs = 1000, readyTimeoutMs = 30000,
} = {}) {
  requireBinary('redis-server');
  requireBinary('redis-cli');
  if (primaries < 3) throw new Error('a Redis Cluster needs at least 3 primaries');
  const count = primaries * (1 + replicas);
  const taken = new Set();

  const cluster = {
    nodes: [],
    url: null,
    urls: [],
    watchdog: null,
    stopped: false,
  };
  clusters.add(cluster);

  const stop = async () => {
    if (cluster.stopped) return;
    cluster.stopped = true;
    await Promise.all(cluster.nodes.map((n) => n.kill('SIGKILL')));
    for (const n of cluster.nodes) rmSync(n.dir, { recursive: true, force: true });
    // Everything is gone already: the watchdog goes too, without killing anything.
    if (cluster.watchdog) {
      try { cluster.watchdog.kill('SIGKILL'); } catch { /* gone */ }
    }
    clusters.delete(cluster);
  };
  cluster.stop = stop;

  try {
    // Processes (a port taken meanwhile by someone else: that node again, on new ports).
    const procs = await Promise.all(Array.from({ length: count }, async () => {
      for (let attempt = 0; ; attempt += 1) {
        const port = await freshPort(taken);
        const busPort = await freshPort(taken);
        try {
          return await launchNode(port, busPort, { nodeTimeoutMs });
        } catch (e) {
          if (!e.addressInUse || attempt >= 3) throw e;
        }
      }
    }));
    for (const p of procs) {
      const node = {
        port: p.port,
        busPort: p.busPort,
        url: `redis://127.0.0.1:${p.port}`,
        pid: p.child.pid,
        dir: p.dir,
        role: null,
        id: null,
        alive: true,
        exited: p.exited,
        output: p.output,
        /** Sends `signal` (default SIGKILL) and resolves once the process is gone. */
        async kill(signal = 'SIGKILL') {
          if (node.alive) {
            node.alive = false;
            p.child.kill(signal);
          }
          await p.exited;
        },
      };
      p.exited.then((r) => {
        if (node.alive && !cluster.stopped) {
          node.alive = false;
          process.stderr.write(`\n[redis-server :${node.port} of the test cluster exited unexpectedly: ${JSON.stringify(r)}]\n${p.output().slice(-3000)}\n`);
        }
      });
      cluster.nodes.push(node);
    }
    cluster.watchdog = watchdog(cluster.nodes.map((n) => n.pid));
    cluster.urls = cluster.nodes.map((n) => n.url);

    // The cluster.
    const create = spawnSync('redis-cli', [
      '--cluster', 'create', ...cluster.nodes.map((n) => `127.0.0.1:${n.port}`),
      '--cluster-replicas', String(replicas), '--cluster-yes',
    ], { encoding: 'utf8', timeout: readyTimeoutMs });
    if (create.status !== 0) {
      throw new Error(`redis-cli --cluster create failed (${create.status ?? create.signal ?? create.error}):\n${create.stdout}\n${create.stderr}`);
    }
    await Promise.all(cluster.nodes.map(async (n) => {
      n.id = await redisCommand(n.port, ['CLUSTER', 'MYID']);
    }));
  } catch (e) {
    await stop();
    throw e;
  }

  const byPort = (port) => {
    const n = cluster.nodes.find((x) => x.port === port);
    if (!n) throw new Error(`no node of this cluster on :${port}`);
    return n;
  };
  const live = () => cluster.nodes.filter((n) => n.alive);

  /** CLUSTER NODES of a live node (the first that answers, or `port`'s). */
  async function table(port) {
    const candidates = port ? [byPort(port)] : live();
    let last;
    for (const n of candidates) {
      try {
        return parseClusterNodes(await redisCommand(n.port, ['CLUSTER', 'NODES']));
      } catch (e) { last = e; }
    }
    throw last ?? new Error('no live node');
  }

  /** Every live node's view; null when one does not answer. */
  async function views() {
    try {
      return await Promise.all(live().map(async (n) => {
        const [info, nodes] = await Promise.all([
          redisCommand(n.port, ['CLUSTER', 'INFO'], { timeoutMs: 1000 }),
          redisCommand(n.port, ['CLUSTER', 'NODES'], { timeoutMs: 1000 }),
        ]);
        return { node: n, info: parseInfo(info), table: parseClusterNodes(nodes) };
      }));
    } catch {
      return null;
    }
  }

  /** The reason the cluster is not (yet) settled, or null when it is: every live node
   *  ok, one slot map everywhere covering all slots, owned by live primaries only. */
  async function unsettledReason({ replicasUp = false } = {}) {
    const v = await views();
    if (!v) return 'a live node did not answer';
    const liveIds = new Set(live().map((n) => n.id));
    for (const { node, info } of v) {
      if (info.cluster_state !== 'ok') return `:${node.port} cluster_state:${info.cluster_state}`;
      if (info.cluster_slots_assigned !== '16384') return `:${node.port} slots assigned ${info.cluster_slots_assigned}`;
    }
    const sigs = new Set(v.map((x) => slotSignature(x.table)));
    if (sigs.size !== 1) return `the nodes disagree on the slot map (${sigs.size} views)`;
    for (const n of v[0].table) {
      if (n.flags.has('master') && n.slots.length && !liveIds.has(n.id)) return `dead node ${n.id.slice(0, 8)} still owns slots`;
    }
    for (const { node, table: t } of v) {
      for (const n of t) {
        if (liveIds.has(n.id) && (n.flags.has('fail') || n.flags.has('fail?') || n.flags.has('handshake'))) {
          return `:${node.port} sees live :${n.port} as ${[...n.flags].join(',')}`;
        }
      }
    }
    if (replicasUp) {
      // The shape asked for: every node sees `primaries` primaries with slots, each with
      // `replicas` replicas.
      for (const { node, table: t } of v) {
        const masters = t.filter((x) => x.flags.has('master') && x.slots.length);
        if (masters.length !== primaries) return `:${node.port} sees ${masters.length} primaries`;
        for (const m of masters) {
          const reps = t.filter((x) => x.master === m.id && x.flags.has('slave')).length;
          if (reps !== replicas) return `:${node.port} sees ${reps} replicas of :${m.port}`;
        }
      }
      for (const { node, table: t } of v) {
        const me = t.find((x) => x.flags.has('myself'));
        if (!me?.flags.has('slave')) continue;
        const repl = parseInfo(await redisCommand(node.port, ['INFO', 'replication']).catch(() => ''));
        if (repl.master_link_status !== 'up') return `replica :${node.port} link ${repl.master_link_status}`;
      }
    }
    return null;
  }

  async function waitSettled(what, timeoutMs, opts) {
    const deadline = Date.now() + timeoutMs;
    let reason;
    for (;;) {
      reason = await unsettledReason(opts);
      if (!reason) return;
      if (Date.now() > deadline) {
        throw new Error(`Redis Cluster: ${what} not reached within ${timeoutMs} ms (${reason})\n${await describe()}`);
      }
      await sleep(POLL_MS);
    }
  }

  async function refreshRoles() {
    const t = await table();
    for (const n of cluster.nodes) {
      const e = t.find((x) => x.id === n.id);
      if (e && n.alive) n.role = e.flags.has('master') ? 'primary' : 'replica';
    }
    return t;
  }

  /** A readable state of the cluster, for failure messages. */
  async function describe() {
    const lines = [];
    for (const n of cluster.nodes) {
      if (!n.alive) {
        lines.push(`  :${n.port} ${n.id?.slice(0, 8) ?? '?'} dead`);
        continue;
      }
      try {
        const info = parseInfo(await redisCommand(n.port, ['CLUSTER', 'INFO'], { timeoutMs: 1000 }));
        const t = parseClusterNodes(await redisCommand(n.port, ['CLUSTER', 'NODES'], { timeoutMs: 1000 }));
        const view = t.map((x) => `${x.port}:${[...x.flags].filter((f) => f !== 'myself').join('/')}${x.slots.length ? `[${x.slots.map(([a, b]) => `${a}-${b}`).join(',')}]` : ''}`).join(' ');
        lines.push(`  :${n.port} ${n.id.slice(0, 8)} ${info.cluster_state} epoch ${info.cluster_current_epoch}: ${view}`);
      } catch (e) {
        lines.push(`  :${n.port} ${n.id?.slice(0, 8) ?? '?'} no answer (${e.message})`);
      }
    }
    return `cluster state:\n${lines.join('\n')}`;
  }

  try {
    await waitSettled('cluster_state:ok on every node, one slot map, replicas in sync', readyTimeoutMs, { replicasUp: true });
    await refreshRoles();
  } catch (e) {
    await stop();
    throw e;
  }
  const first = cluster.nodes.find((n) => n.role === 'primary');
  cluster.url = first.url;

  Object.assign(cluster, {
    command: (port, ...args) => redisCommand(port, args),
    describe,
    /** Resolves once every live node is ok and agrees on the slot map. */
    waitHealthy: (timeoutMs = 20000) => waitSettled('a healthy cluster', timeoutMs),

    /** The current primaries that own slots: [{id, port, url, slots}]. */
    async primaries() {
      const t = await refreshRoles();
      return t.filter((x) => x.flags.has('master') && !x.flags.has('fail') && x.slots.length)
        .map((x) => ({ id: x.id, port: x.port, url: `redis://127.0.0.1:${x.port}`, slots: x.slots }));
    },

    /** The live replicas of primary `id`: [{id, port}]. */
    async replicasOf(id) {
      const t = await table();
      const liveIds = new Set(live().map((n) => n.id));
      return t.filter((x) => x.master === id && liveIds.has(x.id)).map((x) => ({ id: x.id, port: x.port }));
    },

    /** The port of the primary that owns `slot`. */
    async primaryForSlot(slot) {
      for (const p of await cluster.primaries()) {
        if (p.slots.some(([a, b]) => slot >= a && slot <= b)) return p.port;
      }
      throw new Error(`no primary owns slot ${slot}\n${await describe()}`);
    },

    primaryForKey: (key) => cluster.primaryForSlot(keySlot(key)),

    /** Every key matching `pattern` on the node at `port` (SCAN). */
    async scan(port, pattern = '*') {
      const keys = [];
      let cursor = '0';
      do {
        const [next, batch] = await redisCommand(port, ['SCAN', cursor, 'MATCH', pattern, 'COUNT', '1000']);
        keys.push(...batch);
        cursor = next;
      } while (cursor !== '0');
      return keys;
    },

    /** The sharded pub/sub channels matching `pattern` subscribed at each live node:
     *  [{port, role, channel}]. */
    async shardChannels(pattern = '*') {
      await refreshRoles();
      const out = [];
      for (const n of live()) {
        const list = await redisCommand(n.port, ['PUBSUB', 'SHARDCHANNELS', pattern]);
        for (const channel of list) out.push({ port: n.port, role: n.role, channel });
      }
      return out;
    },

    /**
     * After the primary on `killedPort` was killed: resolves once one of its replicas
     * owns its slots and every other node is ok and agrees on the slot map; bounded.
     * Resolves {newPrimary (port), ms}.
     */
    async waitFailover(killedPort, timeoutMs = 20000) {
      const killed = byPort(killedPort);
      if (killed.alive) throw new Error(`waitFailover: :${killedPort} is still running; kill it first`);
      const t0 = Date.now();
      const deadline = t0 + timeoutMs;
      const former = killed.replicaIds ?? null;
      for (;;) {
        const reason = await unsettledReason();
        if (!reason) {
          const t = await table();
          const promoted = t.find((x) => x.flags.has('master') && x.slots.length
            && (former ? former.includes(x.id) : killed.slots?.length && x.slots.some(([a]) => killed.slots.some(([ka, kb]) => a >= ka && a <= kb))));
          if (promoted) {
            await refreshRoles();
            return { newPrimary: promoted.port, ms: Date.now() - t0 };
          }
        }
        if (Date.now() > deadline) {
          throw new Error(`Redis Cluster: no failover of :${killedPort} within ${timeoutMs} ms (${reason ?? 'no replica of it owns its slots'})\n${await describe()}`);
        }
        await sleep(POLL_MS);
      }
    },

  });

  // kill() of a node records what waitFailover needs, whoever calls it.
  for (const n of cluster.nodes) {
    const rawKill = n.kill;
    n.kill = async (signal = 'SIGKILL') => {
      if (n.alive && !cluster.stopped && !n.replicaIds) {
        try {
          const t = await table(n.port);
          const me = t.find((x) => x.id === n.id);
          n.slots = me?.slots ?? [];
          n.replicaIds = t.filter((x) => x.master === n.id).map((x) => x.id);
        } catch { /* it may not answer: waitFailover then goes by slots */ }
      }
      return rawKill(signal);
    };
  }
  /** Kills the node on `port` (SIGKILL by default); resolves once it is gone. */
  cluster.killNode = async (port, signal = 'SIGKILL') => byPort(port).kill(signal);

  return cluster;
}

// ---------------------------------------------------------------------------------------
// Command line (scripts/test.sh): start a cluster, print its URL, run until a signal.

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const arg = (name, dflt) => {
    const i = process.argv.indexOf(`--${name}`);
    return i > 0 ? process.argv[i + 1] : dflt;
  };
  const t0 = Date.now();
  let cluster;
  try {
    cluster = await startRedisCluster({
      primaries: Number(arg('primaries', 3)),
      replicas: Number(arg('replicas', 1)),
      // The failover tests want a dead primary noticed within a second; a cluster that
      // only serves suites wants no failover at all: on a loaded 2-core machine a
      // primary starved for a second was taken for dead, and the cluster went down.
      nodeTimeoutMs: Number(arg('node-timeout-ms', 1000)),
    });
  } catch (e) {
    process.stderr.write(`${e.stack ?? e}\n`);
    process.exit(1);
  }
  const urlFile = arg('url-file');
  const byRole = cluster.nodes.map((n) => `${n.port}(${n.role})`).join(' ');
  process.stderr.write(`Redis Cluster ready in ${Date.now() - t0} ms: ${byRole}\n`);
  if (urlFile) writeFileSync(urlFile, `${cluster.url}\n`);
  process.stdout.write(`${cluster.url}\n`);
  const keepAlive = setInterval(() => {}, 1 << 30);
  let stopping = false;
  const quit = async () => {
    if (stopping) return;
    stopping = true;
    clearInterval(keepAlive);
    await cluster.stop();
    process.exit(0);
  };
  process.on('SIGTERM', quit);
  process.on('SIGINT', quit);
  process.on('SIGHUP', quit);
}
