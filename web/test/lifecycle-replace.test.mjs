// The new profile of a device replacement (src/lifecycle-replace.ts) against a hostile
// recovery agent: the possession challenge and the template must name the cosigner this
// profile reaches (its Health identity). A challenge for another cosigner is refused
// before the new identity signs anything; a template naming another cosigner is refused
// before any session runs. Nothing is stored either way. The wasm `NewDevice`, the agent
// and the cosigner's Health are fakes at the module's boundary; IndexedDB is the fake.
import assert from "node:assert/strict";
import { register } from "node:module";
import { test } from "node:test";
import { fakeIndexedDB } from "./fake-idb.mjs";

register("./fake-wasm-loader.mjs", import.meta.url);
globalThis.indexedDB = fakeIndexedDB();

const storage = await import("../dist/storage.js");
const { replaceDevice } = await import("../dist/lifecycle-replace.js");

const OURS = "ef".repeat(64);
const OTHER = "cd".repeat(64);

/** A replacement run against an agent whose challenge names `audience` and whose
 * template names `templateCosigner`; returns what the new identity signed, what was
 * posted to the agent and the error. */
async function replaceWith({ audience, templateCosigner, walletName }) {
  const signed = [];
  const posted = [];
  let ran = false;
  let freed = false;
  class NewDevice {
    constructor(walletId) {
      this.walletId = walletId;
      this.identity = "ab".repeat(64);
    }
    signPossession(...args) {
      signed.push(args);
      return "00".repeat(64);
    }
    run() {
      ran = true;
      throw new Error("no session may run");
    }
    free() {
      freed = true;
    }
  }
  let waits = 0;
  const agent = {
    requestLifecycle: async () => ({ request_id: "r-1", state: "awaiting_confirmation" }),
    waitRequest: async (id) => {
      waits += 1;
      if (waits === 1) {
        return {
          request_id: id,
          state: "awaiting_device",
          possession_challenge: { message_hex: "00", audience, timestamp_ms: 1, nonce_hex: "00" },
        };
      }
      return {
        request_id: id,
        state: "running",
        lifecycle: { kind: "replace_device", plan_b64: "", template: { cosigner_identity: templateCosigner } },
      };
    },
    possession: async (...args) => posted.push(args),
  };
  const ctx = {
    walletName,
    mpc: { NewDevice },
    // Health answers in upper case: the comparison ignores case.
    cosigner: { url: "http://cosigner.test", health: async () => ({ identity: OURS.toUpperCase() }) },
    session: {},
    protection: {},
    open: async () => {
      throw new Error("nothing to open");
    },
    emit: () => {},
    signal: undefined,
    timeoutMs: 1_000,
  };
  const error = await replaceDevice(ctx, {
    walletId: "w-1",
    reason: "",
    agent,
    protection: "webcrypto",
    primes: async () => ({ primes: ["1", "2", "3", "4"] }),
    insecureDevPrimes: () => true,
  }).then(
    () => assert.fail("the replacement went through"),
    (e) => e,
  );
  return { signed, posted, ran, freed, error };
}

test("a possession challenge for another cosigner is refused before the new identity signs", async () => {
  const r = await replaceWith({ audience: OTHER, templateCosigner: OTHER, walletName: "hostile-challenge" });
  assert.equal(r.error.code, "invalid_response", r.error.message);
  assert.match(r.error.message, /nothing was signed/);
  assert.deepEqual(r.signed, []);
  assert.deepEqual(r.posted, []);
  assert.equal(r.ran, false);
  assert.equal(r.freed, true);
  assert.ok(!(await storage.getWallet("hostile-challenge")));
});

test("our cosigner's challenge is signed; a template naming another cosigner stops the run before any session", async () => {
  const r = await replaceWith({ audience: OURS, templateCosigner: OTHER, walletName: "hostile-template" });
  assert.equal(r.signed.length, 1);
  assert.equal(r.signed[0][1], OURS);
  assert.deepEqual(r.posted, [["r-1", "00".repeat(64)]]);
  assert.equal(r.error.code, "invalid_response", r.error.message);
  assert.match(r.error.message, /names cosigner/);
  assert.equal(r.ran, false);
  assert.equal(r.freed, true);
  assert.ok(!(await storage.getWallet("hostile-template")));
});
