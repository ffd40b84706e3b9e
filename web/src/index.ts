/**
 * `@wallet-mpc/web`: the browser participant (device, party 0) of the wallet-mpc 2-of-3
 * threshold ECDSA wallet.
 *
 * ```ts
 * import { WalletClient } from "@wallet-mpc/web";
 * const wallet = await WalletClient.open({ cosignerUrl, agentUrl, agentToken });
 * if (!(await wallet.walletInfo())) await wallet.createWallet({ onProgress: console.log });
 * const address = await wallet.getAddress();
 * const sig = await wallet.signMessage("hello");
 * ```
 *
 * Ethereum: `signMessage` (EIP-191), `signTransaction` (types 0–4), `signTypedData`
 * (EIP-712), `signAuthorization` (EIP-7702). Adapters: `toViemAccount` from
 * `@wallet-mpc/web/viem`, `WalletMpcSigner` (ethers v6) from `@wallet-mpc/web/ethers`.
 *
 * The protocol runs in a dedicated Web Worker by default (the page never freezes); with
 * `mode: "inline"` (or automatically where `Worker` does not exist, e.g. extension
 * service workers) it runs in the calling thread.
 */

import { AbortedError, deserializeError, throwIfAborted, toWalletError, WalletError } from "./errors.js";
// Static imports only: an extension's service worker may load this module, and
// dynamic `import()` is forbidden there (the inline backend needs the core).
import { WalletCore } from "./core.js";
import { dispatch } from "./dispatch.js";
import { authorizationPreimage, signedAuthorization, typedDataPayload } from "./eth.js";
import type { TypedData, TypedDataDefinition } from "viem";
import type { CallMessage, CoreMethod, ReplyMessage } from "./rpc.js";
import type {
  AccountInfo,
  Address,
  AuthorizationRequest,
  CosignerHealth,
  CreateWalletOptions,
  DigestKind,
  OnProgress,
  PayloadKind,
  PresignPoolEvent,
  PresignPoolStatus,
  PublicKeyInfo,
  BitcoinNetwork,
  BitcoinWatchOnly,
  BitcoinWatchOnlyOptions,
  SignedPsbtResult,
  SignPsbtOptions,
  RefillOptions,
  SignableMessageInput,
  SignatureResult,
  SignedAuthorizationResult,
  SignedTransaction,
  SignOptions,
  SignPreimageOptions,
  StoredWalletInfo,
  WalletConfig,
  WalletInfo,
} from "./types.js";
import type { PrepareDeviceOptions, PreparedStatus } from "./types.js";
import type { EnrollDeviceOptions, EnrollmentInfo, EnrollmentStatus } from "./types.js";
import type { BackupFile, BackupImportResult, ExportBackupOptions, ImportBackupOptions } from "./types.js";
import type { LifecycleResult, RefreshSharesOptions, ReplaceDeviceOptions } from "./lifecycle-types.js";
import type { RecoveryControlAction, RecoveryControlOptions, RecoverySignOptions, WalletControlAction, WalletControls } from "./types.js";

export * from "./errors.js";
export * from "./types.js";

/** How to run the protocol core. */
export interface ClientOptions {
  /**
   * `worker`: a dedicated module Worker (default where `Worker` exists); `inline`: the
   * calling thread (extension service workers, tests); `auto`: worker when possible.
   */
  mode?: "auto" | "worker" | "inline";
  /** URL of the worker script (default: `./worker.js` next to this module). */
  workerUrl?: string | URL;
  /** URL of the presign Worker script (default: `./pool-worker.js` next to this module). */
  poolWorkerUrl?: string | URL;
}

interface Backend {
  call(method: CoreMethod, args: unknown[], onProgress?: OnProgress, progressArg?: number): Promise<unknown>;
  terminate(): void;
}

