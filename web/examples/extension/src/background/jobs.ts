// Long work handed to the offscreen document: the device enrollment, wallet creation,
// presignature refills.
import { loadConfig } from "../shared/config";
import type { Job } from "../shared/messages";
import { startJob } from "./offscreen";
import { currentPassphrase, lockedError, readClient, unlock } from "./session";

/**
 * First run, as soon as the user sets the passphrase: enrolls the device (the minutes of
 * aux info) in the offscreen document, which outlives the service worker. The
 * enrollment is stored encrypted under the passphrase; "Create wallet" then runs the DKG
 * only. Resumable: an enrollment already stored ends the job at once.
 */
export async function startEnroll(passphrase: string, registrationCredential?: string): Promise<Job> {
  if (await (await readClient()).walletInfo()) {
    throw Object.assign(new Error("this extension already holds a wallet"), { code: "wallet_exists" });
  }
  const config = await loadConfig();
  if (!config.insecureDev && passphrase.length < 12) {
    throw Object.assign(new Error("the passphrase needs at least 12 characters"), { code: "invalid_input" });
  }
  await unlock(passphrase); // no wallet yet: remembers the passphrase for the session
  return startJob("enroll", { config, passphrase, registrationCredential });
}

/**
 * Creates the wallet: with the stored enrollment (the DKG only) when there is one, else
 * the full creation. An empty `passphrase` uses the session's (set by `startEnroll`).
 */
export async function startCreate(passphrase: string, registrationCredential?: string): Promise<Job> {
  if (await (await readClient()).walletInfo()) {
    throw Object.assign(new Error("this extension already holds a wallet"), { code: "wallet_exists" });
  }
  if (!passphrase) {
    passphrase = (await currentPassphrase()) ?? "";
    if (!passphrase) throw lockedError();
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
