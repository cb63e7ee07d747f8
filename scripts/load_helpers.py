#!/usr/bin/env python3
"""Helpers for scripts/load.sh, scripts/soak.sh and scripts/sealing_run.sh (standard library only, except the
S3 export check, which imports boto3 and so runs with .venv/bin/python).

Subcommands:
  bodies N OUT                         N request bodies, one JSON per line, shaped like tools/loadgen's (for oha -Z)
  oha-summary LABEL FILE               one line from oha's JSON output; exit 1 unless every response was a 200
  loadgen-summary LABEL FILE           one line from loadgen's JSON output; exit 1 on errors or non-approvals
  db-stats DATA_DIR                    JSON: ledger events, approved clearances, vault.db / -wal / anchors bytes
  cpu-times                            the machine's cumulative CPU times (/proc/stat), for soak-row --cpu-before
  soak-row ...                         one soak line (and a JSON row appended to a log)
  soak-summary LOG                     the soak's summary; exit 1 on a non-200 or a WAL over its bound
  tenants URL ADMIN_KEY N OUT          N tenants (admin API) with agent + auditor keys and the approving policy
  lag-sample ...                       one anchor-lag line per tenant (GET /ledger/status, else a fallback)
  lag-verdict LOG INTERVAL             exit 1 unless every sampled lag stayed within 2 x INTERVAL
  export-check ...                     every tenant's export holds checkpoints 1..n, chained, in order
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import sys
import time
import urllib.error
import urllib.request
import uuid
from datetime import datetime, timezone
from pathlib import Path

WAL_BOUND = 64 * 1024 * 1024  # WAL_LIMIT_BYTES (docs/configuration.md, "Embedded storage")
APPROVE_REGO = ('package bench\ndefault decision := "deny"\n'
                'decision := "approve" if { input.tool_args.amount <= 100 }')


def fail(message: str) -> None:
    print(f"FAIL: {message}", file=sys.stderr, flush=True)


# ----- request bodies ----------------------------------------------------------------------------------------

def cmd_bodies(args) -> int:
    """The bodies tools/loadgen sends (64 clients, amount 1..90, a fresh customer each), one per line."""
    with open(args.out, "w") as out:
        for n in range(1, args.n + 1):
            worker = n % 64
            body = {"tool_name": "bench_refund",
                    "tool_args": {"amount": (n % 90) + 1, "currency": "usd", "customer": f"cus_{worker}_{n}"},
                    "agent_id": f"load-{worker}", "session_id": f"s-{worker}"}
            out.write(json.dumps(body, separators=(",", ":")) + "\n")
    return 0


# ----- load generator results --------------------------------------------------------------------------------

def oha_result(path: str) -> dict:
    """The numbers of one oha run (oha 1.16 `--output-format json`)."""
    data = json.loads(Path(path).read_text())
    statuses = {str(k): int(v) for k, v in data.get("statusCodeDistribution", {}).items()}
    errors = {str(k): int(v) for k, v in data.get("errorDistribution", {}).items()}
    seconds = float(data["summary"]["total"])
    latency = data["metrics"]["latency_ms"]
    p999 = data.get("latencyPercentiles", {}).get("p99.9")
    ok = statuses.get("200", 0)
    return {"seconds": seconds, "requests": sum(statuses.values()) + sum(errors.values()), "ok": ok,
            "non_200": sum(v for k, v in statuses.items() if k != "200") + sum(errors.values()),
            "statuses": statuses, "errors": errors, "rps": float(data["summary"]["requestsPerSec"]),
            "p50": float(latency["p50"]), "p99": float(latency["p99"]),
            "p999": None if p999 is None else float(p999) * 1000, "max": float(latency["max"]),
            "ok_per_second": ok / seconds if seconds else 0.0}


def cmd_oha_summary(args) -> int:
    r = oha_result(args.file)
    codes = " ".join(f"{k}={v}" for k, v in sorted(r["statuses"].items())) or "none"
    errors = "; ".join(f"{k}: {v}" for k, v in r["errors"].items()) or "none"
    p999 = f", p99.9 {r['p999']:.2f}" if r["p999"] is not None else ""
    print(f"{args.label}: {r['rps']:,.0f} req/s, {r['requests']:,} requests in {r['seconds']:.1f} s; "
          f"latency ms p50 {r['p50']:.2f}, p99 {r['p99']:.2f}{p999}, max {r['max']:.2f}; "
          f"status {codes}; errors {errors}; approvals/s {r['ok_per_second']:,.0f}", flush=True)
    if r["non_200"] or not r["ok"]:
        fail(f"{args.label}: {r['non_200']} of {r['requests']} requests did not answer 200 ({codes}; errors {errors})")
        return 1
    return 0


def cmd_loadgen_summary(args) -> int:
    r = json.loads(Path(args.file).read_text().strip().splitlines()[-1])
    lat = r["latency_ms"]
    total = r["approved"] + r["not_approved"] + r["errors"]
    print(f"{args.label}: {total / r['seconds']:,.0f} req/s, {total:,} requests in {r['seconds']:.1f} s; "
          f"latency ms p50 {lat['p50']:.2f}, p99 {lat['p99']:.2f}, p99.9 {lat['p999']:.2f}, max {lat['max']:.2f}; "
          f"approved {r['approved']}, not approved {r['not_approved']}, errors {r['errors']}; "
          f"approvals/s {r['approvals_per_second']:,.0f}", flush=True)
    if r["errors"] or r["not_approved"] or not r["approved"]:
        fail(f"{args.label}: {r['errors']} errors, {r['not_approved']} not approved")
        return 1
    return 0


# ----- embedded storage --------------------------------------------------------------------------------------

def size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def tree_bytes(path: Path) -> int:
    total = 0
    for root, _, files in os.walk(path):
        total += sum(size(Path(root, f)) for f in files)
    return total


def db_stats(data_dir: str) -> dict:
    d = Path(data_dir)
    conn = sqlite3.connect(f"file:{d / 'vault.db'}?mode=ro", uri=True, timeout=10)
    try:
        events = conn.execute("SELECT count(*) FROM ledger").fetchone()[0]
        approved = conn.execute("SELECT count(*) FROM clearances WHERE status = 'approved'").fetchone()[0]
    finally:
        conn.close()
    return {"events": events, "approved": approved, "db_bytes": size(d / "vault.db"),
            "wal_bytes": size(d / "vault.db-wal"), "anchors_bytes": tree_bytes(d / "anchors")}


def cmd_db_stats(args) -> int:
    print(json.dumps(db_stats(args.data_dir)))
    return 0


def vm_rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def cpu_times() -> list[int]:
    """The machine's cumulative CPU times in jiffies (/proc/stat's "cpu" line: user nice system idle iowait irq
    softirq steal ...)."""
    return [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]


def host_shares(before: list[int], after: list[int]) -> dict:
    """Busy and steal shares of the machine's CPU time between two cpu_times() samples, in percent. Steal is time
    the hypervisor gave this VM's virtual CPUs to someone else: a minute with much of it is the host's, not ours."""
    delta = [a - b for a, b in zip(after, before)]
    total = sum(delta[:8]) or 1  # guest times are already inside user and nice
    idle = delta[3] + delta[4]
    return {"host_busy_pct": 100 * (total - idle) / total, "host_steal_pct": 100 * delta[7] / total}


def mib(n: float) -> str:
    return f"{n / 1048576:.1f} MiB"


def cmd_soak_row(args) -> int:
    r = oha_result(args.oha) if args.oha else None
    if r is None:  # loadgen's JSON line
        lg = json.loads(Path(args.loadgen).read_text().strip().splitlines()[-1])
        n = lg["approved"] + lg["not_approved"] + lg["errors"]
        r = {"requests": n, "p50": lg["latency_ms"]["p50"], "p99": lg["latency_ms"]["p99"],
             "non_200": lg["errors"] + lg["not_approved"], "rps": n / lg["seconds"]}
    s = db_stats(args.data_dir)
    disk = s["db_bytes"] + s["wal_bytes"] + s["anchors_bytes"]
    row = {"minute": args.minute, "requests": r["requests"], "rps": r["rps"], "p50": r["p50"], "p99": r["p99"],
           "non_200": r["non_200"], "wal_bytes": s["wal_bytes"], "wal_max_bytes": args.wal_max,
           "db_bytes": s["db_bytes"], "anchors_bytes": s["anchors_bytes"], "rss_bytes": vm_rss(args.pid),
           "events": s["events"], "approved": s["approved"], "disk_bytes": disk}
    if args.cpu_before:
        row.update(host_shares([int(x) for x in Path(args.cpu_before).read_text().split()], cpu_times()))
    with open(args.log, "a") as log:
        log.write(json.dumps(row) + "\n")
    per_event = disk / s["events"] if s["events"] else 0
    print(f"minute {args.minute:>3}: {r['requests']:>7,} requests ({r['rps']:,.0f}/s), p50 {r['p50']:.2f} ms, "
          f"p99 {r['p99']:.2f} ms, non-200 {r['non_200']}; WAL {mib(s['wal_bytes'])} (max so far "
          f"{mib(args.wal_max)}), vault.db {mib(s['db_bytes'])}, anchors {mib(s['anchors_bytes'])}, "
          f"RSS {mib(row['rss_bytes'])}; events {s['events']:,}, {per_event:,.0f} bytes/event on disk"
          + (f"; host CPU busy {row['host_busy_pct']:.0f} %, steal {row['host_steal_pct']:.1f} %"
             if "host_steal_pct" in row else ""), flush=True)
    return 0


def slope(xs: list[float], ys: list[float]) -> float:
    """Least-squares slope of ys over xs."""
    n = len(xs)
    mx, my = sum(xs) / n, sum(ys) / n
    den = sum((x - mx) ** 2 for x in xs)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / den if den else 0.0


def cmd_soak_summary(args) -> int:
    rows = [json.loads(line) for line in Path(args.log).read_text().splitlines() if line.strip()]
    if not rows:
        fail("no soak rows")
        return 1
    p99 = [r["p99"] for r in rows]
    events = [r["events"] for r in rows]
    wal_max = max(r["wal_max_bytes"] for r in rows)
    non_200 = sum(r["non_200"] for r in rows)
    print(f"# soak summary over {len(rows)} runs, {sum(r['requests'] for r in rows):,} requests, "
          f"{events[-1]:,} ledger events")
    print(f"#   p99 ms: min {min(p99):.2f}, max {max(p99):.2f} (first {p99[0]:.2f}, last {p99[-1]:.2f}); "
          f"non-200 responses: {non_200}")
    rss = [r["rss_bytes"] for r in rows]
    second_half = rows[len(rows) // 2:]
    rss_trend = ""
    if len(second_half) >= 2:
        per_run = slope([r["minute"] for r in second_half], [r["rss_bytes"] for r in second_half]) / 1024
        rss_trend = f"; least-squares slope over the second half {per_run:+,.0f} KiB per run"
    print(f"#   RSS: first {mib(rss[0])}, last {mib(rss[-1])}, max {mib(max(rss))}{rss_trend}")
    steal = [r["host_steal_pct"] for r in rows if "host_steal_pct" in r]
    if steal:
        print(f"#   host CPU steal per run: max {max(steal):.1f} %, mean {sum(steal) / len(steal):.1f} %")
    print(f"#   largest vault.db-wal: {wal_max:,} bytes ({100 * wal_max / WAL_BOUND:.0f} % of the "
          f"{WAL_BOUND:,}-byte bound)")
    if len(rows) >= 2 and events[-1] != events[0]:
        for name, key in (("vault.db", "db_bytes"), ("vault.db + WAL + anchors", "disk_bytes"),
                          ("anchors (export folder)", "anchors_bytes")):
            print(f"#   {name}: {slope(events, [r[key] for r in rows]):,.0f} bytes per approval "
                  f"(least-squares slope over the {len(rows)} samples)")
    else:
        print("#   bytes per approval slope: needs at least two samples")
    status = 0
    if non_200:
        fail(f"{non_200} responses were not 200")
        status = 1
    if wal_max > WAL_BOUND:
        fail(f"vault.db-wal reached {wal_max} bytes, over its bound {WAL_BOUND}")
        status = 1
    return status


# ----- HTTP --------------------------------------------------------------------------------------------------

def http(method: str, url: str, headers: dict, body: dict | None = None) -> tuple[int, dict]:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method,
                                     headers={"content-type": "application/json", **headers})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as e:
        text = e.read()
        try:
            return e.code, json.loads(text or b"{}")
        except ValueError:
            return e.code, {"raw": text.decode(errors="replace")}


def must(status_body: tuple[int, dict], *ok: int) -> dict:
    status, body = status_body
    if status not in ok:
        raise SystemExit(f"FAIL: HTTP {status}: {body}")
    return body


def cmd_tenants(args) -> int:
    """Tenants as tests/e2e/conftest.py `new_tenant_keys` makes them, each with the approving policy."""
    tenants = []
    for i in range(args.n):
        created = must(http("POST", f"{args.url}/admin/tenants", {"X-Admin-API-Key": args.admin_key},
                            {"name": f"sealing-{i + 1}-{uuid.uuid4().hex[:6]}"}), 201)
        admin = {"X-Vault-API-Key": created["api_key"]}
        keys = {"tenant_id": created["tenant_id"], "tenant_admin": created["api_key"]}
        for name, roles in (("agent", ["agent", "consumer"]), ("auditor", ["auditor"])):
            keys[name] = must(http("POST", f"{args.url}/api-keys", admin, {"roles": roles, "name": name}),
                              201)["api_key"]
        must(http("POST", f"{args.url}/register-policy", admin,
                  {"policy_id": "bench", "tools": ["bench_refund"], "rego": APPROVE_REGO}), 200, 201)
        tenants.append(keys)
    Path(args.out).write_text(json.dumps(tenants))
    os.chmod(args.out, 0o600)
    for t in tenants:
        print(f"# tenant {t['tenant_id']}")
    return 0


def parse_time(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def embedded_oldest_unsealed(data_dir: str, tenant_id: str) -> float | None:
    """accepted_at of the tenant's oldest unsealed event, read from vault.db (None if unreadable)."""
    try:
        conn = sqlite3.connect(f"file:{Path(data_dir) / 'vault.db'}?mode=ro", uri=True, timeout=10)
        row = conn.execute("SELECT body FROM ledger WHERE tenant_id = ? AND leaf_index IS NULL ORDER BY seq LIMIT 1",
                           (tenant_id,)).fetchone()
        conn.close()
        return None if row is None else parse_time(json.loads(row[0])["accepted_at"])
    except (sqlite3.Error, ValueError, KeyError, TypeError):
        return None