class WorkerBackend implements Backend {
  private readonly worker: Worker;
  private nextId = 1;
  private readonly pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: unknown) => void; onProgress?: OnProgress }>();
  private dead: WalletError | undefined;

  constructor(
    private readonly config: WalletConfig,
    workerUrl: string | URL | undefined,
    /** presign-web: an already started worker (the presign Worker). */
    worker?: Worker,
  ) {
    // The literal `new Worker(new URL("./worker.js", import.meta.url), ...)` form is the
    // one bundlers (webpack 5, Vite, Parcel) recognise and rewrite.
    this.worker = worker
      ? worker
      : workerUrl
      ? new Worker(workerUrl, { type: "module", name: "wallet-mpc" })
      : new Worker(new URL("./worker.js", import.meta.url), { type: "module", name: "wallet-mpc" });
    const url = String(workerUrl ?? "worker.js");
    this.worker.addEventListener("message", (e: MessageEvent<ReplyMessage>) => this.onMessage(e.data));
    this.worker.addEventListener("error", (e: ErrorEvent) => {
      this.fail(new WalletError("wasm", `the wallet worker failed to start or crashed: ${e.message || "unknown error"} (${String(url)})`));
    });
    this.worker.addEventListener("messageerror", () => {
      this.fail(new WalletError("internal", "a message from the wallet worker could not be decoded"));
    });
  }

  private fail(err: WalletError) {
    this.dead = err;
    for (const p of this.pending.values()) p.reject(err);
    this.pending.clear();
  }

  private onMessage(m: ReplyMessage) {
    if (!m || m.type === "ready") return;
    const p = this.pending.get(m.id);
    if (!p) return;
    if (m.type === "progress") {
      try {
        p.onProgress?.(m.event);
      } catch {
        // ignored
      }
      return;
    }
    this.pending.delete(m.id);
    if (m.type === "result") p.resolve(m.value);
    else p.reject(deserializeError(m.error));
  }

  call(method: CoreMethod, args: unknown[], onProgress?: OnProgress, progressArg?: number): Promise<unknown> {
    if (this.dead) return Promise.reject(this.dead);
    const id = this.nextId++;
    const msg: CallMessage = { type: "call", id, config: this.config, method, args };
    if (onProgress && progressArg !== undefined) msg.progressArg = progressArg;
    return new Promise((resolve, reject) => {
      const entry: { resolve: (v: unknown) => void; reject: (e: unknown) => void; onProgress?: OnProgress } = { resolve, reject };
      if (onProgress) entry.onProgress = onProgress;
      this.pending.set(id, entry);
      try {
        this.worker.postMessage(msg);
      } catch (e) {
        this.pending.delete(id);
        reject(toWalletError(e));
      }
    });
  }

  terminate() {
    this.worker.terminate();
    this.fail(new WalletError("aborted", "the wallet client was terminated"));
  }
}

class InlineBackend implements Backend {
  private core: WalletCore | undefined;

  constructor(private readonly config: WalletConfig) {}

  async call(method: CoreMethod, args: unknown[], onProgress?: OnProgress, progressArg?: number): Promise<unknown> {
    try {
      this.core ??= new WalletCore(this.config);
      return await dispatch(this.core, method, args, onProgress ? progressArg : undefined, onProgress);
    } catch (e) {
      throw toWalletError(e);
    }
  }

  terminate() {}
}

function stripProgress<T extends { onProgress?: OnProgress }>(opts: T | undefined): [Omit<T, "onProgress">, OnProgress | undefined] {
  if (!opts) return [{} as Omit<T, "onProgress">, undefined];
  const { onProgress, ...rest } = opts;
  return [rest, onProgress];
}

let abortChannels = 0;

/** A fresh `BroadcastChannel` name for one call's abort message. */
function abortChannelName(): string {
  const rnd = typeof crypto !== "undefined" && "randomUUID" in crypto ? crypto.randomUUID() : `${Date.now()}-${Math.random()}`;
  abortChannels += 1;
  return `wallet-mpc-abort:${rnd}:${abortChannels}`;
}

/** The wallet of this browser (one `walletName`), talking to its cosigner, gateway and recovery agent. */
export class WalletClient {
  private constructor(
    private readonly backend: Backend,
    /** `worker` or `inline`. */
    readonly mode: "worker" | "inline",
    /** presign-web: the presignature pools of this client. */
    private readonly presignPool: PresignPoolClient,
  ) {}

  /** Opens a client (starts the worker; nothing is sent over the network yet). */
  static async open(config: WalletConfig, options: ClientOptions = {}): Promise<WalletClient> {
    const cfg = { ...config };
    if (cfg.wasmUrl instanceof URL) cfg.wasmUrl = cfg.wasmUrl.href;
    if (cfg.primeWorkerUrl instanceof URL) cfg.primeWorkerUrl = cfg.primeWorkerUrl.href;
    const want = options.mode ?? "auto";
    const canWorker = typeof Worker !== "undefined";
    if (want === "worker" && !canWorker) {
      throw new WalletError("unsupported", "Web Workers are not available here; use mode: \"inline\"");
    }
    if (want !== "inline" && canWorker) {
      return WalletClient.withPresignPool(cfg, new WorkerBackend(cfg, options.workerUrl), "worker", options);
    }
    return WalletClient.withPresignPool(cfg, new InlineBackend(cfg), "inline", options);
  }

