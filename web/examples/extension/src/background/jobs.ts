// Long work handed to the offscreen document: wallet creation, presignature refills.
import { loadConfig } from "../shared/config";
import type { Job } from "../shared/messages";
import { startJob } from "./offscreen";
import { currentPassphrase, lockedError, readClient, unlock } from "./session";

export async function startCreate(passphrase: string, registrationCredential?: string): Promise<Job> {
  if (await (await readClient()).walletInfo()) {
    throw Object.assign(new Error("this extension already holds a wallet"), { code: "wallet_exists" });
  }
  const config = await loadConfig();
  if (!config.insecureDev && passphrase.length < 12) {
    throw Object.assign(new Error("the passphrase needs at least 12 characters"), { code: "invalid_input" });
  }
  await unlock(passphrase); // no wallet yet: remembers the passphrase for the session
  return startJob("create", { config, passphrase, registrationCredential });
}

/** Refills the presignature pool of the wallet's address (its HD account at `ACCOUNT_PATH`), if unlocked. */
export async function startRefill(): Promise<Job> {
  const passphrase = await currentPassphrase();
  if (!passphrase) throw lockedError();
  const config = await loadConfig();
  if (config.presignTarget <= 0) throw Object.assign(new Error("presignatures are off (presignTarget 0)"), { code: "invalid_input" });
  return startJob("refill", { config, passphrase });
}
