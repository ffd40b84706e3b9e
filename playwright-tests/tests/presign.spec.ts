// Presignature pools in the browser, end to end against the real cosigner: an
// independent account's pool is filled in the separate presign Worker, a message and an
// EIP-1559 transaction are signed from it (one round trip) and verified here in Node with
// viem, the empty pool falls back to full signing (auto) or fails typed (require), a
// presignature taken just before a crash is never used again (neither by the device —
// its restored copy meets the tombstone — nor by the cosigner — `used`), and the stored
// presignatures are ciphertext; then an HD passphrase wallet whose pool at its first
// address, m/44/60/0/0/0, signs for that derived key. Cheap: dev primes, one account,
// pool target 2, two wallets.
import { expect, test, type BrowserContext, type Page, type TestInfo } from "@playwright/test";
import { parseTransaction, recoverMessageAddress, recoverTransactionAddress, type Hex } from "viem";
import type { E2eEnv } from "../harness/global-setup.js";

const env = JSON.parse(process.env.WALLET_E2E ?? "null") as E2eEnv;
const NAME = "presign-e2e";

test.describe.configure({ mode: "serial" });

let context: BrowserContext;
let page: Page;
let address = "";
let url = "";

interface PoolStatus {
  accountId: string;
  device: number;
  cosigner: number | null;
  usable: number | null;
  running: boolean;
  generated?: number;
}
interface SigState {
  rsv: Hex;
  presigned: boolean;
  onlineMs: number | null;
  presign: { presignatureId?: string; fallback?: string; timings?: Record<string, number> } | null;
}
interface RawRecord {
  key: [string, string, string, string];
  value: { id: string; ciphertext: Uint8Array; iv: Uint8Array; createdAtMs: number };
}

async function shot(p: Page, info: TestInfo, name: string) {
  const path = info.outputPath(`${name}.png`);
  await p.screenshot({ path, fullPage: true });
  await info.attach(name, { path, contentType: "image/png" });
}

async function demoState<T>(p: Page, key: string): Promise<T> {
  return p.evaluate((k) => (window as unknown as { demo: Record<string, unknown> }).demo[k], key) as Promise<T>;
}

async function noPageError(p: Page) {
  const err = p.locator("#error");
  if (await err.isVisible()) throw new Error(`the page shows an error: ${await err.textContent()}`);
}

/** Every record of a store of the presignature database (keys and values). */
async function dump(p: Page, store: "presignatures" | "tombstones"): Promise<RawRecord[]> {
  return p.evaluate(async (s) => {
    const db = await new Promise<IDBDatabase>((res, rej) => {
      const r = indexedDB.open("wallet-mpc-web-presign");
      r.onsuccess = () => res(r.result);
      r.onerror = () => rej(r.error);
    });
    const tx = db.transaction(s);
    const st = tx.objectStore(s);
    const [keys, values] = await Promise.all([
      new Promise<IDBValidKey[]>((res, rej) => {
        const r = st.getAllKeys();
        r.onsuccess = () => res(r.result);
        r.onerror = () => rej(r.error);
      }),
      new Promise<unknown[]>((res, rej) => {
        const r = st.getAll();
        r.onsuccess = () => res(r.result);
        r.onerror = () => rej(r.error);
      }),
    ]);
    db.close();
    return keys.map((k, i) => ({ key: k, value: values[i] })) as never;
  }, store);
}

/** Writes (`put`) or deletes records of the presignature database, as a restored backup would. */
async function tamper(p: Page, store: "presignatures" | "tombstones", op: { put?: RawRecord; del?: RawRecord["key"] }) {
  await p.evaluate(
    async ({ s, op }) => {
      const db = await new Promise<IDBDatabase>((res, rej) => {
        const r = indexedDB.open("wallet-mpc-web-presign");
        r.onsuccess = () => res(r.result);
        r.onerror = () => rej(r.error);
      });
      await new Promise<void>((res, rej) => {
        const tx = db.transaction(s, "readwrite");
        if (op.put) tx.objectStore(s).put(op.put.value, op.put.key);
        if (op.del) tx.objectStore(s).delete(op.del);
        tx.oncomplete = () => res();
        tx.onerror = () => rej(tx.error);
      });
      db.close();
    },
    { s: store, op },
  );
}

