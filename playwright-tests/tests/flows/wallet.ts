// The demo wallet end to end in headless Chromium (web/demo): create a wallet (aux info +
// DKG with the real cosigner and recovery agent) from a prepared prime set, reload (the
// wallet persists, encrypted), sign a message and an EIP-1559 transaction and verify both
// independently in Node with viem, a policy refusal by code, a second page and the inline
// mode; backup and restore (export with the demo's download button, import into a fresh
// browser context and sign; wrong passphrase, a wallet in the way; the native CLI imports
// the browser's file and signs, and its own backup imports in a browser); and, last, the cosigner stopped: the page shows a clear
// error.
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { expect, test, type Page } from "@playwright/test";
import { getAddress, keccak256, parseTransaction, recoverMessageAddress, recoverTransactionAddress, type Hex } from "viem";
import { demoState, demoUrl, env, logPage, noPageError, recordTimings, seedPreparedPrimes, shot, storedPrimes, type DemoWallet } from "./demo.js";

/** The demo's default wallet name. */
export const WALLET = "default";

/** Creates the demo wallet in `w` and exercises it (leaves the cosigner running). */
export function walletTests(w: DemoWallet) {
  test("recovery agent unreachable: clear error, nothing stored", async ({}, info) => {
    const dead = `http://127.0.0.1:9`; // discard port: nothing listens there
    const url = new URL(env.demoUrl);
    url.searchParams.set("agent", dead);
    await w.page.goto(url.toString());
    await expect(w.page.locator("body")).toHaveAttribute("data-ready", "true");
    await w.page.click("#create");
    const err = w.page.locator("#error");
    await expect(err).toBeVisible({ timeout: 60_000 });
    await expect(err).toHaveAttribute("data-code", "agent_unavailable");
    await expect(err).toContainText("recovery agent unreachable");
    await expect(err).toContainText(dead);
    await expect(w.page.locator("#status")).toHaveAttribute("data-state", "none");
    await shot(w.page, info, "00-agent-unreachable");
  });

  test("create a wallet (aux info + DKG) from a prepared prime set, with a progress bar", async ({}, info) => {
    // A complete prepared set (seeded through the test-only path: the package's prime
    // store with the PUBLIC dev fixture primes) is used by createWallet and consumed.
    // Refills only when a test asks (flows/presign.ts counts presignatures).
    await w.page.goto(demoUrl({ devPrimes: "0", presignAuto: "0" }));
    await expect(w.page.locator("body")).toHaveAttribute("data-ready", "true");
    await seedPreparedPrimes(w.page, WALLET);
    expect((await storedPrimes(w.page, WALLET))?.found).toBe(4);
    await w.page.reload();
    await expect(w.page.locator("body")).toHaveAttribute("data-ready", "true");
    await noPageError(w.page);
    await expect(w.page.locator("#prepared-status")).toHaveAttribute("data-state", "ready");
    await expect(w.page.locator("#status")).toHaveAttribute("data-state", "none");
    await expect(w.page.locator("#cosignerUrl")).toHaveValue(env.cosignerUrl);
    await expect(w.page.locator("#agentUrl")).toHaveValue(env.agentUrl);
    expect(await demoState<string>(w.page, "mode")).toBe("worker");
    // No cross-origin isolation: no SharedArrayBuffer is needed.
    expect(await w.page.evaluate(() => crossOriginIsolated)).toBe(false);
    await shot(w.page, info, "01-empty");

    await w.page.click("#create");
    // The progress bar moves through the phases while the page stays responsive.
    await expect(w.page.locator("#progress")).toBeVisible();
    await expect(w.page.locator("#progress")).toHaveAttribute("data-phase", "aux-info", { timeout: 60_000 });
    const before = await w.page.locator("#progress-bar").evaluate((e) => (e as HTMLProgressElement).value);
    // The main thread answers while the worker computes: its answer comes back while the
    // page still shows the aux-info phase (aux info takes minutes in wasm; a main thread
    // busy with it would answer only afterwards). No wall-clock bound: a loaded machine
    // slows both sides alike.
    expect(
      await w.page.evaluate(() => [1 + 1, document.querySelector("#progress")?.getAttribute("data-phase")]),
    ).toEqual([2, "aux-info"]);
    await shot(w.page, info, "02-aux-info-progress");

    await expect(w.page.locator("#status")).toHaveAttribute("data-state", "ready", { timeout: 14 * 60_000 });
    await noPageError(w.page);
    const after = await w.page.locator("#progress-bar").evaluate((e) => (e as HTMLProgressElement).value);
    expect(after).toBeGreaterThan(before);
    const shown = (await w.page.locator("#address").textContent())?.trim() ?? "";
    expect(shown).toMatch(/^0x[0-9a-fA-F]{40}$/);
    expect(getAddress(shown)).toBe(shown); // EIP-55 checksum
    w.address = shown as `0x${string}`;
    const timings = await demoState<Record<string, number>>(w.page, "timings");
    expect(timings.auxInfoMs).toBeGreaterThan(0);
    expect(timings.keygenMs).toBeGreaterThan(0);
    recordTimings({ "aux info (device, wasm)": timings.auxInfoMs!, "DKG (device, wasm)": timings.keygenMs!, "create wallet total": timings.createTotalMs! });
    expect(await demoState<string>(w.page, "primesSource")).toBe("prepared");
    await expect(w.page.locator("#primes-source")).toHaveAttribute("data-source", "prepared");
    expect(timings.primesMs).toBeLessThan(30_000);
    // The fixture primes are recognised: the wallet is marked as test-only.
    await expect(w.page.locator("#status")).toContainText("PUBLIC TEST PRIMES");
    // Consumed: nothing left to reuse for another wallet.
    expect(await storedPrimes(w.page, WALLET)).toBeNull();
    await expect(w.page.locator("#prepared-status")).toHaveAttribute("data-state", "none");
    await shot(w.page, info, "03-wallet-created");
  });

  test("reload keeps the wallet (IndexedDB, encrypted)", async ({}, info) => {
    expect(w.address).not.toBe("");
    await w.page.reload();
    await expect(w.page.locator("body")).toHaveAttribute("data-ready", "true");
    await expect(w.page.locator("#status")).toHaveAttribute("data-state", "ready");
    await expect(w.page.locator("#address")).toHaveText(w.address);
    // The share is stored encrypted: the record holds ciphertext, and the key is a
    // non-extractable CryptoKey.
    const stored = await w.page.evaluate(async () => {
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
    await shot(w.page, info, "04-after-reload");
  });

  backupTests(w);

  test("sign a message; viem recovers the wallet's address", async ({}, info) => {
    const message = `hello from playwright ${Date.now()}`;
    await w.page.fill("#message", message);
    await w.page.click("#sign-msg");
    await expect(w.page.locator("#msg-verify")).toHaveAttribute("data-ok", /true|false/, { timeout: 5 * 60_000 });
    await noPageError(w.page);
    await expect(w.page.locator("#msg-verify")).toHaveAttribute("data-ok", "true");
    const sig = await demoState<{ message: string; rsv: Hex }>(w.page, "message");
    expect(sig.message).toBe(message);
    // Independent check in Node.
    const signer = await recoverMessageAddress({ message, signature: sig.rsv });
    expect(signer).toBe(w.address);
    const timings = await demoState<Record<string, number>>(w.page, "timings");
    recordTimings({ "sign message (page)": timings.signMessageMs! });
    await shot(w.page, info, "05-message-signed");
  });

  test("sign an EIP-1559 transaction; viem recovers the wallet's address", async ({}, info) => {
    await w.page.fill("#tx-to", "0x000000000000000000000000000000000000dEaD");
    await w.page.fill("#tx-value", "0.0123");
    await w.page.fill("#tx-chain", "11155111");
    await w.page.fill("#tx-nonce", "7");
    await w.page.click("#sign-tx-btn");
    await expect(w.page.locator("#tx-verify")).toHaveAttribute("data-ok", /true|false/, { timeout: 5 * 60_000 });
    await noPageError(w.page);
    await expect(w.page.locator("#tx-verify")).toHaveAttribute("data-ok", "true");
    const tx = await demoState<{ signed: Hex; hash: Hex; unsigned: Hex }>(w.page, "tx");
    const parsed = parseTransaction(tx.signed);
    expect(parsed.type).toBe("eip1559");
    expect(parsed.chainId).toBe(11155111);
    expect(parsed.nonce).toBe(7);
    expect(parsed.value).toBe(12300000000000000n);
    expect(parsed.to?.toLowerCase()).toBe("0x000000000000000000000000000000000000dead");
    expect(await recoverTransactionAddress({ serializedTransaction: tx.signed as never })).toBe(w.address);
    expect(keccak256(tx.signed)).toBe(tx.hash);
    const timings = await demoState<Record<string, number>>(w.page, "timings");
    recordTimings({ "sign EIP-1559 tx (page)": timings.signTxMs! });
    await shot(w.page, info, "06-tx-signed");
  });

  test("a destination the policy refuses: policy_denied with its rule, by code", async ({}, info) => {
    await w.page.fill("#tx-to", "0x000000000000000000000000000000000000bEEF");
    await w.page.click("#sign-tx-btn");
    const err = w.page.locator("#error");
    await expect(err).toBeVisible({ timeout: 5 * 60_000 });
    // The code and rule come from the cosigner's google.rpc.ErrorInfo, decoded by the wasm
    // core (the same decoder as the native client's), not from the message text.
    await expect(err).toHaveAttribute("data-code", "policy_denied");
    await expect(err).toContainText("rule allowed_destinations");
    await shot(w.page, info, "06b-policy-denied");
    await w.page.fill("#tx-to", "0x000000000000000000000000000000000000dEaD");
  });

  test("a second page of the same origin opens the same wallet", async ({}, info) => {
    const p2 = await w.context.newPage();
    await p2.goto(demoUrl({ presignAuto: "0" }));
    await expect(p2.locator("body")).toHaveAttribute("data-ready", "true");
    await expect(p2.locator("#address")).toHaveText(w.address);
    await shot(p2, info, "07-second-page");
    await p2.close();
  });

  test("the same core signs in the page's thread (mode=inline, no Worker)", async ({}, info) => {
    const p2 = await w.context.newPage();
    await p2.goto(demoUrl({ mode: "inline", presignAuto: "0" }));
    await expect(p2.locator("body")).toHaveAttribute("data-ready", "true");
    expect(await demoState<string>(p2, "mode")).toBe("inline");
    await expect(p2.locator("#address")).toHaveText(w.address);
    const message = "signed without a worker";
    await p2.fill("#message", message);
    await p2.click("#sign-msg");
    await expect(p2.locator("#msg-verify")).toHaveAttribute("data-ok", /true|false/, { timeout: 5 * 60_000 });
    await noPageError(p2);
    const sig = await demoState<{ rsv: Hex }>(p2, "message");
    expect(await recoverMessageAddress({ message, signature: sig.rsv })).toBe(w.address);
    const timings = await demoState<Record<string, number>>(p2, "timings");
    recordTimings({ "sign message (inline mode)": timings.signMessageMs! });
    await shot(p2, info, "08-inline-signed");
    await p2.close();
  });
}

/** Stops the cosigner (for good: run it last) and checks the page's error. */
/**
 * A lost device, from the page (the package's `walletControl`): the wallet's controls
 * read, a freeze that stops signing at once (typed: `wallet_not_ready`, walletRefusal
 * `frozen`), and the device refused the unfreeze (the recovery party's, tested natively:
 * sign-service/tests/controls.rs, the e2e lifecycle). Runs last but the cosigner-down
 * test: the demo wallet stays frozen.
 */
export function walletControlsTest(w: DemoWallet) {
  test("a lost device: the page freezes the wallet, signing is refused by code, the device cannot unfreeze", async () => {
    expect(await clientCall(w.page, "walletControl", ["status"])).toEqual({ frozen: false, revokedParties: [] });
    const frozen = await clientCall<{ frozen: boolean; frozenAtMs?: number; revokedParties: number[] }>(w.page, "walletControl", [
      "freeze",
      "phone lost (playwright)",
    ]);
    expect(frozen).toMatchObject({ frozen: true, revokedParties: [] });
    expect((frozen as { frozenAtMs?: number }).frozenAtMs).toBeGreaterThan(0);
    expect(await clientCall(w.page, "signMessage", ["signed while frozen", { presign: "off" }])).toMatchObject({
      error: { code: "wallet_not_ready", walletRefusal: "frozen" },
    });
    expect(await clientCall(w.page, "walletControl", ["unfreeze"])).toMatchObject({ error: { code: "config" } });
    expect(await clientCall(w.page, "walletControl", ["thaw"])).toMatchObject({ error: { code: "invalid_input" } });
    expect(await clientCall(w.page, "walletControl", ["status"])).toMatchObject({ frozen: true, revokedParties: [] });
  });

  test("the recovery agent unfreezes only after its user confirms; a rejected request fails by code", async () => {
    const unfreeze = clientCall<{ frozen: boolean; unfreezeAtMs?: number }>(w.page, "requestRecoveryControl", [
      "unfreeze",
      { reason: "found it (playwright)" },
    ]);
    const id = await awaiting();
    // Until the user confirms, nothing reached the cosigner.
    expect(await clientCall(w.page, "walletControl", ["status"])).toEqual({ frozen: true, frozenAtMs: expect.any(Number), revokedParties: [] });
    agentCli("confirm", id);
    const after = await unfreeze;
    expect(after).toMatchObject({ frozen: true, revokedParties: [] });
    expect((after as { unfreezeAtMs?: number }).unfreezeAtMs).toBeGreaterThan(Date.now() - 60_000);

    const revoke = clientCall(w.page, "requestRecoveryControl", ["revokeDevice", { reason: "not really (playwright)" }]);
    agentCli("reject", await awaiting());
    expect(await revoke).toMatchObject({ error: { code: "agent_failed", requestState: "rejected" } });
    expect(await clientCall(w.page, "walletControl", ["status"])).toMatchObject({ frozen: true, revokedParties: [] });
  });
}

/** The user at the recovery agent's machine: `recovery-agent requests|confirm|reject` with its admin token. */
export function agentCli(...args: string[]): string {
  return execFileSync(env.agentBin, ["--data-dir", env.agentDataDir, "--agent-url", env.agentUrl, ...args], { encoding: "utf8" });
}

/** Waits until the agent holds a request awaiting its user's confirmation; returns its id. */
export async function awaiting(): Promise<string> {
  let id = "";
  await expect
    .poll(() => {
      const list = JSON.parse(agentCli("requests", "--json")) as { requests: { request_id: string; state: string }[] };
      id = list.requests.find((r) => r.state === "awaiting_confirmation")?.request_id ?? "";
      return id;
    })
    .not.toBe("");
  return id;
}

/** After the cosigner is gone (cosignerDownTest): the device signs with the recovery agent. */
export function recoverySigningTest(w: DemoWallet) {
  test("cosigner gone: the page signs with the recovery agent after its user confirms, and the signature verifies", async () => {
    const message = "signed without the operator (playwright)";
    const pending = clientCall<{ rsv: Hex; signers: number[]; ethereumAddress: string }>(w.page, "signMessageWithRecovery", [message]);
    const id = await awaiting();
    const listed = agentCli("requests");
    expect(listed).toContain(id);
    agentCli("confirm", id);
    const sig = await pending;
    expect(sig).toMatchObject({ signers: [0, 2] });
    const s = sig as { rsv: Hex; ethereumAddress: string };
    expect(await recoverMessageAddress({ message, signature: s.rsv })).toBe(getAddress(s.ethereumAddress));
    const accounts = (await clientCall<{ ethereumAddress: string }[]>(w.page, "listAccounts", [])) as { ethereumAddress: string }[];
    expect(getAddress(s.ethereumAddress)).toBe(getAddress(accounts[0]!.ethereumAddress));
  });
}

export function cosignerDownTest(w: DemoWallet) {
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
    await w.page.click("#sign-msg");
    const err = w.page.locator("#error");
    await expect(err).toBeVisible({ timeout: 60_000 });
    await expect(err).toHaveAttribute("data-code", "cosigner_unavailable");
    await expect(err).toContainText("cosigner unreachable");
    await expect(err).toContainText(env.cosignerUrl);
    // The wallet is still there.
    await expect(w.page.locator("#address")).toHaveText(w.address);
    await shot(w.page, info, "09-cosigner-down");
  });
}

