// Unit tests of the EVM codec (dist/eth.js, on viem) against viem's own accounts: for
// every transaction type (0 legacy and EIP-155, 1, 2, 3 envelope, 4) the payload is
// decoded, its keccak signed with a test key, and our assembly must equal what a viem
// private-key account produces; typed data and EIP-7702 preimages against viem's
// hashTypedData / hashAuthorization; EIP-191 text versus bytes; refusals.
// Run: npm test (after npm run build).
import assert from "node:assert/strict";
import { test } from "node:test";
import {
  hashDomain,
  hashMessage,
  hashStruct,
  hashTypedData,
  keccak256,
  parseTransaction,
  recoverTransactionAddress,
  serializeTransaction,
  toHex,
  bytesToHex,
  hexToBytes,
  concatHex,
  getTypesForEIP712Domain,
} from "viem";
import { privateKeyToAccount, sign } from "viem/accounts";
import { hashAuthorization } from "viem/utils";
import {
  MAX_PAYLOAD_BYTES,
  authorizationPreimage,
  messagePreimage,
  parseUnsignedTx,
  serializeSignedTx,
  signedAuthorization,
  txV,
  typedDataPayload,
} from "../dist/eth.js";
import { WalletError } from "../dist/errors.js";
import { MAIL, PERMIT, TX_CASES } from "./fixtures.mjs";

const KEY = "0x4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318";
const account = privateKeyToAccount(KEY);

const expectedType = { legacy: "legacy", eip155: "eip155", eip2930: "eip2930", eip1559: "eip1559", eip1559Erc20: "eip1559", eip4844: "eip4844", eip7702: "eip7702" };

for (const [name, tx] of Object.entries(TX_CASES)) {
  test(`${name}: decoded, signed and re-encoded exactly as a viem account signs it`, async () => {
    const unsigned = serializeTransaction(tx);
    const parsed = parseUnsignedTx(hexToBytes(unsigned));
    assert.equal(parsed.type, expectedType[name]);
    assert.equal(bytesToHex(parsed.payload), unsigned);
    // hex input is the same payload
    assert.deepEqual(parseUnsignedTx(unsigned).payload, parsed.payload);
    const sig = await sign({ hash: keccak256(unsigned), privateKey: KEY });
    const ours = serializeSignedTx(parsed, { r: sig.r, s: sig.s, yParity: sig.yParity });
    const theirs = await account.signTransaction(tx);
    assert.equal(ours, theirs);
    assert.equal(await recoverTransactionAddress({ serializedTransaction: ours }), account.address);
    const back = parseTransaction(ours);
    if (parsed.type === "eip155") assert.equal(txV(parsed, sig.yParity), back.v);
    else if (parsed.type === "legacy") assert.equal(txV(parsed, sig.yParity), 27n + BigInt(sig.yParity));
    else assert.equal(txV(parsed, sig.yParity), BigInt(back.yParity));
  });
}

test("refused transaction payloads are invalid_input: unknown types, signed, non-canonical, truncated, network-form blobs", async () => {
  const signed = await account.signTransaction(TX_CASES.eip1559);
  const unsigned = hexToBytes(serializeTransaction(TX_CASES.eip1559));
  const nonCanonical = hexToBytes(serializeTransaction({ ...TX_CASES.eip1559, nonce: 0 }));
  // nonce 0 encoded as 0x00 instead of the empty string (0x80): same value, other bytes
  const idx = nonCanonical.indexOf(0x80, 3);
  const bad = [
    ["empty", new Uint8Array()],
    ["type 5", Uint8Array.of(0x05, 0xc0)],
    ["type 0x7e (deposit)", Uint8Array.of(0x7e, 0xc0)],
    ["empty 1559 list", Uint8Array.of(0x02, 0xc0)],
    ["truncated", unsigned.subarray(0, unsigned.length - 3)],
    ["trailing byte", Uint8Array.of(...unsigned, 0x00)],
    ["signed", hexToBytes(signed)],
    ["non-canonical integer", Uint8Array.of(...nonCanonical.subarray(0, idx), 0x00, ...nonCanonical.subarray(idx + 1))],
    ["odd hex", "0x123"],
    ["not hex", "0xzz"],
    ["oversized", new Uint8Array(MAX_PAYLOAD_BYTES + 1).fill(0xc0)],
  ];
  for (const [what, b] of bad) {
    assert.throws(() => parseUnsignedTx(b), (e) => e instanceof WalletError && e.code === "invalid_input", `accepted: ${what}`);
  }
  assert.match(
    (() => {
      try {
        parseUnsignedTx(Uint8Array.of(0x05, 0xc0));
      } catch (e) {
        return e.message;
      }
    })(),
    /unsupported transaction type 0x05/,
  );
});