async function refill(p: Page): Promise<PoolStatus> {
  await p.click("#pool-refill");
  await expect(p.locator("#pool-refill")).toBeDisabled();
  await expect(p.locator("#pool-refill")).toBeEnabled({ timeout: 8 * 60_000 });
  await noPageError(p);
  return demoState<PoolStatus>(p, "pool");
}

async function signMessage(p: Page, message: string, mode: "auto" | "off" | "require"): Promise<SigState> {
  await p.selectOption("#presign-mode", mode);
  await p.fill("#message", message);
  await p.click("#sign-msg");
  // Done (verified) or failed (error area): fail fast on errors.
  await expect(p.locator('#msg-verify[data-ok], #error:not([hidden])').first()).toBeVisible({ timeout: 5 * 60_000 });
  await noPageError(p);
  await expect(p.locator("#msg-verify")).toHaveAttribute("data-ok", "true");
  const sig = await demoState<SigState & { message: string }>(p, "message");
  expect(sig.message).toBe(message);
  // Independent check in Node.
  expect(await recoverMessageAddress({ message, signature: sig.rsv })).toBe(address);
  return sig;
}

async function signFails(p: Page, message: string, mode: "require"): Promise<{ code: string; message: string }> {
  await p.selectOption("#presign-mode", mode);
  await p.fill("#message", message);
  await p.click("#sign-msg");
  const err = p.locator("#error");
  await expect(err).toBeVisible({ timeout: 60_000 });
  return demoState<{ code: string; message: string }>(p, "error");
}

test.beforeAll(async ({ browser }) => {
  expect(env, "WALLET_E2E missing: global setup did not run").toBeTruthy();
  context = await browser.newContext();
  page = await context.newPage();
  page.on("console", (m) => {
    if (m.type() === "error" || m.type() === "warning") console.log(`[page ${m.type()}] ${m.text()}`);
  });
  page.on("pageerror", (e) => console.log(`[page exception] ${e.message}`));
  const u = new URL(env.demoUrl);
  u.searchParams.set("name", NAME);
  u.searchParams.set("kind", "independent");
  u.searchParams.set("presignTarget", "2");
  u.searchParams.set("presignAuto", "0"); // explicit refills: the test counts presignatures
  url = u.toString();
});

test.afterAll(async () => {
  await context?.close();
});

test("pool storage: take-once under concurrency, tombstones, encryption bound to its key", async () => {
  // The pool module itself (dist/pool.js) in real Chromium, no servers involved; the
  // passphrase-mode key (HKDF from the identity secret) is used, the webcrypto-mode key
  // is the wallet's (exercised by the end-to-end tests below).
  await page.goto(`${env.origin}/demo/index.html`);
  await page.addScriptTag({ type: "module", content: `import * as p from "/dist/pool.js"; window.__pool = p;` });
  await page.waitForFunction(() => "__pool" in window);
  const r = await page.evaluate(async () => {
    const pool = (window as unknown as { __pool: typeof import("../../web/src/pool.js") }).__pool;
    const w = { walletName: "unit", walletId: "w-1", protection: "passphrase" as const };
    const secret = new Uint8Array(32).fill(7);
    const key = await pool.poolKey(w, () => new Uint8Array(secret));
    const ids = ["p1", "p2", "p3", "p4", "p5"];
    for (const id of ids) {
      await pool.putPresignature(w, key, "acct", [0, 1], id, new TextEncoder().encode(`{"secret presignature":"${id}"}`));
    }
    const listed = await pool.listPresignatures(w, "acct");
    // Eight concurrent takers: each presignature comes out exactly once.
    const outs = await Promise.all(Array.from({ length: 8 }, () => pool.takePresignature(w, "acct")));
    const got = outs.map((o) => o.taken?.record.id).filter((x): x is string => !!x).sort();
    const plain = await Promise.all(
      outs.filter((o) => o.taken).map(async (o) => new TextDecoder().decode(await pool.decryptRecord(w, key, o.taken!.record))),
    );
    let restore = "";
    try {
      await pool.putPresignature(w, key, "acct", [0, 1], "p1", new TextEncoder().encode("again"));
    } catch (e) {
      restore = (e as { code: string }).code;
    }
    // A record moved to another id (or wallet) does not decrypt.
    await pool.putPresignature(w, key, "acct", [0, 1], "p6", new TextEncoder().encode("six"));
    const six = (await pool.takePresignature(w, "acct")).taken!.record;
    let moved = "";
    try {
      await pool.decryptRecord(w, key, { ...six, id: "p7" });
    } catch (e) {
      moved = (e as { code: string }).code;
    }
    let otherKey = "";
    try {
      const k2 = await pool.poolKey({ ...w, walletId: "w-2" }, () => new Uint8Array(32).fill(8));
      await pool.decryptRecord(w, k2, six);
    } catch (e) {
      otherKey = (e as { code: string }).code;
    }
    const tomb = await pool.getTombstone(w, "acct", "p3");
    await pool.deletePool("unit");
    const after = await pool.listPresignatures(w, "acct");
    return { listed, got, plain: plain.sort(), restore, moved, otherKey, tomb: tomb?.outcome, extractable: key.extractable, after };
  });
  expect(r.listed).toEqual(["p1", "p2", "p3", "p4", "p5"]);
  expect(r.got).toEqual(["p1", "p2", "p3", "p4", "p5"]);
  expect(r.plain).toEqual(["p1", "p2", "p3", "p4", "p5"].map((id) => `{"secret presignature":"${id}"}`));
  expect(r).toMatchObject({ restore: "storage", moved: "storage", otherKey: "storage", tomb: "taken", extractable: false, after: [] });
});

