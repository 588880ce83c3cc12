#!/usr/bin/env python3
"""Fault tests against the compose network (run by `./testnet/compose.sh test`).

With mixed bank and x/hpc traffic running throughout, each step injects a fault and
asserts its outcome:
  1. one of 4 validators stopped: the chain keeps committing; restarted: it catches up;
  2. two of 4 stopped: no commits; restarted: the chain resumes;
  3. a 2|2 network partition: no commits on either side; healed: it resumes;
  4. a validator's hpcd killed with SIGKILL: restarted by its restart policy, it replays
     and rejoins;
  5. an enforcer killed with SIGKILL under load: restarted, every job of its provider
     ends with exactly one audit record (its jobs in Slurm are adopted, not run twice);
  6. all validators stopped for 30 s while jobs wait: afterwards the enforcers' outboxes
     drain and every job ends with exactly one audit record;
  7. a burst of invalid txs (malformed, oversized, wrong chain id, replayed = wrong
     sequence, corrupted signature, wrong signer) to every node: all refused, balances
     unchanged, blocks go on;
and finally all 4 validators agree on every block's app hash (at least 200 blocks).
Every COMPLETED job ran in its provider's Slurm cluster (it carries a Slurm job id).

Environment: HPCD_BIN (host hpcd), COMPOSE_PROJECT, NODEi_RPC_PORT / NODEi_GRPC_PORT,
FAULTS_MIN_BLOCKS (default 200). Exit 1 on the first failed assertion.
"""

import base64
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
PROJECT = os.environ.get("COMPOSE_PROJECT", "virtengine")
HPCD = os.environ["HPCD_BIN"]
CHAIN_ID = "virtengine-localnet-1"
NODES = ["node0", "node1", "node2", "node3"]
MIN_BLOCKS = int(os.environ.get("FAULTS_MIN_BLOCKS", "200"))
DEFAULT_RPC = [26657, 26667, 26677, 26687]
DEFAULT_GRPC = [9090, 9091, 9092, 9093]


def rpc_port(i):
    return int(os.environ.get(f"NODE{i}_RPC_PORT", DEFAULT_RPC[i]))


def grpc_addr(i):
    return f"127.0.0.1:{os.environ.get(f'NODE{i}_GRPC_PORT', DEFAULT_GRPC[i])}"


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def fail(msg):
    log(f"FAILED: {msg}")
    sys.exit(1)


def run(cmd, check=True, timeout=120):
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if check and r.returncode != 0:
        fail(f"{' '.join(cmd)}: exit {r.returncode}: {r.stderr.strip()[-600:]}")
    return r


# Debian's docker-compose 1.29, else the Compose v2 plugin.
COMPOSE_TOOL = ["docker-compose"] if shutil.which("docker-compose") else ["docker", "compose"]


def compose(*args, check=True):
    return run(COMPOSE_TOOL + ["-f", os.path.join(HERE, "docker-compose.yml"), "-p", PROJECT, *args], check=check)


def container(service):
    cid = compose("ps", "-q", service).stdout.strip()
    if not cid:
        fail(f"no container for {service}")
    return cid


# ---------------------------------------------------------------------------
# Chain views: through `docker exec` (works while a node is cut off from the host's
# published ports) or the host RPC port.


def exec_rpc(node, path):
    r = run(["docker", "exec", container(node), "curl", "-sf", "-m", "3", f"http://127.0.0.1:26657/{path}"], check=False, timeout=20)
    if r.returncode != 0:
        return None
    try:
        return json.loads(r.stdout)["result"]
    except (ValueError, KeyError):
        return None


def height(node):
    st = exec_rpc(node, "status")
    return int(st["sync_info"]["latest_block_height"]) if st else -1


def heights(nodes=NODES):
    return {n: height(n) for n in nodes}


def host_rpc(i, path, timeout=10):
    with urllib.request.urlopen(f"http://127.0.0.1:{rpc_port(i)}/{path}", timeout=timeout) as r:
        return json.loads(r.read())


def wait(what, check, timeout):
    deadline = time.time() + timeout
    while time.time() < deadline:
        v = check()
        if v:
            return v
        time.sleep(1)
    fail(f"timed out after {timeout}s waiting for {what}")


def committing(nodes, blocks=3, timeout=60):
    """The highest height among `nodes` advances by `blocks`."""
    start = max(heights(nodes).values())
    wait(f"{blocks} new blocks on {nodes}", lambda: max(heights(nodes).values()) >= start + blocks, timeout)


