// Device enrollments (enroll at install, create in a second): the IndexedDB storage of
// the enrollment record (src/storage.ts, DB version 2 and its migration from version 1,
// WebCrypto encryption bound to the wallet name and enrollment id, deletion in the
// wallet's own transaction), the core's enrollmentStatus / enrollDevice resumption over
// a stored record, the option validation, and the typed EnrollmentError; around the
// wasm flows (faked at the wasm boundary: test/fake-wasm.mjs): one enrollment per wallet
// name across contexts (a Web Lock), and createWallet's forgotten-enrollment path.
// IndexedDB is an in-memory fake (test/fake-idb.mjs) under the real src/storage.ts;
// WebCrypto is node's.
// Run: npm test (after npm run build).
import assert from "node:assert/strict";
import { register } from "node:module";
import { beforeEach, test } from "node:test";
import { fakeIndexedDB } from "./fake-idb.mjs";
import { fake as wasm } from "./fake-wasm.mjs";
import { testLockManager } from "./fake-locks.mjs";

// The package's modules load the fake wasm core (test/fake-wasm-loader.mjs).
register("./fake-wasm-loader.mjs", import.meta.url);

const fake = fakeIndexedDB();
globalThis.indexedDB = fake;

// Web Locks: node's own where it has them (Node >= 24), else a small in-test manager.
if (typeof globalThis.navigator?.locks?.request !== "function") {
  if (globalThis.navigator) Object.defineProperty(globalThis.navigator, "locks", { value: testLockManager(), configurable: true });
  else Object.defineProperty(globalThis, "navigator", { value: { locks: testLockManager() }, configurable: true, writable: true });
}

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
  wasm.reset();
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

// ---------------------------------------------------------------------------------
// Around the wasm flows (fake wasm core; real storage over the fake IndexedDB)

const NOWHERE = { cosignerUrl: "http://127.0.0.1:9", agentUrl: "http://127.0.0.1:9", agentToken: "t" };
const tick = () => new Promise((r) => setTimeout(r, 5));

async function until(cond, what) {
  for (let i = 0; i < 400; i++) {
    if (cond()) return;
    await tick();
  }
  assert.fail(`timed out waiting for ${what}`);
}

/** `p`, or a rejection after `ms` (a test never hangs on a promise that never settles). */
function within(p, ms) {
  let timer;
  const late = new Promise((_, reject) => (timer = setTimeout(() => reject(new Error(`still pending after ${ms} ms`)), ms)));
  return Promise.race([p, late]).finally(() => clearTimeout(timer));
}

/**
 * A fake enrollment flow: counts its runs and holds each one until `release()`, then
 * stores its enrollment through the host (as the wasm flow's persist step does).
 */
function heldEnrollment() {
  const s = { runs: 0, release: () => undefined };
  const gate = new Promise((r) => (s.release = r));
  wasm.enrollDevice = async (host, _params) => {
    s.runs += 1;
    const enrollmentId = `enr-run-${s.runs}`;
    const expiresAtMs = Date.now() + 3_600_000;
    await gate;
    await host.persistEnrollment({ enrollmentId, expiresAtMs, bytes: new Uint8Array([s.runs, 42]) });
    return { enrollmentId, expiresAtMs, timings: { auxInfoMs: 7, agentMs: 1, totalMs: 8 } };
  };
  return s;
}

test("the Web Lock manager the tests use has the request semantics (exclusive, FIFO, abortable wait)", async () => {
  const lm = globalThis.navigator.locks;
  const order = [];
  let releaseA;
  const a = lm.request("t", {}, () => new Promise((r) => (releaseA = () => r("a"))));
  const ctl = new AbortController();
  const b = lm.request("t", { signal: ctl.signal }, async () => order.push("b"));
  const c = lm.request("t", {}, async () => (order.push("c"), "c"));
  await tick();
  assert.deepEqual(order, []);
  ctl.abort();
  await assert.rejects(b, (e) => e.name === "AbortError");
  releaseA();
  assert.equal(await a, "a");
  assert.equal(await c, "c");
  assert.deepEqual(order, ["c"]);
});

