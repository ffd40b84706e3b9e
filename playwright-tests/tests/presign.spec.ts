// The presignature pool's storage module (dist/pool.js) in real Chromium, no servers
// involved: take-once under concurrency, tombstones, records bound to their id and wallet
// by their encryption, the passphrase-mode key. The pools end to end against the real
// cosigner run on the demo wallet (flows/presign.ts in wallet.spec.ts) and in the
// extension (extension.spec.ts).
import { expect, test } from "@playwright/test";
import type { E2eEnv } from "../harness/global-setup.js";

const env = JSON.parse(process.env.WALLET_E2E ?? "null") as E2eEnv;

test("pool storage: take-once under concurrency, tombstones, encryption bound to its key", async ({ page }) => {
  expect(env, "WALLET_E2E missing: global setup did not run").toBeTruthy();
  // The passphrase-mode key (HKDF from the identity secret) is used; the webcrypto-mode
  // key is the wallet's (exercised end to end by flows/presign.ts).
  await page.goto(`${env.origin}/demo/index.html`);
  await page.addScriptTag({ type: "module", content: `import * as p from "/dist/pool.js"; window.__pool = p;` });
  await page.waitForFunction(() => "__pool" in window);
  const r = await page.evaluate(async () => {
    const pool = (window as unknown as { __pool: typeof import("../../web/src/pool.js") }).__pool;
    const w = { walletName: "unit", walletId: "w-1", protection: "passphrase" as const };
    const secret = new Uint8Array(32).fill(7);
    const key = await pool.poolKey(w, () => new Uint8Array(secret));
    const ids = ["p1", "p2", "p3", "p4", "p5"];
    for (const id of ids) {
      await pool.putPresignature(w, key, "acct", [0, 1], id, new TextEncoder().encode(`{"secret presignature":"${id}"}`));
    }
    const listed = await pool.listPresignatures(w, "acct");
    // Eight concurrent takers: each presignature comes out exactly once.
    const outs = await Promise.all(Array.from({ length: 8 }, () => pool.takePresignature(w, "acct")));
    const got = outs.map((o) => o.taken?.record.id).filter((x): x is string => !!x).sort();
    const plain = await Promise.all(
      outs.filter((o) => o.taken).map(async (o) => new TextDecoder().decode(await pool.decryptRecord(w, key, o.taken!.record))),
    );
    let restore = "";
    try {
      await pool.putPresignature(w, key, "acct", [0, 1], "p1", new TextEncoder().encode("again"));
    } catch (e) {
      restore = (e as { code: string }).code;
    }
    // A record moved to another id (or wallet) does not decrypt.
    await pool.putPresignature(w, key, "acct", [0, 1], "p6", new TextEncoder().encode("six"));
    const six = (await pool.takePresignature(w, "acct")).taken!.record;
    let moved = "";
    try {
      await pool.decryptRecord(w, key, { ...six, id: "p7" });
    } catch (e) {
      moved = (e as { code: string }).code;
    }
    let otherKey = "";
    try {
      const k2 = await pool.poolKey({ ...w, walletId: "w-2" }, () => new Uint8Array(32).fill(8));
      await pool.decryptRecord(w, k2, six);
    } catch (e) {
      otherKey = (e as { code: string }).code;
    }
    const tomb = await pool.getTombstone(w, "acct", "p3");
    await pool.deletePool("unit");
    const after = await pool.listPresignatures(w, "acct");
    return { listed, got, plain: plain.sort(), restore, moved, otherKey, tomb: tomb?.outcome, extractable: key.extractable, after };
  });
  expect(r.listed).toEqual(["p1", "p2", "p3", "p4", "p5"]);
  expect(r.got).toEqual(["p1", "p2", "p3", "p4", "p5"]);
  expect(r.plain).toEqual(["p1", "p2", "p3", "p4", "p5"].map((id) => `{"secret presignature":"${id}"}`));
  expect(r).toMatchObject({ restore: "storage", moved: "storage", otherKey: "storage", tomb: "taken", extractable: false, after: [] });
});
