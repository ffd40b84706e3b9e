// Bitcoin end to end (issue 19), on the demo wallet (flows/wallet.ts creates it; this opens
// it in another page of the same context through the package's API, worker mode):
//
// - the page's regtest address and watch-only export (xpub, descriptors) are checked here
//   against independent code: @scure/bip32 derives from the exported tpub, bitcoinjs-lib
//   makes the P2WPKH addresses, and the descriptor's key origin is the root key's
//   hash160;
// - a 2-input PSBT is BUILT HERE with bitcoinjs-lib (witness UTXOs, bip32Derivation from
//   the watch-only export), signed in the page with `signPsbt` (device + cosigner, one
//   session per input; the cosigner analyzes the PSBT and applies its Bitcoin policy),
//   and the finalized PSBT is read back with bitcoinjs-lib: it extracts the transaction
//   (same txid and hex), bitcoinjs-lib computes every input's BIP-143 sighash itself and
//   @noble/curves verifies each witness signature (low S, SIGHASH_ALL) under the key;
// - refusals before any session: an input that is not the wallet's (`not_our_input`, in
//   the page), a destination the cosigner's policy does not allow (`policy_denied`, rule
//   `bitcoin_allowed_destinations`).
//
// Cosigner policy of the harness (global-setup.ts): regtest only, one destination,
// `bcrt1qzyg3…lgth6c` (hash160 0x11 × 20).
import { expect, test, type Page } from "@playwright/test";
import * as bitcoin from "bitcoinjs-lib";
import { HDKey } from "@scure/bip32";
import { secp256k1 } from "@noble/curves/secp256k1";
import { env, logPage, type DemoWallet } from "./demo.js";
import { WALLET } from "./wallet.js";

const NET = bitcoin.networks.regtest;
/** tpub / tprv version bytes (BIP-32, test networks). */
const TEST_VERSIONS = { private: 0x04358394, public: 0x043587cf };
/** The one destination the harness policy allows. */
const ALLOWED = "bcrt1qzyg3zyg3zyg3zyg3zyg3zyg3zyg3zyg3lgth6c";
/** A destination it does not allow (hash160 0x22 × 20). */
const REFUSED = "bcrt1qyg3zyg3zyg3zyg3zyg3zyg3zyg3zyg3zs4w3j0";

/** Shape of the page's globals set by the module script below. */
interface PageGlobals {
  __btc: {
    WalletClient: typeof import("../../../web/src/index.js").WalletClient;
    client?: import("../../../web/src/index.js").WalletClient;
  };
}

let page: Page;
/** The account's watch-only export, read in the page. */
let watch: { fingerprint: string; xpub: string; accountPath: string; receiveDescriptor: string; changeDescriptor: string };
/** The account key at m/84/1/0, from the exported tpub (@scure/bip32). */
let account: HDKey;

/** The key at `m/84/1/0/{chain}/{index}`, derived here from the tpub. */
function key(chain: number, index: number): Buffer {
  const pk = account.deriveChild(chain).deriveChild(index).publicKey;
  if (!pk) throw new Error("no public key");
  return Buffer.from(pk);
}

function derivation(chain: number, index: number) {
  return [{ masterFingerprint: Buffer.from(watch.fingerprint, "hex"), path: `m/84/1/0/${chain}/${index}`, pubkey: key(chain, index) }];
}

/**
 * A PSBT spending the wallet's coins at `m/84/1/0/0/{0,1}` (100 000 and 100 001 sat): pays
 * `to` 60 000 sat, the rest less a 2 000 sat fee back to change `m/84/1/0/1/0`. `foreign`
 * claims input 1 with another wallet's fingerprint.
 */
function buildPsbt(to: string, salt: number, foreign = false): { base64: string; values: number[] } {
  const psbt = new bitcoin.Psbt({ network: NET });
  const values = [100_000, 100_001];
  values.forEach((value, i) => {
    const der = derivation(0, i);
    if (foreign && i === 1) der[0]!.masterFingerprint = Buffer.from("deadbeef", "hex");
    psbt.addInput({
      hash: Buffer.alloc(32, salt + i),
      index: i,
      sequence: 0xfffffffd,
      witnessUtxo: { script: bitcoin.payments.p2wpkh({ pubkey: key(0, i), network: NET }).output!, value },
      bip32Derivation: der,
    });
  });
  const change = bitcoin.payments.p2wpkh({ pubkey: key(1, 0), network: NET }).address!;
  psbt.addOutput({ address: to, value: 60_000 });
  psbt.addOutput({ address: change, value: values[0]! + values[1]! - 60_000 - 2_000, bip32Derivation: derivation(1, 0) });
  return { base64: psbt.toBase64(), values };
}

/** Calls `signPsbt` in the page; a rejection comes back as its code and details. */
async function signInPage(base64: string) {
  return page.evaluate(async (b64) => {
    const events: { message: string; overallPercent: number }[] = [];
    try {
      const r = await (window as unknown as PageGlobals).__btc.client!.signPsbt(b64, {
        network: "regtest",
        onProgress: (e) => events.push({ message: e.message, overallPercent: e.overallPercent }),
      });
      return { ok: r, events };
    } catch (e) {
      const err = e as { code?: string; message?: string; details?: Record<string, unknown> };
      return { err: { code: err.code, message: err.message, reason: err.details?.reason, rule: err.details?.rule }, events };
    }
  }, base64);
}