test("EIP-191: a string is ALWAYS its UTF-8 text; bytes only as Uint8Array or { raw }", () => {
  const text = messagePreimage("0x1234");
  assert.equal(new TextDecoder().decode(text), "\x19Ethereum Signed Message:\n60x1234");
  assert.equal(keccak256(text), hashMessage("0x1234"));
  const raw = messagePreimage({ raw: "0x1234" });
  assert.equal(bytesToHex(raw), toHex("\x19Ethereum Signed Message:\n2") + "1234");
  assert.equal(keccak256(raw), hashMessage({ raw: "0x1234" }));
  assert.deepEqual(messagePreimage(Uint8Array.of(0x12, 0x34)), raw);
  assert.deepEqual(messagePreimage({ raw: Uint8Array.of(0x12, 0x34) }), raw);
  assert.equal(keccak256(messagePreimage("héllo ✓")), hashMessage("héllo ✓"));
  for (const bad of [{ raw: "1234" }, { raw: "0x123" }, { raw: 5 }, 42, null, {}]) {
    assert.throws(() => messagePreimage(bad), (e) => e.code === "invalid_input", `accepted ${JSON.stringify(bad)}`);
  }
});

for (const [name, td] of Object.entries({ permit: PERMIT, mail: MAIL })) {
  test(`EIP-712 ${name}: preimage = 0x1901 || hashDomain || hashStruct, keccak = viem's hashTypedData, JSON for the cosigner`, () => {
    const p = typedDataPayload(td);
    const types = { EIP712Domain: getTypesForEIP712Domain({ domain: td.domain }), ...td.types };
    const expected = concatHex(["0x1901", hashDomain({ domain: td.domain, types }), hashStruct({ data: td.message, primaryType: td.primaryType, types })]);
    assert.equal(p.preimage.length, 66);
    assert.equal(bytesToHex(p.preimage), expected);
    assert.equal(keccak256(p.preimage), hashTypedData(td));
    assert.equal(p.digest, hashTypedData(td));
    const json = JSON.parse(new TextDecoder().decode(p.json));
    assert.deepEqual(Object.keys(json).sort(), ["domain", "message", "primaryType", "types"]);
    assert.equal(json.primaryType, td.primaryType);
    assert.deepEqual(json.types.EIP712Domain, types.EIP712Domain);
    assert.deepEqual(json.types[td.primaryType], td.types[td.primaryType]);
    // bigints as decimal strings, bytes as hex: the JSON hashes to the same digest once
    // its numbers are read back as bigints
    const revive = (v, type) => (/^u?int/.test(type) ? BigInt(v) : v);
    const reviveStruct = (data, typeName) =>
      Object.fromEntries(
        types[typeName].map(({ name, type }) => {
          const base = type.replace(/\[\]$/, "");
          const one = (x) => (types[base] ? reviveStruct(x, base) : revive(x, base));
          return [name, type.endsWith("[]") ? data[name].map(one) : one(data[name])];
        }),
      );
    const domain = { ...json.domain };
    if (domain.chainId !== undefined) domain.chainId = BigInt(domain.chainId);
    assert.equal(hashTypedData({ ...json, domain, message: reviveStruct(json.message, td.primaryType) }), hashTypedData(td));
  });
}

