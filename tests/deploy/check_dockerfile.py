#!/usr/bin/env python3
"""Checks the Dockerfile where Docker cannot run: its build steps by running them, its
runtime by recreating the image's layout and user.

1. Static rules: pinned build image, `cargo build --release --locked`, a dependency layer
   that has the manifest of every workspace member (Cargo loads them all, even to build
   the server alone) and stubs every target the manifests declare (and a library for a
   member that declares none), a distroless non-root runtime with only the binary and
   static/, EXPOSE matching PORT, a HEALTHCHECK through the binary itself, and a
   .dockerignore that keeps target/ and node_modules out of the context and nothing the
   build stage copies.
2. The build stage, for real: the COPY instructions before the dependency-layer RUN
   (Cargo.toml, Cargo.lock, the members' manifests) into a scratch folder, that RUN
   there, then the same cargo command on the real sources.
3. The runtime: the binary and static/ copied into an /app-like folder, run as the
   image's user id with the image's environment; `blindrelay healthcheck` (the
   HEALTHCHECK command) must pass, and the page must be served.

Run from the repository root: python3 tests/deploy/check_dockerfile.py
"""

import os
import re
import shlex
import shutil
import signal
import socket
import fnmatch
import subprocess
import sys
import tempfile
import time
import tomllib
import urllib.request

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


def fail(msg):
    print(f"check_dockerfile: FAIL: {msg}", file=sys.stderr)
    sys.exit(1)


def instructions(path):
    """The Dockerfile as (INSTRUCTION, arguments) pairs, continuations joined."""
    text = open(path, encoding="utf-8").read()
    text = re.sub(r"\\\n", " ", text)
    out = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        word, _, rest = line.partition(" ")
        out.append((word.upper(), rest.strip()))
    return out


def stages(instrs):
    """Build stages: lists of instructions, each starting with its FROM."""
    result = []
    for ins in instrs:
        if ins[0] == "FROM":
            result.append([])
        if result:
            result[-1].append(ins)
    return result


def env_of(stage):
    env = {}
    for word, rest in stage:
        if word == "ENV":
            for pair in shlex.split(rest):
                key, _, value = pair.partition("=")
                env[key] = value
    return env


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def check_static(build, runtime):
    base = build[0][1].split()[0]
    if not re.match(r"rust:\d+\.\d+", base):
        fail(f"build image {base!r} is not pinned to a Rust version")
    runs = " ".join(rest for word, rest in build if word == "RUN")
    if runs.count("cargo build --release --locked") < 2:
        fail("the build stage must run `cargo build --release --locked` for the dependency layer and the sources")
    manifest = tomllib.load(open(os.path.join(ROOT, "Cargo.toml"), "rb"))
    deps_copies = copies_before(build, deps_run(build))
    copied = {os.path.normpath(src) for srcs, _ in deps_copies for src in srcs}
    # Cargo reads every declared target's file, even for `cargo build`: each needs a stub.
    # A workspace member's manifest must be there too (Cargo loads every member), with a
    # target to stand for the package when it declares none (its files are found by name).
    defaults = {"bin": "src/bin/{}.rs", "bench": "benches/{}.rs"}
    members = manifest.get("workspace", {}).get("members", ["."])
    for member in members:
        prefix = "" if member == "." else member.rstrip("/") + "/"
        toml = prefix + "Cargo.toml"
        if toml not in copied:
            fail(f"the dependency layer does not copy {toml} (workspace member {member})")
        own = manifest if member == "." else tomllib.load(open(os.path.join(ROOT, toml), "rb"))
        declared = 0
        for kind, default in defaults.items():
            for target in own.get(kind, []):
                declared += 1
                path = target.get("path") or default.format(target["name"])
                if kind == "bin" and path == "src/main.rs":
                    continue
                if prefix + path not in runs:
                    fail(f"the dependency layer does not stub {kind} target {prefix + path} ({toml} declares it)")
        if prefix and not declared and not any(f"{prefix}src/{f}" in runs for f in ("lib.rs", "main.rs")):
            fail(f"the dependency layer gives {member} no target: stub {prefix}src/lib.rs")

    image = runtime[0][1].split()[0]
    if "distroless" not in image:
        fail(f"runtime image {image!r} is not distroless")
    users = [rest for word, rest in runtime if word == "USER"]
    if not users or users[-1].split(":")[0] in ("0", "root"):
        fail("the runtime must run as a non-root user")
    copies = [rest for word, rest in runtime if word == "COPY"]
    sources = sorted(c.split()[-2] for c in copies)
    if len(copies) != 3 or not any(c.startswith("--from=build /src/target/release/blindrelay ") for c in copies):
        fail(f"the runtime must hold only the binary, static/ and the data folder: {copies}")
    env = env_of(runtime)
    # The snapshot's folder: DATA_DIR, a volume, owned by the user the server runs as.
    data_copy = [c for c in copies if c.split()[-1] == env.get("DATA_DIR")]
    volumes = [rest for word, rest in runtime if word == "VOLUME"]
    if not data_copy or f"--chown={users[-1]}" not in data_copy[0] or volumes != [env.get("DATA_DIR")]:
        fail(f"DATA_DIR={env.get('DATA_DIR')} must be a VOLUME made owned by {users[-1]}: {data_copy} {volumes}")
    exposed = [rest for word, rest in runtime if word == "EXPOSE"]
    if exposed != [env.get("PORT")] or exposed != ["3001"]:
        fail(f"EXPOSE {exposed} must be 3001 and match ENV PORT={env.get('PORT')}")
    static_copy = [c for c in copies if c.split()[0] == "static"]
    if not static_copy or static_copy[0].split()[-1] != env.get("STATIC_DIR"):
        fail(f"static/ must be copied to STATIC_DIR={env.get('STATIC_DIR')}")
    entry = [rest for word, rest in runtime if word == "ENTRYPOINT"]
    binary = next(c.split()[-1] for c in copies if c.startswith("--from=build"))
    if not entry or shlex.split(entry[0].strip("[]").replace(",", " "))[0] != binary:
        fail(f"ENTRYPOINT {entry} must run {binary}")
    health = [rest for word, rest in runtime if word == "HEALTHCHECK"]
    if not health or f'["{binary}", "healthcheck"]' not in health[0]:
        fail("HEALTHCHECK must run the binary's own `healthcheck` (the image has no shell or curl)")
    ignore = [line.strip() for line in open(os.path.join(ROOT, ".dockerignore"), encoding="utf-8")]
    ignore = [line for line in ignore if line and not line.startswith("#")]
    for needed in ("target", "**/node_modules", ".git"):
        if needed not in ignore:
            fail(f".dockerignore must exclude {needed}")
    for srcs, _ in copies_before(build, None):
        for src in srcs:
            if ignored(os.path.normpath(src), ignore):
                fail(f".dockerignore excludes {src}, which the build stage copies")
    print(f"static rules: ok ({base} -> {image}, user {users[-1]}, port {exposed[0]}; copies {sources})")
    return env, binary, users[-1]