def stalled(nodes, seconds=10):
    """No node of `nodes` commits a block for `seconds` (one in-flight block tolerated)."""
    time.sleep(3)
    before = heights(nodes)
    time.sleep(seconds)
    after = heights(nodes)
    for n in nodes:
        if after[n] > before[n] + 1:
            fail(f"{n} committed {before[n]} -> {after[n]} without a quorum")
    return after


def caught_up(nodes, timeout=180):
    """Every node of `nodes` reaches the height the highest one had when this started."""
    target = max(heights(nodes).values())
    last = {}

    def ok():
        last.update(heights(nodes))
        return min(last.values()) >= target
    deadline = time.time() + timeout
    while not ok():
        if time.time() > deadline:
            fail(f"{nodes} did not all reach height {target} within {timeout}s: {last}")
        time.sleep(1)


# ---------------------------------------------------------------------------
# Keys and the CLI


KEYS = tempfile.mkdtemp(prefix="compose-faults-keys-")


def recover_keys():
    with open(os.path.join(HERE, "dev-accounts.json")) as f:
        accounts = json.load(f)["accounts"]
    for a in accounts:
        subprocess.run(
            [HPCD, "keys", "add", a["name"], "--recover", "--overwrite", "--keyring-backend", "test", "--home", KEYS],
            input=a["mnemonic"], capture_output=True, text=True, check=True,
        )
    return {a["name"]: a["address"] for a in accounts}


def cli(args, node=0, timeout=60):
    return run([HPCD, *args, "--grpc-addr", grpc_addr(node), "-o", "json"], check=False, timeout=timeout)


def tx(args, node=0):
    return cli(["tx", *args, "--keyring-backend", "test", "--home", KEYS, "--chain-id", CHAIN_ID, "--yes"], node)


def query(args, node=0):
    r = cli(["query", *args], node)
    if r.returncode != 0:
        return None
    return json.loads(r.stdout)


def pubkey(name):
    """The 33-byte compressed secp256k1 public key of a dev key."""
    r = run([HPCD, "keys", "show", name, "--pubkey", "--keyring-backend", "test", "--home", KEYS])
    key = bytes.fromhex(r.stdout.strip())
    if len(key) != 33:
        fail(f"{name}'s public key has {len(key)} bytes, expected 33")
    return key


def balance(addr, node=0):
    q = query(["bank", "balances", addr], node)
    return q["balances"] if q else None


def submit_job(script, node=0):
    """bob submits a one-node script job; its job id, or None when the tx failed."""
    r = tx(["hpc", "submit-job", "--nodes", "1", "--max-runtime-seconds", "60", "--script", script, "--from", "bob"], node)
    if r.returncode != 0:
        return None
    for e in json.loads(r.stdout).get("events", []):
        if e["type"] == "hpc_job_scheduled":
            for a in e["attributes"]:
                if a["key"] == "job_id":
                    return a["value"]
    return None


# ---------------------------------------------------------------------------
# Traffic: bank sends (alice) and script jobs (bob), through whichever node answers.


class Traffic:
    def __init__(self, addrs, script):
        self.addrs, self.script = addrs, script
        self.sends = self.jobs_ok = self.errors = 0
        self.jobs = []
        self.stop = threading.Event()
        self.paused = threading.Event()

    def _loop(self, body):
        while not self.stop.is_set():
            if self.paused.is_set():
                time.sleep(0.5)
                continue
            node = random.choice([0, 1])  # node2/node3 may be cut off
            try:
                body(node)
            except Exception:  # a node down during a fault: counted, not fatal
                self.errors += 1
            time.sleep(0.3)

    def _send(self, node):
        r = tx(["bank", "send", "alice", self.addrs["bob"], "1uvirt"], node)
        if r.returncode == 0 and json.loads(r.stdout).get("code") == 0:
            self.sends += 1
        else:
            self.errors += 1

    def _job(self, node):
        job = submit_job(self.script, node)
        if job is None:
            self.errors += 1
            return
        self.jobs.append(job)
        self.jobs_ok += 1
        time.sleep(1.5)

    def start(self):
        self.threads = [threading.Thread(target=self._loop, args=(f,), daemon=True) for f in (self._send, self._job)]
        for t in self.threads:
            t.start()

    def finish(self):
        self.stop.set()
        for t in self.threads:
            t.join(timeout=90)


