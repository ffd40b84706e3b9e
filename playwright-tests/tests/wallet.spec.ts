// The demo wallet end to end in headless Chromium: create a wallet (aux info + DKG with
// the real cosigner and recovery agent), reload (the wallet persists), sign a message
// and an EIP-1559 transaction and verify both independently here in Node with viem,
// then stop the cosigner and check that the page shows a clear error.
import { readFileSync, writeFileSync } from "node:fs";
import { expect, test, type BrowserContext, type Page, type TestInfo } from "@playwright/test";
import { getAddress, keccak256, parseTransaction, recoverMessageAddress, recoverTransactionAddress, type Hex } from "viem";
import type { E2eEnv } from "../harness/global-setup.js";

const env = JSON.parse(process.env.WALLET_E2E ?? "null") as E2eEnv;

test.describe.configure({ mode: "serial" });

let context: BrowserContext;
let page: Page;
let address = "";

async function shot(p: Page, info: TestInfo, name: string) {
  const path = info.outputPath(`${name}.png`);
  await p.screenshot({ path, fullPage: true });
  await info.attach(name, { path, contentType: "image/png" });
}

function recordTimings(t: Record<string, number>) {
  const prev = JSON.parse(readFileSync(env.timingsFile, "utf8")) as Record<string, number>;
  writeFileSync(env.timingsFile, JSON.stringify({ ...prev, ...t }, null, 2));
}

async function demoState<T>(p: Page, key: string): Promise<T> {
  return p.evaluate((k) => (window as unknown as { demo: Record<string, unknown> }).demo[k], key) as Promise<T>;
}

async function noPageError(p: Page) {
  const err = p.locator("#error");
  if (await err.isVisible()) throw new Error(`the page shows an error: ${await err.textContent()}`);
}

test.beforeAll(async ({ browser }) => {
  expect(env, "WALLET_E2E missing: global setup did not run").toBeTruthy();
  context = await browser.newContext();
  page = await context.newPage();
  page.on("console", (m) => {
    if (m.type() === "error" || m.type() === "warning") console.log(`[page ${m.type()}] ${m.text()}`);
  });
  page.on("pageerror", (e) => console.log(`[page exception] ${e.message}`));
});

test.afterAll(async () => {
  await context?.close();
});

test("recovery agent unreachable: clear error, nothing stored", async ({}, info) => {
  const dead = `http://127.0.0.1:9`; // discard port: nothing listens there
  const url = new URL(env.demoUrl);
  url.searchParams.set("agent", dead);
  await page.goto(url.toString());
  await expect(page.locator("body")).toHaveAttribute("data-ready", "true");
  await page.click("#create");
  const err = page.locator("#error");
  await expect(err).toBeVisible({ timeout: 60_000 });
  await expect(err).toHaveAttribute("data-code", "agent_unavailable");
  await expect(err).toContainText("recovery agent unreachable");
  await expect(err).toContainText(dead);
  await expect(page.locator("#status")).toHaveAttribute("data-state", "none");
  await shot(page, info, "00-agent-unreachable");
});

