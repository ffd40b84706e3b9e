// Key lifecycle storage (src/storage.ts, src/lifecycle.ts): new shares stored as PENDING
// next to the current ones, encrypted exactly like them (the wallet's own WebCrypto key
// and AAD, or a passphrase file); promotion replaces the current share in one
// transaction; a new profile's record holds only pending shares until promoted; the
// settling of a record a crash left (promoted at the cosigner's epoch, dropped once
// expired or overtaken, kept otherwise). IndexedDB is the in-memory fake, WebCrypto
// node's; the cosigner's answer (ListAccounts, signed in wasm) is faked at the
// `cosignerEpoch` boundary. Run: npm test (after npm run build).
import assert from "node:assert/strict";
import { register } from "node:module";
import { test } from "node:test";
import { fakeIndexedDB } from "./fake-idb.mjs";

register("./fake-wasm-loader.mjs", import.meta.url);
globalThis.indexedDB = fakeIndexedDB();
// Promotion drops the presignature pools (src/pool.ts, key ranges the fake lacks: a
// range the fake store ignores; the pools themselves are covered in Playwright).
const dropped = [];
globalThis.IDBKeyRange ??= { bound: (lo) => (dropped.push(lo[0]), { range: lo }) };

const storage = await import("../dist/storage.js");
const { settlePending, checkSameAccounts, fromBase64 } = await import("../dist/lifecycle.js");

const ACCOUNTS = [{ accountId: "a1", kind: "hd", publicKey: "02aa", ethereumAddress: "0x01", createdAt: 1 }];
const meta = (walletName, protection = "webcrypto") => ({
  walletName,
  walletId: `w-${walletName}`,
  accounts: ACCOUNTS,
  protection,
  insecureDevPrimes: false,
  createdAtMs: 1,
  cosignerUrl: "http://127.0.0.1:9",
  partyIndex: 0,
});
const pendingMeta = (epoch, expiresAtMs = Date.now() + 60_000, lifecycleId = `lc-${epoch}`) => ({
  lifecycleId,
  kind: "refresh",
  epoch,
  expiresAtMs,
  accounts: ACCOUNTS,
});
const bytes = (s) => new TextEncoder().encode(s);
const text = (b) => new TextDecoder().decode(b);

test("pending shares of a WebCrypto wallet: same key and AAD, promoted in place", async () => {
  await storage.putNewWallet(meta("wc"), { bundle: bytes("old shares") });
  await storage.putPending("wc", "w-wc", pendingMeta(1), { bundle: bytes("new shares") });
  const rec = await storage.getWallet("wc");
  assert.equal(text(await storage.decryptBundle(rec)), "old shares", "the current share stays in use");
  assert.equal(text(await storage.decryptBundle(storage.pendingAsRecord(rec))), "new shares");
  assert.notDeepEqual(rec.pending.ciphertext, rec.ciphertext);
  const promoted = await storage.promotePending("wc", "lc-1");
  assert.equal(promoted.pending, undefined);
  assert.equal(promoted.shareEpoch, 1);
  assert.equal(text(await storage.decryptBundle(await storage.getWallet("wc"))), "new shares");
  await assert.rejects(storage.promotePending("wc", "lc-1"), { code: "storage" }, "promoted once");
});

test("pending shares must be protected like the current ones and name the stored wallet", async () => {
  await storage.putNewWallet(meta("pp", "passphrase"), { passphraseFile: "{\"old\":1}" });
  await assert.rejects(storage.putPending("pp", "w-pp", pendingMeta(1), { bundle: bytes("x") }), { code: "storage" });
  await assert.rejects(storage.putPending("pp", "w-other", pendingMeta(1), { passphraseFile: "{}" }), { code: "no_wallet" });
  await storage.putPending("pp", "w-pp", pendingMeta(1), { passphraseFile: "{\"new\":1}" });
  await storage.dropPending("pp", "lc-1");
  const rec = await storage.getWallet("pp");
  assert.equal(rec.pending, undefined);
  assert.equal(rec.passphraseFile, "{\"old\":1}", "dropping keeps the current share");
});