def deps_run(build):
    """The dependency layer's RUN (the one that makes the stub src/)."""
    return next(rest for word, rest in build if word == "RUN" and "mkdir src" in rest)


def copies_before(build, run):
    """The build stage's COPY instructions from the context, as (sources, destination),
    up to the RUN `run` (all of them for None)."""
    out = []
    for word, rest in build:
        if word == "RUN" and rest == run:
            break
        if word == "COPY":
            parts = shlex.split(rest)
            if any(p.startswith("--") for p in parts):
                fail(f"COPY {rest}: the build stage copies only from the context, without flags")
            out.append((parts[:-1], parts[-1]))
    return out


def ignored(path, patterns):
    """Whether .dockerignore's patterns leave `path` (or a folder holding it) out."""
    parts = path.split("/")

    def match(names, pattern):  # `*` within one path element, as Docker matches
        return len(names) == len(pattern) and all(map(fnmatch.fnmatchcase, names, pattern))

    out = False
    for pattern in patterns:
        keep = pattern.startswith("!")
        pattern = pattern.lstrip("!").strip("/").split("/")
        # The path or a folder holding it; `**/` at the start: at any depth.
        starts = range(len(parts)) if pattern[0] == "**" else [0]
        pattern = pattern[1:] if pattern[0] == "**" else pattern
        hit = any(match(parts[i:j], pattern) for i in starts for j in range(i + 1, len(parts) + 1))
        if hit:
            out = not keep
    return out


def replay_copies(copies, workdir):
    """COPY instructions, done from the repository into `workdir` (the stage's WORKDIR)."""
    for srcs, dest in copies:
        into_dir = dest.endswith("/") or len(srcs) > 1
        dest = os.path.normpath(os.path.join(workdir, dest))
        for src in srcs:
            source = os.path.join(ROOT, src)
            to = os.path.join(dest, os.path.basename(os.path.normpath(src))) if into_dir else dest
            os.makedirs(os.path.dirname(to), exist_ok=True)
            if os.path.isdir(source):
                shutil.copytree(source, to, dirs_exist_ok=True)
            else:
                shutil.copy(source, to)


