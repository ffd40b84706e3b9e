/** Options and results of the key lifecycle (`refreshShares`, `replaceDevice`). */

import type { AccountInfo, OnProgress } from "./types.js";

/** Options of {@link WalletClient.refreshShares}. */
export interface RefreshSharesOptions {
  /** The recovery agent's URL (default `WalletConfig.agentUrl`). */
  agentUrl?: string;
  /** Why (at most 200 characters): the cosigner's audit log. */
  reason?: string;
  /**
   * Progress: `agent` (with `requestId` and `confirmByMs` while the agent waits for its
   * user: show "confirm request <id> on your recovery agent"), `refresh` (per account),
   * `store` (the pending shares stored), `confirm` (until the cosigner committed).
   */
  onProgress?: OnProgress;
  /** Honoured until the new shares are stored as pending; from then on the flow completes. */
  signal?: AbortSignal;
  /** How long to wait for the agent's user and the whole session; default 10 minutes. */
  timeoutMs?: number;
}

/** Options of {@link replaceDevice}: a NEW browser profile takes the lost device's place. */
export interface ReplaceDeviceOptions {
  /** The recovery agent of the wallet and its pairing token. */
  agent: { url: string; pairingToken: string };
  /** The wallet to join (the agent knows it). */
  walletId: string;
  /** The cosigner's URL (gRPC-web). */
  cosignerUrl: string;
  /** Name of the wallet in this profile's storage (default `"default"`). */
  walletName?: string;
  /** Protect the new shares with this passphrase; without one: a WebCrypto key (as `createWallet`). */
  passphrase?: string;
  protection?: "passphrase" | "webcrypto";
  /** Why (at most 200 characters): the cosigner's audit log. */
  reason?: string;
  /** Gateway URL override, as `WalletConfig.gatewayUrl`. */
  gatewayUrl?: string;
  /** Tests only: the public prime fixture (no prime search) and cheap Argon2id. */
  insecureDevPrimes?: boolean;
  insecureFastKdf?: boolean;
  /** Parallel prime-search workers (as `createWallet`). */
  primeWorkers?: number;
  /** URL of `mpc_wasm_bg.wasm`. */
  wasmUrl?: string | URL;
  /**
   * Progress: `primes`, `agent` (with `requestId` while the agent's user confirms),
   * `aux-info`, `repair`, `refresh`, `store`, `confirm`.
   */
  onProgress?: OnProgress;
  /** Honoured until the new shares are stored as pending. */
  signal?: AbortSignal;
  /** How long to wait for the agent's user and the whole session; default 20 minutes. */
  timeoutMs?: number;
}

/** What a committed lifecycle session left. */
export interface LifecycleResult {
  walletId: string;
  walletName: string;
  lifecycleId: string;
  kind: "refresh" | "replace_device";
  /** The epoch now in effect. */
  epoch: number;
  committed: true;
  /** The accounts (public keys and addresses unchanged). */
  accounts: AccountInfo[];
  /** The agent's request. */
  requestId: string;
  /** Whether the agent reported its own half done (it confirmed before the commit). */
  agentDone: boolean;
  timings: { agentMs: number; sessionsMs: number; confirmMs: number; totalMs: number };
}
