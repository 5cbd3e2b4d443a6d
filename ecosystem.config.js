// PM2 process file for blindrelay. Build first: cargo build --release --locked
// Then: pm2 start ecosystem.config.js && pm2 save
//
// One node in fork mode (a native binary: PM2's cluster mode is for Node.js only).
// Settings come from .env in this folder (read by blindrelay itself) or from `env` below.
// Several nodes on one machine need distinct ports and, to share rooms, Redis.
module.exports = {
  apps: [
    {
      name: 'blindrelay',
      script: './target/release/blindrelay',
      args: 'serve',
      interpreter: 'none',
      exec_mode: 'fork',
      instances: 1,
      cwd: __dirname,
      env: {
        PORT: process.env.PORT || '3001',
      },
      autorestart: true,
      max_restarts: 10,
      restart_delay: 1000,
      // blindrelay drains on SIGTERM within SHUTDOWN_GRACE_SECS (10 s by default).
      kill_timeout: 12000,
      out_file: './logs/blindrelay.out.log',
      error_file: './logs/blindrelay.err.log',
      merge_logs: true,
      time: true,
    },
  ],
};