def run_build(build):
    """The dependency layer in a scratch copy, then the real build, as the stage runs them."""
    target = os.path.join(ROOT, "target")
    deps = deps_run(build)
    with tempfile.TemporaryDirectory() as scratch:
        # What the stage has when the dependency layer runs: its COPYs so far.
        replay_copies(copies_before(build, deps), scratch)
        env = {**os.environ, "CARGO_TARGET_DIR": target}
        t0 = time.time()
        subprocess.run(["sh", "-ec", deps], cwd=scratch, env=env, check=True)
        print(f"dependency layer: ok ({time.time() - t0:.0f} s)")
    # The sources' RUN as written (it touches them so that cargo rebuilds over the
    # placeholder binary the dependency layer left in the same target folder).
    src_run = next(rest for word, rest in build if word == "RUN" and rest != deps)
    t0 = time.time()
    subprocess.run(["sh", "-ec", src_run], cwd=ROOT, check=True)
    built = os.path.join(target, "release", "blindrelay")
    if not os.access(built, os.X_OK):
        fail(f"cargo build --release --locked did not produce {built}")
    version = subprocess.run([built, "--version"], capture_output=True, text=True)
    if version.returncode != 0 or not version.stdout.startswith("blindrelay "):
        fail(f"{built} is not the server (the placeholder of the dependency layer?)")
    print(f"release build: ok ({time.time() - t0:.0f} s)")
    return built


def run_image(env, binary, user, built):
    """The image's layout and user: /app/blindrelay and /app/static, as uid:gid."""
    uid, _, gid = user.partition(":")
    with tempfile.TemporaryDirectory() as root:
        os.chmod(root, 0o755)
        app = os.path.join(root, "app")
        os.mkdir(app)
        shutil.copy(built, os.path.join(app, os.path.basename(binary)))
        shutil.copytree(os.path.join(ROOT, "static"), os.path.join(app, "static"))
        data = os.path.join(root, "data")
        os.mkdir(data)
        os.chown(data, int(uid), int(gid or uid))
        port = free_port()
        # The image's environment, with its paths under this folder and a free port.
        run_env = {
            "PATH": "/usr/bin:/bin",
            **{k: v.replace("/app", app).replace("/data", data) for k, v in env.items()},
            "HOST": "127.0.0.1",
            "PORT": str(port),
        }
        as_user = ["setpriv", f"--reuid={uid}", f"--regid={gid or uid}", "--clear-groups"]
        exe = os.path.join(app, os.path.basename(binary))
        server = subprocess.Popen(as_user + [exe, "serve"], cwd=app, env=run_env,
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        try:
            deadline = time.time() + 15
            while True:
                probe = subprocess.run(as_user + [exe, "healthcheck"], env=run_env, capture_output=True)
                if probe.returncode == 0:
                    break
                if server.poll() is not None or time.time() > deadline:
                    out = server.stdout.read().decode() if server.poll() is not None else ""
                    fail(f"the HEALTHCHECK command never passed: {probe.stderr.decode()} {out}")
                time.sleep(0.1)
            page = urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5).read().decode()
            if "<html" not in page.lower():
                fail("the image's static/ is not served at /")
            ps = open(f"/proc/{server.pid}/status", encoding="utf-8").read()
            real_uid = re.search(r"^Uid:\s+(\d+)", ps, re.M).group(1)
            if real_uid != uid:
                fail(f"the server ran as uid {real_uid}, not {uid}")
        finally:
            server.send_signal(signal.SIGTERM)
            code = server.wait(timeout=15)
        if code != 0:
            fail(f"SIGTERM: exit code {code}")
        if not os.path.exists(os.path.join(data, "sessions.snapshot")):
            fail(f"SIGTERM: no snapshot written in DATA_DIR as uid {uid}: {os.listdir(data)}")
        probe = subprocess.run(as_user + [exe, "healthcheck"], env=run_env, capture_output=True)
        if probe.returncode == 0:
            fail("the HEALTHCHECK command passes with the server stopped")
    print(f"runtime: ok (uid {uid}, HEALTHCHECK passes while up and fails once stopped, page served, SIGTERM exits 0 and writes its snapshot)")


def main():
    build, runtime = stages(instructions(os.path.join(ROOT, "Dockerfile")))
    env, binary, user = check_static(build, runtime)
    built = run_build(build)
    run_image(env, binary, user, built)


if __name__ == "__main__":
    main()