/** The backup passphrase of the tests (strong enough for the default check). */
const BACKUP_PASS = "backup passphrase 4 e2e!";

/** Calls a `WalletClient` method on the demo page's client; resolves to the result or `{ error: { code, reason } }`. */
export async function clientCall<T>(
  p: Page,
  method: string,
  args: unknown[],
): Promise<T | { error: { code: string; reason?: string; walletRefusal?: string; requestState?: string; message: string } }> {
  return p.evaluate(
    async ([m, a]) => {
      const c = (window as unknown as { demo: { client: Record<string, (...x: unknown[]) => Promise<unknown>> } }).demo.client;
      const bytes = (x: unknown) => (Array.isArray(x) ? new Uint8Array(x as number[]) : x);
      try {
        return (await c[m as string]!(...(a as unknown[]).map(bytes))) as never;
      } catch (e) {
        const err = e as { code: string; message: string; details?: { reason?: string; walletRefusal?: string; requestState?: string } };
        return {
          error: {
            code: err.code,
            reason: err.details?.reason,
            walletRefusal: err.details?.walletRefusal,
            requestState: err.details?.requestState,
            message: err.message,
          },
        } as never;
      }
    },
    [method, args] as const,
  );
}

/**
 * Backup and restore on the demo wallet (no new wallet: creation costs minutes): export
 * with the demo's button (a download), then in a FRESH browser context (empty IndexedDB)
 * a wrong passphrase (typed error, nothing stored), the import through the demo's file
 * field, a signature with the cosigner verified with viem, the identical import again,
 * another wallet in the way (`wallet_exists`), and the native CLI importing the
 * browser's file and signing (when the harness built `client`).
 */