def tenant_lag(url: str, tenant: dict, data_dir: str | None, rate: float) -> dict:
    """{events_behind, lag_seconds, tree_size, checkpoint, source}: GET /ledger/status, or, while that route is
    absent (404), the newest event's seq minus the latest checkpoint's tree_size, the lag's age then read from
    vault.db (embedded) or estimated as events behind / the tenant's rate (marked ~)."""
    headers = {"X-Vault-API-Key": tenant["auditor"]}
    status, body = http("GET", f"{url}/ledger/status", headers)
    if status == 200:
        lag = body.get("lag_seconds", body.get("oldest_unsequenced_age_seconds"))
        if lag is None:
            oldest = body.get("oldest_unsequenced_at")
            lag = max(0.0, time.time() - parse_time(oldest)) if oldest else 0.0
        return {"events_behind": int(body["events_behind"]), "lag_seconds": float(lag),
                "tree_size": body.get("tree_size"), "checkpoint": body.get("latest_checkpoint_id"),
                "source": "status"}
    if status != 404:
        raise SystemExit(f"FAIL: GET /ledger/status answered {status}: {body}")
    entries = must(http("GET", f"{url}/ledger?limit=1", headers), 200).get("entries", [])
    checkpoints = must(http("GET", f"{url}/ledger/checkpoints?limit=1", headers), 200).get("checkpoints", [])
    committed = entries[-1]["seq"] if entries else 0
    tree_size = checkpoints[-1]["tree_size"] if checkpoints else 0
    behind = max(0, committed - tree_size)
    source, lag = "fallback", 0.0
    if behind:
        oldest = embedded_oldest_unsealed(data_dir, tenant["tenant_id"]) if data_dir else None
        if oldest is not None:
            lag = max(0.0, time.time() - oldest)
        else:
            source, lag = "fallback~", behind / rate if rate else 0.0
    return {"events_behind": behind, "lag_seconds": lag, "tree_size": tree_size,
            "checkpoint": checkpoints[-1]["checkpoint_id"] if checkpoints else None, "source": source}


