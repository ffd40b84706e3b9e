// Device enrollments (enroll at install, create in a second): the IndexedDB storage of
// the enrollment record (src/storage.ts, DB version 2 and its migration from version 1,
// WebCrypto encryption bound to the wallet name and enrollment id, deletion in the
// wallet's own transaction), the core's enrollmentStatus / enrollDevice resumption over
// a stored record, the option validation, and the typed EnrollmentError. IndexedDB is
// an in-memory fake (test/fake-idb.mjs); WebCrypto is node's.
// Run: npm test (after npm run build).
import assert from "node:assert/strict";
import { beforeEach, test } from "node:test";
import { fakeIndexedDB } from "./fake-idb.mjs";

const fake = fakeIndexedDB();
globalThis.indexedDB = fake;

// A version-1 database as the previous release left it: one passphrase wallet.
const V1_WALLET = {
  format: 1,
  walletName: "old",
  walletId: "w-old",
  accounts: [],
  protection: "passphrase",
  insecureDevPrimes: false,
  createdAtMs: 1,
  cosignerUrl: "http://127.0.0.1:9",
  partyIndex: 0,
  passphraseFile: "{}",
};
fake.dbs.set("wallet-mpc-web", {
  version: 1,
  stores: new Map([
    ["wallets", new Map([["old", V1_WALLET]])],
    ["keys", new Map()],
  ]),
});

const storage = await import("../dist/storage.js");
const { WalletCore } = await import("../dist/core.js");
const { EnrollmentError, deserializeError, WalletError } = await import("../dist/errors.js");

const META = (walletName, enrollmentId, expiresAtMs = Date.now() + 3_600_000) => ({
  walletName,
  enrollmentId,
  expiresAtMs,
  insecureDevPrimes: false,
  createdAtMs: Date.now(),
  cosignerUrl: "http://127.0.0.1:9",
});

test("the version 2 upgrade keeps the version 1 wallets and adds the enrollments store", async () => {
  assert.equal(storage.DB_VERSION, 2);
  const rec = await storage.getWallet("old");
  assert.deepEqual(rec, V1_WALLET);
  assert.deepEqual(await storage.listWalletNames(), ["old"]);
  assert.equal(fake.dbs.get("wallet-mpc-web").version, 2);
  assert.ok(fake.dbs.get("wallet-mpc-web").stores.has("enrollments"));
  assert.equal(await storage.getEnrollment("old"), undefined);
});

beforeEach(async () => {
  for (const n of ["a", "b", "c", "d"]) {
    await storage.deleteEnrollment(n);
    await storage.deleteWallet(n);
  }
});

test("a WebCrypto enrollment is stored encrypted and decrypts to its bytes", async () => {
  const secret = new TextEncoder().encode('{"secret":"identity and paillier keys"}');
  await storage.putEnrollment(META("a", "enr-1"), { bytes: secret });
  const rec = await storage.getEnrollment("a");
  assert.equal(rec.protection, "webcrypto");
  assert.equal(rec.enrollmentId, "enr-1");
  assert.equal(rec.passphraseFile, undefined);
  // Not in clear anywhere in the record.
  const clear = new TextDecoder().decode(secret);
  assert.ok(!new TextDecoder().decode(rec.ciphertext).includes("paillier"));
  assert.ok(!JSON.stringify({ ...rec, key: undefined }).includes(clear));
  assert.equal(rec.key.extractable, false);
  assert.deepEqual(await storage.decryptEnrollment(rec), secret);
});

test("an enrollment record moved to another wallet name or id does not decrypt", async () => {
  await storage.putEnrollment(META("a", "enr-1"), { bytes: new Uint8Array([1, 2, 3]) });
  const rec = await storage.getEnrollment("a");
  await assert.rejects(storage.decryptEnrollment({ ...rec, walletName: "b" }), (e) => e.code === "storage");
  await assert.rejects(storage.decryptEnrollment({ ...rec, enrollmentId: "enr-2" }), (e) => e.code === "storage");
  await assert.rejects(storage.decryptEnrollment({ ...rec, key: undefined }), (e) => e.code === "storage");
});

test("a passphrase enrollment keeps the wasm core's file; decryptEnrollment leaves it to wasm", async () => {
  await storage.putEnrollment(META("a", "enr-1"), { passphraseFile: '{"format":"wallet-mpc/enrollment"}' });
  const rec = await storage.getEnrollment("a");
  assert.equal(rec.protection, "passphrase");
  assert.equal(rec.key, undefined);
  assert.equal(await storage.decryptEnrollment(rec), undefined);
});

test("one enrollment per wallet name: a new one replaces the old", async () => {
  await storage.putEnrollment(META("a", "enr-1"), { bytes: new Uint8Array([1]) });
  await storage.putEnrollment(META("a", "enr-2"), { bytes: new Uint8Array([2]) });
  assert.equal((await storage.getEnrollment("a")).enrollmentId, "enr-2");
  await assert.rejects(storage.putEnrollment(META("a", ""), { bytes: new Uint8Array([3]) }), (e) => e.code === "storage");
});

test("enrollmentUsable: unexpired or unknown expiry", () => {
  const now = 1_000_000;
  const rec = { format: 1, enrollmentId: "e", expiresAtMs: now + 1 };
  assert.equal(storage.enrollmentUsable(rec, now), true);
  assert.equal(storage.enrollmentUsable({ ...rec, expiresAtMs: now }, now), false);
  assert.equal(storage.enrollmentUsable({ ...rec, expiresAtMs: 0 }, now), true);
  assert.equal(storage.enrollmentUsable({ ...rec, format: 2 }, now), false);
  assert.equal(storage.enrollmentUsable({ ...rec, enrollmentId: "" }, now), false);
});