test("two contexts enroll one wallet name at once: the protocol runs once, both get its enrollment", async () => {
  // A second instance of core.js: its own in-memory state (the `enrolling` map), as in
  // another tab or the extension's offscreen document; IndexedDB and the locks are shared.
  const { WalletCore: OtherContextCore } = await import("../dist/core.js?context=2");
  assert.notEqual(OtherContextCore, WalletCore);
  const held = heldEnrollment();
  const cfg = { ...NOWHERE, walletName: "b", protection: "webcrypto", insecureDevPrimes: true };
  const first = new WalletCore(cfg).enrollDevice();
  await until(() => held.runs === 1, "the first enrollment to start");
  const second = new OtherContextCore(cfg).enrollDevice();
  // The second context is waiting (for the lock), not enrolling.
  for (let i = 0; i < 10; i++) await tick();
  held.release();
  const [a, b] = await within(Promise.all([first, second]), 2000);
  assert.equal(held.runs, 1, "the enrollment protocol ran once");
  assert.equal(wasm.calls.filter(([n]) => n === "enrollDevice").length, 1);
  assert.equal(a.enrollmentId, "enr-run-1");
  assert.equal(a.reused, false);
  assert.equal(b.enrollmentId, a.enrollmentId);
  assert.equal(b.reused, true, "the waiting context returns the stored enrollment (no network: the URLs point nowhere)");
  assert.equal(b.expiresAtMs, a.expiresAtMs);
  const rec = await storage.getEnrollment("b");
  assert.equal(rec.enrollmentId, "enr-run-1");
  assert.deepEqual(await storage.decryptEnrollment(rec), new Uint8Array([1, 42]));
});

test("a context waiting for another's enrollment honours its abort signal", async () => {
  const { WalletCore: OtherContextCore } = await import("../dist/core.js?context=3");
  const held = heldEnrollment();
  const cfg = { ...NOWHERE, walletName: "c", protection: "webcrypto", insecureDevPrimes: true };
  const first = new WalletCore(cfg).enrollDevice();
  await until(() => held.runs === 1, "the first enrollment to start");
  try {
    const ctl = new AbortController();
    const waiting = new OtherContextCore(cfg).enrollDevice({ signal: ctl.signal });
    await tick();
    ctl.abort();
    await assert.rejects(within(waiting, 2000), (e) => e.code === "aborted" && /enrolling the device/.test(e.message));
    assert.equal(held.runs, 1);
  } finally {
    held.release();
  }
  assert.equal((await first).enrollmentId, "enr-run-1");
});

/** A FlowError as the wasm creation flow rejects with when the cosigner refuses the enrollment. */
function unusableEnrollment(code, enrollmentId) {
  return Object.assign(new Error(`the cosigner refused enrollment ${enrollmentId}`), { name: "FlowError", code, retryable: false, enrollmentId, enrollmentUnusable: true });
}

for (const code of ["not_found", "unauthorized"]) {
  test(`createWallet with an enrollment the cosigner no longer knows (${code}): the record is deleted, EnrollmentError`, async () => {
    await storage.putEnrollment(META("a", "enr-gone"), { bytes: new Uint8Array([9, 8, 7]) });
    let passed;
    wasm.createWallet = async (_host, params) => {
      passed = params.enrollment;
      // The flow got the decrypted enrollment (WebCrypto record: the host decrypts).
      assert.deepEqual([...params.enrollment.bytes], [9, 8, 7]);
      throw unusableEnrollment(code, "enr-gone");
    };
    const core = new WalletCore({ ...NOWHERE, walletName: "a", protection: "webcrypto" });
    const err = await core.createWallet().then(
      () => assert.fail("createWallet resolved"),
      (e) => e,
    );
    assert.ok(err instanceof EnrollmentError, String(err));
    assert.equal(err.name, "EnrollmentError");
    assert.equal(err.code, code);
    assert.deepEqual(err.details, { enrollmentId: "enr-gone", enrollAgain: true });
    assert.match(err.message, /enr-gone cannot be used any more/);
    assert.match(err.message, /enrollDevice\(\)/);
    assert.equal(await storage.getEnrollment("a"), undefined, "the useless record is deleted");
    assert.equal(await storage.getWallet("a"), undefined);
    assert.ok(passed.bytes.every((b) => b === 0), "the decrypted enrollment is wiped");
    // Without an enrollment, the next creation runs the full path (no enrollment param).
    wasm.createWallet = async (_host, params) => {
      assert.equal(params.enrollment, undefined);
      throw Object.assign(new Error("cosigner down"), { name: "FlowError", code: "cosigner_unavailable", retryable: true });
    };
    await assert.rejects(core.createWallet(), (e) => e.code === "cosigner_unavailable");
  });
}

test("createWallet keeps the enrollment when the failure is not about it", async () => {
  await storage.putEnrollment(META("a", "enr-kept"), { bytes: new Uint8Array([1]) });
  wasm.createWallet = async () => {
    throw Object.assign(new Error("no such thing"), { name: "FlowError", code: "not_found", retryable: false });
  };
  const core = new WalletCore({ ...NOWHERE, walletName: "a", protection: "webcrypto" });
  await assert.rejects(core.createWallet(), (e) => !(e instanceof EnrollmentError) && e.code === "not_found");
  assert.equal((await storage.getEnrollment("a")).enrollmentId, "enr-kept");
});