export function backupTests(w: DemoWallet) {
  const b = { bytes: [] as number[], filename: "" };

  test("export a backup with the demo's button (a download)", async ({}, info) => {
    expect(w.address).not.toBe("");
    await w.page.fill("#backup-passphrase", BACKUP_PASS);
    const [download] = await Promise.all([w.page.waitForEvent("download", { timeout: 60_000 }), w.page.click("#backup-export")]);
    await noPageError(w.page);
    b.filename = download.suggestedFilename();
    expect(b.filename).toMatch(/^wallet-mpc-.+-device\.backup$/);
    const path = await download.path();
    const bytes = readFileSync(path);
    b.bytes = [...bytes];
    // The native format: the key-share file with its `wallet` member, no plaintext share.
    const file = JSON.parse(bytes.toString("utf8")) as { format: string; party_index: number; kdf: { name: string }; wallet: { wallet_id: string; party_index: number } };
    expect(file.format).toBe("wallet-mpc/key-shares");
    expect(file.kdf.name).toBe("argon2id");
    expect(file.party_index).toBe(0);
    expect(file.wallet.wallet_id).toBe(await demoState<string>(w.page, "walletId"));
    expect(bytes.toString("utf8")).not.toMatch(/aux_info|identity_secret/);
    // A weak backup passphrase is refused by code.
    const weak = await clientCall(w.page, "exportBackup", [{ passphrase: "short" }]);
    expect(weak).toMatchObject({ error: { code: "invalid_input" } });
    await shot(w.page, info, "04b-backup-exported");
  });

  test("the identical share again: accepted without writing; another wallet in the way: wallet_exists", async () => {
    const again = await clientCall<{ alreadyPresent: boolean; walletId: string }>(w.page, "importBackup", [b.bytes, { passphrase: BACKUP_PASS }]);
    expect(again).toMatchObject({ alreadyPresent: true, walletId: await demoState<string>(w.page, "walletId") });
    // Another wallet under the wallet name "other" (a record of another wallet id): refused, unchanged.
    const p2 = await w.context.newPage();
    await p2.goto(demoUrl({ name: "other", presignAuto: "0" }));
    await expect(p2.locator("body")).toHaveAttribute("data-ready", "true");
    await p2.evaluate(async () => {
      const db = await new Promise<IDBDatabase>((res, rej) => {
        const r = indexedDB.open("wallet-mpc-web");
        r.onsuccess = () => res(r.result);
        r.onerror = () => rej(r.error);
      });
      const tx = db.transaction("wallets", "readwrite");
      tx.objectStore("wallets").put(
        { format: 1, walletName: "other", walletId: "someone-elses-wallet", accounts: [], protection: "webcrypto", insecureDevPrimes: true, createdAtMs: 1, cosignerUrl: "", partyIndex: 0 },
        "other",
      );
      await new Promise((res, rej) => ((tx.oncomplete = res), (tx.onerror = rej)));
      db.close();
    });
    const refused = await clientCall(p2, "importBackup", [b.bytes, { passphrase: BACKUP_PASS }]);
    expect(refused).toMatchObject({ error: { code: "wallet_exists", reason: "other_wallet" } });
    expect(await clientCall(p2, "walletInfo", [])).toMatchObject({ walletId: "someone-elses-wallet" });
    await clientCall(p2, "deleteWallet", []);
    // The demo remembers the wallet name (localStorage): back to the shared wallet's.
    await p2.goto(demoUrl({ name: WALLET, presignAuto: "0" }));
    await expect(p2.locator("body")).toHaveAttribute("data-ready", "true");
    await p2.close();
  });

  test("a fresh browser imports the backup (wrong passphrase first) and signs with the cosigner", async ({ browser }, info) => {
    const ctx = await browser.newContext();
    try {
      const p = await ctx.newPage();
      logPage(p);
      // No background presignature refills from this second device.
      await p.goto(demoUrl({ presignAuto: "0" }));
      await expect(p.locator("body")).toHaveAttribute("data-ready", "true");
      await expect(p.locator("#status")).toHaveAttribute("data-state", "none");
      // A wrong passphrase: typed error, nothing stored.
      const wrong = await clientCall(p, "importBackup", [b.bytes, { passphrase: "not the backup passphrase" }]);
      expect(wrong).toMatchObject({ error: { code: "wrong_passphrase", reason: "wrong_passphrase" } });
      const garbage = await clientCall(p, "importBackup", [[...Buffer.from("{\"format\":\"nope\"}")], { passphrase: BACKUP_PASS }]);
      expect(garbage).toMatchObject({ error: { code: "storage", reason: "not_a_backup" } });
      expect(await clientCall(p, "walletInfo", [])).toBeNull();
      // The demo's import field.
      await p.fill("#backup-passphrase", BACKUP_PASS);
      await p.setInputFiles("#backup-file", { name: b.filename, mimeType: "application/json", buffer: Buffer.from(b.bytes) });
      await p.click("#backup-import");
      await expect(p.locator("#status")).toHaveAttribute("data-state", "ready", { timeout: 60_000 });
      await noPageError(p);
      await expect(p.locator("#address")).toHaveText(w.address);
      expect(await demoState<{ alreadyPresent: boolean }>(p, "imported")).toMatchObject({ alreadyPresent: false });
      // Sign with the cosigner from the restored share; viem recovers the same address.
      const message = `signed by the restored device ${Date.now()}`;
      await p.fill("#message", message);
      await p.click("#sign-msg");
      await expect(p.locator("#msg-verify")).toHaveAttribute("data-ok", /true|false/, { timeout: 5 * 60_000 });
      await noPageError(p);
      const sig = await demoState<{ rsv: Hex }>(p, "message");
      expect(await recoverMessageAddress({ message, signature: sig.rsv })).toBe(w.address);
      await shot(p, info, "04c-restored-and-signed");
    } finally {
      await ctx.close();
    }
  });

  test("the native CLI imports the browser's backup and signs; the CLI's backup imports in a browser (interop)", async ({ browser }) => {
    const bin = process.env.CLIENT_BIN;
    test.skip(!bin, "CLIENT_BIN not set (run.sh exports it when it builds the servers)");
    const dir = mkdtempSync(join(tmpdir(), "wallet-backup-"));
    const file = join(dir, b.filename);
    writeFileSync(file, Buffer.from(b.bytes));
    const run = (args: string[]) =>
      execFileSync(bin!, ["--cosigner", env.cosignerUrl, "--gateway", env.gatewayUrl, "--share-file", join(dir, "client_key_shares.json"), ...args], {
        env: { ...process.env, WALLET_BACKUP_PASSPHRASE: BACKUP_PASS, WALLET_CLIENT_PASSPHRASE: "native device passphrase 42" },
        encoding: "utf8",
        timeout: 5 * 60_000,
      });
    run(["backup", "import", file]);
    const address = run(["address", "--path", "m/44/60/0/0/0"]);
    expect(address.toLowerCase()).toContain(w.address.toLowerCase());
    const message = "signed by the CLI from the browser's backup";
    const out = run(["--presign", "off", "sign-message", "--path", "m/44/60/0/0/0", message]);
    const rsv = out.match(/signature\s+(0x[0-9a-fA-F]{130})/)?.[1] as Hex | undefined;
    expect(rsv, out).toBeTruthy();
    expect(await recoverMessageAddress({ message, signature: rsv! })).toBe(w.address);

    // And back: the CLI's own backup imports in a fresh browser (same wallet, same address).
    const native = join(dir, "native.backup");
    run(["backup", "export", "--out", native]);
    const ctx = await browser.newContext();
    try {
      const p = await ctx.newPage();
      logPage(p);
      await p.goto(demoUrl({ presignAuto: "0" }));
      await expect(p.locator("body")).toHaveAttribute("data-ready", "true");
      const r = await clientCall<{ walletId: string; alreadyPresent: boolean }>(p, "importBackup", [[...readFileSync(native)], { passphrase: BACKUP_PASS }]);
      expect(r).toMatchObject({ walletId: await demoState<string>(w.page, "walletId"), alreadyPresent: false });
      expect(await clientCall(p, "getAddress", [undefined, "m/44/60/0/0/0"])).toBe(w.address);
    } finally {
      await ctx.close();
    }
  });
}
