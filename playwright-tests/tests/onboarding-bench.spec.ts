// Benchmark (NOT in CI; skipped unless BENCH_ONBOARD=1): onboarding and the full-signing
// fallback in headless Chromium against the real cosigner and recovery agent over the
// local gateway. Creates a wallet in the demo (dev fixture primes, so the figure is the
// protocol's and not the prime search's) and reports:
// - aux info (what device enrollment runs) and DKG (what creating an account runs) times;
// - the page's long tasks (PerformanceObserver "longtask") while the wallet is created:
//   the protocol runs in a Worker, so the page thread must stay free (target: none over
//   200 ms); a 250 ms task blocking the page on purpose afterwards proves the observer
//   sees them;
// - the peak RSS of the renderer process hosting the page and its protocol Worker
//   (VmHWM from /proc; dedicated Workers run in their page's renderer), and the wasm
//   linear memory is part of it;
// - full signing (presignatures off) p50/p95;
// - enroll at install, create in a second: a device enrollment (`enrollDevice`, the aux
//   info alone: `enroll_ms`) of a second wallet name, then its creation from the
//   enrollment (the DKG only: `create_after_enroll_ms`, whose aux info must be 0);
// - the wasm size, raw and gzip -9.
// One `BENCH_JSON {...}` line; BENCH_ONBOARD_JSON=FILE writes it for scripts/bench.sh.
//   BENCH_ONBOARD=1 [BENCH_FULL_N=5] SKIP_WASM_BUILD=1 bash playwright-tests/run.sh tests/onboarding-bench.spec.ts
import { readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { gzipSync } from "node:zlib";
import { expect, test } from "@playwright/test";
import { recoverMessageAddress, type Hex } from "viem";
import { REPO } from "../harness/global-setup.js";
import { demoState, demoUrl, env, logPage } from "./flows/demo.js";

const enabled = process.env.BENCH_ONBOARD === "1";
const FULL_N = Number(process.env.BENCH_FULL_N ?? 5);

function pct(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  if (s.length === 0) return NaN;
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))]!;
}

/** Chromium renderer processes now: pid -> { rssKiB, hwmKiB }. */
function renderers(): Map<number, { rssKiB: number; hwmKiB: number }> {
  const out = new Map<number, { rssKiB: number; hwmKiB: number }>();
  for (const d of readdirSync("/proc")) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const cmd = readFileSync(`/proc/${d}/cmdline`, "utf8");
      if (!cmd.includes("--type=renderer") || cmd.includes("--extension-process")) continue;
      const status = readFileSync(`/proc/${d}/status`, "utf8");
      const kib = (k: string) => Number(new RegExp(`^${k}:\\s+(\\d+) kB`, "m").exec(status)?.[1] ?? 0);
      out.set(Number(d), { rssKiB: kib("VmRSS"), hwmKiB: kib("VmHWM") });
    } catch {
      // the process ended between readdir and read
    }
  }
  return out;
}

