// Benchmark (NOT in CI; skipped unless BENCH_PRESIGN=1): online signing from the
// presignature pool in headless Chromium against the real cosigner over the local
// gateway, for each account kind of BENCH_PRESIGN_KINDS (default `independent,hd`): an
// independent account's pool is at its root, an HD account's at m/44/60/0/0/0 (the
// path is bound into each presignature at generation). Fills a pool of 2N (+2 warm-up)
// presignatures, signs N EIP-191 messages and N EIP-712 typed data from it at that
// path, and prints p50/p95 of the
// online time (take + partial + cosigner round trip + combine + verify) with its
// breakdown, the page-observed times, and one `BENCH_JSON {...}` line per kind for
// scripts/bench.sh (suite `presign-web`, or `presign-web-hd`; with BENCH_PRESIGN_JSON
// set, the HD figures go to the same path with `-hd` before `.json`).
//
//   BENCH_PRESIGN=1 [BENCH_PRESIGN_N=10] SKIP_WASM_BUILD=1 \
//     SIGN_SERVICE_BIN=... SIGN_GATEWAY_BIN=... RECOVERY_AGENT_BIN=... \
//     bash playwright-tests/run.sh --grep bench
import { writeFileSync } from "node:fs";
import { expect, test } from "@playwright/test";
import { recoverMessageAddress, recoverTypedDataAddress, type Hex } from "viem";
import type { E2eEnv } from "../harness/global-setup.js";

const env = JSON.parse(process.env.WALLET_E2E ?? "null") as E2eEnv;
const N = Number(process.env.BENCH_PRESIGN_N ?? 10);
const KINDS = (process.env.BENCH_PRESIGN_KINDS ?? "independent,hd").split(",").map((k) => k.trim());
/** Where an HD account's pool (and every signature of the HD run) is. */
const HD_PATH = "m/44/60/0/0/0";

/** The typed data signed (its `contents` vary); the harness cosigner's policy lists
 * this verifying contract (anvil's first deployment address). */
const BENCH_TYPED = {
  domain: { name: "Bench", version: "1", chainId: 31337, verifyingContract: "0x5FbDB2315678afecb367f032d93F642f64180aa3" },
  types: { Note: [{ name: "contents", type: "string" }] },
  primaryType: "Note",
} as const;

interface Sample {
  rsv: Hex;
  message: string;
  presigned: boolean;
  onlineMs: number;
  pageMs: number;
  timings: Record<string, number>;
}

function pct(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  if (s.length === 0) return NaN;
  const i = Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1));
  return s[i]!;
}

