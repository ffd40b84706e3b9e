// The demo wallet and its flows on ONE wallet (wallet creation runs minutes of aux info
// in wasm, so the suites share it): flows/wallet.ts creates and exercises the demo
// wallet, flows/presign.ts fills and uses its presignature pool, flows/evm.ts signs with
// it against a real node (anvil), flows/bitcoin.ts signs bitcoinjs-lib PSBTs with it,
// flows/lifecycle.ts refreshes its shares and replaces its device by a new browser
// profile (which the later flows then use), then the wallet is frozen from the page (flows/wallet.ts walletControlsTest) and the
// cosigner is stopped (cosignerDownTest); last, the page signs with the recovery agent
// alone (recoverySigningTest).
import { expect, test } from "@playwright/test";
import { env, logPage, type DemoWallet } from "./flows/demo.js";
import { bitcoinTests } from "./flows/bitcoin.js";
import { evmTests } from "./flows/evm.js";
import { presignTests } from "./flows/presign.js";
import { lifecycleTests } from "./flows/lifecycle.js";
import { cosignerDownTest, recoverySigningTest, walletControlsTest, walletTests } from "./flows/wallet.js";

test.describe.configure({ mode: "serial" });

const w = { address: "" } as DemoWallet;

test.beforeAll(async ({ browser }) => {
  expect(env, "WALLET_E2E missing: global setup did not run").toBeTruthy();
  w.context = await browser.newContext();
  w.page = await w.context.newPage();
  logPage(w.page);
});

test.afterAll(async () => {
  await w.context?.close();
});

walletTests(w);
presignTests(w);
evmTests(w);
bitcoinTests(w);
lifecycleTests(w);
walletControlsTest(w);
cosignerDownTest(w);
recoverySigningTest(w);
