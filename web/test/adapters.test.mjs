// The signing methods of the core (dist/core.js) and the viem / ethers adapters, with the
// MPC replaced by a test key: `signPreimage` (device + cosigner in production) is
// stubbed to sign keccak(preimage) with a plain private key, so everything around it —
// what is hashed and sent for each payload kind, how (r, s, yParity) are assembled into
// signed transactions, authorizations and 65-byte signatures, the adapters — is the
// package's own code, and viem's and ethers' verify/recover functions must accept the
// results. Also: WalletClient (inline mode) over the same core, and abort semantics.
// Run: npm test (after npm run build).
import assert from "node:assert/strict";
import { after, test } from "node:test";
import {
  createWalletClient,
  custom,
  hashTypedData,
  keccak256,
  parseTransaction,
  recoverAddress,
  recoverMessageAddress,
  recoverTransactionAddress,
  recoverTypedDataAddress,
  serializeSignature,
  serializeTransaction,
  verifyMessage,
  verifyTypedData as viemVerifyTypedData,
} from "viem";
import { privateKeyToAccount, sign } from "viem/accounts";
import { recoverAuthorizationAddress } from "viem/utils";
import { JsonRpcProvider, Network, Transaction, verifyAuthorization, verifyMessage as ethersVerifyMessage, verifyTypedData } from "ethers";
import { WalletCore } from "../dist/core.js";
import { WalletClient } from "../dist/index.js";
import { toViemAccount } from "../dist/viem.js";
import { WalletMpcSigner } from "../dist/ethers.js";
import { MAIL, PERMIT, TX_CASES } from "./fixtures.mjs";

const KEY = "0x8b3a350cf5c34c9194ca85829a2df0ec3153be0318b5e2d3348e872092edffba";
const key = privateKeyToAccount(KEY);
const ADDRESS = key.address;

/** What the stubbed signPreimage was asked to sign. */
const calls = [];
let gate; // when set, signPreimage waits for it (abort tests)

const realSignPreimage = WalletCore.prototype.signPreimage;
WalletCore.prototype.signPreimage = async function (preimage, digest, payloadKind, opts = {}) {
  calls.push({ preimage, digest, payloadKind, opts });
  if (gate) await gate;
  assert.equal(digest, "keccak256");
  const hash = keccak256(preimage);
  const s = await sign({ hash, privateKey: KEY });
  return {
    accountId: opts.accountId ?? "acct-0",
    derivationPath: opts.derivationPath ?? "m",
    r: s.r,
    s: s.s,
    yParity: s.yParity,
    v: 27 + s.yParity,
    rsv: serializeSignature(s),
    der: "",
    digest: hash,
    publicKey: key.publicKey.slice(2),
    ethereumAddress: ADDRESS,
    signers: [0, 1],
    requestId: "test",
    elapsedMs: 0,
    presigned: false,
  };
};
WalletCore.prototype.getPublicKey = async function (accountId, derivationPath) {
  return { accountId: accountId ?? "acct-0", derivationPath: derivationPath ?? "m", publicKey: "02" + "11".repeat(32), ethereumAddress: ADDRESS, bitcoinAddress: "" };
};
after(() => {
  WalletCore.prototype.signPreimage = realSignPreimage;
});

const core = new WalletCore({ cosignerUrl: "http://127.0.0.1:9" });
const last = () => calls[calls.length - 1];

test("core.signMessage: a \"0x…\" string signs its text; { raw } and bytes sign bytes", async () => {
  const text = await core.signMessage("0x1234");
  assert.equal(last().payloadKind, "ethereum_message");
  assert.equal(await recoverMessageAddress({ message: "0x1234", signature: text.rsv }), ADDRESS);
  assert.notEqual(await recoverMessageAddress({ message: { raw: "0x1234" }, signature: text.rsv }), ADDRESS);
  for (const m of [{ raw: "0x1234" }, { raw: Uint8Array.of(0x12, 0x34) }, Uint8Array.of(0x12, 0x34)]) {
    const raw = await core.signMessage(m);
    assert.equal(await recoverMessageAddress({ message: { raw: "0x1234" }, signature: raw.rsv }), ADDRESS);
  }
});

for (const [name, tx] of Object.entries(TX_CASES)) {
  test(`core.signTransaction ${name}: the signed transaction recovers to the signer and equals viem's`, async () => {
    const unsigned = serializeTransaction(tx);
    const r = await core.signTransaction(unsigned);
    assert.equal(last().payloadKind, "ethereum_transaction");
    assert.equal(keccak256(last().preimage), keccak256(unsigned));
    assert.equal(r.signedTransaction, await key.signTransaction(tx));
    assert.equal(r.transactionHash, keccak256(r.signedTransaction));
    assert.equal(await recoverTransactionAddress({ serializedTransaction: r.signedTransaction }), ADDRESS);
    const parsed = parseTransaction(r.signedTransaction);
    if (name === "eip155") assert.equal(BigInt(r.v), parsed.v);
    else if (name === "legacy") assert.equal(r.v, 27 + r.yParity);
    else assert.equal(r.v, r.yParity);
  });
}