test("EIP-712 JSON spells bigints as decimal strings and includes the EIP712Domain type", () => {
  const json = JSON.parse(new TextDecoder().decode(typedDataPayload(PERMIT).json));
  assert.equal(json.message.value, "1000000000000000000000000");
  assert.equal(json.message.deadline, "18446744073709551616");
  assert.equal(json.domain.chainId, 31337);
  assert.deepEqual(json.types.EIP712Domain.map((f) => f.name), ["name", "version", "chainId", "verifyingContract"]);
  const mail = JSON.parse(new TextDecoder().decode(typedDataPayload(MAIL).json));
  assert.equal(mail.message.attachment, "0x010203");
  assert.equal(mail.message.delta, "-5");
  assert.equal(mail.domain.chainId, "1");
});

test("bad typed data is invalid_input before anything is signed", () => {
  const bad = [
    null,
    { ...PERMIT, types: undefined },
    { ...PERMIT, primaryType: "Missing" },
    { ...PERMIT, primaryType: "EIP712Domain" },
    { ...PERMIT, message: { ...PERMIT.message, owner: "0x1234" } },
    { ...PERMIT, message: { ...PERMIT.message, value: -1n } },
    { ...PERMIT, message: { ...PERMIT.message, value: 2n ** 256n } },
    { ...PERMIT, message: { owner: PERMIT.message.owner } },
    { ...PERMIT, domain: { ...PERMIT.domain, verifyingContract: "0xnope" } },
    { ...MAIL, message: { ...MAIL.message, tag: "0xdead" } },
    { ...PERMIT, message: "not an object" },
  ];
  for (const td of bad) {
    assert.throws(() => typedDataPayload(td), (e) => e instanceof WalletError && e.code === "invalid_input", `accepted ${JSON.stringify(td, (k, v) => (typeof v === "bigint" ? `${v}n` : v))}`);
  }
});

test("EIP-7702: keccak of the authorization preimage = viem's hashAuthorization; address or contractAddress", () => {
  for (const req of [
    { address: "0x000000000000000000000000000000000000bEEF", chainId: 31337, nonce: 0 },
    { contractAddress: "0x63c0c19a282a1b52b07dd5a65b58948a07dae32b", chainId: 1, nonce: 2 ** 40 },
    { address: "0x000000000000000000000000000000000000bEEF", chainId: 0, nonce: 1 },
  ]) {
    const { preimage, authorization } = authorizationPreimage(req);
    assert.equal(preimage[0], 0x05);
    assert.equal(keccak256(preimage), hashAuthorization(req));
    assert.equal(authorization.address.toLowerCase(), (req.address ?? req.contractAddress).toLowerCase());
    assert.match(authorization.address, /[A-F]/); // checksummed
  }
  for (const bad of [
    { address: "0x12", chainId: 1, nonce: 0 },
    { address: "0x000000000000000000000000000000000000bEEF", chainId: -1, nonce: 0 },
    { address: "0x000000000000000000000000000000000000bEEF", chainId: 1, nonce: 1.5 },
    { address: "0x000000000000000000000000000000000000bEEF", contractAddress: "0x000000000000000000000000000000000000dEaD", chainId: 1, nonce: 0 },
    { chainId: 1, nonce: 0 },
  ]) {
    assert.throws(() => authorizationPreimage(bad), (e) => e.code === "invalid_input", `accepted ${JSON.stringify(bad)}`);
  }
  const signed = signedAuthorization({ address: "0x000000000000000000000000000000000000bEEF", chainId: 1, nonce: 0 }, { r: "0x01", s: "0x02", yParity: 1 });
  assert.deepEqual(signed, { address: "0x000000000000000000000000000000000000bEEF", chainId: 1, nonce: 0, r: "0x01", s: "0x02", yParity: 1, v: 28n });
});
