// Presignature pools in the browser, end to end against the real cosigner, on the demo
// wallet (flows/wallet.ts creates it: HD, its first address m/44/60/0/0/0, webcrypto
// storage; the page refills only when told, presignAuto=0). The pool of that path is
// filled in the separate presign Worker, a message and an EIP-1559 transaction are signed
// from it (one round trip) for the derived address, not the root, and verified here in
// Node with viem; the empty pool falls back to full signing (auto) or fails typed
// (require); a presignature taken just before a crash is never used again (neither by
// the device — its restored copy meets the tombstone — nor by the cosigner — `used`);
// the stored presignatures are ciphertext. The pool module's storage itself (take-once,
// tombstones, the passphrase-mode key) is presign.spec.ts; a passphrase-mode wallet's
// pool, refilled in an offscreen document, signs in extension.spec.ts.
import { expect, test, type Page } from "@playwright/test";
import { parseTransaction, recoverMessageAddress, recoverTransactionAddress, type Hex } from "viem";
import { demoState, demoUrl, noPageError, shot, type DemoWallet } from "./demo.js";
import { WALLET } from "./wallet.js";

/** The path of the demo wallet's pool (the demo's default address). */
const PATH = "m/44/60/0/0/0";

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

async function signMessage(p: Page, address: string, message: string, mode: "auto" | "off" | "require"): Promise<SigState> {
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

/** The pool tests on the demo wallet `w` (after walletTests: the wallet exists). */
export function presignTests(w: DemoWallet) {
  let page: Page;

  test("the demo wallet fills the pool of m/44/60/0/0/0 in the separate presign Worker", async ({}, info) => {
    expect(w.address).not.toBe("");
    page = await w.context.newPage();
    await page.goto(demoUrl({ presignTarget: "2", presignAuto: "0" }));
    await expect(page.locator("body")).toHaveAttribute("data-ready", "true");
    await noPageError(page);
    await expect(page.locator("#address")).toHaveText(w.address);
    expect(await demoState<string>(page, "path")).toBe(PATH);
    await expect(page.locator("#pool-status")).toHaveAttribute("data-device", "0");

    const t0 = Date.now();
    const status = await refill(page);
    console.log(`[presign] refill of 2 presignatures (device in wasm): ${((Date.now() - t0) / 1000).toFixed(1)} s`);
    expect(status).toMatchObject({ derivationPath: PATH, device: 2, cosigner: 2, usable: 2, running: false, generated: 2 });
    // The refill ran in its own Worker, not in the protocol Worker that signs.
    const workers = page.workers().map((x) => new URL(x.url()).pathname);
    expect(workers).toEqual(expect.arrayContaining(["/browser/worker.js", "/browser/pool-worker.js"]));

    // Filed under the pool of that path, stored encrypted: no plaintext presignature in
    // IndexedDB.
    const recs = await dump(page, "presignatures");
    expect(recs).toHaveLength(2);
    for (const r of recs) {
      expect(r.key[0]).toBe(WALLET);
      expect(r.key[2]).toMatch(/@m\/44\/60\/0\/0\/0$/);
      expect(r.value.ciphertext.length).toBeGreaterThan(500);
      const text = new TextDecoder().decode(r.value.ciphertext);
      // Markers of the plaintext JSON, each long enough that random ciphertext never holds
      // them by chance (a two-byte `{"` did, about one run in ten).
      expect(text).not.toMatch(/account_id|presignature|signers|"derivation|"id"/);
      expect(text).not.toContain(r.value.id);
    }
    await shot(page, info, "presign-01-pool-filled");
  });

  test("sign a message and an EIP-1559 transaction from the pool, for the derived address (not the root); viem verifies both", async ({}, info) => {
    const root = await page.evaluate(() =>
      (window as unknown as { demo: { client: { getAddress(a?: string, p?: string): Promise<string> } } }).demo.client.getAddress(),
    );
    expect(root).not.toBe(w.address);
    const before = await dump(page, "presignatures");
    const msg = await signMessage(page, w.address, `pooled message ${Date.now()}`, "require");
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
    expect(await recoverTransactionAddress({ serializedTransaction: tx.signed as never })).toBe(w.address);
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
    const sig = await signMessage(page, w.address, `full signing fallback ${Date.now()}`, "auto");
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
    await w.context.route(pattern, async (route) => {
      await route.fetch(); // delivered to the cosigner; its answer is dropped
      reached();
    });
    await page.selectOption("#presign-mode", "auto");
    await page.fill("#message", "lost in a crash");
    await page.click("#sign-msg");
    await forwarded;
    await page.reload();
    await w.context.unroute(pattern);
    await expect(page.locator("body")).toHaveAttribute("data-ready", "true");
    await expect(page.locator("#address")).toHaveText(w.address);

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
    const sig = await signMessage(page, w.address, `after the crash ${Date.now()}`, "require");
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
    await page.close();
  });
}