test("a new profile's record holds only pending shares; dropping it removes the wallet", async () => {
  await storage.putReplacement(meta("np"), { ...pendingMeta(3), kind: "replace_device" }, { bundle: bytes("repaired") });
  const rec = await storage.getWallet("np");
  assert.equal(storage.hasShare(rec), false);
  assert.equal(text(await storage.decryptBundle(storage.pendingAsRecord(rec))), "repaired");
  await assert.rejects(storage.putReplacement(meta("wc"), pendingMeta(1), { bundle: bytes("x") }), { code: "wallet_exists" }, "never over a wallet with a share");
  await storage.dropPending("np", "lc-3");
  assert.equal(await storage.getWallet("np"), undefined);
});

/** A fake `open`: the party's `cosignerEpoch` answers `epoch` (or throws). */
const opener = (epoch, seen = []) => async (r) => ({
  cosignerEpoch: async () => {
    seen.push(r.shareEpoch);
    if (epoch instanceof Error) throw epoch;
    return epoch;
  },
  free() {},
});
const cosigner = { url: "http://127.0.0.1:9", call: async () => ({ unavailable: "test" }) };
/** A wasm `FlowError` of `code`. */
const flowError = (code) => Object.assign(new Error(code), { name: "FlowError", code });

test("settling: promoted when the cosigner is at the pending epoch (asked with the pending shares)", async () => {
  await storage.putNewWallet(meta("s1"), { bundle: bytes("old") });
  await storage.putPending("s1", "w-s1", pendingMeta(1), { bundle: bytes("new") });
  const seen = [];
  const rec = await settlePending(await storage.getWallet("s1"), opener(1, seen), cosigner);
  assert.deepEqual(seen, [1], "ListAccounts is signed with the pending bundle");
  assert.ok(dropped.includes("s1"), "the old epoch's presignature pools are dropped");
  assert.equal(rec.pending, undefined);
  assert.equal(text(await storage.decryptBundle(rec)), "new");
});

test("settling: kept while the session may still commit, dropped once expired or overtaken", async () => {
  await storage.putNewWallet(meta("s2"), { bundle: bytes("old") });
  await storage.putPending("s2", "w-s2", pendingMeta(1), { bundle: bytes("new") });
  let rec = await settlePending(await storage.getWallet("s2"), opener(0), cosigner);
  assert.ok(rec.pending, "not committed yet, not expired: kept");
  rec = await settlePending(rec, opener(flowError("cosigner_unavailable")), cosigner);
  assert.ok(rec.pending, "unknown epoch: kept");
  await storage.putPending("s2", "w-s2", pendingMeta(1, Date.now() - 1), { bundle: bytes("new") });
  // Expired, but the cosigner cannot say whether it committed them first: kept.
  rec = await settlePending(await storage.getWallet("s2"), opener(flowError("cosigner_unavailable")), cosigner);
  assert.ok(rec.pending, "expired, the cosigner unreachable: kept");
  assert.equal(text(await storage.decryptBundle(rec)), "old");
  rec = await settlePending(await storage.getWallet("s2"), opener(0), cosigner);
  assert.equal(rec.pending, undefined, "expired: dropped");
  assert.equal(text(await storage.decryptBundle(rec)), "old");
  await storage.putPending("s2", "w-s2", pendingMeta(1), { bundle: bytes("new") });
  rec = await settlePending(await storage.getWallet("s2"), opener(2), cosigner);
  assert.equal(rec.pending, undefined, "the cosigner is past it: dropped");
});

test("settling a new profile: unregistered identity kept until expiry, then the record is gone", async () => {
  await storage.putReplacement(meta("s3"), pendingMeta(4, Date.now() + 60_000), { bundle: bytes("rep") });
  let rec = await settlePending(await storage.getWallet("s3"), opener(flowError("unauthorized")), cosigner);
  assert.ok(rec?.pending);
  await storage.putReplacement(meta("s3"), pendingMeta(4, Date.now() - 1), { bundle: bytes("rep") });
  rec = await settlePending(await storage.getWallet("s3"), opener(flowError("unauthorized")), cosigner);
  assert.equal(rec, undefined);
});

test("addresses unchanged check and the plan's base64", () => {
  checkSameAccounts(ACCOUNTS, [{ accountId: "a1", publicKey: "02AA" }]);
  assert.throws(() => checkSameAccounts(ACCOUNTS, [{ accountId: "a1", publicKey: "03aa" }]), { code: "internal" });
  assert.throws(() => checkSameAccounts(ACCOUNTS, []), { code: "internal" });
  assert.deepEqual([...fromBase64("AQID", "plan")], [1, 2, 3]);
  assert.throws(() => fromBase64("*", "plan"), { code: "invalid_response" });
});
