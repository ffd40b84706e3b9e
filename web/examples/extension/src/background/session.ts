// Lock state and the service worker's wallet clients (inline mode: the wasm core runs
// in the service worker itself, for short work: addresses, unlock, signing).
// The passphrase lives in memory and chrome.storage.session only: it survives a
// stopped service worker, never a browser restart (storage.session is in memory).
//
// Auto-lock: chrome.storage.session "unlock" holds the passphrase and the time of the
// last use; the wallet is locked once `autoLockSeconds` passed since then. Enforced
// three ways: every read of the passphrase checks the deadline (so a late alarm or a
// stopped worker never leaves it usable), a timer while this worker lives (exact), and a
// chrome.alarms alarm (wakes a stopped worker; Chrome fires it no earlier than 30 s
// after it is set in a packed extension).
import { WalletClient } from "@wallet-mpc/web";
import { ACCOUNT_PATH, autoLockMs, loadConfig } from "../shared/config";
import { walletConfig } from "../shared/wallet-config";

const AUTO_LOCK_ALARM = "autolock";

interface Unlocked {
  passphrase: string;
  /** Date.now() of the last use (unlock, signing, a refill started). */
  lastUsedAt: number;
}

let autoLockTimer: ReturnType<typeof setTimeout> | undefined;
/** Operations of this worker using the open shares now (signing, sending): no auto-lock meanwhile. */
let inUse = 0;

let signer: { key: string; client: WalletClient } | undefined;
let reader: { key: string; client: WalletClient } | undefined;

export function lockedError(): Error {
  return Object.assign(new Error("the wallet is locked: unlock it in the extension"), { code: "locked", eip1193Code: 4100 });
}

async function unlocked(): Promise<Unlocked | undefined> {
  const { unlock } = await chrome.storage.session.get("unlock");
  if (typeof unlock?.passphrase !== "string") return undefined;
  // A record without a time (an earlier version's) counts as long unused.
  return { passphrase: unlock.passphrase, lastUsedAt: typeof unlock.lastUsedAt === "number" ? unlock.lastUsedAt : 0 };
}

/** The passphrase while unlocked; once the auto-lock delay has passed since the last use, locks and returns `undefined`. */
export async function currentPassphrase(): Promise<string | undefined> {
  const u = await unlocked();
  if (!u) return undefined;
  if (inUse === 0 && Date.now() - u.lastUsedAt >= autoLockMs(await loadConfig())) {
    await lock();
    return undefined;
  }
  return u.passphrase;
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

/**
 * The unlocked client (its key shares stay open in wasm while the worker lives). A use
 * of the wallet restarts the auto-lock delay; `{ use: false }` (the popup's status
 * polling) does not.
 */
export async function signClient(opts: { use?: boolean } = {}): Promise<WalletClient> {
  const pass = await currentPassphrase();
  if (!pass) throw lockedError();
  const c = await loadConfig();
  const key = JSON.stringify([c, pass]);
  if (!signer || signer.key !== key) {
    signer?.client.terminate();
    signer = { key, client: await WalletClient.open(walletConfig(c, pass), { mode: "inline" }) };
  }
  if (opts.use !== false) await touch();
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
  const u: Unlocked = { passphrase, lastUsedAt: Date.now() };
  await chrome.storage.session.set({ unlock: u });
  signer?.client.terminate();
  signer = { key: JSON.stringify([c, passphrase]), client };
  await scheduleAutoLock();
}

export async function lock(): Promise<void> {
  await chrome.storage.session.remove("unlock");
  signer?.client.terminate();
  signer = undefined;
  if (autoLockTimer !== undefined) clearTimeout(autoLockTimer);
  autoLockTimer = undefined;
  await chrome.alarms.clear(AUTO_LOCK_ALARM);
  chrome.runtime.sendMessage({ to: "offscreen", type: "lock" }).catch(() => undefined);
}

/**
 * Runs `f` (a signature, a transaction) as a use of the wallet: the auto-lock waits for
 * it to end (a full signing is seconds) and its delay restarts then.
 */
export async function whileInUse<T>(f: () => Promise<T>): Promise<T> {
  inUse += 1;
  try {
    return await f();
  } finally {
    inUse -= 1;
    await touch().catch(() => undefined);
  }
}

/** A use of the wallet: restarts the auto-lock delay (no-op while locked). */
export async function touch(): Promise<void> {
  const u = await unlocked();
  if (!u) return;
  await chrome.storage.session.set({ unlock: { ...u, lastUsedAt: Date.now() } });
  await scheduleAutoLock();
}

/**
 * Arms the auto-lock for the stored last use and the current setting: a timer in this
 * worker and the alarm. Called on unlock and every use, when the settings change, and
 * when the alarm fires early (its deadline moved).
 */
export async function scheduleAutoLock(): Promise<void> {
  if (autoLockTimer !== undefined) clearTimeout(autoLockTimer);
  autoLockTimer = undefined;
  const u = await unlocked();
  if (!u) {
    await chrome.alarms.clear(AUTO_LOCK_ALARM);
    return;
  }
  const at = u.lastUsedAt + autoLockMs(await loadConfig());
  autoLockTimer = setTimeout(() => void checkAutoLock(), Math.max(0, at - Date.now()) + 20);
  await chrome.alarms.create(AUTO_LOCK_ALARM, { when: Math.max(at, Date.now() + 100) });
}

/** Locks if the auto-lock delay has passed, else re-arms for the remaining time. */
export async function checkAutoLock(): Promise<void> {
  if (await currentPassphrase()) await scheduleAutoLock();
}

export { AUTO_LOCK_ALARM };