def jobs_settle(jobs, timeout=240):
    """Every job terminal with exactly one audit record (one decision attempt each)."""
    terminal = {"JOB_STATE_COMPLETED", "JOB_STATE_FAILED", "JOB_STATE_REJECTED"}

    def states():
        out = {}
        for j in jobs:
            q = query(["hpc", "job", j])
            out[j] = q["job"]["state"] if q else "?"
        return out

    last = {}

    def done():
        nonlocal last
        last = states()
        return all(s in terminal for s in last.values())

    deadline = time.time() + timeout
    while not done():
        if time.time() > deadline:
            pending = {j: s for j, s in last.items() if s not in terminal}
            fail(f"{len(pending)} of {len(jobs)} jobs not terminal after {timeout}s: {dict(list(pending.items())[:5])}")
        time.sleep(3)
    for j in jobs:
        if last[j] == "JOB_STATE_COMPLETED":
            local_id = (query(["hpc", "job", j]) or {}).get("job", {}).get("local_job_id", "")
            if not local_id.isdigit():
                fail(f"{j} COMPLETED without a Slurm job id (local_job_id {local_id!r})")
        q = query(["hpc", "audit-records", "--job", j]) or {}
        records = q.get("records", [])
        by_decision = {}
        for r in records:
            by_decision.setdefault(r["scheduling_decision_id"], []).append(r["record_id"])
        if not records or any(len(v) != 1 for v in by_decision.values()):
            fail(f"{j}: audit records {records}")
    completed = sum(1 for s in last.values() if s == "JOB_STATE_COMPLETED")
    return completed


def outboxes_drained(timeout=180):
    def drained():
        for svc in ("enforcer1", "enforcer2"):
            r = run(["docker", "exec", container(svc), "curl", "-sf", "-m", "3", "http://127.0.0.1:8081/status"], check=False)
            if r.returncode != 0 or json.loads(r.stdout).get("outbox_pending") != 0:
                return False
        return True
    wait("both enforcers' outboxes drained", drained, timeout)


def kill9(service):
    pid = run(["docker", "inspect", "-f", "{{.State.Pid}}", container(service)]).stdout.strip()
    run(["kill", "-9", pid])


# ---------------------------------------------------------------------------
# Steps


def step_one_down():
    log("1. node3 stopped: 3 of 4 keep committing")
    compose("stop", "node3")
    committing(["node0", "node1", "node2"], blocks=5)
    compose("start", "node3")
    caught_up(NODES)
    log("   node3 restarted and caught up")


def step_two_down():
    log("2. node2 and node3 stopped: no quorum, no commits")
    compose("stop", "node2", "node3")
    stalled(["node0", "node1"])
    compose("start", "node2", "node3")
    committing(NODES, blocks=3, timeout=120)
    caught_up(NODES)
    log("   restarted: the chain resumed")


def step_partition():
    log("3. 2|2 partition (node0,node1 | node2,node3): no commits on either side")
    net = f"{PROJECT}_default"
    side_b = f"{PROJECT}_side_b"
    run(["docker", "network", "create", side_b])
    try:
        for n in ("node2", "node3"):
            run(["docker", "network", "connect", "--alias", n, side_b, container(n)])
            run(["docker", "network", "disconnect", net, container(n)])
        stalled(NODES, seconds=15)
    finally:
        for n in ("node2", "node3"):
            run(["docker", "network", "connect", "--alias", n, net, container(n)], check=False)
            run(["docker", "network", "disconnect", side_b, container(n)], check=False)
        run(["docker", "network", "rm", side_b], check=False)
    committing(NODES, blocks=3, timeout=180)
    caught_up(NODES)
    log("   healed: the chain resumed")


def step_kill_hpcd():
    log("4. node1's hpcd killed with SIGKILL under load")
    before = height("node1")
    kill9("node1")
    wait("node1 back and past its height", lambda: height("node1") > before + 2, 120)
    caught_up(NODES)
    log("   node1 restarted by its restart policy, replayed and rejoined")


def step_kill_enforcer(traffic):
    log("5. enforcer1 killed with SIGKILL under load")
    time.sleep(5)
    kill9("enforcer1")
    time.sleep(5)
    wait("enforcer1 healthy again", lambda: run(["docker", "inspect", "-f", "{{.State.Health.Status}}", container("enforcer1")]).stdout.strip() == "healthy", 120)
    log("   enforcer1 restarted")


def step_all_down(traffic):
    log("6. all validators stopped for 30 s while jobs wait")
    traffic.paused.set()
    time.sleep(2)
    waiting = [j for j in (submit_job(traffic.script) for _ in range(3)) if j]
    if len(waiting) != 3:
        fail(f"submitting the waiting jobs failed: {waiting}")
    traffic.jobs.extend(waiting)
    compose("stop", *NODES)
    time.sleep(30)
    compose("start", *NODES)
    committing(NODES, blocks=3, timeout=180)
    traffic.paused.clear()
    outboxes_drained()
    log(f"   restarted; outboxes drained ({len(waiting)} jobs were waiting)")