  /** presign-web: a client whose backend triggers background refills (worker mode). */
  private static withPresignPool(cfg: WalletConfig, backend: Backend, mode: "worker" | "inline", options: ClientOptions): WalletClient {
    const presign = new PresignPoolClient(cfg, backend, mode, options.poolWorkerUrl);
    return new WalletClient(new PresignHookBackend(backend, presign), mode, presign);
  }

  /** Stops the worker; pending calls fail with `aborted`. */
  terminate(): void {
    this.backend.terminate();
  }

  // --- Prepared safe primes (primes.ts) ---

  /**
   * Searches the device's 4 safe primes ahead of time (e.g. at extension install) in
   * parallel Web Workers and stores them encrypted in IndexedDB, so that `createWallet`
   * does not wait for them. Idempotent; resumes after a reload; a second call while one
   * runs joins it. Progress: phase `primes` with `event.primes` counters.
   */
  prepareDevice(options: PrepareDeviceOptions = {}): Promise<PreparedStatus> {
    const [rest, onProgress] = stripProgress(options);
    return this.backend.call("prepareDevice", [rest], onProgress, 0) as Promise<PreparedStatus>;
  }

  /** `none`, `in_progress` (with counts) or `ready`. */
  preparedStatus(): Promise<PreparedStatus> {
    return this.backend.call("preparedStatus", []) as Promise<PreparedStatus>;
  }

  /** Stops a running preparation (its progress stays stored); resolves whether one ran. */
  stopPrepare(): Promise<boolean> {
    return this.backend.call("stopPrepare", []) as Promise<boolean>;
  }

  /** Stops and deletes the prepared primes / search state of this wallet name. */
  discardPreparedPrimes(): Promise<void> {
    return this.backend.call("discardPreparedPrimes", []) as Promise<void>;
  }

  /** Cosigner health (checks that the cosigner is reachable). */
  health(): Promise<CosignerHealth> {
    return this.backend.call("health", []) as Promise<CosignerHealth>;
  }

  /** The stored wallet (no secrets), or `null` when this browser has none. */
  walletInfo(): Promise<StoredWalletInfo | null> {
    return this.backend.call("walletInfo", []) as Promise<StoredWalletInfo | null>;
  }

  /** Deletes the stored wallet (the device share is gone for good). */
  deleteWallet(): Promise<void> {
    return this.backend.call("deleteWallet", []) as Promise<void>;
  }

  /**
   * An encrypted backup of this browser's device share under its own `passphrase`
   * (not the wallet's): the native client's backup file, so `client backup import
   * FILE` restores it on another device, and {@link importBackup} in another browser.
   * Argon2id runs in the protocol Worker (about a second; the page never blocks).
   * `blob` and `filename` are ready for a download. Errors: `no_wallet`,
   * `invalid_input` (missing or weak passphrase), `wrong_passphrase` (the wallet's own).
   */
  async exportBackup(options: ExportBackupOptions): Promise<BackupFile> {
    const [rest, onProgress] = stripProgress(options);
    const file = (await this.backend.call("exportBackup", [rest], onProgress, 0)) as BackupFile;
    if (typeof Blob !== "undefined") file.blob = new Blob([file.bytes as Uint8Array<ArrayBuffer>], { type: file.mimeType });
    return file;
  }

  /**
   * The wallet's controls at the cosigner, for a lost or stolen device, signed by this
   * device: `"status"` reads them; `"freeze"` stops all signing at once (until the
   * recovery party asks to unfreeze and the cosigner's delay passed); `"revokeDevice"`
   * retires this device for good (every later request fails with `unauthorized`,
   * `details.walletRefusal === "identity_revoked"`). `"unfreeze"` needs the recovery
   * party (`client --recovery wallet unfreeze`) and fails here with `config`.
   * `reason` (at most 200 characters) goes to the cosigner's audit log.
   */
  walletControl(action: WalletControlAction, reason?: string): Promise<WalletControls> {
    return this.backend.call("walletControl", [action, reason]) as Promise<WalletControls>;
  }

