/**
 * Messages between the page ({@link WalletClient}) and the protocol Worker.
 * Progress callbacks cannot cross `postMessage`: the client strips them and the worker
 * sends `progress` messages tagged with the call id instead.
 */

import type { SerializedError } from "./errors.js";
import type { ProgressEvent, WalletConfig } from "./types.js";

/** Methods of the core callable through the RPC layer. */
export type CoreMethod =
  // prepared primes (primes.ts)
  | "prepareDevice"
  | "preparedStatus"
  | "stopPrepare"
  | "discardPreparedPrimes"
  | "health"
  | "walletInfo"
  | "deleteWallet"
  | "listAccounts"
  | "getPublicKey"
  | "getAddress"
  | "bitcoinWatchOnly"
  | "signPsbt"
  | "createWallet"
  | "enrollDevice"
  | "enrollmentStatus"
  | "signPreimage"
  | "signMessage"
  | "signTransaction"
  // backup and restore
  | "exportBackup"
  | "importBackup"
  // lost or stolen device: the wallet's controls at the cosigner
  | "walletControl"
  | "recoveryControl"
  | "signMessageWithRecovery"
  // key lifecycle (lifecycle.ts)
  | "refreshShares"
  | "replaceDevice"
  // presign-web: presignature pools (served by the presign Worker in worker mode)
  | "refillPresignatures"
  | "presignPoolStatus";

/** Page → worker. */
export interface CallMessage {
  type: "call";
  id: number;
  config: WalletConfig;
  method: CoreMethod;
  args: unknown[];
  /** Index in `args` of the options object whose `onProgress` was stripped, if any. */
  progressArg?: number;
}

/** Worker → page. */
export type ReplyMessage =
  | { type: "ready" }
  | { type: "result"; id: number; value: unknown }
  | { type: "error"; id: number; error: SerializedError }
  | { type: "progress"; id: number; event: ProgressEvent };
