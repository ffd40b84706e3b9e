// Backup and restore around the wasm core (src/core.ts exportBackup / importBackup): the
// format and its checks are Rust's (mpc_core::backup, faked here at the wasm boundary:
// test/fake-wasm.mjs); this tests the platform side: typed errors by code and reason,
// nothing stored on any refusal, the identical share again, another wallet or a
// different share in the way, the stored record encrypted under WebCrypto.
// Run: npm test (after npm run build).
import assert from "node:assert/strict";
import { register } from "node:module";
import { beforeEach, test } from "node:test";
import { fakeIndexedDB } from "./fake-idb.mjs";
import { fake as wasm } from "./fake-wasm.mjs";

register("./fake-wasm-loader.mjs", import.meta.url);
globalThis.indexedDB = fakeIndexedDB();

const storage = await import("../dist/storage.js");
const { WalletCore } = await import("../dist/core.js");
const { StorageError } = await import("../dist/errors.js");

const SECRET = new TextEncoder().encode('{"party_index":0,"identity_secret":"aa"}');
const ACCOUNT = { accountId: "account-0", kind: "hd", publicKey: "02ab", chainCode: "cc", ethereumAddress: "0x0000000000000000000000000000000000000001", createdAt: 1 };

/** A restore object as wasm's BackupRestore.open returns it. */
function restoreOf(walletId, secret = SECRET) {
  return {
    walletId,
    partyIndex: 0,
    createdAtMs: 42,
    accounts: () => [ACCOUNT],
    sameShare: (party) => Buffer.from(party.bytes).equals(Buffer.from(secret)),
    passphraseFile: () => "{}",
    bundleBytes: () => Uint8Array.from(secret),
    free() {},
  };
}

/** A wasm MpcError. */
function mpcError(code, reason) {
  return Object.assign(new Error(`wasm says ${code}`), { name: "MpcError", code, reason });
}

const core = (walletName = "a") => new WalletCore({ cosignerUrl: "http://127.0.0.1:9", walletName });
const BYTES = new Uint8Array([123, 125]);

beforeEach(async () => {
  wasm.reset();
  wasm.openBackup = undefined;
  for (const n of ["a", "b"]) await storage.deleteWallet(n);
});

test("a wrong passphrase or not a backup: typed errors with their reason, nothing stored", async () => {
  wasm.openBackup = () => {
    throw mpcError("wrong_passphrase", "wrong_passphrase");
  };
  await assert.rejects(core().importBackup(BYTES, { passphrase: "nope" }), (e) => e instanceof StorageError && e.code === "wrong_passphrase" && e.details.reason === "wrong_passphrase");
  wasm.openBackup = () => {
    throw mpcError("storage", "not_a_backup");
  };
  await assert.rejects(core().importBackup(BYTES, { passphrase: "x" }), (e) => e.code === "storage" && e.details.reason === "not_a_backup");
  assert.equal(await storage.getWallet("a"), undefined);
  // Bad arguments never reach wasm.
  await assert.rejects(core().importBackup(new Uint8Array(), { passphrase: "x" }), (e) => e.code === "invalid_input");
  await assert.rejects(core().importBackup(BYTES, {}), (e) => e.code === "invalid_input");
  assert.deepEqual(
    wasm.calls.map((c) => c[0]),
    ["openBackup", "openBackup"],
  );
});

test("a fresh import stores the share encrypted; the identical share again is accepted; others are refused", async () => {
  wasm.openBackup = () => restoreOf("w-1");
  const r = await core().importBackup(BYTES, { passphrase: "backup" });
  assert.deepEqual(r, { walletName: "a", walletId: "w-1", partyIndex: 0, alreadyPresent: false, accounts: [ACCOUNT], protection: "webcrypto" });
  const rec = await storage.getWallet("a");
  assert.equal(rec.walletId, "w-1");
  assert.equal(rec.protection, "webcrypto");
  assert.equal(rec.createdAtMs, 42);
  assert.ok(!Buffer.from(rec.ciphertext).includes(Buffer.from("identity_secret")));
  assert.deepEqual(await storage.decryptBundle(rec), SECRET);
  assert.deepEqual((await core().walletInfo()).accounts, [ACCOUNT]);

  // The identical share: nothing written.
  const again = await core().importBackup(BYTES, { passphrase: "backup" });
  assert.equal(again.alreadyPresent, true);
  // Another wallet's backup, or a different share of this wallet: wallet_exists, unchanged.
  wasm.openBackup = () => restoreOf("w-2");
  await assert.rejects(core().importBackup(BYTES, { passphrase: "backup" }), (e) => e.code === "wallet_exists" && e.details.reason === "other_wallet" && e.details.existingWalletId === "w-1");
  wasm.openBackup = () => restoreOf("w-1", new TextEncoder().encode('{"other":"share"}'));
  await assert.rejects(core().importBackup(BYTES, { passphrase: "backup" }), (e) => e.code === "wallet_exists" && e.details.reason === "different_share");
  assert.deepEqual(await storage.decryptBundle(await storage.getWallet("a")), SECRET);
});

test("export: the stored party's backup with a download name; no wallet, no passphrase: typed errors", async () => {
  await assert.rejects(core("b").exportBackup({ passphrase: "backup passphrase" }), (e) => e.code === "no_wallet");
  wasm.openBackup = () => restoreOf("w/1");
  await core("b").importBackup(BYTES, { passphrase: "backup" });
  await assert.rejects(core("b").exportBackup({}), (e) => e.code === "invalid_input");
  const f = await core("b").exportBackup({ passphrase: "backup passphrase" });
  assert.equal(f.filename, "wallet-mpc-w_1-device.backup");
  assert.equal(f.walletId, "w/1");
  assert.equal(f.partyIndex, 0);
  assert.equal(f.mimeType, "application/json");
  assert.match(new TextDecoder().decode(f.bytes), /wallet-mpc\/key-shares/);
  const call = wasm.calls.find((c) => c[0] === "exportBackup")[1];
  assert.deepEqual(call, { passphrase: "backup passphrase", cosignerUrl: "http://127.0.0.1:9", createdAtMs: 42, allowWeak: true, fastKdf: false });
});