test("core.signTypedData sends the typed data's JSON to the cosigner and the signature recovers", async () => {
  for (const td of [PERMIT, MAIL]) {
    const r = await core.signTypedData(td);
    const c = last();
    assert.equal(c.payloadKind, "ethereum_typed_data");
    assert.equal(keccak256(c.preimage), hashTypedData(td));
    assert.equal(JSON.parse(new TextDecoder().decode(c.opts.cosignerPayload)).primaryType, td.primaryType);
    assert.equal(await recoverTypedDataAddress({ ...td, signature: r.rsv }), ADDRESS);
  }
  // the cosigner payload is never sent for other kinds
  await core.signMessage("x");
  assert.equal(last().opts.cosignerPayload, undefined);
});

test("core.signAuthorization returns viem's SignedAuthorization; viem recovers the signer", async () => {
  const a = await core.signAuthorization({ contractAddress: "0x000000000000000000000000000000000000bEEF", chainId: 31337, nonce: 3 });
  assert.equal(last().payloadKind, "ethereum_authorization");
  assert.deepEqual(Object.keys(a).filter((k) => ["address", "chainId", "nonce", "r", "s", "yParity", "v"].includes(k)).sort(), ["address", "chainId", "nonce", "r", "s", "v", "yParity"]);
  assert.equal(a.v, 27n + BigInt(a.yParity));
  assert.equal(await recoverAuthorizationAddress({ authorization: a }), ADDRESS);
});

test("real signPreimage refuses a typed-data request without its JSON, and JSON for other kinds, before any I/O", async () => {
  const c = new WalletCore({ cosignerUrl: "http://127.0.0.1:9" });
  await assert.rejects(realSignPreimage.call(c, new Uint8Array(66), "keccak256", "ethereum_typed_data", {}), { code: "invalid_input" });
  await assert.rejects(realSignPreimage.call(c, new Uint8Array(3), "keccak256", "ethereum_message", { cosignerPayload: new Uint8Array(2) }), { code: "invalid_input" });
});

test("an aborted signal rejects with `aborted` before anything runs (real signPreimage)", async () => {
  const c = new WalletCore({ cosignerUrl: "http://127.0.0.1:9" });
  const ctl = new AbortController();
  ctl.abort("user closed the dialog");
  const err = await realSignPreimage.call(c, new Uint8Array(3), "keccak256", "raw", { signal: ctl.signal }).catch((e) => e);
  assert.equal(err.code, "aborted");
  assert.equal(err.name, "AbortedError");
  assert.equal(err.eip1193Code, 4001);
  assert.match(err.message, /user closed the dialog/);
  // the typed methods hand the signal to signPreimage
  const live = new AbortController();
  await core.signTransaction(serializeTransaction(TX_CASES.eip1559), { signal: live.signal });
  assert.equal(last().opts.signal, live.signal);
  await core.signTypedData(PERMIT, { signal: live.signal });
  assert.equal(last().opts.signal, live.signal);
});

// ---------------------------------------------------------------------------------
// viem account

test("toViemAccount: signMessage / signTypedData / signAuthorization / signTransaction verify with viem", async () => {
  const account = await toViemAccount(core, { accountId: "acct-0" });
  assert.equal(account.address, ADDRESS);
  assert.equal(account.type, "local");
  assert.equal(account.sign, undefined); // no raw-hash signing
  const msg = await account.signMessage({ message: "hello viem" });
  assert.ok(await verifyMessage({ address: ADDRESS, message: "hello viem", signature: msg }));
  const raw = await account.signMessage({ message: { raw: "0xdeadbeef" } });
  assert.equal(await recoverMessageAddress({ message: { raw: "0xdeadbeef" }, signature: raw }), ADDRESS);
  const td = await account.signTypedData(PERMIT);
  assert.ok(await viemVerifyTypedData({ address: ADDRESS, ...PERMIT, signature: td }));
  assert.equal(await recoverTypedDataAddress({ ...MAIL, signature: await account.signTypedData(MAIL) }), ADDRESS);
  const auth = await account.signAuthorization({ address: "0x000000000000000000000000000000000000bEEF", chainId: 1, nonce: 0 });
  assert.equal(await recoverAuthorizationAddress({ authorization: auth }), ADDRESS);
  for (const tx of Object.values(TX_CASES)) {
    const signed = await account.signTransaction(tx);
    assert.equal(signed, await key.signTransaction(tx));
  }
  assert.equal(calls.at(-1).opts.accountId, "acct-0");
});