test("create a wallet (aux info + DKG) with a progress bar", async ({}, info) => {
  await page.goto(env.demoUrl);
  await expect(page.locator("body")).toHaveAttribute("data-ready", "true");
  await noPageError(page);
  await expect(page.locator("#status")).toHaveAttribute("data-state", "none");
  await expect(page.locator("#cosignerUrl")).toHaveValue(env.cosignerUrl);
  await expect(page.locator("#agentUrl")).toHaveValue(env.agentUrl);
  expect(await demoState<string>(page, "mode")).toBe("worker");
  // No cross-origin isolation: no SharedArrayBuffer is needed.
  expect(await page.evaluate(() => crossOriginIsolated)).toBe(false);
  await shot(page, info, "01-empty");

  await page.click("#create");
  // The progress bar moves through the phases while the page stays responsive.
  await expect(page.locator("#progress")).toBeVisible();
  await expect(page.locator("#progress")).toHaveAttribute("data-phase", "aux-info", { timeout: 60_000 });
  const before = await page.locator("#progress-bar").evaluate((e) => (e as HTMLProgressElement).value);
  // The main thread answers while the worker computes: its answer comes back while the
  // page still shows the aux-info phase (aux info takes minutes in wasm; a main thread
  // busy with it would answer only afterwards). No wall-clock bound: a loaded machine
  // slows both sides alike.
  expect(
    await page.evaluate(() => [1 + 1, document.querySelector("#progress")?.getAttribute("data-phase")]),
  ).toEqual([2, "aux-info"]);
  await shot(page, info, "02-aux-info-progress");

  await expect(page.locator("#status")).toHaveAttribute("data-state", "ready", { timeout: 14 * 60_000 });
  await noPageError(page);
  const after = await page.locator("#progress-bar").evaluate((e) => (e as HTMLProgressElement).value);
  expect(after).toBeGreaterThan(before);
  address = (await page.locator("#address").textContent())?.trim() ?? "";
  expect(address).toMatch(/^0x[0-9a-fA-F]{40}$/);
  expect(getAddress(address)).toBe(address); // EIP-55 checksum
  const timings = await demoState<Record<string, number>>(page, "timings");
  expect(timings.auxInfoMs).toBeGreaterThan(0);
  expect(timings.keygenMs).toBeGreaterThan(0);
  recordTimings({ "aux info (device, wasm)": timings.auxInfoMs!, "DKG (device, wasm)": timings.keygenMs!, "create wallet total": timings.createTotalMs! });
  await shot(page, info, "03-wallet-created");
});

test("reload keeps the wallet (IndexedDB, encrypted)", async ({}, info) => {
  expect(address).not.toBe("");
  await page.reload();
  await expect(page.locator("body")).toHaveAttribute("data-ready", "true");
  await expect(page.locator("#status")).toHaveAttribute("data-state", "ready");
  await expect(page.locator("#address")).toHaveText(address);
  // The share is stored encrypted: the record holds ciphertext, and the key is a
  // non-extractable CryptoKey.
  const stored = await page.evaluate(async () => {
    const db = await new Promise<IDBDatabase>((res, rej) => {
      const r = indexedDB.open("wallet-mpc-web");
      r.onsuccess = () => res(r.result);
      r.onerror = () => rej(r.error);
    });
    const get = (store: string) =>
      new Promise<unknown>((res, rej) => {
        const r = db.transaction(store).objectStore(store).get("default");
        r.onsuccess = () => res(r.result);
        r.onerror = () => rej(r.error);
      });
    const rec = (await get("wallets")) as { protection: string; ciphertext?: Uint8Array; walletId: string };
    const key = (await get("keys")) as CryptoKey;
    const text = new TextDecoder().decode(rec.ciphertext ?? new Uint8Array());
    db.close();
    return {
      protection: rec.protection,
      ciphertextLen: rec.ciphertext?.length ?? 0,
      looksLikeJson: text.includes("aux_info") || text.includes("identity"),
      extractable: key.extractable,
      algo: key.algorithm.name,
    };
  });
  expect(stored).toEqual({ protection: "webcrypto", ciphertextLen: expect.any(Number), looksLikeJson: false, extractable: false, algo: "AES-GCM" });
  expect(stored.ciphertextLen).toBeGreaterThan(1000);
  await shot(page, info, "04-after-reload");
});

test("sign a message; viem recovers the wallet's address", async ({}, info) => {
  const message = `hello from playwright ${Date.now()}`;
  await page.fill("#message", message);
  await page.click("#sign-msg");
  await expect(page.locator("#msg-verify")).toHaveAttribute("data-ok", /true|false/, { timeout: 5 * 60_000 });
  await noPageError(page);
  await expect(page.locator("#msg-verify")).toHaveAttribute("data-ok", "true");
  const sig = await demoState<{ message: string; rsv: Hex }>(page, "message");
  expect(sig.message).toBe(message);
  // Independent check in Node.
  const signer = await recoverMessageAddress({ message, signature: sig.rsv });
  expect(signer).toBe(address);
  const timings = await demoState<Record<string, number>>(page, "timings");
  recordTimings({ "sign message (page)": timings.signMessageMs! });
  await shot(page, info, "05-message-signed");
});

