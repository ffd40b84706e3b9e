// The package's IndexedDB storage in real Chromium (dist/storage.js loaded as a plain
// ES module by the demo origin): AES-GCM round trip under a non-extractable key,
// refusal to overwrite, tamper detection, deletion.
import { expect, test } from "@playwright/test";
import type { E2eEnv } from "../harness/global-setup.js";

const env = JSON.parse(process.env.WALLET_E2E ?? "null") as E2eEnv;

test("encrypted storage: round trip, no overwrite, tamper detection, delete", async ({ page }) => {
  await page.goto(`${env.origin}/demo/index.html`);
  await page.addScriptTag({ type: "module", content: `import * as s from "/dist/storage.js"; window.__storage = s;` });
  await page.waitForFunction(() => "__storage" in window);
  const r = await page.evaluate(async () => {
    const s = (window as unknown as { __storage: typeof import("../../web/src/storage.js") }).__storage;
    const meta = {
      walletName: "unit",
      walletId: "w-1",
      accounts: [],
      protection: "webcrypto" as const,
      insecureDevPrimes: true,
      createdAtMs: 1,
      cosignerUrl: "http://x",
      partyIndex: 0,
    };
    const secret = new TextEncoder().encode(JSON.stringify({ identity_secret: "aa".repeat(32), aux_info: "x".repeat(3000) }));
    await s.putNewWallet(meta, { bundle: secret });
    const rec = await s.getWallet("unit");
    const back = await s.decryptBundle(rec!);
    const roundTrip = new TextDecoder().decode(back!) === new TextDecoder().decode(secret);
    const ctHasPlain = new TextDecoder().decode(rec!.ciphertext!).includes("identity_secret");

    let overwrite = "";
    try {
      await s.putNewWallet(meta, { bundle: secret });
    } catch (e) {
      overwrite = (e as { code: string }).code;
    }

    // Tamper: flip a ciphertext byte; then bind to another wallet id (AAD).
    const db = await new Promise<IDBDatabase>((res, rej) => {
      const o = indexedDB.open("wallet-mpc-web");
      o.onsuccess = () => res(o.result);
      o.onerror = () => rej(o.error);
    });
    const put = (v: unknown) =>
      new Promise<void>((res, rej) => {
        const tx = db.transaction("wallets", "readwrite");
        tx.objectStore("wallets").put(v, "unit");
        tx.oncomplete = () => res();
        tx.onerror = () => rej(tx.error);
      });
    const ct = new Uint8Array(rec!.ciphertext!);
    ct[10] = ct[10]! ^ 1;
    await put({ ...rec, ciphertext: ct });
    let tampered = "";
    try {
      await s.decryptBundle((await s.getWallet("unit"))!);
    } catch (e) {
      tampered = (e as { code: string }).code;
    }
    await put({ ...rec, walletId: "w-2" });
    let rebound = "";
    try {
      await s.decryptBundle((await s.getWallet("unit"))!);
    } catch (e) {
      rebound = (e as { code: string }).code;
    }
    db.close();
    await s.deleteWallet("unit");
    const gone = (await s.getWallet("unit")) === undefined;
    return { roundTrip, ctHasPlain, overwrite, tampered, rebound, gone };
  });
  expect(r).toEqual({ roundTrip: true, ctHasPlain: false, overwrite: "wallet_exists", tampered: "storage", rebound: "storage", gone: true });
});