for (const kind of KINDS) test(`bench: online signing from the presignature pool (${kind} account)`, async ({ page }) => {
  test.skip(process.env.BENCH_PRESIGN !== "1", "set BENCH_PRESIGN=1 to run the presignature benchmark");
  expect(["independent", "hd"]).toContain(kind);
  const path = kind === "hd" ? HD_PATH : undefined;
  test.setTimeout(60 * 60_000);
  // N EIP-191 messages and N EIP-712 typed data, each with one warm-up: 2N + 2 ≤ 32.
  expect(Number.isInteger(N) && N >= 1 && N <= 15).toBe(true);
  const u = new URL(env.demoUrl);
  u.searchParams.set("name", `bench-${Date.now()}`);
  u.searchParams.set("kind", kind);
  u.searchParams.set("presignTarget", String(2 * N + 2));
  u.searchParams.set("presignAuto", "0");
  await page.goto(u.toString());
  await expect(page.locator("body")).toHaveAttribute("data-ready", "true");
  await page.click("#create");
  await expect(page.locator("#status")).toHaveAttribute("data-state", "ready", { timeout: 20 * 60_000 });
  const address = await page.evaluate(async (p) => {
    const c = (window as unknown as { demo: { client: import("../../web/src/index.js").WalletClient } }).demo.client;
    return c.getAddress(undefined, p);
  }, path);

  const t0 = Date.now();
  const status = await page.evaluate(async (p) => {
    const c = (window as unknown as { demo: { client: import("../../web/src/index.js").WalletClient } }).demo.client;
    return c.refillPresignatures(p ? { derivationPath: p } : {});
  }, path);
  const refillMs = Date.now() - t0;
  expect(status.device).toBe(2 * N + 2);
  expect(status.usable).toBe(2 * N + 2);
  expect(status.derivationPath).toBe(path ?? "");

  const samples = await page.evaluate(async ({ n, p }) => {
    const c = (window as unknown as { demo: { client: import("../../web/src/index.js").WalletClient } }).demo.client;
    const out: Sample[] = [];
    for (let i = 0; i <= n; i++) {
      const message = `bench message ${i}`;
      const t = performance.now();
      const r = await c.signMessage(message, { presign: "require", ...(p ? { derivationPath: p } : {}) });
      out.push({
        rsv: r.rsv,
        message,
        presigned: r.presigned,
        onlineMs: r.onlineMs ?? NaN,
        pageMs: performance.now() - t,
        timings: (r.presign?.timings ?? {}) as unknown as Record<string, number>,
      });
    }
    return out;
  }, { n: N, p: path });
  for (const s of samples) {
    expect(s.presigned).toBe(true);
    expect(await recoverMessageAddress({ message: s.message, signature: s.rsv })).toBe(address);
  }
  // EIP-712: the page builds the preimage with viem, the cosigner hashes the JSON itself.
  const typedSamples = await page.evaluate(async ({ n, typed, p }) => {
    const c = (window as unknown as { demo: { client: import("../../web/src/index.js").WalletClient } }).demo.client;
    const out: Sample[] = [];
    for (let i = 0; i <= n; i++) {
      const message = `bench typed data ${i}`;
      const t = performance.now();
      const r = await c.signTypedData({ ...typed, message: { contents: message } }, { presign: "require", ...(p ? { derivationPath: p } : {}) });
      out.push({
        rsv: r.rsv,
        message,
        presigned: r.presigned,
        onlineMs: r.onlineMs ?? NaN,
        pageMs: performance.now() - t,
        timings: (r.presign?.timings ?? {}) as unknown as Record<string, number>,
      });
    }
    return out;
  }, { n: N, typed: BENCH_TYPED, p: path });
  for (const s of typedSamples) {
    expect(s.presigned).toBe(true);
    const recovered = await recoverTypedDataAddress({ ...BENCH_TYPED, message: { contents: s.message }, signature: s.rsv as `0x${string}` });
    expect(recovered).toBe(address);
  }
  const warmTyped = typedSamples.slice(1);
  const warm = samples.slice(1); // the first one opens the key shares and the pool key
  const keys = ["takeMs", "rpcMs", "computeMs"] as const;
  const row = (name: string, xs: number[]) => `  ${name.padEnd(34)} ${pct(xs, 50).toFixed(2).padStart(8)} ${pct(xs, 95).toFixed(2).padStart(8)}`;
  const lines = [
    `Online signing from the presignature pool (${kind} account${path ? ` at ${path}` : ""}), headless Chromium, N=${warm.length} (+1 warm-up: ${samples[0]!.onlineMs.toFixed(1)} ms online, ${samples[0]!.pageMs.toFixed(1)} ms page)`,
    `  refill of ${N + 1} presignatures (device in wasm, one Worker): ${(refillMs / 1000).toFixed(1)} s`,
    `  ${"ms".padEnd(34)} ${"p50".padStart(8)} ${"p95".padStart(8)}`,
    row("online (take+partial+RPC+combine)", warm.map((s) => s.onlineMs)),
    row("  IndexedDB take (strict commit)", warm.map((s) => s.timings.takeMs!)),
    row("  SignWithPresignature round trip", warm.map((s) => s.timings.rpcMs!)),
    row("  wasm: partial + request signature + combine + verify", warm.map((s) => s.timings.computeMs!)),
    row("page-observed signMessage()", warm.map((s) => s.pageMs)),
    row("EIP-712 online (signTypedData)", warmTyped.map((s) => s.onlineMs)),
    row("page-observed signTypedData()", warmTyped.map((s) => s.pageMs)),
  ];
  console.log(lines.join("\n"));
  const summary: Record<string, unknown> = {
    suite: kind === "hd" ? "presign-web-hd" : "presign-web",
    platform: "chromium-headless",
    kind,
    derivation_path: path ?? "",
    n: warm.length,
    refill_ms: refillMs,
    refill_per_presignature_ms: Math.round(refillMs / (N + 1)),
    online_ms: { p50: pct(warm.map((s) => s.onlineMs), 50), p95: pct(warm.map((s) => s.onlineMs), 95) },
    page_ms: { p50: pct(warm.map((s) => s.pageMs), 50), p95: pct(warm.map((s) => s.pageMs), 95) },
    eip712_online_ms: { p50: pct(warmTyped.map((s) => s.onlineMs), 50), p95: pct(warmTyped.map((s) => s.onlineMs), 95) },
    eip712_page_ms: { p50: pct(warmTyped.map((s) => s.pageMs), 50), p95: pct(warmTyped.map((s) => s.pageMs), 95) },
  };
  for (const k of keys) {
    const xs = warm.map((s) => s.timings[k]!);
    summary[k.replace(/Ms$/, "_ms")] = { p50: pct(xs, 50), p95: pct(xs, 95) };
  }
  console.log(`BENCH_JSON ${JSON.stringify(summary)}`);
  const out = process.env.BENCH_PRESIGN_JSON;
  if (out) writeFileSync(kind === "hd" ? out.replace(/(\.json)?$/, "-hd.json") : out, JSON.stringify(summary, null, 2));
});
