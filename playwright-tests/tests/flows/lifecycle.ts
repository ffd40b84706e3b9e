// Key lifecycle on the demo wallet (no wallet of its own: creation costs minutes):
// a refresh the recovery agent starts after its user confirms (the page joins it, the
// cosigner then signs with the new shares and viem recovers the same address), then a
// device replacement in a NEW browser context (fresh IndexedDB): the new profile's
// identity is generated in wasm, the agent's user confirms, the new profile runs aux
// info + repair + refresh and stores its share; the old profile is refused by code at
// once; the new one signs with the cosigner and with the agent alone; every address and
// the xpub are unchanged. The demo wallet then lives in the new profile (`w` switches to
// it), so the later flows (controls, cosigner down, recovery signing) run on it.
import { expect, test, type Page } from "@playwright/test";
import { getAddress, recoverMessageAddress, type Hex } from "viem";
import { demoState, demoUrl, env, logPage, recordTimings, type DemoWallet } from "./demo.js";
import { agentCli, awaiting, clientCall } from "./wallet.js";

interface Result {
  kind: string;
  epoch: number;
  committed: boolean;
  accounts: { accountId: string; publicKey: string; ethereumAddress: string }[];
  agentDone: boolean;
}

/** Signs `message` on `p` through `call` and checks viem recovers `address`. */
async function expectSigns(p: Page, call: string, message: string, address: string, method = "signMessage") {
  const sig = await p.evaluate(
    async ([m, msg, target]) => {
      const w = (window as unknown as Record<string, Record<string, (...a: unknown[]) => Promise<{ rsv: Hex; signers: number[] }>>>)[target as string]!;
      return await w[m as string]!(msg, m === "signMessage" ? { presign: "off" } : {});
    },
    [method, message, call] as const,
  );
  expect(await recoverMessageAddress({ message, signature: sig.rsv })).toBe(getAddress(address));
  return sig;
}

export function lifecycleTests(w: DemoWallet) {
  test("refresh through the recovery agent: new shares at epoch 1, same address, the cosigner signs with them", async () => {
    const t0 = Date.now();
    const before = (await clientCall<Result["accounts"]>(w.page, "listAccounts", [])) as Result["accounts"];
    const pending = clientCall<Result>(w.page, "refreshShares", [{ reason: "scheduled refresh (playwright)" }]);
    agentCli("confirm", await awaiting());
    const r = (await pending) as Result;
    expect(r).toMatchObject({ kind: "refresh", epoch: 1, committed: true });
    expect(r.accounts.map((a) => [a.accountId, a.publicKey])).toEqual(before.map((a) => [a.accountId, a.publicKey]));
    const root = getAddress(before[0]!.ethereumAddress);
    expect(getAddress(r.accounts[0]!.ethereumAddress)).toBe(root);
    // The device's new share signs with the cosigner's new share (no presignature of the old epoch).
    const message = "signed after a refresh (playwright)";
    const sig = (await clientCall<{ rsv: Hex; signers: number[] }>(w.page, "signMessage", [message, { presign: "off" }])) as { rsv: Hex; signers: number[] };
    expect(sig.signers).toEqual([0, 1]);
    expect(await recoverMessageAddress({ message, signature: sig.rsv })).toBe(root);
    recordTimings({ lifecycleRefreshMs: Date.now() - t0 });
  });

  test("replace the device in a new browser profile: old refused at once, new signs with the cosigner and the agent, address unchanged", async ({ browser }) => {
    const t0 = Date.now();
    const walletId = await demoState<string>(w.page, "walletId");
    // The account's root address (the demo shows an HD child address: w.address).
    const before = (await clientCall<Result["accounts"]>(w.page, "listAccounts", [])) as Result["accounts"];
    const root = getAddress(before[0]!.ethereumAddress);
    const watchBefore = (await clientCall<{ xpub: string }>(w.page, "bitcoinWatchOnly", [])) as { xpub: string };
    expect(watchBefore.xpub).toMatch(/^[xt]pub/);
    expect(walletId).toBeTruthy();
    const context = await browser.newContext();
    const page = await context.newPage();
    logPage(page);
    await page.goto(demoUrl({ devPrimes: "0", presignAuto: "0" }));
    await expect(page.locator("body")).toHaveAttribute("data-ready", "true");
    await expect(page.locator("#status")).toHaveAttribute("data-state", "none");
    await page.addScriptTag({ type: "module", content: `import * as m from "/browser/wallet-mpc.js"; window.__wm = m;` });
    await page.waitForFunction(() => "__wm" in window, undefined, { timeout: 30_000 });
    const run = page.evaluate(
      async (o) => {
        const m = (window as unknown as { __wm: { replaceDevice(o: unknown): Promise<{ result: unknown; wallet: unknown }> } }).__wm;
        try {
          const { result, wallet } = await m.replaceDevice({
            ...o,
            // The public fixture primes: the new aux info without a prime search.
            insecureDevPrimes: true,
          });
          (window as unknown as { __replaced: unknown }).__replaced = wallet;
          return result as never;
        } catch (e) {
          const err = e as { code: string; message: string };
          return { error: { code: err.code, message: err.message } } as never;
        }
      },
      {
        agent: { url: env.agentUrl, pairingToken: env.agentToken },
        walletId,
        cosignerUrl: env.cosignerUrl,
        gatewayUrl: env.gatewayUrl,
        walletName: "default",
        reason: "phone lost (playwright)",
      },
    );
    agentCli("confirm", await awaiting());
    const r = (await run) as Result | { error: { code: string; message: string } };
    expect(r, JSON.stringify(r)).toMatchObject({ kind: "replace_device", epoch: 2, committed: true });
    const res = r as Result;
    expect(res.accounts.map((a) => [a.accountId, a.publicKey])).toEqual(before.map((a) => [a.accountId, a.publicKey]));
    expect(getAddress(res.accounts[0]!.ethereumAddress)).toBe(root);
    // The xpub (public key and chain code) the new profile exports is the old one.
    const watchAfter = await page.evaluate(async () => {
      const c = (window as unknown as { __replaced: { bitcoinWatchOnly(): Promise<{ xpub: string }> } }).__replaced;
      return await c.bitcoinWatchOnly();
    });
    expect(watchAfter.xpub).toBe(watchBefore.xpub);

    // The old profile is refused by code at once (its identity was revoked).
    expect(await clientCall(w.page, "signMessage", ["old device after its replacement", { presign: "off" }])).toMatchObject({
      error: { code: "unauthorized", walletRefusal: "identity_revoked" },
    });

    // The new profile signs with the cosigner...
    const withCosigner = await expectSigns(page, "__replaced", "new device with the cosigner (playwright)", root);
    expect(withCosigner.signers).toEqual([0, 1]);
    // ...and with the recovery agent alone, after its user confirms.
    const pairing = expectSigns(page, "__replaced", "new device with the agent (playwright)", root, "signMessageWithRecovery");
    agentCli("confirm", await awaiting());
    expect((await pairing).signers).toEqual([0, 2]);
    recordTimings({ lifecycleReplaceMs: Date.now() - t0 });

    // The demo wallet now lives in the new profile: the later flows use it.
    await page.evaluate(() => (window as unknown as { __replaced: { terminate(): void } }).__replaced.terminate());
    await page.reload();
    await expect(page.locator("body")).toHaveAttribute("data-ready", "true");
    await expect(page.locator("#address")).toHaveText(w.address);
    await w.context.close();
    w.context = context;
    w.page = page;
  });
}