test("storing the wallet deletes its enrollment in the same transaction, and only when asked", async () => {
  const wallet = { ...V1_WALLET, walletName: "a", walletId: "w-a", protection: "passphrase" };
  delete wallet.format;
  delete wallet.passphraseFile;
  await storage.putEnrollment(META("a", "enr-1"), { bytes: new Uint8Array([1]) });
  await storage.putEnrollment(META("b", "enr-2"), { bytes: new Uint8Array([2]) });
  await storage.putNewWallet(wallet, { passphraseFile: "{}" }, { deleteEnrollment: true });
  assert.equal(await storage.getEnrollment("a"), undefined);
  assert.equal((await storage.getEnrollment("b")).enrollmentId, "enr-2");
  // A refused wallet (the name is taken) leaves the enrollment in place.
  await storage.putEnrollment(META("a", "enr-3"), { bytes: new Uint8Array([3]) });
  await assert.rejects(storage.putNewWallet(wallet, { passphraseFile: "{}" }, { deleteEnrollment: true }), (e) => e.code === "wallet_exists");
  assert.equal((await storage.getEnrollment("a")).enrollmentId, "enr-3");
  // Without the option the enrollment stays.
  await storage.putNewWallet({ ...wallet, walletName: "b", walletId: "w-b" }, { passphraseFile: "{}" });
  assert.equal((await storage.getEnrollment("b")).enrollmentId, "enr-2");
});

test("enrollmentStatus: none, ready, and none again once expired", async () => {
  const core = new WalletCore({ cosignerUrl: "http://127.0.0.1:9", walletName: "c" });
  assert.deepEqual(await core.enrollmentStatus(), { state: "none" });
  const exp = Date.now() + 60_000;
  await storage.putEnrollment(META("c", "enr-c", exp), { bytes: new Uint8Array([1]) });
  assert.deepEqual(await core.enrollmentStatus(), { state: "ready", enrollmentId: "enr-c", expiresAtMs: exp });
  await storage.putEnrollment(META("c", "enr-c", Date.now() - 1), { bytes: new Uint8Array([1]) });
  assert.deepEqual(await core.enrollmentStatus(), { state: "none" });
});

test("enrollDevice returns a stored usable enrollment at once, without any network", async () => {
  // The cosigner and agent URLs point nowhere: any attempt to enroll would fail.
  const core = new WalletCore({ cosignerUrl: "http://127.0.0.1:9", agentUrl: "http://127.0.0.1:9", agentToken: "t", walletName: "c" });
  const exp = Date.now() + 60_000;
  await storage.putEnrollment(META("c", "enr-c", exp), { bytes: new Uint8Array([1]) });
  const got = await core.enrollDevice();
  assert.equal(got.enrollmentId, "enr-c");
  assert.equal(got.expiresAtMs, exp);
  assert.equal(got.reused, true);
  assert.deepEqual(got.timings, { primesMs: 0, auxInfoMs: 0, agentMs: 0, totalMs: 0 });
});

test("enrollDevice deletes an expired record and refuses a name that holds a wallet", async () => {
  const wallet = { ...V1_WALLET, walletName: "d", walletId: "w-d" };
  delete wallet.format;
  delete wallet.passphraseFile;
  await storage.putNewWallet(wallet, { passphraseFile: "{}" });
  await storage.putEnrollment(META("d", "enr-old", Date.now() - 1), { bytes: new Uint8Array([1]) });
  const core = new WalletCore({ cosignerUrl: "http://127.0.0.1:9", agentUrl: "http://127.0.0.1:9", agentToken: "t", walletName: "d", protection: "webcrypto" });
  await assert.rejects(core.enrollDevice(), (e) => e instanceof WalletError && e.code === "wallet_exists");
  assert.equal(await storage.getEnrollment("d"), undefined);
});

test("enrollDevice honours an aborted signal before any work", async () => {
  const core = new WalletCore({ cosignerUrl: "http://127.0.0.1:9", agentUrl: "http://127.0.0.1:9", agentToken: "t", walletName: "a", protection: "webcrypto" });
  await assert.rejects(core.enrollDevice({ signal: AbortSignal.abort() }), (e) => e.code === "aborted");
  assert.equal(await storage.getEnrollment("a"), undefined);
});

test("createWallet validates its enrollment option", async () => {
  const core = new WalletCore({ cosignerUrl: "http://127.0.0.1:9", walletName: "a", protection: "webcrypto" });
  await assert.rejects(core.createWallet({ enrollment: "yes" }), (e) => e.code === "invalid_input" && /enrollment/.test(e.message));
});

test("EnrollmentError: code, enroll-again detail, and it survives the Worker boundary", () => {
  const e = new EnrollmentError("not_found", "gone", { enrollmentId: "enr-1" });
  assert.ok(e instanceof WalletError);
  assert.equal(e.name, "EnrollmentError");
  assert.equal(e.code, "not_found");
  assert.deepEqual(e.details, { enrollmentId: "enr-1", enrollAgain: true });
  const back = deserializeError(JSON.parse(JSON.stringify(e)));
  assert.ok(back instanceof EnrollmentError);
  assert.equal(back.code, "not_found");
  assert.equal(back.details.enrollmentId, "enr-1");
  assert.equal(back.details.enrollAgain, true);
});