test("an independent wallet fills its pool in the separate presign Worker", async ({}, info) => {
  await page.goto(url);
  await expect(page.locator("body")).toHaveAttribute("data-ready", "true");
  await noPageError(page);
  await expect(page.locator("#status")).toHaveAttribute("data-state", "none");
  await page.click("#create");
  await expect(page.locator("#status")).toHaveAttribute("data-state", "ready", { timeout: 14 * 60_000 });
  await noPageError(page);
  address = (await page.locator("#address").textContent())?.trim() ?? "";
  expect(address).toMatch(/^0x[0-9a-fA-F]{40}$/);
  await expect(page.locator("#pool-status")).toHaveAttribute("data-device", "0");

  const t0 = Date.now();
  const status = await refill(page);
  console.log(`[presign] refill of 2 presignatures (device in wasm): ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  expect(status).toMatchObject({ device: 2, cosigner: 2, usable: 2, running: false, generated: 2 });
  // The refill ran in its own Worker, not in the protocol Worker that signs.
  const workers = page.workers().map((w) => new URL(w.url()).pathname);
  expect(workers).toEqual(expect.arrayContaining(["/browser/worker.js", "/browser/pool-worker.js"]));

  // Stored encrypted: no plaintext presignature in IndexedDB.
  const recs = await dump(page, "presignatures");
  expect(recs).toHaveLength(2);
  for (const r of recs) {
    expect(r.key[0]).toBe(NAME);
    expect(r.value.ciphertext.length).toBeGreaterThan(500);
    const text = new TextDecoder().decode(r.value.ciphertext);
    // Markers of the plaintext JSON, each long enough that random ciphertext never holds
    // them by chance (a two-byte `{"` did, about one run in ten).
    expect(text).not.toMatch(/account_id|presignature|signers|"id"/);
    expect(text).not.toContain(r.value.id);
  }
  await shot(page, info, "presign-01-pool-filled");
});

test("sign a message and an EIP-1559 transaction from the pool; viem verifies both", async ({}, info) => {
  const before = await dump(page, "presignatures");
  const msg = await signMessage(page, `pooled message ${Date.now()}`, "auto");
  expect(msg.presigned).toBe(true);
  expect(msg.onlineMs).toBeGreaterThan(0);
  expect(before.map((r) => r.value.id)).toContain(msg.presign?.presignatureId);
  await expect(page.locator("#msg-presigned")).toHaveAttribute("data-presigned", "true");
  console.log(`[presign] pooled message: online ${msg.onlineMs?.toFixed(1)} ms ${JSON.stringify(msg.presign?.timings)}`);

  await page.fill("#tx-to", "0x000000000000000000000000000000000000dEaD");
  await page.fill("#tx-value", "0.0123");
  await page.fill("#tx-chain", "11155111");
  await page.fill("#tx-nonce", "3");
  await page.click("#sign-tx-btn");
  await expect(page.locator('#tx-verify[data-ok], #error:not([hidden])').first()).toBeVisible({ timeout: 5 * 60_000 });
  await noPageError(page);
  await expect(page.locator("#tx-verify")).toHaveAttribute("data-ok", "true");
  const tx = await demoState<{ signed: Hex; hash: Hex } & SigState>(page, "tx");
  expect(tx.presigned).toBe(true);
  expect(tx.presign?.presignatureId).not.toBe(msg.presign?.presignatureId);
  const parsed = parseTransaction(tx.signed);
  expect(parsed.type).toBe("eip1559");
  expect(parsed.chainId).toBe(11155111);
  expect(parsed.nonce).toBe(3);
  expect(parsed.value).toBe(12300000000000000n);
  expect(await recoverTransactionAddress({ serializedTransaction: tx.signed as never })).toBe(address);
  await expect(page.locator("#tx-presigned")).toHaveAttribute("data-presigned", "true");

  // Both taken once: records gone, tombstones left.
  expect(await dump(page, "presignatures")).toHaveLength(0);
  const tombs = (await dump(page, "tombstones")).map((r) => r.key[3]).sort();
  expect(tombs).toEqual([msg.presign!.presignatureId!, tx.presign!.presignatureId!].sort());
  await page.click("#pool-refresh");
  await expect(page.locator("#pool-status")).toHaveAttribute("data-device", "0");
  expect((await demoState<PoolStatus>(page, "pool")).cosigner).toBe(0);
  await shot(page, info, "presign-02-signed-from-pool");
});

test("empty pool: require fails typed, auto falls back to full signing", async ({}, info) => {
  const err = await signFails(page, "require with an empty pool", "require");
  expect(err.code).toBe("presignature_unavailable");
  expect(err.message).toMatch(/no presignature left/);
  const sig = await signMessage(page, `full signing fallback ${Date.now()}`, "auto");
  expect(sig.presigned).toBe(false);
  expect(sig.presign?.fallback).toBe("empty");
  await expect(page.locator("#msg-presigned")).toHaveAttribute("data-presigned", "false");
  await shot(page, info, "presign-03-fallback");
});

test("a presignature taken before a crash is never used again, by either side", async ({}, info) => {
  const status = await refill(page);
  expect(status).toMatchObject({ device: 2, cosigner: 2, usable: 2 });
  const stored = await dump(page, "presignatures");
  expect(stored).toHaveLength(2);

  // Crash: the request reaches the cosigner (which uses the presignature and answers),
  // then the page reloads before the answer arrives.
  let reached!: () => void;
  const forwarded = new Promise<void>((r) => (reached = r));
  const pattern = "**/wallet.cosigner.v1.Cosigner/SignWithPresignature";
  await context.route(pattern, async (route) => {
    await route.fetch(); // delivered to the cosigner; its answer is dropped
    reached();
  });
  await page.selectOption("#presign-mode", "auto");
  await page.fill("#message", "lost in a crash");
  await page.click("#sign-msg");
  await forwarded;
  await page.reload();
  await context.unroute(pattern);
  await expect(page.locator("body")).toHaveAttribute("data-ready", "true");
  await expect(page.locator("#address")).toHaveText(address);

  const left = await dump(page, "presignatures");
  expect(left).toHaveLength(1);
  const lost = stored.find((r) => r.value.id !== left[0]!.value.id)!;
  const kept = left[0]!;
  const tomb = (await dump(page, "tombstones")).find((t) => t.key[3] === lost.value.id);
  expect(tomb, "the taken presignature has a tombstone").toBeTruthy();
  // The cosigner used it too: it no longer lists it.
  await page.click("#pool-refresh");
  await expect(page.locator("#pool-status")).toHaveAttribute("data-device", "1");
  expect(await demoState<PoolStatus>(page, "pool")).toMatchObject({ device: 1, cosigner: 1, usable: 1 });

  // Replay 1: the lost presignature's record comes back (a restored backup) next to its
  // tombstone. The device deletes that copy unused and signs with the other one.
  await tamper(page, "presignatures", { put: lost });
  const sig = await signMessage(page, `after the crash ${Date.now()}`, "require");
  expect(sig.presigned).toBe(true);
  expect(sig.presign?.presignatureId).toBe(kept.value.id);
  expect(await dump(page, "presignatures")).toHaveLength(0);

  // Replay 2: record AND tombstone rolled back (the whole database restored): the device
  // cannot know, the cosigner refuses (`used`) and the copy is discarded for good.
  await tamper(page, "presignatures", { put: lost });
  await tamper(page, "tombstones", { del: lost.key });
  const err = await signFails(page, "replay of a used presignature", "require");
  expect(err.code).toBe("presignature_unavailable");
  expect(err.message).toMatch(/already used/);
  expect(await dump(page, "presignatures")).toHaveLength(0);
  await expect
    .poll(async () => (await dump(page, "tombstones")).some((t) => t.key[3] === lost.value.id))
    .toBe(true);
  await shot(page, info, "presign-04-no-reuse");
});

test("an HD passphrase wallet: the pool of m/44/60/0/0/0 signs for that derived address (not the root), shares and presignatures under the passphrase; viem verifies", async ({}, info) => {
  // The demo's default: an HD account signing at its first address, m/44/60/0/0/0, with
  // a presignature pool for that path (generated for it: it signs for the derived key).
  // In passphrase mode (the default the docs give extensions): the share is the Argon2id
  // keystore file, the pool key is derived from the identity inside that file; nothing
  // usable without the passphrase sits next to the ciphertext. (One wallet for both:
  // each creation is minutes of aux info in wasm.)
  const name = "presign-hd-passphrase";
  const u = new URL(url);
  u.searchParams.set("name", name);
  u.searchParams.set("kind", "hd");
  u.searchParams.set("passphrase", "playwright passphrase wallet");
  const p = await context.newPage();
  await p.goto(u.toString());
  await expect(p.locator("body")).toHaveAttribute("data-ready", "true");
  await p.click("#create");
  await expect(p.locator("#status")).toHaveAttribute("data-state", "ready", { timeout: 14 * 60_000 });
  await noPageError(p);
  await expect(p.locator("#status")).toContainText("passphrase");
  expect(await demoState<string>(p, "path")).toBe("m/44/60/0/0/0");
  const addr = (await p.locator("#address").textContent())?.trim() ?? "";
  expect(addr).toMatch(/^0x[0-9a-fA-F]{40}$/);
  const root = await p.evaluate(() =>
    (window as unknown as { demo: { client: { getAddress(a?: string, p?: string): Promise<string> } } }).demo.client.getAddress(),
  );
  expect(root).not.toBe(addr);

  const status = await refill(p);
  expect(status).toMatchObject({ derivationPath: "m/44/60/0/0/0", device: 2, cosigner: 2, usable: 2, running: false });
  // The browser's records are filed under the pool of that path.
  const recs = (await dump(p, "presignatures")).filter((r) => r.key[0] === name);
  expect(recs).toHaveLength(2);
  for (const r of recs) {
    expect(r.key[2]).toMatch(/@m\/44\/60\/0\/0\/0$/);
    // Plaintext words of the record, long enough that random ciphertext never holds them
    // by chance (a two-byte pattern such as `{"` turns up in a few percent of records).
    expect(new TextDecoder().decode(r.value.ciphertext)).not.toMatch(/presignature|"signers"|"derivation/);
  }

  const message = `hd pool ${Date.now()}`;
  await p.selectOption("#presign-mode", "require");
  await p.fill("#message", message);
  await p.click("#sign-msg");
  await expect(p.locator('#msg-verify[data-ok], #error:not([hidden])').first()).toBeVisible({ timeout: 5 * 60_000 });
  await noPageError(p);
  await expect(p.locator("#msg-verify")).toHaveAttribute("data-ok", "true");
  const sig = await demoState<SigState>(p, "message");
  expect(sig.presigned).toBe(true);
  const signer = await recoverMessageAddress({ message, signature: sig.rsv });
  expect(signer).toBe(addr);
  expect(signer).not.toBe(root);
  // Used once on this side (the cosigner's side: sign-service/tests/presign.rs).
  const left = (await dump(p, "presignatures")).filter((r) => r.key[0] === name);
  expect(left).toHaveLength(1);
  expect(left[0]!.value.id).not.toBe(sig.presign?.presignatureId);
  await shot(p, info, "presign-05-hd-passphrase-pool");
  await p.close();
});
