// Prepared safe primes (web/src/primes.ts) in headless Chromium, cheap but real:
// 1. a real 1536-bit search in a prime Worker stores encrypted checkpoints in IndexedDB;
//    after a reload the search resumes from them (the wasm accepts the checkpoint, the
//    counters continue instead of restarting);
// 2. a complete prepared set being used by createWallet and consumed is part of the demo
//    wallet's creation (wallet.spec.ts, flows/wallet.ts): one wallet for both.
// A full-size preparation (minutes) is in prepare-bench.spec.ts (BENCH_PRIMES=1).
import { expect, test } from "@playwright/test";
import { demoState, env, logPage, storedPrimes } from "./flows/demo.js";

function demoUrl(name: string, extra: Record<string, string> = {}): string {
  const u = new URL(env.demoUrl);
  u.searchParams.set("devPrimes", "0");
  u.searchParams.set("name", name);
  for (const [k, v] of Object.entries(extra)) u.searchParams.set(k, v);
  return u.toString();
}

test.beforeEach(async ({ page }) => {
  expect(env, "WALLET_E2E missing: global setup did not run").toBeTruthy();
  logPage(page);
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