  /**
   * Asks the recovery agent to send a wallet control to the cosigner with the RECOVERY
   * identity: `"unfreeze"` (which the device cannot sign), `"revokeDevice"` (e.g. from a
   * new browser after the old one was lost) or `"freeze"`. The agent runs it only after
   * the user confirms it on the agent's machine (`recovery-agent confirm <id>`): the
   * pairing token alone never uses the recovery share. Resolves with the wallet's
   * controls after it ran (an unfreeze shows `unfreezeAtMs`, effective after the
   * cosigner's delay). Fails with `agent_failed` and `details.requestState`
   * `"rejected"` / `"expired"` (nothing was sent), or `"failed"` with the cosigner's
   * error code in `details.agentCode`; `timeout` after `timeoutMs`.
   */
  requestRecoveryControl(action: RecoveryControlAction, options: RecoveryControlOptions = {}): Promise<WalletControls> {
    return this.callAbortable<WalletControls>("recoveryControl", [action, options], 1, options, "the recovery agent's request");
  }

  /**
   * Signs an EIP-191 personal message with this device and the RECOVERY AGENT, without
   * the cosigner or its gateway (the operator may be gone): the agent asks its user to
   * confirm (`recovery-agent confirm <id>`; progress `agent` carries `requestId`), then
   * opens a room on its own relay and both sign (signers `[0, 2]`), each verifying the
   * result. Same result as {@link signMessage}. Fails with `agent_failed` and
   * `details.requestState` when the agent's user rejects it or lets it expire.
   */
  signMessageWithRecovery(message: SignableMessageInput, options: RecoverySignOptions = {}): Promise<SignatureResult> {
    return this.callAbortable<SignatureResult>("signMessageWithRecovery", [message, options], 1, options, "signing with the recovery agent");
  }

  /**
   * Refreshes every share of this wallet (a proactive refresh, `docs/lifecycle.md`):
   * the recovery agent starts it once its user confirmed (`recovery-agent confirm <id>`;
   * progress `agent` carries `requestId`), then this device, the cosigner and the agent
   * each compute new shares of the same keys: every address stays, shares leaked
   * before no longer combine with the new ones. The new shares are stored as PENDING
   * (encrypted like the current one) before this device confirms them, and replace the
   * current share only once the cosigner committed (the old epoch's presignatures are
   * dropped). Fails with `agent_failed` (`details.requestState`, `details.agentCode`)
   * when the agent's user rejects it or the cosigner refuses; `busy` while an earlier
   * session is still pending. See the README's "Key lifecycle".
   */
  refreshShares(options: RefreshSharesOptions = {}): Promise<LifecycleResult> {
    return this.callAbortable<LifecycleResult>("refreshShares", [options], 0, options, "refreshing the key shares");
  }

  /** Internal: this client's `walletName` becomes the new device (see {@link replaceDevice}). */
  replaceDeviceHere(options: { walletId: string; reason?: string; primeWorkers?: number; onProgress?: OnProgress; signal?: AbortSignal; timeoutMs?: number }): Promise<LifecycleResult> {
    return this.callAbortable<LifecycleResult>("replaceDevice", [options], 0, options, "replacing the device");
  }

  /**
   * Restores a backup (from {@link exportBackup} or `client backup export`) into this
   * client's `walletName`, protected like a new wallet (`WalletConfig.passphrase` /
   * `protection`). The share signs as before: same wallet, keys and addresses. Nothing
   * is stored on any error; errors carry `details.reason` ({@link BackupErrorReason}):
   * `wrong_passphrase`, `storage` (`not_a_backup`), `wallet_exists` (`other_wallet`,
   * `different_share`). Importing the identical share again resolves with
   * `alreadyPresent: true`.
   */
  importBackup(backup: Uint8Array | ArrayBuffer, options: ImportBackupOptions): Promise<BackupImportResult> {
    const bytes = backup instanceof ArrayBuffer ? new Uint8Array(backup) : backup;
    return this.backend.call("importBackup", [bytes, options && { passphrase: options.passphrase }], options?.onProgress, 1) as Promise<BackupImportResult>;
  }