test("toViemAccount.signTransaction honours viem's serializer (unsigned form signed, signed form returned)", async () => {
  const seen = [];
  const serializer = (tx, signature) => {
    seen.push(signature ? "signed" : "unsigned");
    return serializeTransaction(tx, signature);
  };
  const account = await toViemAccount(core);
  const signed = await account.signTransaction(TX_CASES.eip1559, { serializer });
  assert.deepEqual(seen, ["unsigned", "signed"]);
  assert.equal(await recoverTransactionAddress({ serializedTransaction: signed }), ADDRESS);
  // a serializer producing a type the cosigner cannot decode is refused, typed
  const deposit = () => "0x7ef8";
  await assert.rejects(account.signTransaction(TX_CASES.eip1559, { serializer: deposit }), { code: "invalid_input" });
});

test("toViemAccount in a viem WalletClient: signTypedData and signAuthorization actions", async () => {
  const account = await toViemAccount(core);
  const client = createWalletClient({
    account,
    transport: custom({
      request: async ({ method }) => {
        if (method === "eth_chainId") return "0x7a69";
        if (method === "eth_getTransactionCount") return "0x4";
        throw new Error(`unexpected ${method}`);
      },
    }),
  });
  const sig = await client.signTypedData(PERMIT);
  assert.equal(await recoverTypedDataAddress({ ...PERMIT, signature: sig }), ADDRESS);
  const auth = await client.signAuthorization({ contractAddress: "0x000000000000000000000000000000000000bEEF", executor: "self" });
  assert.equal(auth.chainId, 31337);
  assert.equal(auth.nonce, 5); // executor "self": the account's nonce + 1
  assert.equal(await recoverAuthorizationAddress({ authorization: auth }), ADDRESS);
});

// ---------------------------------------------------------------------------------
// ethers signer

/** A JSON-RPC provider answering from a table (no network). */
class TableProvider extends JsonRpcProvider {
  constructor(table) {
    super("http://127.0.0.1:9", Network.from(31337), { staticNetwork: Network.from(31337), batchMaxCount: 1 });
    this.table = table;
    this.asked = [];
  }
  async _send(payload) {
    const list = Array.isArray(payload) ? payload : [payload];
    return list.map((p) => {
      this.asked.push(p.method);
      if (!(p.method in this.table)) return { id: p.id, error: { code: -32601, message: `no ${p.method}` } };
      const v = this.table[p.method];
      return { id: p.id, result: typeof v === "function" ? v(p.params) : v };
    });
  }
}

test("WalletMpcSigner: getAddress, signMessage, signTypedData verify with ethers", async () => {
  const signer = new WalletMpcSigner(core);
  assert.equal(await signer.getAddress(), ADDRESS);
  const m = await signer.signMessage("0x1234");
  assert.equal(ethersVerifyMessage("0x1234", m), ADDRESS); // ethers: a string is text too
  const b = await signer.signMessage(Uint8Array.of(1, 2, 3));
  assert.equal(ethersVerifyMessage(Uint8Array.of(1, 2, 3), b), ADDRESS);
  const { domain, types, message } = PERMIT;
  const td = await signer.signTypedData(domain, types, message);
  assert.equal(verifyTypedData(domain, types, message, td), ADDRESS);
  // ethers-style values: decimal strings, hex quantities, lower-case addresses
  const loose = { ...message, owner: message.owner.toLowerCase(), value: "1000000000000000000000000", nonce: "0x00", deadline: 18446744073709551616n };
  const td2 = await signer.signTypedData({ ...domain, chainId: "31337" }, types, loose);
  assert.equal(td2, td);
  assert.equal(verifyTypedData(domain, types, message, td2), ADDRESS);
  const mailTypes = MAIL.types;
  const mail = await signer.signTypedData(MAIL.domain, mailTypes, MAIL.message);
  assert.equal(verifyTypedData(MAIL.domain, mailTypes, MAIL.message, mail), ADDRESS);
});

test("WalletMpcSigner.signTransaction without a provider: a complete request; from must match", async () => {
  const signer = new WalletMpcSigner(core);
  const req = { type: 2, chainId: 1n, nonce: 7, to: "0x000000000000000000000000000000000000dEaD", value: 5n, gasLimit: 21000n, maxFeePerGas: 3n, maxPriorityFeePerGas: 1n, from: ADDRESS };
  const raw = await signer.signTransaction(req);
  const tx = Transaction.from(raw);
  assert.equal(tx.from, ADDRESS);
  assert.equal(tx.nonce, 7);
  assert.equal(await recoverTransactionAddress({ serializedTransaction: raw }), ADDRESS);
  await assert.rejects(signer.signTransaction({ ...req, from: "0x000000000000000000000000000000000000dEaD" }), { code: "invalid_input" });
});