def cmd_lag_sample(args) -> int:
    tenants = json.loads(Path(args.tenants).read_text())
    elapsed = time.time() - args.started
    with open(args.log, "a") as log:
        for i, t in enumerate(tenants, 1):
            lag = tenant_lag(args.url, t, args.data_dir, args.rate)
            lag.update(t=round(elapsed, 1), tenant=t["tenant_id"], phase=args.phase)
            log.write(json.dumps(lag) + "\n")
            mark = "" if lag["lag_seconds"] <= 2 * args.interval else "  <-- over 2 intervals"
            approx = "~" if lag["source"].endswith("~") else ""
            print(f"t+{elapsed:6.1f}s {args.phase:<5} tenant {i} ({t['tenant_id'][:12]}): "
                  f"events behind {lag['events_behind']:>6,}, lag {approx}{lag['lag_seconds']:5.1f} s, "
                  f"tree size {lag['tree_size'] or 0:>7,}, checkpoint {lag['checkpoint']} [{lag['source']}]{mark}",
                  flush=True)
    return 0


def cmd_caught_up(args) -> int:
    """Exit 0 when every tenant has nothing unsealed and its latest checkpoint is exported."""
    for t in json.loads(Path(args.tenants).read_text()):
        lag = tenant_lag(args.url, t, args.data_dir, 0)
        latest = must(http("GET", f"{args.url}/ledger/checkpoints?limit=1", {"X-Vault-API-Key": t["auditor"]}),
                      200).get("checkpoints", [])
        if lag["events_behind"] or not latest or latest[-1].get("export_status") != "exported":
            return 1
    return 0


