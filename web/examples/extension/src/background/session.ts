// Lock state and the service worker's wallet clients (inline mode: the wasm core runs
// in the service worker itself, for short work: addresses, unlock, signing).
// The passphrase lives in memory and chrome.storage.session only: it survives a
// stopped service worker, never a browser restart (storage.session is in memory).
import { WalletClient } from "@wallet-mpc/web";
import { ACCOUNT_PATH, loadConfig } from "../shared/config";
import { walletConfig } from "../shared/wallet-config";

let signer: { key: string; client: WalletClient } | undefined;
let reader: { key: string; client: WalletClient } | undefined;

export function lockedError(): Error {
  return Object.assign(new Error("the wallet is locked: unlock it in the extension"), { code: "locked", eip1193Code: 4100 });
}

export async function currentPassphrase(): Promise<string | undefined> {
  const { unlock } = await chrome.storage.session.get("unlock");
  return typeof unlock?.passphrase === "string" ? unlock.passphrase : undefined;
}

/** A client without the passphrase: public facts only (wallet info, addresses). */
export async function readClient(): Promise<WalletClient> {
  const c = await loadConfig();
  const key = JSON.stringify(c);
  if (!reader || reader.key !== key) {
    reader?.client.terminate();
    reader = { key, client: await WalletClient.open(walletConfig(c), { mode: "inline" }) };
  }
  return reader.client;
}

/** The unlocked client (its key shares stay open in wasm while the worker lives). */
export async function signClient(): Promise<WalletClient> {
  const pass = await currentPassphrase();
  if (!pass) throw lockedError();
  const c = await loadConfig();
  const key = JSON.stringify([c, pass]);
  if (!signer || signer.key !== key) {
    signer?.client.terminate();
    signer = { key, client: await WalletClient.open(walletConfig(c, pass), { mode: "inline" }) };
  }
  await touch();
  return signer.client;
}

/** Checks the passphrase against the stored wallet (if any) and unlocks. */
export async function unlock(passphrase: string): Promise<void> {
  if (!passphrase) throw Object.assign(new Error("enter the passphrase"), { code: "invalid_input" });
  const c = await loadConfig();
  const client = await WalletClient.open(walletConfig(c, passphrase), { mode: "inline" });
  if (await client.walletInfo()) {
    try {
      // Opens the key shares (Argon2id keystore) before anything goes to the network.
      await client.presignPoolStatus(undefined, ACCOUNT_PATH);
    } catch (e) {
      if ((e as { code?: string }).code === "wrong_passphrase") {
        client.terminate();
        throw e;
      }
    }
  }
  await chrome.storage.session.set({ unlock: { passphrase } });
  signer?.client.terminate();
  signer = { key: JSON.stringify([c, passphrase]), client };
  await touch();
}

export async function lock(): Promise<void> {
  await chrome.storage.session.remove("unlock");
  signer?.client.terminate();
  signer = undefined;
  await chrome.alarms.clear("autolock");
  chrome.runtime.sendMessage({ to: "offscreen", type: "lock" }).catch(() => undefined);
}

/** Restarts the inactivity timer. */
export async function touch(): Promise<void> {
  const c = await loadConfig();
  await chrome.alarms.create("autolock", { delayInMinutes: Math.max(0.5, c.autoLockMinutes) });
}