/** The Bitcoin tests, on the demo wallet of `w` (after flows/wallet.ts's walletTests). */
export function bitcoinTests(w: DemoWallet) {
  test("bitcoin: the page's regtest address and watch-only export match @scure/bip32 and bitcoinjs-lib", async () => {
    expect(w.address, "the demo wallet was not created").not.toBe("");
    page = await w.context.newPage();
    logPage(page);
    await page.goto(`${env.origin}/demo/index.html`);
    await page.addScriptTag({
      type: "module",
      content: `import { WalletClient } from "/browser/wallet-mpc.js"; window.__btc = { WalletClient };`,
    });
    await page.waitForFunction(() => "__btc" in window);
    const got = await page.evaluate(
      async ({ cosignerUrl, agentUrl, agentToken, name }) => {
        const g = (window as unknown as PageGlobals).__btc;
        g.client = await g.WalletClient.open({ cosignerUrl, agentUrl, agentToken, walletName: name, bitcoinNetwork: "regtest" });
        const root = await g.client.getPublicKey(undefined, "m");
        const receive0 = await g.client.getPublicKey(undefined, "m/84/1/0/0/0");
        const mainnet = await g.client.getPublicKey(undefined, "m/84/0/0/0/0", "mainnet");
        const watch = await g.client.bitcoinWatchOnly();
        return { root, receive0, mainnet, watch };
      },
      { cosignerUrl: env.cosignerUrl, agentUrl: env.agentUrl, agentToken: env.agentToken, name: WALLET },
    );
    watch = got.watch;
    expect(got.watch.network).toBe("regtest");
    expect(got.watch.accountPath).toBe("m/84/1/0");
    // The key origin is the root key's fingerprint: hash160 of the root public key.
    const rootFp = bitcoin.crypto.hash160(Buffer.from(got.root.publicKey, "hex")).subarray(0, 4).toString("hex");
    expect(got.watch.fingerprint).toBe(rootFp);
    expect(got.watch.receiveDescriptor).toMatch(new RegExp(`^wpkh\\(\\[${rootFp}/84/1/0\\]${got.watch.xpub}/0/\\*\\)#[0-9a-z]{8}$`));
    expect(got.watch.changeDescriptor).toMatch(new RegExp(`^wpkh\\(\\[${rootFp}/84/1/0\\]${got.watch.xpub}/1/\\*\\)#[0-9a-z]{8}$`));
    account = HDKey.fromExtendedKey(got.watch.xpub, TEST_VERSIONS);
    expect(account.depth).toBe(3);
    expect(got.receive0.publicKey).toBe(key(0, 0).toString("hex"));
    expect(got.receive0.bitcoinNetwork).toBe("regtest");
    expect(got.receive0.bitcoinAddress).toBe(bitcoin.payments.p2wpkh({ pubkey: key(0, 0), network: NET }).address);
    expect(got.receive0.bitcoinAddress.startsWith("bcrt1q")).toBe(true);
    expect(got.mainnet.bitcoinNetwork).toBe("mainnet");
    expect(got.mainnet.bitcoinAddress).toBe(bitcoin.payments.p2wpkh({ pubkey: Buffer.from(got.mainnet.publicKey, "hex") }).address);
  });

  test("bitcoin: a PSBT with an input that is not ours, or paying where the policy refuses, is refused before any session", async () => {
    const foreign = await signInPage(buildPsbt(ALLOWED, 0x10, true).base64);
    expect(foreign.err, JSON.stringify(foreign)).toMatchObject({ code: "invalid_input", reason: "not_our_input" });
    const refused = await signInPage(buildPsbt(REFUSED, 0x20).base64);
    expect(refused.err, JSON.stringify(refused)).toMatchObject({ code: "policy_denied", rule: "bitcoin_allowed_destinations" });
    expect(refused.events.some((e) => /round/.test(e.message)), "no protocol round may run").toBe(false);
  });

  test("bitcoin: a bitcoinjs-lib PSBT signed in the page finalizes; bitcoinjs-lib's sighashes verify every witness", async ({}, info) => {
    const { base64, values } = buildPsbt(ALLOWED, 0x30);
    const out = await signInPage(base64);
    expect(out.err, JSON.stringify(out.err)).toBeUndefined();
    const r = out.ok!;
    info.annotations.push({ type: "psbt", description: `2 inputs signed in ${r.elapsedMs} ms (${r.inputs.map((i) => (i.presigned ? "pool" : "full")).join(", ")})` });
    expect(r.network).toBe("regtest");
    expect(r.psbtVersion).toBe(0);
    expect(r.feeSats).toBe(2_000);
    expect(r.inputs.map((i) => i.derivationPath)).toEqual(["m/84/1/0/0/0", "m/84/1/0/0/1"]);
    expect(out.events.some((e) => e.message.startsWith("input 2/2"))).toBe(true);
    expect(out.events.at(-1)?.overallPercent).toBe(100);

    const signed = bitcoin.Psbt.fromBase64(r.psbtBase64, { network: NET });
    const tx = signed.extractTransaction();
    expect(tx.getId()).toBe(r.txid);
    expect(tx.toHex()).toBe(r.txHex);
    expect(tx.outs[0]!.value).toBe(60_000);
    for (const [i, input] of tx.ins.entries()) {
      expect(input.witness.length, `input ${i} witness`).toBe(2);
      const [sigBytes, pub] = input.witness as [Buffer, Buffer];
      expect(pub.equals(key(0, i)), `input ${i} key`).toBe(true);
      const { signature, hashType } = bitcoin.script.signature.decode(sigBytes);
      expect(hashType).toBe(bitcoin.Transaction.SIGHASH_ALL);
      const scriptCode = bitcoin.payments.p2pkh({ pubkey: pub }).output!;
      const sighash = tx.hashForWitnessV0(i, scriptCode, values[i]!, bitcoin.Transaction.SIGHASH_ALL);
      expect(sighash.toString("hex")).toBe(r.inputs[i]!.sighash);
      expect(secp256k1.verify(signature, sighash, pub, { lowS: true }), `input ${i} signature`).toBe(true);
    }
  });
}
