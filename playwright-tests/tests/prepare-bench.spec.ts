// Full-size measurement, NOT run in CI (skipped unless BENCH_PRIMES=1): prepares the
// device's four real 1536-bit safe primes in headless Chromium with 1 and 2 prime
// Workers (BENCH_PRIME_WORKERS="1,2" to change), prints the wall time of each, then
// creates a wallet with the last prepared set and prints aux-info and DKG times and the
// time between aux-info rounds (from the progress events).
//   BENCH_PRIMES=1 SKIP_WASM_BUILD=1 bash playwright-tests/run.sh --grep @bench
import { writeFileSync } from "node:fs";
import { expect, test } from "@playwright/test";
import type { E2eEnv } from "../harness/global-setup.js";

const env = JSON.parse(process.env.WALLET_E2E ?? "null") as E2eEnv;
const enabled = process.env.BENCH_PRIMES === "1";
const workerCounts = (process.env.BENCH_PRIME_WORKERS ?? "1,2").split(",").map((x) => Number(x.trim())).filter((n) => n > 0);

interface PrepareState {
  running: boolean;
  wallMs?: number;
  last?: { candidates: number; found: number; ratePerSec: number; workers: number };
}

test("@bench prepare 4 real 1536-bit safe primes, then onboard with them", async ({ page }, info) => {
  test.skip(!enabled, "set BENCH_PRIMES=1 to run the full-size prime measurement (minutes)");
  test.setTimeout(180 * 60_000);
  const results: Record<string, unknown>[] = [];
  let lastName = "";
  for (const n of workerCounts) {
    const name = `bench-primes-w${n}-${Date.now()}`;
    lastName = name;
    const u = new URL(env.demoUrl);
    u.searchParams.set("devPrimes", "0");
    u.searchParams.set("name", name);
    u.searchParams.set("primeWorkers", String(n));
    await page.goto(u.toString());
    await expect(page.locator("body")).toHaveAttribute("data-ready", "true");
    await page.click("#prepare");
    await expect
      .poll(async () => (await page.evaluate(() => (window as unknown as { demo: { prepare: PrepareState } }).demo.prepare)).running, {
        timeout: 170 * 60_000,
        intervals: [5_000],
      })
      .toBe(false);
    const st = await page.evaluate(() => (window as unknown as { demo: { prepare: PrepareState } }).demo.prepare);
    await expect(page.locator("#prepared-status")).toHaveAttribute("data-state", "ready");
    const r = { workers: n, wallMs: st.wallMs, candidates: st.last?.candidates, ratePerSec: st.last?.ratePerSec };
    results.push(r);
    console.log(`[bench primes] ${n} worker(s): 4 x 1536-bit safe primes in ${((st.wallMs ?? 0) / 1000).toFixed(1)} s, ${st.last?.candidates} candidates, ${st.last?.ratePerSec} candidates/s`);
  }

  // Onboarding with the prepared primes of the last run.
  await page.click("#create");
  await expect(page.locator("#status")).toHaveAttribute("data-state", "ready", { timeout: 30 * 60_000 });
  const demo = await page.evaluate(() => (window as unknown as { demo: { timings: Record<string, number>; primesSource: string; progressLog: { phase: string; round: number; totalRounds: number; elapsedMs: number }[] } }).demo);
  expect(demo.primesSource).toBe("prepared");
  const log = demo.progressLog ?? [];
  const rounds: string[] = [];
  for (let i = 0; i < log.length; i++) {
    const e = log[i]!;
    const next = log[i + 1];
    if (e.phase === "aux-info" || e.phase === "keygen") {
      rounds.push(`${e.phase} round ${e.round}/${e.totalRounds}: ${next ? ((next.elapsedMs - e.elapsedMs) / 1000).toFixed(1) : "?"} s`);
    }
  }
  console.log(`[bench onboarding, wallet ${lastName}] primes (prepared) ${demo.timings.primesMs} ms, aux info ${demo.timings.auxInfoMs} ms, DKG ${demo.timings.keygenMs} ms, total ${demo.timings.createTotalMs} ms`);
  console.log(`[bench onboarding] time from reaching each round to the next:\n  ${rounds.join("\n  ")}`);
  const out = info.outputPath("prime-bench.json");
  writeFileSync(out, JSON.stringify({ prepare: results, onboarding: demo.timings, progressLog: log }, null, 2));
  console.log(`[bench] written ${out}`);
  const summary = { suite: "primes-web", platform: "chromium-headless", prepare: results, onboarding: demo.timings };
  console.log(`BENCH_JSON ${JSON.stringify(summary)}`);
  if (process.env.BENCH_PRIMES_JSON) writeFileSync(process.env.BENCH_PRIMES_JSON, JSON.stringify(summary, null, 2));
});
