// Unit tests of the transaction assembly (dist/eth.js) against viem, an independent
// implementation: for each transaction type, sign the unsigned payload's keccak with a
// test key, then our serializer must produce exactly viem's signed transaction.
// Run: npm test (after npm run build).
import assert from "node:assert/strict";
import { test } from "node:test";
import { keccak256, parseTransaction, recoverTransactionAddress, serializeTransaction, hexToBytes as vHexToBytes } from "viem";
import { privateKeyToAccount, sign } from "viem/accounts";
import { bytesToHex, hexToBytes, keccakHex, parseUnsignedTx, rlpDecode, rlpEncode, serializeSignedTx, txV } from "../dist/eth.js";
import { deserializeError, StorageError, UnavailableError, WalletError } from "../dist/errors.js";

const KEY = "0x4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318";
const account = privateKeyToAccount(KEY);

const base = {
  to: "0x000000000000000000000000000000000000dEaD",
  value: 12300000000000000n,
  gas: 21000n,
  nonce: 7,
  data: "0x",
};

const cases = {
  eip1559: { ...base, type: "eip1559", chainId: 11155111, maxFeePerGas: 30_000_000_000n, maxPriorityFeePerGas: 1_500_000_000n },
  eip2930: { ...base, type: "eip2930", chainId: 1, gasPrice: 20_000_000_000n, accessList: [] },
  eip155: { ...base, type: "legacy", chainId: 1, gasPrice: 20_000_000_000n },
  legacy: { ...base, type: "legacy", gasPrice: 20_000_000_000n },
  "eip1559 with data and access list": {
    ...base,
    type: "eip1559",
    chainId: 8453,
    maxFeePerGas: 1n,
    maxPriorityFeePerGas: 1n,
    data: "0xa9059cbb" + "00".repeat(64),
    accessList: [{ address: "0x000000000000000000000000000000000000beef", storageKeys: ["0x" + "11".repeat(32)] }],
  },
};

for (const [name, tx] of Object.entries(cases)) {
  test(`signed ${name} transaction equals viem's`, async () => {
    const unsigned = serializeTransaction(tx);
    const payload = vHexToBytes(unsigned);
    const parsed = parseUnsignedTx(payload);
    const sig = await sign({ hash: keccak256(unsigned), privateKey: KEY });
    const ours = serializeSignedTx(parsed, hexToBytes(sig.r), hexToBytes(sig.s), sig.yParity);
    const theirs = serializeTransaction(tx, sig);
    assert.equal(`0x${bytesToHex(ours)}`, theirs);
    assert.equal(await recoverTransactionAddress({ serializedTransaction: theirs }), account.address);
    assert.equal(keccakHex(ours), keccak256(theirs));
    const p = parseTransaction(theirs);
    if (parsed.type === "eip155") assert.equal(txV(parsed, sig.yParity), p.v);
  });
}

test("transaction type detection", () => {
  assert.equal(parseUnsignedTx(vHexToBytes(serializeTransaction(cases.eip1559))).type, "eip1559");
  assert.equal(parseUnsignedTx(vHexToBytes(serializeTransaction(cases.eip2930))).type, "eip2930");
  assert.equal(parseUnsignedTx(vHexToBytes(serializeTransaction(cases.eip155))).type, "eip155");
  assert.equal(parseUnsignedTx(vHexToBytes(serializeTransaction(cases.legacy))).type, "legacy");
});

test("bad transaction payloads are refused with invalid_input", () => {
  const bad = [
    new Uint8Array(),
    Uint8Array.of(0x03, 0xc0),
    Uint8Array.of(0x02, 0xc0),
    Uint8Array.of(0x02, 0xc5, 0x01),
    Uint8Array.of(0xc3, 0x01, 0x02),
    Uint8Array.of(0x80, 0x80),
    Uint8Array.of(0x81, 0x05),
  ];
  for (const b of bad) {
    assert.throws(() => parseUnsignedTx(b), (e) => e instanceof WalletError && e.code === "invalid_input", `accepted ${bytesToHex(b)}`);
  }
});

test("RLP round trip and canonical form", () => {
  const items = [new Uint8Array(), Uint8Array.of(0), Uint8Array.of(0x7f), Uint8Array.of(0x80), new Uint8Array(55).fill(1), new Uint8Array(56).fill(2), new Uint8Array(1024).fill(3)];
  const nested = [items, [[], [new Uint8Array(3)]], new Uint8Array(70)];
  assert.deepEqual(rlpDecode(rlpEncode(nested)), nested);
  assert.equal(bytesToHex(rlpEncode(Uint8Array.of(0x7f))), "7f");
  assert.equal(bytesToHex(rlpEncode(Uint8Array.of(0x80))), "8180");
  assert.equal(bytesToHex(rlpEncode([])), "c0");
  // Non-canonical long form of a short string.
  assert.throws(() => rlpDecode(Uint8Array.of(0xb8, 0x01, 0x00)));
});

test("hex parsing", () => {
  assert.deepEqual(hexToBytes("0x0aFF"), Uint8Array.of(10, 255));
  assert.throws(() => hexToBytes("0x123"), (e) => e.code === "invalid_input");
  assert.throws(() => hexToBytes("zz"), (e) => e.code === "invalid_input");
});

test("errors survive the worker boundary with class and code", () => {
  const e = new UnavailableError("cosigner_unavailable", "down", { url: "http://x" });
  const back = deserializeError(JSON.parse(JSON.stringify(e.toJSON())));
  assert.ok(back instanceof UnavailableError);
  assert.ok(back instanceof WalletError);
  assert.equal(back.code, "cosigner_unavailable");
  assert.equal(back.message, "down");
  assert.deepEqual(back.details, { url: "http://x" });
  const s = deserializeError(new StorageError("wrong_passphrase", "nope").toJSON());
  assert.ok(s instanceof StorageError);
  assert.equal(s.code, "wrong_passphrase");
  assert.equal(deserializeError({ name: "Weird", code: "internal", message: "m" }).code, "internal");
});