  /**
   * Runs `method` with `options` (an options object at `optionsArg`): strips the progress
   * listener (sent as progress messages) and the `signal`. In worker mode the signal
   * reaches the core as a `BroadcastChannel` name (an `AbortSignal` cannot cross
   * `postMessage`); either way an abort rejects the returned promise at once.
   */
  private async callAbortable<T>(
    method: CoreMethod,
    args: unknown[],
    optionsArg: number,
    options: { onProgress?: OnProgress; signal?: AbortSignal } | undefined,
    what: string,
  ): Promise<T> {
    const { signal, ...withProgress } = options ?? {};
    const [rest, onProgress] = stripProgress(withProgress);
    throwIfAborted(signal, what);
    const opts: Record<string, unknown> = { ...rest };
    let channel: BroadcastChannel | undefined;
    if (signal) {
      if (this.mode === "inline") opts.signal = signal;
      else if (typeof BroadcastChannel !== "undefined") {
        const name = abortChannelName();
        opts.abortChannel = name;
        channel = new BroadcastChannel(name);
      }
    }
    const a = [...args];
    a[optionsArg] = opts;
    const call = this.backend.call(method, a, onProgress, optionsArg) as Promise<T>;
    if (!signal) return call;
    let onAbort: (() => void) | undefined;
    const aborted = new Promise<never>((_, reject) => {
      onAbort = () => {
        channel?.postMessage("abort");
        reject(AbortedError.fromSignal(signal, what));
      };
      signal.addEventListener("abort", onAbort, { once: true });
    });
    call.catch(() => undefined);
    aborted.catch(() => undefined);
    try {
      return await Promise.race([call, aborted]);
    } finally {
      if (onAbort) signal.removeEventListener("abort", onAbort);
      channel?.close();
    }
  }

  /**
   * Creates a wallet with the cosigner and the recovery agent (aux info + DKG), stores
   * the share. With a usable stored enrollment ({@link enrollDevice}) only the DKGs run
   * (unless `options.enrollment === false`); the enrollment record is deleted with the
   * share's storing. `options.signal` cancels it until the share is stored (see
   * {@link CreateWalletOptions.signal}).
   */
  createWallet(options: CreateWalletOptions = {}): Promise<WalletInfo> {
    return this.callAbortable<WalletInfo>("createWallet", [], 0, options, "creating the wallet");
  }

  /**
   * Enrolls this device ahead of wallet creation: runs the aux info (the minutes of
   * Paillier work) with the cosigner and the recovery agent (its `/v1/enrollments`
   * job), using the prepared primes ({@link prepareDevice}) when complete, and stores
   * the enrollment encrypted in IndexedDB under the wallet name (same protection as a
   * wallet: WebCrypto key or passphrase). A later {@link createWallet} then runs only
   * the key generations (seconds).
   *
   * Resumable and idempotent: a usable (unexpired) stored enrollment is returned at
   * once (`reused: true`); an interrupted enrollment (reload, abort) stores nothing and
   * the next call starts a new one, reusing the prepared primes. Fails with
   * `wallet_exists` when this wallet name already holds a wallet. Progress phases:
   * `connect`, `primes`, `aux-info`, `agent`, `store`.
   */
  enrollDevice(options: EnrollDeviceOptions = {}): Promise<EnrollmentInfo> {
    return this.callAbortable<EnrollmentInfo>("enrollDevice", [], 0, options, "enrolling the device");
  }

  /** Whether a usable device enrollment is stored (`ready`, with its id and expiry) or not (`none`). */
  enrollmentStatus(): Promise<EnrollmentStatus> {
    return this.backend.call("enrollmentStatus", []) as Promise<EnrollmentStatus>;
  }

  /** Accounts of the stored wallet. */
  listAccounts(): Promise<AccountInfo[]> {
    return this.backend.call("listAccounts", []) as Promise<AccountInfo[]>;
  }

  /**
   * Public key and addresses of an account (default: the first) at a path (default:
   * root); the Bitcoin address on `bitcoinNetwork` (default: the config's, else mainnet).
   */
  getPublicKey(accountId?: string, derivationPath?: string, bitcoinNetwork?: BitcoinNetwork): Promise<PublicKeyInfo> {
    return this.backend.call("getPublicKey", [accountId, derivationPath, bitcoinNetwork]) as Promise<PublicKeyInfo>;
  }

  /**
   * The watch-only export of an HD account for Bitcoin Core or Sparrow: the xpub at the
   * account path (default `m/84/0/0`, `m/84/1/0` on the test networks) and the receive
   * and change descriptors `wpkh([fingerprint/path]xpub/0/*)#checksum`. Local only.
   */
  bitcoinWatchOnly(options: BitcoinWatchOnlyOptions = {}): Promise<BitcoinWatchOnly> {
    return this.backend.call("bitcoinWatchOnly", [options]) as Promise<BitcoinWatchOnly>;
  }