def cmd_lag_verdict(args) -> int:
    rows = [json.loads(line) for line in Path(args.log).read_text().splitlines() if line.strip()]
    bound = 2 * args.interval
    status = 0
    for tenant in dict.fromkeys(r["tenant"] for r in rows):
        mine = [r for r in rows if r["tenant"] == tenant]
        worst = max(mine, key=lambda r: r["lag_seconds"])
        most = max(r["events_behind"] for r in mine)
        ok = worst["lag_seconds"] <= bound
        print(f"# tenant {tenant}: {len(mine)} samples, max lag {worst['lag_seconds']:.1f} s (at t+{worst['t']}s), "
              f"max events behind {most:,}; bound {bound:.0f} s: {'ok' if ok else 'EXCEEDED'}")
        if not ok:
            fail(f"tenant {tenant}: lag {worst['lag_seconds']:.1f} s > 2 x {args.interval} s")
            status = 1
    return status


# ----- export check ------------------------------------------------------------------------------------------

class FolderExport:
    def __init__(self, root: Path):
        self.root = root

    def location(self, tenant: str) -> str:
        return f"file://{(self.root / tenant).resolve()}"

    def checkpoint_ids(self, tenant: str) -> list[int]:
        folder = self.root / tenant / "checkpoints"
        return [int(p.stem) for p in folder.glob("*.json") if p.stem.isdigit()] if folder.is_dir() else []

    def read(self, tenant: str, key: str) -> bytes:
        return (self.root / tenant / key).read_bytes()


