// PM2 process file for blindrelay (a native binary, so fork mode: PM2's cluster mode is
// for Node.js programs). Build first: cargo build --release --locked
//
//   pm2 start ecosystem.config.js                  # one node on $PORT (3001)
//   BLINDRELAY_NODES=2 pm2 start ecosystem.config.js   # nodes on 3001, 3002 (needs REDIS_URL)
//   PM2_CONCURRENT_ACTIONS=1 pm2 reload ecosystem.config.js   # one node after the other
//   pm2 logs | pm2 stop all | pm2 save
//
// Settings come from .env in this folder (blindrelay reads it itself) or the environment;
// PORT set here wins over .env. Several nodes share rooms only through Redis (REDIS_URL).
const fs = require('node:fs');
const path = require('node:path');

/** REDIS_URL from the environment or ./.env, to refuse several nodes without it. */
function redisUrl() {
  if (process.env.REDIS_URL) return process.env.REDIS_URL;
  try {
    const line = fs.readFileSync(path.join(__dirname, '.env'), 'utf8')
      .split('\n').find((l) => /^\s*REDIS_URL\s*=\s*\S/.test(l));
    return line ? line.split('=').slice(1).join('=').trim() : '';
  } catch {
    return '';
  }
}

const nodes = Number(process.env.BLINDRELAY_NODES || 1);
const basePort = Number(process.env.PORT || 3001);
const logDir = process.env.BLINDRELAY_LOG_DIR || path.join(__dirname, 'logs');
if (!Number.isInteger(nodes) || nodes < 1) throw new Error('BLINDRELAY_NODES must be a positive integer');
if (nodes > 1 && !redisUrl()) {
  throw new Error('BLINDRELAY_NODES > 1 needs REDIS_URL: the nodes share rooms through Redis');
}

module.exports = {
  apps: Array.from({ length: nodes }, (_, i) => {
    const name = nodes === 1 ? 'blindrelay' : `blindrelay-${i + 1}`;
    return {
      name,
      script: process.env.BLINDRELAY_BIN || path.join(__dirname, 'target', 'release', 'blindrelay'),
      args: 'serve',
      interpreter: 'none',
      exec_mode: 'fork',
      cwd: __dirname,
      env: { PORT: String(basePort + i) },
      autorestart: true,
      max_restarts: 10,
      restart_delay: 1000,
      // blindrelay drains on SIGTERM within SHUTDOWN_GRACE_SECS (10 s by default).
      kill_timeout: 12000,
      out_file: path.join(logDir, `${name}.out.log`),
      error_file: path.join(logDir, `${name}.err.log`),
      time: true,
    };
  }),
};