  /**
   * Signs a PSBT (BIP-174 v0 or BIP-370 v2, base64 text or binary) of an HD account with
   * device + cosigner and finalizes it: `psbtBase64` is the finalized PSBT
   * (bitcoinjs-lib's `Psbt.fromBase64` reads it), `txHex` the transaction to broadcast.
   * Every input must be the account's P2WPKH with its witness UTXO and `bip32_derivation`
   * (what Bitcoin Core, Sparrow or bitcoinjs-lib write for a watch-only wallet made from
   * {@link WalletClient.bitcoinWatchOnly}); anything else is refused with an
   * {@link InvalidInputError} (`details.reason`: `not_our_input`, `missing_utxo`,
   * `unsupported_script`, …) before any request. Inputs sign from their path's
   * presignature pool where `presign` allows. Nothing is returned signed partially.
   */
  signPsbt(psbt: Uint8Array | string, options: SignPsbtOptions = {}): Promise<SignedPsbtResult> {
    return this.callAbortable<SignedPsbtResult>("signPsbt", [psbt], 1, options, "signing the PSBT");
  }

  /** EIP-55 Ethereum address of an account at a path. */
  getAddress(accountId?: string, derivationPath?: string): Promise<Address> {
    return this.backend.call("getAddress", [accountId, derivationPath]) as Promise<Address>;
  }

  /**
   * Signs an EIP-191 personal message (`personal_sign`; `rsv` is the 65-byte signature,
   * `v` 27/28). A string is ALWAYS signed as its UTF-8 text — `"0x1234"` signs those six
   * characters; bytes are a `Uint8Array` or `{ raw: Uint8Array | 0x-hex }` (viem's
   * `SignableMessage`).
   */
  signMessage(message: SignableMessageInput, options: SignOptions = {}): Promise<SignatureResult> {
    return this.callAbortable<SignatureResult>("signMessage", [message], 1, options, "signing the message");
  }

  /**
   * Signs an unsigned Ethereum transaction's signing payload (bytes or 0x-hex): legacy
   * (with or without EIP-155 chain id), EIP-2930, EIP-1559, EIP-4844 (the envelope,
   * without sidecars) or EIP-7702 (type 4, with its `authorizationList`), as viem's
   * `serializeTransaction` produces it. Returns the signed transaction and its hash.
   */
  signTransaction(unsignedTx: Uint8Array | string, options: SignOptions = {}): Promise<SignedTransaction> {
    return this.callAbortable<SignedTransaction>("signTransaction", [unsignedTx], 1, options, "signing the transaction");
  }

  /**
   * Signs EIP-712 typed data (`eth_signTypedData_v4`), given as viem's
   * `TypedDataDefinition` (`types`, `primaryType`, `domain`, `message`). The preimage
   * `0x1901 || domainSeparator || hashStruct(message)` is computed here with viem and
   * validated (addresses, integer ranges, byte sizes) before anything is sent; the
   * cosigner receives the typed data itself, applies its typed-data policy and computes
   * its own digest, which must agree. `rsv` is the 65-byte signature.
   */
  signTypedData<const T extends TypedData | Record<string, unknown>, P extends keyof T | "EIP712Domain">(
    typedData: TypedDataDefinition<T, P>,
    options: SignOptions = {},
  ): Promise<SignatureResult> {
    let p: ReturnType<typeof typedDataPayload>;
    try {
      p = typedDataPayload(typedData as TypedDataDefinition);
    } catch (e) {
      return Promise.reject(toWalletError(e));
    }
    return this.signPreimage(p.preimage, "keccak256", "ethereum_typed_data", { ...options, cosignerPayload: p.json });
  }

  /**
   * Signs an EIP-7702 authorization `{ address | contractAddress, chainId, nonce }`
   * (`0x05 || rlp([chain_id, address, nonce])`, keccak-256). The result is viem's
   * `SignedAuthorization` (put it in a type-4 transaction's `authorizationList`) with the
   * signature's facts. `nonce` is the account's nonce when the authorization is applied:
   * its current nonce + 1 when the same account sends the transaction carrying it.
   */
  async signAuthorization(request: AuthorizationRequest, options: SignOptions = {}): Promise<SignedAuthorizationResult> {
    let a: ReturnType<typeof authorizationPreimage>;
    try {
      a = authorizationPreimage(request);
    } catch (e) {
      throw toWalletError(e);
    }
    const sig = await this.signPreimage(a.preimage, "keccak256", "ethereum_authorization", options);
    return { ...sig, ...signedAuthorization(a.authorization, sig) };
  }