class S3Export:
    def __init__(self, bucket: str, prefix: str):
        import boto3  # from .venv
        self.s3 = boto3.client("s3", endpoint_url=os.environ.get("AWS_ENDPOINT_URL"))
        self.bucket, self.prefix = bucket, prefix.strip("/")

    def _key(self, tenant: str, key: str) -> str:
        return "/".join(p for p in (self.prefix, tenant, key) if p)

    def location(self, tenant: str) -> str:
        return f"s3://{self.bucket}/{self._key(tenant, '')}".rstrip("/")

    def checkpoint_ids(self, tenant: str) -> list[int]:
        ids = []
        base = self._key(tenant, "checkpoints/")
        for page in self.s3.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=base):
            for obj in page.get("Contents", []):
                stem = obj["Key"][len(base):].removesuffix(".json")
                if stem.isdigit():
                    ids.append(int(stem))
        return ids

    def read(self, tenant: str, key: str) -> bytes:
        return self.s3.get_object(Bucket=self.bucket, Key=self._key(tenant, key))["Body"].read()


def cmd_export_check(args) -> int:
    if args.backend == "embedded":
        export = FolderExport(Path(args.data_dir) / "anchors" / args.prefix)
    else:
        export = S3Export(args.bucket, args.prefix)
    status = 0
    for t in json.loads(Path(args.tenants).read_text()):
        tenant = t["tenant_id"]
        problems = []
        recorded = must(http("GET", f"{args.url}/ledger/checkpoints?limit=10000", {"X-Vault-API-Key": t["auditor"]}),
                        200)["checkpoints"]
        n = recorded[-1]["checkpoint_id"] if recorded else 0
        ids = sorted(export.checkpoint_ids(tenant))
        if ids != list(range(1, n + 1)):
            missing = sorted(set(range(1, n + 1)) - set(ids))
            extra = sorted(set(ids) - set(range(1, n + 1)))
            problems.append(f"export holds {len(ids)} checkpoints, the vault {n}; missing {missing[:10]}, "
                            f"extra {extra[:10]}")
        by_id = {c["checkpoint_id"]: c for c in recorded}
        prev_hash, prev_size, prev_at = "", 0, ""
        for i in ids:
            c = json.loads(export.read(tenant, f"checkpoints/{i}.json"))
            where = f"checkpoints/{i}.json"
            if c.get("checkpoint_id") != i:
                problems.append(f"{where} holds checkpoint_id {c.get('checkpoint_id')}")
            if (c.get("prev_checkpoint_hash") or "") != prev_hash:
                problems.append(f"{where}: prev_checkpoint_hash does not chain to checkpoint {i - 1}")
            if c.get("tree_size", 0) <= prev_size:
                problems.append(f"{where}: tree_size {c.get('tree_size')} after {prev_size}")
            if c.get("export_status") != "exported" or not c.get("export_uri", "").endswith(where):
                problems.append(f"{where}: export_status {c.get('export_status')!r}, uri {c.get('export_uri')!r}")
            if (c.get("exported_at") or "") < prev_at:
                problems.append(f"{where}: exported at {c.get('exported_at')}, before checkpoint {i - 1}")
            mine = by_id.get(i)
            if mine and (mine["checkpoint_hash"], mine["tree_size"]) != (c.get("checkpoint_hash"), c.get("tree_size")):
                problems.append(f"{where} differs from the vault's record of checkpoint {i}")
            prev_hash, prev_size, prev_at = c.get("checkpoint_hash") or "", c.get("tree_size", 0), c.get("exported_at") or ""
        if ids and n:
            note = export.read(tenant, "checkpoint").decode(errors="replace").splitlines()
            if len(note) < 2 or note[1].strip() != str(recorded[-1]["tree_size"]):
                problems.append(f"the signed `checkpoint` note says tree size {note[1:2]}, "
                                f"the latest checkpoint {recorded[-1]['tree_size']}")
        last = recorded[-1]["tree_size"] if recorded else 0
        verdict = "ok" if not problems and n else "FAILED"
        print(f"# export {export.location(tenant)}: {len(ids)} checkpoint objects for the vault's 1..{n} "
              f"(tree size {last:,}); all present, chained, in order: {verdict}")
        for p in problems[:20]:
            fail(f"tenant {tenant}: {p}")
        if problems or not n:
            if not n:
                fail(f"tenant {tenant}: no checkpoint at all")
            status = 1
    return status


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("bodies"); p.add_argument("n", type=int); p.add_argument("out")
    p.set_defaults(func=cmd_bodies)
    for name, func in (("oha-summary", cmd_oha_summary), ("loadgen-summary", cmd_loadgen_summary)):
        p = sub.add_parser(name); p.add_argument("label"); p.add_argument("file"); p.set_defaults(func=func)
    p = sub.add_parser("db-stats"); p.add_argument("data_dir"); p.set_defaults(func=cmd_db_stats)
    p = sub.add_parser("soak-row")
    for a, t in (("--minute", int), ("--pid", int), ("--wal-max", int)):
        p.add_argument(a, type=t, required=True)
    p.add_argument("--data-dir", required=True); p.add_argument("--log", required=True)
    p.add_argument("--oha"); p.add_argument("--loadgen")
    p.add_argument("--cpu-before", help="a file holding cpu_times() taken when the run began")
    p.set_defaults(func=cmd_soak_row)
    p = sub.add_parser("cpu-times")
    p.set_defaults(func=lambda _args: print(" ".join(map(str, cpu_times()))) or 0)
    p = sub.add_parser("soak-summary"); p.add_argument("log"); p.set_defaults(func=cmd_soak_summary)
    p = sub.add_parser("tenants")
    p.add_argument("url"); p.add_argument("admin_key"); p.add_argument("n", type=int); p.add_argument("out")
    p.set_defaults(func=cmd_tenants)
    for name, func in (("lag-sample", cmd_lag_sample), ("caught-up", cmd_caught_up)):
        p = sub.add_parser(name)
        p.add_argument("--url", required=True); p.add_argument("--tenants", required=True)
        p.add_argument("--data-dir"); p.add_argument("--log"); p.add_argument("--phase", default="load")
        p.add_argument("--started", type=float, default=time.time()); p.add_argument("--rate", type=float, default=0)
        p.add_argument("--interval", type=float, default=30); p.set_defaults(func=func)
    p = sub.add_parser("lag-verdict"); p.add_argument("log"); p.add_argument("interval", type=float)
    p.set_defaults(func=cmd_lag_verdict)
    p = sub.add_parser("export-check")
    p.add_argument("--url", required=True); p.add_argument("--tenants", required=True)
    p.add_argument("--backend", choices=["embedded", "aws"], required=True)
    p.add_argument("--data-dir"); p.add_argument("--bucket"); p.add_argument("--prefix", default="ledgix")
    p.set_defaults(func=cmd_export_check)
    args = parser.parse_args()
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
