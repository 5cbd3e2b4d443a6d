// PM2 process file for blindrelay (a native binary, so fork mode: PM2's cluster mode is
// for Node.js programs). Build first: cargo build --release --locked
//
// Every app is in the PM2 namespace "blindrelay": act on the running nodes by that name,
// whatever this file would say now (docs/deployment.md, "PM2"):
//
//   pm2 start ecosystem.config.js                    # BLINDRELAY_NODES nodes from PORT on
//   PM2_CONCURRENT_ACTIONS=1 pm2 reload blindrelay   # every node, one after the other
//   pm2 logs blindrelay | pm2 stop blindrelay | pm2 save
//
// Settings come from .env in this folder or the environment (the environment wins), for
// this file and for blindrelay alike: keep BLINDRELAY_NODES, REDIS_URL and
// STORE_DIGEST_KEY in .env, so every command sees the same deployment. PORT is the
// first node's port; node i listens on PORT + i - 1.
const fs = require('node:fs');
const path = require('node:path');

/** `name` from the environment, else from ./.env as blindrelay reads it: the first line
 *  that sets it wins, even an empty one (as in a copy of .env.example). */
function setting(name) {
  if (process.env[name] !== undefined) return process.env[name];
  try {
    const line = fs.readFileSync(path.join(__dirname, '.env'), 'utf8')
      .split('\n').find((l) => new RegExp(`^\\s*${name}\\s*=`).test(l));
    return line ? line.slice(line.indexOf('=') + 1).trim().replace(/^(['"])(.*)\1$/, '$2') : '';
  } catch {
    return '';
  }
}

const nodes = Number(setting('BLINDRELAY_NODES') || 1);
const basePort = Number(setting('PORT') || 3001);
const logDir = process.env.BLINDRELAY_LOG_DIR || path.join(__dirname, 'logs');
if (!Number.isInteger(nodes) || nodes < 1) throw new Error('BLINDRELAY_NODES must be a positive integer');
if (nodes > 1 && !setting('REDIS_URL')) {
  throw new Error('BLINDRELAY_NODES > 1 needs REDIS_URL: the nodes share rooms through Redis');
}
if (setting('REDIS_URL') && setting('STORE_DIGEST_KEY').length < 32) {
  throw new Error('REDIS_URL needs STORE_DIGEST_KEY (the same on every node, at least 32 characters): '
    + 'put the output of `openssl rand -hex 32` in .env');
}

module.exports = {
  apps: Array.from({ length: nodes }, (_, i) => {
    const name = nodes === 1 ? 'blindrelay' : `blindrelay-${i + 1}`;
    return {
      name,
      namespace: 'blindrelay',
      script: process.env.BLINDRELAY_BIN || path.join(__dirname, 'target', 'release', 'blindrelay'),
      args: 'serve',
      interpreter: 'none',
      exec_mode: 'fork',
      cwd: __dirname,
      env: { PORT: String(basePort + i) },
      autorestart: true,
      max_restarts: 10,
      restart_delay: 1000,
      // blindrelay drains on SIGTERM within SHUTDOWN_GRACE_SECS (10 s by default). In
      // memory (one node, no REDIS_URL) it writes its rooms to ./data (DATA_DIR, beside
      // this file) as soon as its sockets are closed, so `pm2 restart` keeps them.
      kill_timeout: 12000,
      out_file: path.join(logDir, `${name}.out.log`),
      error_file: path.join(logDir, `${name}.err.log`),
      time: true,
    };
  }),
};
