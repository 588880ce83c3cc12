// CosmJS 0.39, unchanged, against a VirtEngine node: bank sends and an x/hpc job with
// `fee: "auto"` (simulation), balance, account and tx-search queries, and a WebSocket
// subscription that sees the job routed by a provider's enforcer. The x/hpc message type
// comes from the repository's .proto files (protobufjs), in a registry of this script's own.
//
// Environment: RPC_URL (CometBFT RPC, http://), CHAIN_ID, DEV_ACCOUNTS
// (testnet/dev-accounts.json), PROTO_DIR (the repository's proto/). Run by interop/run.sh.
import { existsSync, readFileSync } from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";

import { DirectSecp256k1HdWallet, Registry } from "@cosmjs/proto-signing";
import { GasPrice, SigningStargateClient, defaultRegistryTypes } from "@cosmjs/stargate";
import { Comet38Client, WebsocketClient } from "@cosmjs/tendermint-rpc";
import protobuf from "protobufjs";

const env = (name) => {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set`);
  return value;
};
const RPC_URL = env("RPC_URL");
const CHAIN_ID = env("CHAIN_ID");
const PROTO_DIR = env("PROTO_DIR");
const DENOM = "uvirt";
const SUBMIT_JOB_URL = "/virtengine.hpc.v1.MsgSubmitJob";

function check(condition, what) {
  if (!condition) throw new Error(`check failed: ${what}`);
  console.log(`  ok ${what}`);
}

function attribute(events, type, key) {
  for (const event of events) {
    if (event.type !== type) continue;
    const found = event.attributes.find((a) => a.key === key);
    if (found) return found.value;
  }
  return undefined;
}

async function wallet(name) {
  const accounts = JSON.parse(readFileSync(env("DEV_ACCOUNTS"), "utf8")).accounts;
  const account = accounts.find((a) => a.name === name);
  const w = await DirectSecp256k1HdWallet.fromMnemonic(account.mnemonic, { prefix: "virtengine" });
  const [{ address }] = await w.getAccounts();
  check(address === account.address, `${name}'s key derives ${account.address}`);
  return { wallet: w, address };
}

// The x/hpc messages from the .proto files, found under PROTO_DIR, its third_party/ and
// (google/protobuf/descriptor.proto) protobufjs's own copy.
function hpcRegistry() {
  const protobufjsDir = path.dirname(createRequire(import.meta.url).resolve("protobufjs/package.json"));
  const root = new protobuf.Root();
  root.resolvePath = (_origin, target) => {
    const dirs = [PROTO_DIR, path.join(PROTO_DIR, "third_party"), protobufjsDir];
    const found = dirs.map((dir) => path.join(dir, target)).find((candidate) => existsSync(candidate));
    return found ?? target; // google/protobuf/timestamp.proto: built into protobufjs
  };
  root.loadSync("virtengine/hpc/v1/tx.proto");
  const registry = new Registry(defaultRegistryTypes);
  registry.register(SUBMIT_JOB_URL, root.lookupType("virtengine.hpc.v1.MsgSubmitJob"));
  return registry;
}

async function signingClient(signer, registry) {
  return SigningStargateClient.connectWithSigner(RPC_URL, signer.wallet, {
    registry,
    gasPrice: GasPrice.fromString(`0.025${DENOM}`),
  });
}

async function bank(alice, bob, registry) {
  console.log("bank: send with fee \"auto\", queries, tx search");
  const client = await signingClient(alice, registry);
  check((await client.getChainId()) === CHAIN_ID, `chain id ${CHAIN_ID}`);
  const before = BigInt((await client.getBalance(bob.address, DENOM)).amount);
  const account = await client.getAccount(alice.address);
  check(account !== null && account.address === alice.address, "getAccount(alice)");
  const amount = [{ denom: DENOM, amount: "1234" }];
  const simulated = await client.simulate(
    alice.address,
    [{ typeUrl: "/cosmos.bank.v1beta1.MsgSend", value: { fromAddress: alice.address, toAddress: bob.address, amount } }],
    "",
  );
  check(simulated > 0, `simulate: ${simulated} gas`);
  const sent = await client.sendTokens(alice.address, bob.address, amount, "auto");
  check(sent.code === 0, `sendTokens(…, "auto") committed at height ${sent.height}: ${sent.transactionHash}`);
  check(
    sent.gasUsed <= sent.gasWanted,
    `gas used ${sent.gasUsed} within the auto limit ${sent.gasWanted} (simulated ${simulated})`,
  );
  const after = BigInt((await client.getBalance(bob.address, DENOM)).amount);
  check(after - before === 1234n, `bob's balance grew by 1234${DENOM}`);
  const next = await client.getAccount(alice.address);
  check(next.sequence === account.sequence + 1, `alice's sequence ${account.sequence} -> ${next.sequence}`);
  const found = await client.searchTx([
    { key: "message.sender", value: alice.address },
    { key: "tx.height", value: sent.height },
  ]);
  check(
    found.some((tx) => tx.hash === sent.transactionHash),
    `searchTx(message.sender, tx.height) finds ${sent.transactionHash}`,
  );
  client.disconnect();
}

async function hpcJob(bob, registry) {
  console.log("x/hpc: MsgSubmitJob from the .proto files, routed event over WebSocket");
  const ws = await Comet38Client.create(new WebsocketClient(RPC_URL.replace(/^http/, "ws")));
  const routed = [];
  const subscription = ws
    .subscribeTx("tm.event='Tx' AND hpc_job_routed.job_id EXISTS")
    .subscribe({ next: (tx) => routed.push(tx), error: (e) => console.error("subscription:", e) });
  const client = await signingClient(bob, registry);
  const msg = {
    typeUrl: SUBMIT_JOB_URL,
    value: {
      owner: bob.address,
      requirements: { nodes: 1, maxRuntimeSeconds: 60 },
      workload: { inlineScript: new TextEncoder().encode("#!/bin/sh\necho from cosmjs\n") },
    },
  };
  const submitted = await client.signAndBroadcast(bob.address, [msg], "auto", "cosmjs interop");
  check(submitted.code === 0, `signAndBroadcast(MsgSubmitJob, "auto") committed: ${submitted.transactionHash}`);
  const jobId = attribute(submitted.events, "hpc_job_scheduled", "job_id");
  check(jobId !== undefined, `hpc_job_scheduled names the job: ${jobId}`);
  const deadline = Date.now() + 60_000;
  let seen;
  while (!seen && Date.now() < deadline) {
    seen = routed.find((tx) => attribute(tx.result.events, "hpc_job_routed", "job_id") === jobId);
    await new Promise((r) => setTimeout(r, 250));
  }
  check(seen !== undefined, `hpc_job_routed for ${jobId} arrived over the WebSocket subscription`);
  const cluster = attribute(seen.result.events, "hpc_job_routed", "cluster_id");
  check(Boolean(cluster), `routed to ${cluster}`);
  subscription.unsubscribe();
  ws.disconnect();
  client.disconnect();
}

async function main() {
  const registry = hpcRegistry();
  const alice = await wallet("alice");
  const bob = await wallet("bob");
  await bank(alice, bob, registry);
  await hpcJob(bob, registry);
  console.log("cosmjs: all checks passed");
}

main().then(
  () => process.exit(0),
  (e) => {
    console.error(`cosmjs: ${e.stack ?? e}`);
    process.exit(1);
  },
);
