"""cosmpy 0.12.2, unchanged, against a VirtEngine node: send_tokens (gas estimated by
simulation, the block gas limit read from cosmos.consensus.v1), balance and account
queries, GetTxsEvent, an x/hpc MsgSubmitJob built from the repository's .proto files
(compiled here with grpcio-tools) and the hpc_job_routed event over CometBFT's WebSocket.

Environment: GRPC_ADDR (host:port), RPC_URL (CometBFT RPC, http://), CHAIN_ID,
DEV_ACCOUNTS (testnet/dev-accounts.json), PROTO_DIR (the repository's proto/). Run by
interop/run.sh.
"""

import asyncio
import importlib
import json
import os
import sys
import tempfile
import time

from cosmpy.aerial.client import LedgerClient, NetworkConfig
from cosmpy.aerial.client.utils import prepare_and_broadcast_basic_transaction
from cosmpy.aerial.tx import Transaction
from cosmpy.aerial.wallet import LocalWallet
from cosmpy.protos.cosmos.tx.v1beta1.service_pb2 import GetTxsEventRequest
from grpc_tools import protoc
import websockets

DENOM = "uvirt"


def env(name):
    value = os.environ.get(name)
    if not value:
        sys.exit(f"cosmpy: {name} is not set")
    return value


def check(condition, what):
    if not condition:
        raise AssertionError(f"check failed: {what}")
    print(f"  ok {what}", flush=True)


def wallet(name):
    with open(env("DEV_ACCOUNTS")) as f:
        account = next(a for a in json.load(f)["accounts"] if a["name"] == name)
    w = LocalWallet.from_mnemonic(account["mnemonic"], prefix="virtengine")
    check(str(w.address()) == account["address"], f"{name}'s key derives {account['address']}")
    return w


def hpc_tx_module():
    """virtengine.hpc.v1's tx_pb2, compiled from the .proto files; their cosmos imports
    resolve to cosmpy's own generated modules."""
    proto_dir = env("PROTO_DIR")
    out = tempfile.mkdtemp(prefix="interop-cosmpy-")
    sources = [os.path.join("virtengine/hpc/v1", f) for f in sorted(os.listdir(os.path.join(proto_dir, "virtengine/hpc/v1")))]
    include = os.path.join(os.path.dirname(protoc.__file__), "_proto")
    args = ["protoc", f"-I{proto_dir}", f"-I{proto_dir}/third_party", f"-I{include}", f"--python_out={out}", *sources]
    if protoc.main(args) != 0:
        sys.exit(f"cosmpy: protoc failed on {sources}")
    sys.path.insert(0, out)
    return importlib.import_module("virtengine.hpc.v1.tx_pb2")


def attribute(events, kind, key):
    for event in events:
        if event["type"] == kind:
            for a in event["attributes"]:
                if a["key"] == key:
                    return a["value"]
    return None


def bank(client, alice, bob):
    print("bank: send_tokens with a simulated gas limit, queries, GetTxsEvent", flush=True)
    before = client.query_bank_balance(bob.address(), DENOM)
    account = client.query_account(alice.address())
    check(str(account.address) == str(alice.address()), f"query_account(alice): number {account.number}, sequence {account.sequence}")
    tx = client.send_tokens(bob.address(), 1234, DENOM, alice)
    tx.wait_to_complete()
    check(tx.response.code == 0, f"send_tokens committed at height {tx.response.height}: {tx.tx_hash}")
    check(tx.response.gas_used <= tx.response.gas_wanted, f"gas used {tx.response.gas_used} within the estimated limit {tx.response.gas_wanted}")
    after = client.query_bank_balance(bob.address(), DENOM)
    check(after - before == 1234, f"bob's balance grew by 1234{DENOM}")
    check(client.query_account(alice.address()).sequence == account.sequence + 1, "alice's sequence advanced by one")
    found = client.txs.GetTxsEvent(GetTxsEventRequest(query=f"message.sender='{alice.address()}' AND tx.height={tx.response.height}"))
    check(any(r.txhash == tx.tx_hash for r in found.tx_responses), f"GetTxsEvent(query=message.sender…) finds {tx.tx_hash} ({found.total} in all)")


async def routed_events(rpc_url, seen, ready):
    """Collects hpc_job_routed txs from a CometBFT WebSocket subscription."""
    async with websockets.connect(rpc_url.replace("http", "ws", 1) + "/websocket") as ws:
        query = "tm.event='Tx' AND hpc_job_routed.job_id EXISTS"
        await ws.send(json.dumps({"jsonrpc": "2.0", "id": 1, "method": "subscribe", "params": {"query": query}}))
        ready.set()
        async for raw in ws:
            result = json.loads(raw).get("result", {})
            tx_result = result.get("data", {}).get("value", {}).get("TxResult")
            if tx_result:
                seen.append(tx_result["result"].get("events", []))


async def hpc_job(client, bob, tx_pb2):
    print("x/hpc: MsgSubmitJob from the .proto files, routed event over WebSocket", flush=True)
    seen, ready = [], asyncio.Event()
    listener = asyncio.create_task(routed_events(env("RPC_URL"), seen, ready))
    await asyncio.wait_for(ready.wait(), 10)
    msg = tx_pb2.MsgSubmitJob(owner=str(bob.address()))
    msg.requirements.nodes = 1
    msg.requirements.max_runtime_seconds = 60
    msg.workload.inline_script = b"#!/bin/sh\necho from cosmpy\n"
    tx = Transaction()
    tx.add_message(msg)
    submitted = await asyncio.to_thread(prepare_and_broadcast_basic_transaction, client, tx, bob)
    await asyncio.to_thread(submitted.wait_to_complete)
    check(submitted.response.code == 0, f"MsgSubmitJob committed (gas estimated by simulation): {submitted.tx_hash}")
    job_id = submitted.response.events.get("hpc_job_scheduled", {}).get("job_id")
    check(job_id is not None, f"hpc_job_scheduled names the job: {job_id}")
    deadline = time.time() + 60
    routed = None
    while routed is None and time.time() < deadline:
        routed = next((events for events in seen if attribute(events, "hpc_job_routed", "job_id") == job_id), None)
        await asyncio.sleep(0.25)
    listener.cancel()
    check(routed is not None, f"hpc_job_routed for {job_id} arrived over the WebSocket subscription")
    check(bool(attribute(routed, "hpc_job_routed", "cluster_id")), f"routed to {attribute(routed, 'hpc_job_routed', 'cluster_id')}")


def main():
    tx_pb2 = hpc_tx_module()
    cfg = NetworkConfig(
        chain_id=env("CHAIN_ID"),
        url=f"grpc+http://{env('GRPC_ADDR')}",
        fee_minimum_gas_price=0.025,
        fee_denomination=DENOM,
        staking_denomination=DENOM,
    )
    client = LedgerClient(cfg)
    alice, bob = wallet("alice"), wallet("bob")
    bank(client, alice, bob)
    asyncio.run(hpc_job(client, bob, tx_pb2))
    print("cosmpy: all checks passed")


if __name__ == "__main__":
    try:
        main()
    except Exception as e:  # one line per failure, the traceback on request
        if os.environ.get("INTEROP_TRACEBACK"):
            raise
        sys.exit(f"cosmpy: {type(e).__name__}: {e}")
