#!/usr/bin/env python3
"""Checks docker-compose.yml where Docker cannot run it: what it wires must exist and fit.

- the services: Redis with append-only persistence and a health check, two blindrelay
  nodes built from this Dockerfile, nginx publishing its listening port;
- every node setting is one blindrelay reads (a line of .env.example), REDIS_URL names
  the Redis service, and STORE_DIGEST_KEY is required (`${STORE_DIGEST_KEY:?...}`);
- the nginx configuration it mounts exists, its upstream servers are the node services
  on the port the image listens on (the Dockerfile's PORT), it listens on the port
  compose publishes, and `nginx -t` accepts it (node names swapped for 127.0.0.1);
- every repository file its comments name exists.

Run from anywhere: python3 tests/deploy/check_compose.py
"""

import os
import re
import shutil
import subprocess
import sys
import tempfile

import yaml

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


def fail(msg):
    print(f"check_compose: FAIL: {msg}", file=sys.stderr)
    sys.exit(1)


def read(rel):
    with open(os.path.join(ROOT, rel), encoding="utf-8") as f:
        return f.read()


def main():
    text = read("docker-compose.yml")
    compose = yaml.safe_load(text)
    services = compose.get("services") or {}
    for name in ("redis", "node1", "node2", "nginx"):
        if name not in services:
            fail(f"no service {name!r}")

    # Files the comments name (scripts/…, tests/…, deploy/…) must exist.
    for rel in sorted(set(re.findall(r"\b((?:scripts|tests|deploy)/[\w./-]+\w)", text))):
        if not os.path.exists(os.path.join(ROOT, rel)):
            fail(f"docker-compose.yml names {rel}, which does not exist")

    redis = services["redis"]
    if "--appendonly" not in (redis.get("command") or []):
        fail("redis runs without --appendonly: rooms would not survive its restart")
    if not redis.get("healthcheck"):
        fail("redis has no healthcheck (the nodes wait for service_healthy)")

    known = {
        line.split("=", 1)[0]
        for line in read(".env.example").splitlines()
        if re.match(r"^[A-Z][A-Z0-9_]*=", line)
    }
    dockerfile = read("Dockerfile")
    image_port = re.search(r"\bPORT=(\d+)", dockerfile)
    if not image_port:
        fail("the Dockerfile sets no PORT")
    image_port = image_port.group(1)
    for name in ("node1", "node2"):
        node = services[name]
        if node.get("build") not in (".", {"context": "."}):
            fail(f"{name} is not built from this repository's Dockerfile")
        env = node.get("environment") or {}
        unknown = sorted(set(env) - known)
        if unknown:
            fail(f"{name} sets {unknown}, which blindrelay does not read (.env.example)")
        url = str(env.get("REDIS_URL", ""))
        if not re.match(r"^redis://redis:\d+", url):
            fail(f"{name}'s REDIS_URL {url!r} does not name the redis service")
        if not re.fullmatch(r"\$\{STORE_DIGEST_KEY:\?[^}]+\}", str(env.get("STORE_DIGEST_KEY", ""))):
            fail(f"{name} must require STORE_DIGEST_KEY (${{STORE_DIGEST_KEY:?...}}): "
                 "blindrelay refuses REDIS_URL without it")
        if str(env.get("PORT", image_port)) != image_port:
            fail(f"{name} listens on another port than the image's {image_port}")
        if (node.get("depends_on") or {}).get("redis", {}).get("condition") != "service_healthy":
            fail(f"{name} does not wait for a healthy redis")

    nginx = services["nginx"]
    mounts = [v.split(":") for v in nginx.get("volumes") or []]
    conf_rel = next((src for src, dst, *_ in mounts if dst == "/etc/nginx/nginx.conf"), None)
    if not conf_rel:
        fail("nginx mounts no /etc/nginx/nginx.conf")
    conf_rel = os.path.normpath(conf_rel)
    conf = read(conf_rel)
    upstreams = re.findall(r"^\s*server\s+([\w.-]+):(\d+)", conf, re.M)
    if sorted(h for h, _ in upstreams) != ["node1", "node2"]:
        fail(f"{conf_rel}'s upstream servers are {upstreams}, not node1 and node2")
    if any(p != image_port for _, p in upstreams):
        fail(f"{conf_rel}'s upstream ports {upstreams} differ from the image's PORT {image_port}")
    listen = re.search(r"^\s*listen\s+(\d+)\s*;", conf, re.M)
    published = [str(p).split(":")[-1] for p in nginx.get("ports") or []]
    if not listen or listen.group(1) not in published:
        fail(f"nginx listens on {listen and listen.group(1)}, compose publishes {published}")

    nginx_bin = shutil.which("nginx") or ("/usr/sbin/nginx" if os.path.exists("/usr/sbin/nginx") else None)
    if nginx_bin:
        with tempfile.TemporaryDirectory() as tmp:
            os.mkdir(os.path.join(tmp, "logs"))
            local = re.sub(r"server\s+node\d:", "server 127.0.0.1:", conf)
            local = re.sub(r"listen\s+\d+\s*;", "listen 127.0.0.1:1;", local)
            path = os.path.join(tmp, "nginx.conf")
            with open(path, "w", encoding="utf-8") as f:
                f.write(local)
            r = subprocess.run(
                [nginx_bin, "-t", "-p", tmp, "-c", path, "-g", f"pid {tmp}/nginx.pid; error_log {tmp}/logs/error.log;"],
                capture_output=True, text=True, timeout=30,
            )
            if r.returncode != 0:
                fail(f"nginx -t refuses {conf_rel}: {r.stderr.strip()}")
    else:
        print("check_compose: nginx not installed, nginx -t skipped")
    print("check_compose: ok")


if __name__ == "__main__":
    main()
