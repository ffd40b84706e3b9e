/** Calls a {@link WalletCore} method by name (shared by the worker and inline modes). */

import type { WalletCore } from "./core.js";
import { InvalidInputError } from "./errors.js";
import type { CoreMethod } from "./rpc.js";
import type { OnProgress } from "./types.js";

export async function dispatch(
  core: WalletCore,
  method: CoreMethod,
  args: unknown[],
  progressArg: number | undefined,
  onProgress: OnProgress | undefined,
): Promise<unknown> {
  const a = [...args];
  if (progressArg !== undefined) {
    a[progressArg] = { ...((a[progressArg] as object | undefined) ?? {}), onProgress };
  }
  switch (method) {
    // prepared primes (primes.ts)
    case "prepareDevice":
      return core.prepareDevice(a[0] as never);
    case "preparedStatus":
      return core.preparedStatus();
    case "stopPrepare":
      return core.stopPrepare();
    case "discardPreparedPrimes":
      return core.discardPreparedPrimes();
    case "health":
      return core.health();
    case "walletInfo":
      return core.walletInfo();
    case "deleteWallet":
      return core.deleteWallet();
    case "listAccounts":
      return core.listAccounts();
    case "getPublicKey":
      return core.getPublicKey(a[0] as string | undefined, a[1] as string | undefined, a[2] as never);
    case "getAddress":
      return core.getAddress(a[0] as string | undefined, a[1] as string | undefined);
    case "createWallet":
      return core.createWallet(a[0] as never);
    case "enrollDevice":
      return core.enrollDevice(a[0] as never);
    case "enrollmentStatus":
      return core.enrollmentStatus();
    case "signPreimage":
      return core.signPreimage(a[0] as never, a[1] as never, a[2] as never, a[3] as never);
    case "signMessage":
      return core.signMessage(a[0] as never, a[1] as never);
    case "signTransaction":
      return core.signTransaction(a[0] as never, a[1] as never);
    case "bitcoinWatchOnly":
      return core.bitcoinWatchOnly(a[0] as never);
    case "signPsbt":
      return core.signPsbt(a[0] as never, a[1] as never);
    case "exportBackup":
      return core.exportBackup(a[0] as never);
    case "importBackup":
      return core.importBackup(a[0] as never, a[1] as never);
    case "walletControl":
      return core.walletControl(a[0] as never, a[1] as string | undefined);
    case "recoveryControl":
      return core.recoveryControl(a[0] as never, a[1] as never);
    case "signMessageWithRecovery":
      return core.signMessageWithRecovery(a[0] as never, a[1] as never);
    case "refreshShares":
      return core.refreshShares(a[0] as never);
    case "replaceDevice":
      return core.replaceDevice(a[0] as never);
    // presign-web: presignature pools.
    case "refillPresignatures":
      return core.refillPresignatures(a[0] as never);
    case "presignPoolStatus":
      return core.presignPoolStatus(a[0] as string | undefined, a[1] as string | undefined);
    default:
      throw new InvalidInputError(`unknown method ${JSON.stringify(method)}`);
  }
}
