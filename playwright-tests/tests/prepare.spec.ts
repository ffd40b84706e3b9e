// Prepared safe primes (web/src/primes.ts) in headless Chromium, cheap but real:
// 1. a real 1536-bit search in a prime Worker stores encrypted checkpoints in IndexedDB;
//    after a reload the search resumes from them (the wasm accepts the checkpoint, the
//    counters continue instead of restarting);
// 2. a complete prepared set (seeded through the test-only path: the package's
//    prime-store module with the PUBLIC dev fixture primes) is used by createWallet
//    and consumed: the store is empty afterwards.
// A full-size preparation (minutes) is in prepare-bench.spec.ts (BENCH_PRIMES=1).
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { expect, test, type Page } from "@playwright/test";
import { REPO, type E2eEnv } from "../harness/global-setup.js";

const env = JSON.parse(process.env.WALLET_E2E ?? "null") as E2eEnv;

function demoUrl(name: string, extra: Record<string, string> = {}): string {
  const u = new URL(env.demoUrl);
  u.searchParams.set("devPrimes", "0");
  u.searchParams.set("name", name);
  for (const [k, v] of Object.entries(extra)) u.searchParams.set(k, v);
  return u.toString();
}

async function demoState<T>(p: Page, key: string): Promise<T> {
  return p.evaluate((k) => (window as unknown as { demo: Record<string, unknown> }).demo[k], key) as Promise<T>;
}

interface StoredPrimes {
  found: number;
  candidates: number;
  ciphertextLen: number;
  plaintextVisible: boolean;
  extractable: boolean | null;
  algo: string | null;
}

/** The raw IndexedDB record of the prime store (counters in clear, secrets encrypted). */
async function storedPrimes(p: Page, name: string): Promise<StoredPrimes | null> {
  return p.evaluate(async (n) => {
    const db = await new Promise<IDBDatabase>((res, rej) => {
      const r = indexedDB.open("wallet-mpc-web-primes");
      r.onsuccess = () => res(r.result);
      r.onerror = () => rej(r.error);
    });
    if (!db.objectStoreNames.contains("state")) {
      db.close();
      return null;
    }
    const get = (store: string) =>
      new Promise<unknown>((res, rej) => {
        const r = db.transaction(store).objectStore(store).get(n);
        r.onsuccess = () => res(r.result);
        r.onerror = () => rej(r.error);
      });
    const rec = (await get("state")) as { found: number; candidates: number; ciphertext: Uint8Array } | undefined;
    const key = (await get("keys")) as CryptoKey | undefined;
    db.close();
    if (!rec) return null;
    const text = new TextDecoder().decode(rec.ciphertext);
    return {
      found: rec.found,
      candidates: rec.candidates,
      ciphertextLen: rec.ciphertext.length,
      plaintextVisible: text.includes("checkpoints") || text.includes("base") || text.includes("params"),
      extractable: key ? key.extractable : null,
      algo: key ? key.algorithm.name : null,
    };
  }, name);
}

test.beforeEach(async ({ page }) => {
  expect(env, "WALLET_E2E missing: global setup did not run").toBeTruthy();
  page.on("console", (m) => {
    if (m.type() === "error" || m.type() === "warning") console.log(`[page ${m.type()}] ${m.text()}`);
  });
  page.on("pageerror", (e) => console.log(`[page exception] ${e.message}`));
});