  /**
   * Signs an arbitrary preimage with the given digest (e.g. a Bitcoin sighash preimage);
   * `payloadKind` tells the cosigner's policy what it is. Prefer the typed methods for
   * Ethereum payloads.
   */
  signPreimage(preimage: Uint8Array, digest: DigestKind, payloadKind: PayloadKind = "raw", options: SignPreimageOptions = {}): Promise<SignatureResult> {
    return this.callAbortable<SignatureResult>("signPreimage", [preimage, digest, payloadKind], 3, options, "signing");
  }

  // presign-web: presignature pools.

  /**
   * Fills the presignature pool of an account at a path (an independent account: its
   * root; an HD account: `options.derivationPath`, default `m/44/60/0/0/0`) (default
   * account: the first) up to
   * `target` (default `presignPool.target`), in the separate presign Worker (worker
   * mode) or in the calling thread (inline mode). Resolves to the settled status.
   */
  refillPresignatures(options: RefillOptions = {}): Promise<PresignPoolStatus> {
    return this.presignPool.refill(options);
  }

  /** This device's and the cosigner's presignatures of one pool (an account at a path, see {@link refillPresignatures}), and whether a refill runs. */
  presignPoolStatus(accountId?: string, derivationPath?: string): Promise<PresignPoolStatus> {
    return this.presignPool.status(accountId, derivationPath);
  }

  /** Listens to refills (background and explicit): progress, settled status, errors. Returns an unsubscribe function. */
  onPresignPool(listener: (event: PresignPoolEvent) => void): () => void {
    return this.presignPool.on(listener);
  }
}

// ---------------------------------------------------------------------------------
// presign-web: presignature pools

/** Methods whose result may call for a background refill. */
const REFILL_AFTER: ReadonlySet<CoreMethod> = new Set<CoreMethod>(["createWallet", "signMessage", "signTransaction", "signPreimage"]);

/**
 * The pools of one client: refills and status go to the separate presign Worker
 * (`pool-worker.ts`) in worker mode, so that the seconds of wasm CPU of each presignature never
 * block the protocol Worker that signs; in inline mode they run in the calling thread,
 * only when asked for.
 */
class PresignPoolClient {
  private worker: Backend | undefined;
  private readonly listeners = new Set<(e: PresignPoolEvent) => void>();
  private readonly background = new Map<string, { again: boolean }>();

  constructor(
    private readonly config: WalletConfig,
    private readonly main: Backend,
    private readonly mode: "worker" | "inline",
    private readonly workerUrl: string | URL | undefined,
  ) {}

  private backend(): Backend {
    if (this.mode === "inline") return this.main;
    if (!this.worker) {
      const w = this.workerUrl
        ? new Worker(this.workerUrl, { type: "module", name: "wallet-mpc-presign" })
        : new Worker(new URL("./pool-worker.js", import.meta.url), { type: "module", name: "wallet-mpc-presign" });
      this.worker = new WorkerBackend(this.config, this.workerUrl ?? "pool-worker.js", w);
    }
    return this.worker;
  }

  /** Background refills: worker mode, `presignPool.auto` not false, target > 0. */
  get auto(): boolean {
    const p = this.config.presignPool;
    return this.mode === "worker" && p?.auto !== false && (p?.target ?? 2) > 0;
  }

  private emit(e: PresignPoolEvent): void {
    for (const l of this.listeners) {
      try {
        l(e);
      } catch {
        // a listener's exception is ignored
      }
    }
  }

