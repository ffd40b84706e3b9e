// Helpers shared by the flows that drive the demo page (web/demo): its state object,
// screenshots, the timings file, and the raw IndexedDB record of the prime store.
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { BrowserContext, Page, TestInfo } from "@playwright/test";
import { REPO, type E2eEnv } from "../../harness/global-setup.js";

export const env = JSON.parse(process.env.WALLET_E2E ?? "null") as E2eEnv;

/** The demo wallet several flows share: one browser context, one wallet ("default"). */
export interface DemoWallet {
  context: BrowserContext;
  page: Page;
  /** EIP-55 address of the wallet's first account, once created. */
  address: `0x${string}` | "";
}

/** The demo URL with extra query parameters. */
export function demoUrl(extra: Record<string, string> = {}): string {
  const u = new URL(env.demoUrl);
  for (const [k, v] of Object.entries(extra)) u.searchParams.set(k, v);
  return u.toString();
}

export async function shot(p: Page, info: TestInfo, name: string) {
  const path = info.outputPath(`${name}.png`);
  await p.screenshot({ path, fullPage: true });
  await info.attach(name, { path, contentType: "image/png" });
}

export function recordTimings(t: Record<string, number>) {
  const prev = JSON.parse(readFileSync(env.timingsFile, "utf8")) as Record<string, number>;
  writeFileSync(env.timingsFile, JSON.stringify({ ...prev, ...t }, null, 2));
}

export async function demoState<T>(p: Page, key: string): Promise<T> {
  return p.evaluate((k) => (window as unknown as { demo: Record<string, unknown> }).demo[k], key) as Promise<T>;
}

export async function noPageError(p: Page) {
  const err = p.locator("#error");
  if (await err.isVisible()) throw new Error(`the page shows an error: ${await err.textContent()}`);
}

/** Logs the page's errors, warnings and exceptions into the test output. */
export function logPage(p: Page) {
  p.on("console", (m) => {
    if (m.type() === "error" || m.type() === "warning") console.log(`[page ${m.type()}] ${m.text()}`);
  });
  p.on("pageerror", (e) => console.log(`[page exception] ${e.message}`));
}

/** The PUBLIC dev fixture primes of the device (party 0). */
export function fixturePrimes(): string[] {
  const fixture = JSON.parse(readFileSync(join(REPO, "crates", "mpc-core", "fixtures", "dev-primes.json"), "utf8")) as {
    parties: { primes: string[] }[];
  };
  return fixture.parties[0]!.primes;
}

/**
 * Test-only seeding of a prepared prime set: the package's own encrypted store, with the
 * PUBLIC fixture primes, for the wallet `name` (the page must be on the demo origin).
 */
export async function seedPreparedPrimes(p: Page, name: string) {
  await p.addScriptTag({ type: "module", content: `import * as s from "/dist/prime-store.js"; window.__primeStore = s;` });
  await p.waitForFunction(() => "__primeStore" in window);
  await p.evaluate(
    async ([n, primes]) => {
      const s = (window as unknown as { __primeStore: { putPreparedSet(n: string, p: string[]): Promise<void> } }).__primeStore;
      await s.putPreparedSet(n as string, primes as string[]);
    },
    [name, fixturePrimes()] as const,
  );
}

export interface StoredPrimes {
  found: number;
  candidates: number;
  ciphertextLen: number;
  plaintextVisible: boolean;
  extractable: boolean | null;
  algo: string | null;
}

/** The raw IndexedDB record of the prime store (counters in clear, secrets encrypted). */
export async function storedPrimes(p: Page, name: string): Promise<StoredPrimes | null> {
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