test("@bench onboarding: aux info, DKG, page long tasks, renderer peak memory, full signing, enroll then create", async ({ page }, info) => {
  test.skip(!enabled, "set BENCH_ONBOARD=1 to run the onboarding benchmark (minutes)");
  test.setTimeout(60 * 60_000);
  expect(Number.isInteger(FULL_N) && FULL_N >= 1).toBe(true);
  logPage(page);
  await page.addInitScript(() => {
    const w = window as unknown as { __longtasks: { start: number; dur: number }[] };
    w.__longtasks = [];
    try {
      new PerformanceObserver((list) => {
        for (const e of list.getEntries()) w.__longtasks.push({ start: e.startTime, dur: e.duration });
      }).observe({ type: "longtask", buffered: true });
    } catch {
      // no long-task timing in this browser: reported as not measured
    }
  });
  // Enroll at install, create in a second (first, on its own wallet name).
  await page.goto(demoUrl({ name: `bench-enroll-${Date.now()}`, presign: "off", devPrimes: "1" }));
  await expect(page.locator("body")).toHaveAttribute("data-ready", "true");
  await expect(page.locator("#status")).toHaveAttribute("data-state", "none");
  await page.click("#enroll");
  await expect(page.locator("#enroll-status")).toHaveAttribute("data-state", "ready", { timeout: 50 * 60_000 });
  const enrolled = await demoState<Record<string, number>>(page, "timings");
  await page.click("#create");
  await expect(page.locator("#status")).toHaveAttribute("data-state", "ready", { timeout: 10 * 60_000 });
  const afterEnroll = await demoState<Record<string, number>>(page, "timings");
  expect(afterEnroll.auxInfoMs, "a creation after enrollment runs no aux info").toBe(0);
  expect(await demoState<string | null>(page, "primesSource")).toBe("enrollment");
  await expect(page.locator("#enroll-status")).toHaveAttribute("data-state", "none");
  console.log(`[bench onboarding] enroll ${enrolled.enrollMs} ms (aux info ${enrolled.enrollAuxInfoMs} ms), create after enroll ${afterEnroll.createTotalMs} ms (DKG ${afterEnroll.keygenMs} ms)`);

  await page.goto(demoUrl({ name: `bench-onboard-${Date.now()}`, presign: "off", devPrimes: "1" }));
  await expect(page.locator("body")).toHaveAttribute("data-ready", "true");

  const before = new Set(renderers().keys());
  let peakRssKiB = 0;
  const sampler = setInterval(() => {
    for (const [, m] of renderers()) peakRssKiB = Math.max(peakRssKiB, m.rssKiB);
  }, 250);
  const t0 = await page.evaluate(() => performance.now());
  await page.click("#create");
  await expect(page.locator("#status")).toHaveAttribute("data-state", "ready", { timeout: 50 * 60_000 });
  const t1 = await page.evaluate(() => performance.now());
  clearInterval(sampler);
  const rend = renderers();
  // The page's renderer: the one with the highest high-water mark (there is one page).
  const hwmKiB = Math.max(0, ...[...rend.values()].map((m) => m.hwmKiB));
  const timings = await demoState<Record<string, number>>(page, "timings");
  const tasks = (await page.evaluate(() => (window as unknown as { __longtasks: { start: number; dur: number }[] }).__longtasks)).filter(
    (t) => t.start >= t0 && t.start <= t1,
  );
  const longest = tasks.reduce((m, t) => Math.max(m, t.dur), 0);
  // The observer is live: a task of 250 ms blocking the page on purpose is seen (a long
  // task that covers the probe: the task starts before the probe's first clock reading,
  // by the script dispatch, which a loaded machine makes longer than a few ms). The probe
  // runs in a timer callback, a task of the page's event loop: a script evaluated over
  // CDP directly is not one, and the observer never reported it.
  const probeStart = await page.evaluate(
    () =>
      new Promise<number>((resolve) =>
        setTimeout(() => {
          const t = performance.now();
          while (performance.now() - t < 250) {
            // block the page thread
          }
          resolve(t);
        }, 0),
      ),
  );
  await expect
    .poll(async () => (await page.evaluate(() => (window as unknown as { __longtasks: { start: number; dur: number }[] }).__longtasks)).some((t) => t.start <= probeStart + 5 && t.start + t.dur >= probeStart + 240), { timeout: 10_000 })
    .toBe(true);

  // Full signing (presignatures off): FULL_N messages, each verified here.
  const address = (await page.locator("#address").textContent())!.trim();
  const full: number[] = [];
  for (let i = 0; i < FULL_N; i++) {
    const message = `bench full signing ${i} ${Date.now()}`;
    await page.fill("#message", message);
    await page.click("#sign-msg");
    await expect
      .poll(async () => (await demoState<{ message: string } | undefined>(page, "message"))?.message, { timeout: 10 * 60_000, intervals: [200] })
      .toBe(message);
    const sig = await demoState<{ rsv: Hex; presigned: boolean }>(page, "message");
    expect(sig.presigned).toBe(false);
    expect(await recoverMessageAddress({ message, signature: sig.rsv })).toBe(address);
    full.push((await demoState<Record<string, number>>(page, "timings")).signMessageMs!);
  }

  const wasm = join(REPO, "web", "wasm", "mpc_wasm_bg.wasm");
  const summary = {
    suite: "onboarding-web",
    platform: "chromium-headless",
    wasm_bytes: statSync(wasm).size,
    wasm_gzip_bytes: gzipSync(readFileSync(wasm), { level: 9 }).length,
    aux_info_ms: timings.auxInfoMs,
    dkg_ms: timings.keygenMs,
    create_total_ms: timings.createTotalMs,
    page_long_tasks: { count: tasks.length, longest_ms: Math.round(longest), over_200ms: tasks.filter((t) => t.dur > 200).length },
    renderer_peak_rss_mib: Math.round((Math.max(hwmKiB, peakRssKiB) / 1024) * 10) / 10,
    renderer_processes_new: [...rend.keys()].filter((p) => !before.has(p)).length,
    full_sign_ms: { p50: pct(full, 50), p95: pct(full, 95), n: full.length },
    // Enroll at install (wall time of enrollDevice; its aux info alone), then the
    // account's creation from the enrollment (the DKG only).
    enroll_ms: enrolled.enrollMs,
    enroll_aux_info_ms: enrolled.enrollAuxInfoMs,
    create_after_enroll_ms: afterEnroll.createTotalMs,
    create_after_enroll_dkg_ms: afterEnroll.keygenMs,
  };
  console.log(`[bench onboarding] aux info ${summary.aux_info_ms} ms, DKG ${summary.dkg_ms} ms, total ${summary.create_total_ms} ms; page long tasks during creation: ${tasks.length} (longest ${summary.page_long_tasks.longest_ms} ms); renderer peak RSS ${summary.renderer_peak_rss_mib} MiB; full signing p50 ${summary.full_sign_ms.p50} ms p95 ${summary.full_sign_ms.p95} ms (n=${full.length}); enroll ${summary.enroll_ms} ms, create after enroll ${summary.create_after_enroll_ms} ms; wasm ${summary.wasm_bytes} B raw, ${summary.wasm_gzip_bytes} B gzip`);
  console.log(`BENCH_JSON ${JSON.stringify(summary)}`);
  writeFileSync(info.outputPath("onboarding-bench.json"), JSON.stringify(summary, null, 2));
  if (process.env.BENCH_ONBOARD_JSON) writeFileSync(process.env.BENCH_ONBOARD_JSON, JSON.stringify(summary, null, 2));
});