# Cosmos SDK error codes (codespace sdk) CheckTx answers with.
SDK_TX_DECODE, SDK_UNAUTHORIZED, SDK_INVALID_PUBKEY, SDK_WRONG_SEQUENCE = 2, 4, 8, 32


def broadcast_raw(i, data, timeout=10):
    """broadcast_tx_sync of raw bytes to node i: the JSON-RPC answer."""
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "broadcast_tx_sync",
                       "params": {"tx": base64.b64encode(data).decode()}}).encode()
    req = urllib.request.Request(f"http://127.0.0.1:{rpc_port(i)}", data=body, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=timeout) as resp:
        return json.loads(resp.read())


def sign_only(args):
    """The bytes of a tx the CLI signs (at alice's current sequence) but does not send."""
    r = cli(["tx", *args, "--keyring-backend", "test", "--home", KEYS, "--gas", "200000", "--yes", "--sign-only"])
    if r.returncode != 0:
        fail(f"--sign-only failed: {r.stderr.strip()}")
    return base64.b64decode(r.stdout.strip())


def invalid_txs(addrs):
    """(name, bytes, the CheckTx codes that refuse it for the right reason)."""
    send = ["bank", "send", "alice", addrs["bob"], "1uvirt"]
    # A committed tx: sending it again reuses its sequence.
    committed = json.loads(tx(send).stdout)["txhash"]
    replayed = base64.b64decode(host_rpc(0, f"tx?hash=0x{committed}")["result"]["tx"])
    # Valid at alice's current sequence, never sent as signed.
    fresh = sign_only([*send, "--chain-id", CHAIN_ID])
    corrupted = bytearray(fresh)
    corrupted[-1] ^= 0xFF  # TxRaw ends with the signature
    # Wrong signer: alice's message and signature, bob's public key in the signer info
    # (both keys are 33 bytes, so the encoding stays valid).
    alice_pk, bob_pk = pubkey("alice"), pubkey("bob")
    if fresh.count(alice_pk) != 1:
        fail("alice's public key is not in her tx exactly once")
    return [
        # A TxRaw whose first field claims 4 GiB.
        ("malformed", b"\x0a\x80\x80\x80\x80\x10" + os.urandom(194), {SDK_TX_DECODE}),
        ("replayed (used sequence)", replayed, {SDK_WRONG_SEQUENCE}),
        ("corrupted signature", bytes(corrupted), {SDK_UNAUTHORIZED}),
        ("wrong signer", fresh.replace(alice_pk, bob_pk), {SDK_INVALID_PUBKEY}),
        ("signed for another chain id", sign_only([*send, "--chain-id", "not-this-chain"]), {SDK_UNAUTHORIZED}),
    ]


def step_invalid_burst(addrs):
    log("7. a burst of invalid txs to every node")
    bad = invalid_txs(addrs)
    bal = balance(addrs["alice"])
    refused = 0
    for i in range(4):
        for name, data, codes in bad:
            res = broadcast_raw(i, data)
            # Refused by CheckTx with the code of its fault, or before it by CometBFT (an
            # RPC error, e.g. a committed tx still in the mempool cache).
            code = res.get("result", {}).get("code")
            if "error" not in res and code not in codes:
                fail(f"node{i}: a {name} tx got code {code}, expected one of {sorted(codes)}: {res}")
            refused += 1
        # Oversized: refused at the RPC or by CheckTx.
        try:
            res = broadcast_raw(i, os.urandom(3 * 1024 * 1024), timeout=20)
            if "error" not in res and not res.get("result", {}).get("code"):
                fail(f"node{i} accepted an oversized tx")
        except (urllib.error.HTTPError, urllib.error.URLError, ConnectionError):
            pass
        refused += 1
    if balance(addrs["alice"]) != bal:
        fail("alice's balance changed during the burst of invalid txs")
    committing(NODES, blocks=3)
    log(f"   {refused} invalid txs refused, each for its fault; balances unchanged, blocks go on")


def app_hash_agreement(min_blocks):
    top = min(host_rpc(i, "status")["result"]["sync_info"]["latest_block_height"] for i in range(4))
    top = int(top)
    if top < min_blocks:
        wait(f"height {min_blocks}", lambda: min(height(n) for n in NODES) >= min_blocks, 600)
        top = min(height(n) for n in NODES)
    seen = {}
    for i in range(4):
        h = 1
        while h <= top:
            hi = min(h + 19, top)
            metas = host_rpc(i, f"blockchain?minHeight={h}&maxHeight={hi}")["result"]["block_metas"]
            for m in metas:
                hh = int(m["header"]["height"])
                key = (m["header"]["app_hash"], m["block_id"]["hash"])
                if seen.setdefault(hh, key) != key:
                    fail(f"node{i} disagrees at height {hh}: {key} vs {seen[hh]}")
            h = hi + 1
    missing = [h for h in range(1, top + 1) if h not in seen]
    if missing:
        fail(f"heights missing from the comparison: {missing[:5]}")
    log(f"all 4 validators agree on the app hash and block hash of every height 1..{top}")
    return top