test("sign an EIP-1559 transaction; viem recovers the wallet's address", async ({}, info) => {
  await page.fill("#tx-to", "0x000000000000000000000000000000000000dEaD");
  await page.fill("#tx-value", "0.0123");
  await page.fill("#tx-chain", "11155111");
  await page.fill("#tx-nonce", "7");
  await page.click("#sign-tx-btn");
  await expect(page.locator("#tx-verify")).toHaveAttribute("data-ok", /true|false/, { timeout: 5 * 60_000 });
  await noPageError(page);
  await expect(page.locator("#tx-verify")).toHaveAttribute("data-ok", "true");
  const tx = await demoState<{ signed: Hex; hash: Hex; unsigned: Hex }>(page, "tx");
  const parsed = parseTransaction(tx.signed);
  expect(parsed.type).toBe("eip1559");
  expect(parsed.chainId).toBe(11155111);
  expect(parsed.nonce).toBe(7);
  expect(parsed.value).toBe(12300000000000000n);
  expect(parsed.to?.toLowerCase()).toBe("0x000000000000000000000000000000000000dead");
  expect(await recoverTransactionAddress({ serializedTransaction: tx.signed as never })).toBe(address);
  expect(keccak256(tx.signed)).toBe(tx.hash);
  const timings = await demoState<Record<string, number>>(page, "timings");
  recordTimings({ "sign EIP-1559 tx (page)": timings.signTxMs! });
  await shot(page, info, "06-tx-signed");
});

test("a destination the policy refuses: policy_denied with its rule, by code", async ({}, info) => {
  await page.fill("#tx-to", "0x000000000000000000000000000000000000bEEF");
  await page.click("#sign-tx-btn");
  const err = page.locator("#error");
  await expect(err).toBeVisible({ timeout: 5 * 60_000 });
  // The code and rule come from the cosigner's google.rpc.ErrorInfo, decoded by the wasm
  // core (the same decoder as the native client's), not from the message text.
  await expect(err).toHaveAttribute("data-code", "policy_denied");
  await expect(err).toContainText("rule allowed_destinations");
  await shot(page, info, "06b-policy-denied");
  await page.fill("#tx-to", "0x000000000000000000000000000000000000dEaD");
});

test("a second page of the same origin opens the same wallet", async ({}, info) => {
  const p2 = await context.newPage();
  await p2.goto(env.demoUrl);
  await expect(p2.locator("body")).toHaveAttribute("data-ready", "true");
  await expect(p2.locator("#address")).toHaveText(address);
  await shot(p2, info, "07-second-page");
  await p2.close();
});

test("the same core signs in the page's thread (mode=inline, no Worker)", async ({}, info) => {
  const p2 = await context.newPage();
  const url = new URL(env.demoUrl);
  url.searchParams.set("mode", "inline");
  await p2.goto(url.toString());
  await expect(p2.locator("body")).toHaveAttribute("data-ready", "true");
  expect(await demoState<string>(p2, "mode")).toBe("inline");
  await expect(p2.locator("#address")).toHaveText(address);
  const message = "signed without a worker";
  await p2.fill("#message", message);
  await p2.click("#sign-msg");
  await expect(p2.locator("#msg-verify")).toHaveAttribute("data-ok", /true|false/, { timeout: 5 * 60_000 });
  await noPageError(p2);
  const sig = await demoState<{ rsv: Hex }>(p2, "message");
  expect(await recoverMessageAddress({ message, signature: sig.rsv })).toBe(address);
  const timings = await demoState<Record<string, number>>(p2, "timings");
  recordTimings({ "sign message (inline mode)": timings.signMessageMs! });
  await shot(p2, info, "08-inline-signed");
  await p2.close();
});

test("cosigner down: the page shows a clear error", async ({}, info) => {
  expect(env.cosignerPid).toBeGreaterThan(0);
  process.kill(env.cosignerPid, "SIGKILL");
  // Wait until the port is closed.
  await expect
    .poll(async () => {
      try {
        await fetch(env.cosignerUrl);
        return "up";
      } catch {
        return "down";
      }
    })
    .toBe("down");
  await page.click("#sign-msg");
  const err = page.locator("#error");
  await expect(err).toBeVisible({ timeout: 60_000 });
  await expect(err).toHaveAttribute("data-code", "cosigner_unavailable");
  await expect(err).toContainText("cosigner unreachable");
  await expect(err).toContainText(env.cosignerUrl);
  // The wallet is still there.
  await expect(page.locator("#address")).toHaveText(address);
  await shot(page, info, "09-cosigner-down");
});