test("WalletMpcSigner connected: populates nonce, gas, fees and chain id from the provider, then signs", async () => {
  const provider = new TableProvider({
    eth_chainId: "0x7a69",
    eth_getTransactionCount: "0x9",
    eth_estimateGas: "0x5208",
    eth_gasPrice: "0x3b9aca00",
    eth_maxPriorityFeePerGas: "0x3b9aca00",
    eth_getBlockByNumber: () => ({
      number: "0x10",
      hash: "0x" + "11".repeat(32),
      parentHash: "0x" + "22".repeat(32),
      timestamp: "0x1",
      nonce: "0x0000000000000000",
      difficulty: "0x0",
      gasLimit: "0x1c9c380",
      gasUsed: "0x0",
      miner: "0x0000000000000000000000000000000000000000",
      extraData: "0x",
      baseFeePerGas: "0x77359400",
      transactions: [],
    }),
  });
  const signer = new WalletMpcSigner(core).connect(provider);
  assert.ok(signer instanceof WalletMpcSigner);
  const raw = await signer.signTransaction({ to: "0x000000000000000000000000000000000000dEaD", value: 1n });
  const tx = Transaction.from(raw);
  assert.equal(tx.type, 2);
  assert.equal(tx.chainId, 31337n);
  assert.equal(tx.nonce, 9);
  assert.equal(tx.gasLimit, 21000n);
  assert.ok(tx.maxFeePerGas > 0n && tx.maxPriorityFeePerGas > 0n);
  assert.equal(tx.from, ADDRESS);
  assert.ok(provider.asked.includes("eth_getTransactionCount") && provider.asked.includes("eth_estimateGas"));
  // EIP-7702 authorization through the provider: chain id and the current nonce
  const auth = await signer.authorize({ address: "0x000000000000000000000000000000000000bEEF" });
  assert.equal(auth.chainId, 31337n);
  assert.equal(auth.nonce, 9n);
  assert.equal(verifyAuthorization({ address: auth.address, chainId: auth.chainId, nonce: auth.nonce }, auth.signature), ADDRESS);
});

// ---------------------------------------------------------------------------------
// WalletClient (inline mode: the same core in this thread)

test("WalletClient.signTypedData / signAuthorization / signMessage over the core", async () => {
  const client = await WalletClient.open({ cosignerUrl: "http://127.0.0.1:9" }, { mode: "inline" });
  const td = await client.signTypedData(PERMIT, { accountId: "acct-0" });
  assert.equal(last().payloadKind, "ethereum_typed_data");
  assert.ok(last().opts.cosignerPayload instanceof Uint8Array);
  assert.equal(await recoverTypedDataAddress({ ...PERMIT, signature: td.rsv }), ADDRESS);
  const a = await client.signAuthorization({ address: "0x000000000000000000000000000000000000bEEF", chainId: 1, nonce: 0 });
  assert.equal(await recoverAuthorizationAddress({ authorization: a }), ADDRESS);
  const m = await client.signMessage("0x1234");
  assert.equal(await recoverAddress({ hash: keccak256(new TextEncoder().encode("\x19Ethereum Signed Message:\n60x1234")), signature: m.rsv }), ADDRESS);
  await assert.rejects(client.signTypedData({ ...PERMIT, primaryType: "Nope" }), { code: "invalid_input" });
});

test("WalletClient: an abort during the call rejects at once with `aborted`; an aborted signal never calls", async () => {
  const client = await WalletClient.open({ cosignerUrl: "http://127.0.0.1:9" }, { mode: "inline" });
  let release;
  gate = new Promise((r) => (release = r));
  try {
    const ctl = new AbortController();
    const n = calls.length;
    const p = client.signMessage("slow", { signal: ctl.signal });
    setTimeout(() => ctl.abort(), 20);
    const err = await p.catch((e) => e);
    assert.equal(err.code, "aborted");
    assert.equal(err.eip1193Code, 4001);
    assert.equal(calls.length, n + 1);
    assert.equal(calls.at(-1).opts.signal, ctl.signal); // inline: the signal itself reaches the core
    const before = calls.length;
    await assert.rejects(client.signTypedData(PERMIT, { signal: ctl.signal }), { code: "aborted" });
    await assert.rejects(client.signAuthorization({ address: "0x000000000000000000000000000000000000bEEF", chainId: 1, nonce: 0 }, { signal: ctl.signal }), { code: "aborted" });
    assert.equal(calls.length, before);
  } finally {
    gate = undefined;
    release();
  }
});