  on(listener: (e: PresignPoolEvent) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  async refill(options: RefillOptions): Promise<PresignPoolStatus> {
    const [rest, onProgress] = stripProgress(options);
    const progress: OnProgress = (event) => {
      this.emit({ type: "progress", accountId: event.accountId ?? rest.accountId ?? "", event });
      onProgress?.(event);
    };
    const status = (await this.backend().call("refillPresignatures", [rest], progress, 0)) as PresignPoolStatus;
    this.emit({ type: "status", accountId: status.accountId, status });
    return status;
  }

  status(accountId?: string, derivationPath?: string): Promise<PresignPoolStatus> {
    return this.backend().call("presignPoolStatus", [accountId, derivationPath]) as Promise<PresignPoolStatus>;
  }

  /** Starts (or queues one more) background refill of one pool: an account at a path (`""`: the root). */
  kick(accountId: string, derivationPath = ""): void {
    if (!this.auto) return;
    const key = `${accountId}@${derivationPath}`;
    const running = this.background.get(key);
    if (running) {
      running.again = true;
      return;
    }
    const state = { again: false };
    this.background.set(key, state);
    const opts: RefillOptions = derivationPath === "" ? { accountId } : { accountId, derivationPath };
    void (async () => {
      try {
        do {
          state.again = false;
          await this.refill(opts);
        } while (state.again);
      } catch (e) {
        const err = toWalletError(e);
        this.emit({ type: "error", accountId, ...(derivationPath === "" ? {} : { derivationPath }), error: { code: err.code, message: err.message } });
      } finally {
        this.background.delete(key);
      }
    })();
  }

  /** After a call: refill the pool it concerned, when eligible. */
  after(method: CoreMethod, value: unknown): void {
    if (!this.auto || !REFILL_AFTER.has(method) || !value || typeof value !== "object") return;
    if (method === "createWallet") {
      // The first account's pool: an independent account's root, an HD account's first address.
      const first = (value as WalletInfo).accounts?.[0];
      if (first?.kind === "independent") this.kick(first.accountId);
      else if (first) this.kick(first.accountId, "m/44/60/0/0/0");
      return;
    }
    const sig = value as SignatureResult;
    // Eligible (an independent account at the root, an HD account at a path) and
    // presign not "off": the pool of the path signed at.
    if (sig.presign) this.kick(sig.accountId, sig.derivationPath ?? "");
  }

  terminate(): void {
    this.worker?.terminate();
    this.worker = undefined;
  }
}

/** Passes calls through and lets the pool react to their results. */
class PresignHookBackend implements Backend {
  constructor(
    private readonly inner: Backend,
    private readonly presign: PresignPoolClient,
  ) {}

  call(method: CoreMethod, args: unknown[], onProgress?: OnProgress, progressArg?: number): Promise<unknown> {
    const p = this.inner.call(method, args, onProgress, progressArg);
    if (REFILL_AFTER.has(method)) {
      p.then(
        (v) => this.presign.after(method, v),
        () => undefined,
      );
    }
    return p;
  }

  terminate(): void {
    this.inner.terminate();
    this.presign.terminate();
  }
}

/**
 * Makes THIS browser profile the wallet's device in place of a lost one, every address
 * unchanged (`docs/lifecycle.md`): generates a new identity inside wasm, asks the
 * recovery agent (its user confirms: `recovery-agent confirm <id>`, progress `agent`
 * with `requestId`) to send ReplaceDevice with this identity's proof of possession,
 * then receives a fresh share (new aux info, repair, refresh with the cosigner and the
 * agent). The old device's identity is revoked at once. The new share is stored as
 * PENDING under `walletName` before confirming and becomes the wallet once the
 * cosigner committed; a crash in between is settled on the next open. Resolves with
 * the accounts (same public keys and addresses) and an open {@link WalletClient}.
 */
export async function replaceDevice(options: ReplaceDeviceOptions, clientOptions?: ClientOptions): Promise<{ result: LifecycleResult; wallet: WalletClient }> {
  if (!options || typeof options !== "object") throw new WalletError("invalid_input", "replaceDevice needs its options");
  const config: WalletConfig = {
    cosignerUrl: options.cosignerUrl,
    agentUrl: options.agent?.url,
    agentToken: options.agent?.pairingToken,
    walletName: options.walletName ?? "default",
  };
  if (options.passphrase !== undefined) config.passphrase = options.passphrase;
  if (options.protection !== undefined) config.protection = options.protection;
  if (options.gatewayUrl !== undefined) config.gatewayUrl = options.gatewayUrl;
  if (options.insecureDevPrimes !== undefined) config.insecureDevPrimes = options.insecureDevPrimes;
  if (options.insecureFastKdf !== undefined) config.insecureFastKdf = options.insecureFastKdf;
  if (options.wasmUrl !== undefined) config.wasmUrl = options.wasmUrl;
  const wallet = await WalletClient.open(config, clientOptions);
  try {
    const o: Parameters<WalletClient["replaceDeviceHere"]>[0] = { walletId: options.walletId };
    if (options.reason !== undefined) o.reason = options.reason;
    if (options.primeWorkers !== undefined) o.primeWorkers = options.primeWorkers;
    if (options.onProgress !== undefined) o.onProgress = options.onProgress;
    if (options.signal !== undefined) o.signal = options.signal;
    if (options.timeoutMs !== undefined) o.timeoutMs = options.timeoutMs;
    const result = await wallet.replaceDeviceHere(o);
    return { result, wallet };
  } catch (e) {
    wallet.terminate();
    throw e;
  }
}

/** Shorthand for {@link WalletClient.open}. */
export function openWallet(config: WalletConfig, options?: ClientOptions): Promise<WalletClient> {
  return WalletClient.open(config, options);
}