test("prepare: encrypted checkpoints, reload resumes the search where it stopped", async ({ page }, info) => {
  const name = "prep-resume";
  await page.goto(demoUrl(name, { primeWorkers: "1" }));
  await expect(page.locator("body")).toHaveAttribute("data-ready", "true");
  await expect(page.locator("#prepared-status")).toHaveAttribute("data-state", "none");
  await page.click("#prepare");
  await expect(page.locator("#prepare-progress")).toBeVisible();

  // Wait for a stored checkpoint with work in it (saved every 2 s while searching).
  await expect
    .poll(async () => (await storedPrimes(page, name))?.candidates ?? 0, { timeout: 120_000, intervals: [500] })
    .toBeGreaterThan(0);
  const first = await demoState<{ last: { workers: number; mode: string; resumedCandidates: number } }>(page, "prepare");
  expect(first.last.mode).toBe("workers"); // a real prime Worker (nested in the protocol Worker)
  expect(first.last.workers).toBe(1);
  expect(first.last.resumedCandidates).toBe(0);
  const rec = (await storedPrimes(page, name))!;
  expect(rec.plaintextVisible).toBe(false);
  expect(rec.ciphertextLen).toBeGreaterThan(100);
  expect(rec.extractable).toBe(false);
  expect(rec.algo).toBe("AES-GCM");
  await page.screenshot({ path: info.outputPath("prepare-running.png") });

  // Reload: the page (and its workers) go away mid-search.
  await page.reload();
  await expect(page.locator("body")).toHaveAttribute("data-ready", "true");
  const stored = (await storedPrimes(page, name))!.candidates;
  expect(stored).toBeGreaterThan(0);
  await expect(page.locator("#prepared-status")).toHaveAttribute("data-state", "in_progress");
  const status = await demoState<{ status: { state: string; candidates: number; running: boolean } }>(page, "prepare");
  expect(status.status).toMatchObject({ state: "in_progress", candidates: stored, running: false });

  // Resume: the first report already counts the stored work, the stored checkpoint is
  // accepted by the wasm (resumedSearches), and the counters keep growing from there.
  await page.click("#prepare");
  await expect
    .poll(async () => (await demoState<{ last?: { resumedSearches: number; candidates: number } }>(page, "prepare")).last?.resumedSearches ?? 0, {
      timeout: 60_000,
    })
    .toBe(1);
  const resumed = await demoState<{ first: { resumedCandidates: number; candidates: number }; last: { candidates: number } }>(page, "prepare");
  expect(resumed.first.resumedCandidates).toBe(stored);
  expect(resumed.first.candidates).toBeGreaterThanOrEqual(stored);
  await expect
    .poll(async () => (await demoState<{ last: { candidates: number } }>(page, "prepare")).last.candidates, { timeout: 60_000 })
    .toBeGreaterThan(stored);
  await expect.poll(async () => (await storedPrimes(page, name))?.candidates ?? 0, { timeout: 30_000 }).toBeGreaterThan(stored);

  await page.click("#prepare-stop");
  await expect(page.locator("#prepared-status")).toContainText("paused");
  console.log(`[prepare] ${stored} candidates before the reload, resumed and continued`);
});

test("createWallet uses a prepared set and consumes it", async ({ page }, info) => {
  const name = "prep-consume";
  const fixture = JSON.parse(readFileSync(join(REPO, "crates", "mpc-core", "fixtures", "dev-primes.json"), "utf8")) as {
    parties: { primes: string[] }[];
  };
  const primes = fixture.parties[0]!.primes;
  await page.goto(demoUrl(name));
  await expect(page.locator("body")).toHaveAttribute("data-ready", "true");
  // Test-only seeding: the package's own encrypted store, with the PUBLIC fixture primes.
  await page.addScriptTag({ type: "module", content: `import * as s from "/dist/prime-store.js"; window.__primeStore = s;` });
  await page.waitForFunction(() => "__primeStore" in window);
  await page.evaluate(
    async ([n, p]) => {
      const s = (window as unknown as { __primeStore: { putPreparedSet(n: string, p: string[]): Promise<void> } }).__primeStore;
      await s.putPreparedSet(n as string, p as string[]);
    },
    [name, primes] as const,
  );
  expect((await storedPrimes(page, name))?.found).toBe(4);
  await page.reload();
  await expect(page.locator("body")).toHaveAttribute("data-ready", "true");
  await expect(page.locator("#prepared-status")).toHaveAttribute("data-state", "ready");

  await page.click("#create");
  await expect(page.locator("#status")).toHaveAttribute("data-state", "ready", { timeout: 14 * 60_000 });
  await expect(page.locator("#error")).toBeHidden();
  expect(await demoState<string>(page, "primesSource")).toBe("prepared");
  await expect(page.locator("#primes-source")).toHaveAttribute("data-source", "prepared");
  // The fixture primes are recognised: the wallet is marked as test-only.
  await expect(page.locator("#status")).toContainText("PUBLIC TEST PRIMES");
  // Consumed: nothing left to reuse for another wallet.
  expect(await storedPrimes(page, name)).toBeNull();
  await expect(page.locator("#prepared-status")).toHaveAttribute("data-state", "none");
  const timings = await demoState<Record<string, number>>(page, "timings");
  expect(timings.primesMs).toBeLessThan(30_000);
  await page.screenshot({ path: info.outputPath("prepared-wallet.png"), fullPage: true });
});