def node_usage():
    """RSS (MiB) and data size (MiB) of each validator's container."""
    out = {}
    for n in NODES:
        cid = container(n)
        mem = run(["docker", "stats", "--no-stream", "--format", "{{.MemUsage}}", cid]).stdout.split("/")[0].strip()
        du = run(["docker", "exec", cid, "du", "-sm", f"/data/{n}"]).stdout.split()[0]
        out[n] = (mem, int(du))
    return out


def soak(minutes, max_jobs):
    """Drives jobs through the network for `minutes` (at most `max_jobs` jobs) and reports."""
    addrs = recover_keys()
    script = os.path.join(KEYS, "job.sh")
    with open(script, "w") as f:
        f.write("#!/bin/sh\necho \"soak job $HPC_JOB_ID\"\n")
    start_height = max(heights().values())
    usage_before = node_usage()
    traffic = Traffic(addrs, script)
    traffic.start()
    deadline = time.time() + 60 * minutes
    max_mempool = 0
    while time.time() < deadline and len(traffic.jobs) < max_jobs:
        pending = host_rpc(0, "num_unconfirmed_txs")["result"]["n_txs"]
        max_mempool = max(max_mempool, int(pending))
        time.sleep(2)
    traffic.finish()
    completed = jobs_settle(traffic.jobs)
    outboxes_drained()
    records = violations = decisions = lost = 0
    for j in traffic.jobs:
        n_records = len((query(["hpc", "audit-records", "--job", j]) or {}).get("records", []))
        records += n_records
        lost += n_records == 0
        violations += len((query(["hpc", "violations", "--job", j]) or {}).get("violations", []))
        decisions += len((query(["hpc", "decision-by-job", j]) or {}).get("history", []) or [1])
    end_height = max(heights().values())
    top = app_hash_agreement(0)
    usage_after = node_usage()
    print(f"soak: {minutes} min, blocks {start_height}..{end_height} ({end_height - start_height})")
    print(f"  jobs submitted      {len(traffic.jobs)} ({completed} COMPLETED)")
    print(f"  decisions           {decisions}")
    print(f"  audit records       {records}")
    print(f"  violations          {violations}")
    print(f"  lost                {lost}")
    print(f"  bank sends          {traffic.sends}")
    print(f"  max mempool size    {max_mempool} txs (node0)")
    print(f"  app-hash agreement  heights 1..{top} on 4 validators")
    for n in NODES:
        (m0, d0), (m1, d1) = usage_before[n], usage_after[n]
        print(f"  {n}: memory {m0} -> {m1}, data {d0} MiB -> {d1} MiB (+{d1 - d0})")
    if lost:
        fail(f"{lost} jobs without an audit record")


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "soak":
        minutes = float(sys.argv[2]) if len(sys.argv) > 2 else 5
        max_jobs = int(sys.argv[3]) if len(sys.argv) > 3 else 10_000
        if not 0 < minutes <= 24 * 60 or not 0 < max_jobs <= 1_000_000:
            fail("usage: compose_faults.py soak MINUTES(0-1440] [MAX_JOBS]")
        soak(minutes, max_jobs)
        return
    t0 = time.time()
    addrs = recover_keys()
    script = os.path.join(KEYS, "job.sh")
    with open(script, "w") as f:
        f.write("#!/bin/sh\necho \"fault-test job $HPC_JOB_ID\"\n")
    committing(NODES, blocks=2)
    traffic = Traffic(addrs, script)
    traffic.start()
    time.sleep(10)
    step_one_down()
    step_two_down()
    step_partition()
    step_kill_hpcd()
    step_kill_enforcer(traffic)
    step_all_down(traffic)
    time.sleep(10)
    traffic.finish()
    completed = jobs_settle(traffic.jobs)
    outboxes_drained()
    log(f"traffic: {traffic.sends} bank sends, {len(traffic.jobs)} jobs ({completed} COMPLETED), "
        f"{traffic.errors} refused or failed calls during faults; every job has exactly one audit record")
    step_invalid_burst(addrs)
    top = app_hash_agreement(MIN_BLOCKS)
    log(f"all fault tests passed in {int(time.time() - t0)}s ({top} blocks)")


if __name__ == "__main__":
    main()
