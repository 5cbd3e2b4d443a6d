#!/usr/bin/env python3
"""Side-by-side figures of one bench run (scripts/bench.sh calls it at the end).

    python3 bench/summary.py blindrelay=target/bench/blindrelay.jsonl floor=... node=...

Each argument is LABEL=FILE, a file of the generator's JSON lines (one per scenario).
Prints one table, a column per server, the rows the scenarios in the files have. With a
`blindrelay` and a `floor` column, the CPU rows also show blindrelay/floor; with a `node`
column, node/blindrelay (where both figures are positive; not for groupfill, where the
floor sends no key lists). Columns run with --redis-pid (`redis-2node`: two nodes on one
redis-server; `cluster-2node`: two nodes on a three-primary Redis Cluster) show CPU as
`nodes + redis = total`, and after the table how they stand against the cross-node
targets (TARGETS). Figures are rounded for reading; the JSON lines hold them all.
"""

import json
import sys


def load(path):
    out = {}
    try:
        with open(path, encoding="utf-8") as f:
            for line in f:
                line = line.strip()
                if not line.startswith("{"):
                    continue
                try:
                    j = json.loads(line)
                except ValueError:
                    continue
                name = j.get("scenario", "?")
                if name == "fanout" and "members" in j:
                    name = f"fanout{j['members']}"
                out[name] = j
    except OSError:
        pass
    return out


def num(x, digits=None):
    if x is None:
        return "-"
    if isinstance(x, bool):
        return str(x)
    if isinstance(x, int):
        return f"{x:,}"
    if isinstance(x, float):
        if digits is None:
            digits = 0 if abs(x) >= 100 else (1 if abs(x) >= 10 else 2)
        return f"{x:,.{digits}f}"
    return str(x)


def get(j, *path):
    for p in path:
        if isinstance(j, list) and isinstance(p, int):
            j = j[p] if -len(j) <= p < len(j) else None
        elif isinstance(j, dict):
            j = j.get(p)
        else:
            return None
    return j


def cpu(j, per_key, *path):
    """Server CPU per unit; with Redis, `nodes + redis = total` (redis summed over its
    processes: one redis-server, or every primary of a cluster)."""
    node = get(j, *path, per_key)
    c = get(j, *path, "cpu")
    if isinstance(c, dict) and "redis_cpu_s" in c:
        redis, total = c.get("redis_cpu_us_per_unit"), c.get("total_cpu_us_per_unit")
        return f"{num(node)} + {num(redis)} = {num(total)}"
    return num(node)


def lost_dup(j, *path):
    lost, dup = get(j, *path, "lost"), get(j, *path, "duplicates")
    if lost is None and dup is None:
        return "-"
    return f"{num(lost)} / {num(dup)}"


def lat(h, keys=("p50", "p99", "max")):
    if not isinstance(h, dict):
        return "-"
    return " / ".join(num(h.get(k)) for k in keys)


ROWS = [
    # (scenario, label, value function, raw number for ratios or None)
    ("pairs", "pairs sat.: CPU µs/msg",
     lambda j: cpu(j, "server_cpu_us_per_msg", "saturation"),
     lambda j: get(j, "saturation", "server_cpu_us_per_msg")),
    ("pairs", "pairs sat.: delivered msg/s", lambda j: num(get(j, "saturation", "delivered_per_s")), None),
    ("pairs", "pairs sat.: lost / dup", lambda j: lost_dup(j, "saturation"), None),
    ("pairs", "pairs fixed: target msg/s", lambda j: num(get(j, "fixed_rate", "target_rate")), None),
    ("pairs", "pairs fixed: CPU µs/msg",
     lambda j: cpu(j, "server_cpu_us_per_msg", "fixed_rate"),
     lambda j: get(j, "fixed_rate", "server_cpu_us_per_msg")),
    ("pairs", "pairs fixed: p50/p99/max µs", lambda j: lat(get(j, "fixed_rate", "latency_us")), None),
    ("pairs", "pairs fixed: lost / dup", lambda j: lost_dup(j, "fixed_rate"), None),
    # A second fixed rate (bench.sh's default run: 2,000 then 1,000 msg/s).
    ("pairs", "pairs fixed 2: target msg/s", lambda j: num(get(j, "fixed_rates", 1, "target_rate")), None),
    ("pairs", "pairs fixed 2: CPU µs/msg",
     lambda j: cpu(j, "server_cpu_us_per_msg", "fixed_rates", 1),
     lambda j: get(j, "fixed_rates", 1, "server_cpu_us_per_msg")),
    ("pairs", "pairs fixed 2: p50/p99/max µs", lambda j: lat(get(j, "fixed_rates", 1, "latency_us")), None),
    ("pairs", "pairs fixed 2: lost / dup", lambda j: lost_dup(j, "fixed_rates", 1), None),
]
for m in (50, 500):
    ROWS += [
        (f"fanout{m}", f"fanout {m}: deliveries/s", lambda j: num(get(j, "deliveries_per_s")), None),
        (f"fanout{m}", f"fanout {m}: CPU µs/delivery",
         lambda j: cpu(j, "server_cpu_us_per_delivery"),
         lambda j: get(j, "server_cpu_us_per_delivery")),
        (f"fanout{m}", f"fanout {m}: p50/p99 µs", lambda j: lat(get(j, "latency_us"), ("p50", "p99")), None),
        (f"fanout{m}", f"fanout {m}: lost / dup", lambda j: lost_dup(j), None),
        (f"fanout{m}", f"fanout {m}: joins/s", lambda j: num(get(j, "setup", "joins_per_s")), None),
    ]
