// The package's WalletConfig for the extension's settings (service worker and
// offscreen document open the same wallet, "extension", in the extension's IndexedDB).
import type { WalletConfig } from "@wallet-mpc/web";
import { WALLET_NAME, type ExtConfig } from "./config";

export function walletConfig(c: ExtConfig, passphrase?: string): WalletConfig {
  const w: WalletConfig = {
    cosignerUrl: c.cosignerUrl,
    walletName: WALLET_NAME,
    // Refills are started by the service worker as offscreen jobs, never implicitly.
    presignPool: { target: c.presignTarget, auto: false },
  };
  if (c.gatewayUrl) w.gatewayUrl = c.gatewayUrl;
  if (c.agentUrl) w.agentUrl = c.agentUrl;
  if (c.agentToken) w.agentToken = c.agentToken;
  if (passphrase) {
    w.passphrase = passphrase;
    w.protection = "passphrase";
  }
  if (c.insecureDev) {
    w.insecureDevPrimes = true;
    w.insecureFastKdf = true;
  }
  return w;
}