ROWS += [
    ("idle", "idle: RSS KiB/connection",
     lambda j: f"{num(get(j, 'server_rss_kib_per_connection'))} ({num(get(j, 'connections'))} conns)",
     lambda j: get(j, "server_rss_kib_per_connection")),
    ("churn", "churn: rooms/s", lambda j: num(get(j, "rooms_per_s")), None),
    ("churn", "churn: CPU µs/room",
     lambda j: cpu(j, "server_cpu_us_per_room"),
     lambda j: get(j, "server_cpu_us_per_room")),
    ("churn", "churn: failed cycles", lambda j: num(get(j, "failed_cycles")), None),
    # No ratio: the floor sends no key lists, so its joins are not the same work.
    ("groupfill", "groupfill: CPU µs/join", lambda j: cpu(j, "server_cpu_us_per_join"), None),
    ("groupfill", "groupfill: join p50/p99 µs", lambda j: lat(get(j, "join_latency_us"), ("p50", "p99")), None),
    ("groupfill", "groupfill: key lists seen", lambda j: "yes" if get(j, "waited_for_every_key_list") else "no", None),
]


def fixed_at(j, rate):
    """The pairs fixed-rate phase at `rate` msg/s (None if the run had none)."""
    for ph in get(j, "fixed_rates") or [get(j, "fixed_rate")]:
        if isinstance(ph, dict) and ph.get("target_rate") == rate:
            return ph
    return None


# The cross-node targets: (what, phase of a file's scenarios, figure in its "cpu", at most).
TARGETS_NOTE = ("targets across nodes: pairs (saturation and 2,000 msg/s): Redis ≤ 15 µs/msg, "
                "nodes + Redis ≤ 40 µs/msg; fanout 50: nodes + Redis ≤ 12 µs per delivery")
TARGETS = [
    ("pairs sat. Redis", lambda d: get(d, "pairs", "saturation"), "redis_cpu_us_per_unit", 15),
    ("pairs sat. total", lambda d: get(d, "pairs", "saturation"), "total_cpu_us_per_unit", 40),
    ("pairs 2,000/s Redis", lambda d: fixed_at(d.get("pairs"), 2000.0), "redis_cpu_us_per_unit", 15),
    ("pairs 2,000/s total", lambda d: fixed_at(d.get("pairs"), 2000.0), "total_cpu_us_per_unit", 40),
    ("fanout 50 total", lambda d: d.get("fanout50"), "total_cpu_us_per_unit", 12),
]


def targets(label, data):
    """One line: each target this column's run measured, met or missed."""
    out = []
    for what, phase, key, limit in TARGETS:
        v = get(phase(data), "cpu", key)
        if isinstance(v, (int, float)):
            out.append(f"{what} {num(v)} {'ok' if v <= limit else f'MISSED (> {limit})'}")
    return f"  {label}: " + ("; ".join(out) if out else "no figure for them in this run")


def main(argv):
    cols = []
    for a in argv:
        label, _, path = a.partition("=")
        cols.append((label, load(path)))
    if not cols:
        print(__doc__.strip().splitlines()[0], file=sys.stderr)
        return 2
    labels = [c[0] for c in cols]
    ratios = []
    if "blindrelay" in labels and "floor" in labels:
        ratios.append(("blindrelay/floor", "blindrelay", "floor"))
    if "node" in labels and "blindrelay" in labels:
        ratios.append(("node/blindrelay", "node", "blindrelay"))
    header = ["figure"] + labels + [r[0] for r in ratios]
    table = []
    failed = 0
    for scenario, label, value, raw in ROWS:
        if not any(scenario in data for _, data in cols):
            continue
        row = [label]
        for _, data in cols:
            j = data.get(scenario)
            if j is None:
                row.append("")
            elif j.get("error") and j.get("ok") is False and "cpu" not in j and "saturation" not in j:
                row.append("FAILED")
            else:
                row.append(value(j))
        byname = dict(cols)
        for _, a, b in ratios:
            x = raw(byname[a].get(scenario, {})) if raw else None
            y = raw(byname[b].get(scenario, {})) if raw else None
            ok = all(isinstance(v, (int, float)) and v > 0 for v in (x, y))
            row.append(f"{x / y:.2f}" if ok else "")
        table.append(row)
    for _, data in cols:
        failed += sum(1 for j in data.values() if j.get("ok") is False)
    widths = [max(len(r[i]) for r in [header] + table) for i in range(len(header))]
    line = lambda r: "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths)))
    print("== summary (CPU is the server's; with Redis: nodes + redis-server = total, µs)")
    print(line(header))
    for r in table:
        print(line(r))
    redis_cols = [(label, data) for label, data in cols
                  if any("redis_cpu_s" in (get(j, "cpu") or {})
                         or "redis_cpu_s" in (get(j, "saturation", "cpu") or {})
                         for j in data.values())
                  or label in ("redis-2node", "cluster-2node")]
    if redis_cols:
        print(TARGETS_NOTE)
        for label, data in redis_cols:
            print(targets(label, data))
    if failed:
        print(f"{failed} scenario(s) not ok: see the tables above and the JSON lines")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
