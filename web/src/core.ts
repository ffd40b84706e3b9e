/**
 * The protocol core: wallet creation and signing for the device (party 0). Runs in a
 * dedicated Web Worker (see `worker.ts`) or directly in the calling thread (extension
 * service workers, environments without `Worker`): it needs only `fetch`, IndexedDB,
 * WebCrypto and (optionally) `EventSource` — no SharedArrayBuffer, no nested workers.
 * (Exception: the safe-prime search of `primes.ts` starts prime Workers — nested when the
 * core runs in the protocol Worker — wherever `Worker` exists, and runs inline otherwise.)
 */

import { AgentClient, type AgentRoom } from "./agent.js";
import { answerError, CosignerTransport, normalizeUrl, type CosignerAnswer } from "./cosigner.js";
import { AbortedError, AgentError, ConfigError, EnrollmentError, InvalidInputError, PresignatureError, StorageError, throwIfAborted, WalletError } from "./errors.js";
import {
  authorizationPreimage,
  keccakHex,
  messagePreimage,
  parseUnsignedTx,
  serializeSignedTx,
  signedAuthorization,
  toHex,
  txV,
  typedDataPayload,
} from "./eth.js";
import type { TypedData, TypedDataDefinition } from "viem";
import * as storage from "./storage.js";
import type {
  AccountInfo,
  Address,
  AuthorizationRequest,
  CosignerHealth,
  CreateWalletOptions,
  DigestKind,
  OnProgress,
  PayloadKind,
  Phase,
  ProgressEvent,
  PublicKeyInfo,
  SignableMessageInput,
  SignatureResult,
  SignedAuthorizationResult,
  SignedTransaction,
  SignOptions,
  SignPreimageOptions,
  StoredWalletInfo,
  WalletConfig,
  WalletControlAction,
  RecoveryControlAction,
  RecoveryControlOptions,
  RecoverySignOptions,
  WalletControls,
  WalletInfo,
} from "./types.js";
import type { BackupFile, BackupImportResult, ExportBackupOptions, ImportBackupOptions } from "./types.js";
import { flowError, loadWasm, wasmError, type Mpc } from "./wasm.js";
import * as primeStore from "./prime-store.js";
import { defaultWorkers, isPreparing, prepareOnce, PRIMES_NEEDED, stopPreparation, type CoordinatorConfig, type PrimeProgress } from "./primes.js";
import type { PrepareDeviceOptions, PreparedStatus } from "./types.js";
import type { EnrollDeviceOptions, EnrollmentInfo, EnrollmentStatus, EnrollTimings } from "./types.js";
import * as pool from "./pool.js";
import { refreshShares, settlePending, type LifecycleCtx } from "./lifecycle.js";
import { replaceDevice } from "./lifecycle-replace.js";
import type { LifecycleResult, RefreshSharesOptions } from "./lifecycle-types.js";
import { withWebLock } from "./locks.js";
import type { PresignMode, PresignPoolStatus, RefillOptions } from "./types.js";
import type { BitcoinNetwork, BitcoinWatchOnly, BitcoinWatchOnlyOptions, SignedPsbtInput, SignedPsbtResult, SignPsbtOptions } from "./types.js";

const BITCOIN_NETWORKS: readonly BitcoinNetwork[] = ["mainnet", "testnet", "signet", "regtest"];

/** One input of a PSBT as the wasm core plans it (`crates/mpc-wasm/src/bitcoin.rs`). */
interface PlannedInput {
  index: number;
  path: string;
  publicKey: string;
  amountSats: number;
  preimage: Uint8Array;
  sighash: string;
}

/** A PSBT as the wasm core plans it: checked whole before anything is signed. */
interface PsbtPlan {
  psbt: Uint8Array;
  psbtVersion: number;
  network: BitcoinNetwork;
  txid: string;
  inputs: PlannedInput[];
  feeSats: number;
}

/** Which PSBT input a `bitcoin_psbt_input` signing signs (internal to signPsbt). */
interface PsbtInputSigning {
  bitcoin?: { inputIndex: number; network: BitcoinNetwork };
}

const DEVICE = 0;

type WalletParty = Mpc["WalletParty"]["prototype"];

/** A progress event of a wasm flow (`crates/mpc-wasm/src/flows.rs`). */
interface FlowProgress {
  phase: Phase;
  round: number;
  totalRounds: number;
  percent: number;
  finished: boolean;
  accountId?: string;
}

/** The package's form of a wasm flow's signature. */
function signatureResult(sig: FlowSignature, elapsedMs: number): SignatureResult {
  const yParity = sig.yParity === 1 ? 1 : 0;
  return {
    accountId: sig.accountId,
    derivationPath: sig.derivationPath || "m",
    r: `0x${sig.r}`,
    s: `0x${sig.s}`,
    yParity,
    v: 27 + yParity,
    rsv: `0x${sig.rsv}`,
    der: sig.der,
    digest: `0x${sig.digest}`,
    publicKey: sig.publicKey,
    ethereumAddress: sig.ethereumAddress as Address,
    signers: sig.signers,
    requestId: sig.requestId,
    elapsedMs,
    presigned: sig.presigned,
  };
}

/** A signature of the wasm signing flow. */
interface FlowSignature {
  accountId: string;
  derivationPath: string;
  r: string;
  s: string;
  yParity: number;
  rsv: string;
  der: string;
  digest: string;
  publicKey: string;
  ethereumAddress: string;
  signers: number[];
  requestId: string;
  presigned: boolean;
  elapsedMs: number;
  fastPath: {
    tried: boolean;
    empty: boolean;
    used?: string;
    discarded: [string, "corrupt" | "unknown" | "used"][];
    timings?: { takeMs: number; rpcMs: number; computeMs: number; totalMs: number };
  };
}

/** A pool status of the wasm refill flow. */
interface FlowPool {
  accountId: string;
  /** The pool's path (`m`: the root). */
  path?: string;
  signers: number[];
  local: number;
  cosigner: number | null;
  usable: number | null;
  cosignerRunning: number;
  cosignerCap: number;
  generated: number;
  failed: number;
  discarded: number;
  elapsedMs: number;
}

/** Progress reporting of one operation: phase weights → overall percent. */
class Reporter {
  private readonly started = Date.now();
  private readonly spans: Map<Phase, [number, number]>;

  constructor(
    private readonly cb: OnProgress | undefined,
    weights: [Phase, number][],
  ) {
    const total = weights.reduce((a, [, w]) => a + w, 0);
    let at = 0;
    this.spans = new Map();
    for (const [p, w] of weights) {
      this.spans.set(p, [(at / total) * 100, (w / total) * 100]);
      at += w;
    }
  }

  get elapsedMs(): number {
    return Date.now() - this.started;
  }

  emit(
    phase: Phase,
    percent: number,
    message: string,
    extra: { round?: number; totalRounds?: number; accountId?: string; finished?: boolean; requestId?: string; confirmByMs?: number } = {},
  ): void {
    if (!this.cb) return;
    const pct = Math.max(0, Math.min(100, percent));
    const [start, width] = this.spans.get(phase) ?? [0, 0];
    const ev: ProgressEvent = {
      phase,
      round: extra.round ?? 0,
      totalRounds: extra.totalRounds ?? 0,
      percent: Math.round(pct * 10) / 10,
      overallPercent: Math.round((start + (width * pct) / 100) * 10) / 10,
      finished: extra.finished ?? pct >= 100,
      message,
      elapsedMs: this.elapsedMs,
    };
    if (extra.accountId !== undefined) ev.accountId = extra.accountId;
    if (extra.requestId !== undefined) ev.requestId = extra.requestId;
    if (extra.confirmByMs !== undefined) ev.confirmByMs = extra.confirmByMs;
    try {
      this.cb(ev);
    } catch {
      // a listener's exception never breaks the protocol
    }
  }
}

// What the wasm flows of enrollment and creation share on the platform side.

/** `userProgress` with the last prime search counters on "primes" events (`event.primes`). */
function withPrimeCounters(userProgress: OnProgress | undefined): { onProgress: OnProgress | undefined; onPrimes: (p: PrimeProgress) => void } {
  let lastPrimes: PrimeProgress | undefined;
  const onProgress: OnProgress | undefined =
    userProgress && ((ev) => userProgress(ev.phase === "primes" && lastPrimes ? { ...ev, primes: lastPrimes } : ev));
  return { onProgress, onPrimes: (p) => (lastPrimes = p) };
}

/** A flow's abort, honoured until its result is stored (then the flow completes). */
class AbortGate {
  private stored = false;

  constructor(
    private readonly signal: AbortSignal | undefined,
    private readonly what: string,
  ) {}

  check(): void {
    if (!this.stored) throwIfAborted(this.signal, this.what);
  }

  /** The last point of no return: when aborted, wipes `secret` and throws; else stored. */
  commit(secret: Uint8Array | undefined): void {
    try {
      this.check();
    } catch (e) {
      secret?.fill(0);
      throw e;
    }
    this.stored = true;
  }
}

/** A recovery agent job polled in the background: its progress, its failure, its stop. */
class AgentJob {
  private done: Promise<Record<string, string>> | undefined;
  private progress = "";
  /** The agent's own failure: it explains a failed session best (its peer is gone). */
  error: unknown;
  /** Stops the polling: set when the flow ends. */
  readonly abort = { aborted: false };

  start(agent: AgentClient, jobId: string, timeoutMs: number, extra: { publicKeys?: boolean } = {}): void {
    this.done = agent.waitJob(jobId, {
      timeoutMs,
      intervalMs: 1000,
      signal: this.abort,
      ...extra,
      onProgress: (p) => {
        this.progress = `${p.stage} ${p.percent}%`;
      },
    });
    this.done.catch((e: unknown) => {
      this.error = e;
    });
  }

  /** The job's end (with "agent" progress each second), or the abort of `signal`. */
  async wait(rep: Reporter, signal: AbortSignal | undefined, what: string): Promise<Record<string, string>> {
    const poll = setInterval(() => rep.emit("agent", 50, `waiting for the recovery agent (${this.progress})`), 1000);
    let onAbort: (() => void) | undefined;
    try {
      if (!signal) return await this.done!;
      const aborted = new Promise<never>((_, reject) => {
        onAbort = () => reject(AbortedError.fromSignal(signal, what));
        signal.addEventListener("abort", onAbort, { once: true });
      });
      return await Promise.race([this.done!, aborted]);
    } finally {
      clearInterval(poll);
      if (onAbort) signal?.removeEventListener("abort", onAbort);
    }
  }
}

/** The progress of the phases enrollment and creation share (connect, aux info, agent, store). */
function emitSharedPhase(rep: Reporter, ev: FlowProgress, labels: { agentDone: string; stored: string; storing: string }): void {
  if (ev.phase === "aux-info") {
    rep.emit("aux-info", ev.percent, `aux info round ${ev.round}/${ev.totalRounds}`, { round: ev.round, totalRounds: ev.totalRounds, finished: ev.finished });
  } else if (ev.phase === "agent") {
    rep.emit("agent", ev.percent, ev.finished ? labels.agentDone : "waiting for the recovery agent");
  } else if (ev.phase === "store") {
    rep.emit("store", ev.percent, ev.finished ? labels.stored : labels.storing);
  } else if (ev.phase === "connect") {
    rep.emit("connect", ev.percent, ev.finished ? "cosigner and recovery agent reachable" : "cosigner reachable");
  }
}

/**
 * Options the client adds to a call that crosses the Worker boundary, where an
 * `AbortSignal` cannot go: the name of a `BroadcastChannel` on which the client posts
 * once the caller's signal aborts.
 */
export interface CrossWorkerOptions {
  /** @internal */
  abortChannel?: string;
}

/**
 * The signal a call honours: the caller's own (same thread) or one aborted by a message
 * on `abortChannel` (from the client in the page). `close` releases the channel.
 */
function callSignal(opts: { signal?: AbortSignal | undefined } & CrossWorkerOptions): { signal: AbortSignal | undefined; close: () => void } {
  const name = opts.abortChannel;
  if (typeof name !== "string" || typeof BroadcastChannel === "undefined") return { signal: opts.signal, close: () => undefined };
  const ctl = new AbortController();
  const channel = new BroadcastChannel(name);
  channel.onmessage = () => ctl.abort(new AbortedError("the call was aborted by the caller"));
  const own = opts.signal;
  if (own) {
    if (own.aborted) ctl.abort(own.reason);
    else own.addEventListener("abort", () => ctl.abort(own.reason), { once: true });
  }
  return { signal: ctl.signal, close: () => channel.close() };
}

function normPath(p: string | undefined): string {
  if (p === undefined || p === "" || p === "m") return "";
  if (!/^m(\/\d+)+$/.test(p)) {
    throw new InvalidInputError(`derivation path ${JSON.stringify(p)} must look like m/44/60/0/0/0 (non-hardened indices only)`);
  }
  return p;
}

function mapAccount(a: { accountId: string; kind: string; publicKey: string; chainCode?: string; ethereumAddress: string; createdAt: number }): AccountInfo {
  const out: AccountInfo = {
    accountId: a.accountId,
    kind: a.kind === "independent" ? "independent" : "hd",
    publicKey: a.publicKey,
    ethereumAddress: a.ethereumAddress as Address,
    createdAt: a.createdAt,
  };
  if (a.chainCode) out.chainCode = a.chainCode;
  return out;
}

/**
 * The device party of one wallet (one `walletName` in IndexedDB). All methods may throw
 * {@link WalletError}s.
 */
export class WalletCore {
  private readonly config: WalletConfig;
  private readonly walletName: string;
  private partyCache: WalletParty | undefined;

  constructor(config: WalletConfig) {
    if (!config || typeof config !== "object") throw new ConfigError("config is missing");
    this.config = { ...config };
    this.walletName = config.walletName?.trim() || "default";
  }

  private wasm(): Promise<Mpc> {
    return loadWasm(this.config.wasmUrl);
  }

  private cosigner(): CosignerTransport {
    return new CosignerTransport(this.config.cosignerUrl);
  }

  /** Session settings of the wasm flows (`WalletConfig`). */
  private sessionConfig(): { gatewayUrl?: string; transport?: string; sessionTimeoutMs?: number } {
    const o: { gatewayUrl?: string; transport?: string; sessionTimeoutMs?: number } = {};
    if (this.config.gatewayUrl?.trim()) o.gatewayUrl = normalizeUrl("gateway", this.config.gatewayUrl);
    if (this.config.transport) o.transport = this.config.transport;
    if (this.config.sessionTimeoutMs) o.sessionTimeoutMs = this.config.sessionTimeoutMs;
    return o;
  }

  /** What every wasm flow asks the platform for: the cosigner's transport and progress. */
  private flowHost(cosigner: CosignerTransport, onProgress: (ev: FlowProgress) => void) {
    return {
      callCosigner: (path: string, body: Uint8Array): Promise<CosignerAnswer> => cosigner.call(path, body),
      onProgress,
    };
  }

  /** `flowHost` with the recovery agent's identity, both checking `gate` first (enrollment, creation). */
  private gatedFlowHost(cosigner: CosignerTransport, agent: AgentClient, gate: AbortGate, onProgress: (ev: FlowProgress) => void) {
    const base = this.flowHost(cosigner, onProgress);
    return {
      ...base,
      callCosigner: (path: string, body: Uint8Array): Promise<CosignerAnswer> => {
        gate.check();
        return base.callCosigner(path, body);
      },
      recoveryIdentity: () => {
        gate.check();
        return agent.identity();
      },
    };
  }

  /** How long the recovery agent's job may take. */
  private agentTimeoutMs(): number {
    return this.config.agentTimeoutMs ?? 20 * 60_000;
  }

  /**
   * The host's `primes()` of enrollment and creation: the dev fixture, or the prepared
   * primes when complete, otherwise the parallel search (resuming any partial
   * preparation; consumed by the caller once used). It records in `primes` the source
   * (when not the fixture) and whether the set is a public fixture, in `t` the time.
   */
  private primesSupplier(
    mpc: Mpc,
    rep: Reporter,
    devPrimes: boolean,
    workers: number | undefined,
    onPrimes: (p: PrimeProgress) => void,
    gate: AbortGate,
    primes: { source: NonNullable<WalletInfo["primesSource"]>; fixture: boolean },
    t: { primesMs: number },
  ): () => Promise<{ primes: [string, string, string, string] }> {
    return async () => {
      gate.check();
      const tp = Date.now();
      let set: { primes: [string, string, string, string] };
      if (devPrimes) {
        const f = mpc.devFixturePrimes() as { parties: { primes: [string, string, string, string] }[] };
        const mine = f.parties[DEVICE];
        if (!mine) throw new WalletError("wasm", "the wasm core has no dev prime fixture for party 0");
        set = mine;
      } else {
        const prepared = await this.devicePrimes(mpc, rep, workers, onPrimes);
        set = prepared.set;
        primes.source = prepared.source;
      }
      primes.fixture = devPrimes || mpc.isPublicFixturePrimes(set);
      t.primesMs = Date.now() - tp;
      rep.emit("aux-info", 0, "aux info (Paillier keys and proofs)");
      return set;
    };
  }

  /** Cosigner health (no authentication). */
  async health(): Promise<CosignerHealth> {
    await this.wasm();
    const h = await this.cosigner().health();
    return { status: h.status, version: h.version, backend: h.backend, identity: h.identity };
  }

  /** The stored wallet's public facts, or `null` when this browser holds none. */
  async walletInfo(): Promise<StoredWalletInfo | null> {
    const rec = await storage.getWallet(this.walletName);
    if (!rec) return null;
    return {
      walletName: rec.walletName,
      walletId: rec.walletId,
      accounts: rec.accounts,
      protection: rec.protection,
      insecureDevPrimes: rec.insecureDevPrimes,
      createdAtMs: rec.createdAtMs,
      cosignerUrl: rec.cosignerUrl,
    };
  }

  /** Deletes the stored wallet (the device share is gone for good). */
  async deleteWallet(): Promise<void> {
    this.partyCache?.free();
    this.partyCache = undefined;
    await storage.deleteWallet(this.walletName);
    // presign-web: the presignatures and tombstones of this wallet name go with it.
    await pool.deletePool(this.walletName);
  }

  /**
   * A wallet control at the cosigner, signed by this device (`status`, `freeze`,
   * `revokeDevice`; `unfreeze` needs the recovery party and fails with `config` here).
   */
  async walletControl(action: WalletControlAction, reason?: string): Promise<WalletControls> {
    const rec = await this.record();
    await this.wasm();
    const party = await this.party(rec);
    const host = this.flowHost(this.cosigner(), () => {});
    try {
      return (await party.walletControl(host, { action, reason: reason ?? "" })) as WalletControls;
    } catch (e) {
      throw flowError(e, `wallet control ${action}`);
    }
  }

  /** See `WalletClient.requestRecoveryControl`. */
  async recoveryControl(
    action: RecoveryControlAction,
    opts: RecoveryControlOptions & CrossWorkerOptions = {},
  ): Promise<WalletControls> {
    const wire = ({ unfreeze: "unfreeze", revokeDevice: "revoke_device", freeze: "freeze" } as const)[action];
    if (wire === undefined) throw new InvalidInputError(`unknown recovery control ${JSON.stringify(action)}: unfreeze, revokeDevice or freeze`);
    const reason = opts.reason ?? "";
    if (typeof reason !== "string") throw new InvalidInputError("reason must be a string");
    const rec = await this.record();
    const agent = new AgentClient(this.config.agentUrl, this.config.agentToken);
    const started = Date.now();
    const event = (finished: boolean, extra: { requestId: string; confirmByMs?: number }): ProgressEvent => ({
      phase: "agent",
      elapsedMs: Date.now() - started,
      round: 0,
      totalRounds: 0,
      percent: finished ? 100 : 0,
      overallPercent: finished ? 100 : 0,
      finished,
      message: finished ? "the recovery agent's request ran" : `confirm request ${extra.requestId} on your recovery agent`,
      ...extra,
    });
    const req = await agent.requestControl(rec.walletId, { action: wire, reason, cosigner_url: this.cosigner().url });
    opts.onProgress?.(event(false, { requestId: req.request_id, confirmByMs: req.confirm_by_ms }));
    const abort = callSignal(opts);
    let done;
    try {
      done = await agent.waitRequest(req.request_id, { timeoutMs: opts.timeoutMs ?? 600_000, ...(abort.signal ? { signal: abort.signal } : {}) });
    } finally {
      abort.close();
    }
    opts.onProgress?.(event(true, { requestId: req.request_id }));
    const c = done.controls;
    if (!c) throw new AgentError("agent_failed", "recovery agent finished without the wallet's controls", { requestId: req.request_id });
    const out: WalletControls = { frozen: c.frozen === true, revokedParties: Array.isArray(c.revoked_parties) ? c.revoked_parties : [] };
    if (typeof c.frozen_at_ms === "number") out.frozenAtMs = c.frozen_at_ms;
    if (typeof c.unfreeze_at_ms === "number") out.unfreezeAtMs = c.unfreeze_at_ms;
    return out;
  }

  // -------------------------------------------------------------------------------
  // Backup and restore: the format is the wasm core's (`mpc_core::backup`, the native
  // client's), so files move between the browser and `client backup export|import`.

  /** A backup passphrase given by the caller: a non-empty string, strong unless allowed. */
  private backupPassphrase(mpc: Mpc | undefined, passphrase: unknown, strength: boolean): string {
    if (typeof passphrase !== "string" || passphrase.length === 0) {
      throw new InvalidInputError("the backup passphrase is missing: pass { passphrase }");
    }
    if (mpc && strength && this.config.allowWeakPassphrase !== true && this.config.insecureFastKdf !== true) {
      try {
        mpc.checkPassphrase(passphrase);
      } catch (e) {
        throw new InvalidInputError(`the backup passphrase: ${(e as Error).message ?? String(e)} (allowWeakPassphrase overrides)`);
      }
    }
    return passphrase;
  }

  /**
   * An encrypted backup of the stored device share under its own passphrase: the
   * native client's backup file (`client backup import` restores it). Argon2id runs in
   * this context (the protocol Worker in worker mode).
   */
  async exportBackup(opts: ExportBackupOptions): Promise<BackupFile> {
    const rep = new Reporter(opts?.onProgress, [["backup", 100]]);
    const rec = await this.record();
    const mpc = await this.wasm();
    const passphrase = this.backupPassphrase(mpc, opts?.passphrase, true);
    const party = await this.party(rec);
    rep.emit("backup", 0, "encrypting the backup (Argon2id)");
    let bytes: Uint8Array;
    try {
      bytes = party.exportBackup(passphrase, rec.cosignerUrl, rec.createdAtMs, true, this.config.insecureFastKdf === true);
    } catch (e) {
      throw wasmError(e, "exporting the backup");
    }
    rep.emit("backup", 100, "backup encrypted");
    const safe = rec.walletId.replace(/[^A-Za-z0-9_-]/g, "_").slice(0, 64);
    return { bytes, filename: `wallet-mpc-${safe}-device.backup`, mimeType: "application/json", walletId: rec.walletId, partyIndex: party.partyIndex };
  }

  /**
   * Restores a backup (from {@link exportBackup} or `client backup export`) into this
   * wallet name: decrypted and checked in wasm, re-encrypted with this client's
   * protection, stored. Nothing is stored on any error; the identical share already
   * stored is success (`alreadyPresent`).
   */
  async importBackup(bytes: Uint8Array, opts: ImportBackupOptions): Promise<BackupImportResult> {
    const rep = new Reporter(opts?.onProgress, [["backup", 90], ["store", 10]]);
    if (!(bytes instanceof Uint8Array) || bytes.length === 0) throw new InvalidInputError("the backup is empty: pass its bytes as a Uint8Array");
    const protection = this.checkedProtection(undefined);
    const mpc = await this.wasm();
    this.checkedProtection(mpc);
    const passphrase = this.backupPassphrase(mpc, opts?.passphrase, false);
    rep.emit("backup", 0, "decrypting the backup (Argon2id)");
    let restore: Mpc["BackupRestore"]["prototype"];
    try {
      restore = mpc.BackupRestore.open(bytes, passphrase);
    } catch (e) {
      const err = wasmError(e, "importing the backup");
      if (err.code === "wrong_passphrase") {
        throw new StorageError("wrong_passphrase", "importing the backup: the passphrase does not open it (or the backup was modified)", { reason: "wrong_passphrase" });
      }
      throw err;
    }
    try {
      rep.emit("backup", 100, "backup decrypted");
      const walletId = restore.walletId;
      const accounts = (restore.accounts() as Parameters<typeof mapAccount>[0][]).map(mapAccount);
      const result = (alreadyPresent: boolean): BackupImportResult => ({
        walletName: this.walletName,
        walletId,
        partyIndex: restore.partyIndex,
        alreadyPresent,
        accounts,
        protection,
      });
      const existing = await storage.getWallet(this.walletName);
      if (existing) {
        if (existing.walletId !== walletId) {
          throw new StorageError(
            "wallet_exists",
            `wallet name "${this.walletName}" holds wallet ${existing.walletId}; refusing to overwrite it with the backup of wallet ${walletId}`,
            { reason: "other_wallet", walletName: this.walletName, existingWalletId: existing.walletId, backupWalletId: walletId },
          );
        }
        const party = await this.party(existing);
        if (restore.sameShare(party)) return result(true);
        throw new StorageError("wallet_exists", `wallet name "${this.walletName}" holds a different share of wallet ${walletId}; refusing to overwrite it`, {
          reason: "different_share",
          walletName: this.walletName,
          walletId,
        });
      }
      rep.emit("store", 0, "encrypting and storing the key share");
      const meta: storage.NewWallet = {
        walletName: this.walletName,
        walletId,
        accounts,
        protection,
        insecureDevPrimes: false,
        createdAtMs: restore.createdAtMs || Date.now(),
        cosignerUrl: this.cosigner().url,
        partyIndex: DEVICE,
      };
      if (protection === "passphrase") {
        const file = restore.passphraseFile(this.config.passphrase ?? "", this.config.insecureFastKdf === true);
        await storage.putNewWallet(meta, { passphraseFile: file });
      } else {
        const plain = restore.bundleBytes();
        try {
          await storage.putNewWallet(meta, { bundle: plain });
        } finally {
          plain.fill(0);
        }
      }
      this.partyCache?.free();
      this.partyCache = undefined;
      rep.emit("store", 100, "key share stored");
      return result(false);
    } finally {
      restore.free();
    }
  }

  private async record(): Promise<storage.WalletRecord> {
    let rec = await storage.getWallet(this.walletName);
    // Key lifecycle: new shares a crash left pending are settled first (lifecycle.ts).
    if (rec?.pending) {
      await this.wasm();
      rec = await settlePending(rec, (r) => this.openRecord(r), this.cosigner());
      this.partyCache?.free();
      this.partyCache = undefined;
    }
    if (!rec) {
      throw new StorageError("no_wallet", `no wallet named "${this.walletName}" in this browser: create one first`, {
        walletName: this.walletName,
      });
    }
    if (!storage.hasShare(rec)) {
      throw new StorageError("no_wallet", `wallet "${this.walletName}" is a device replacement the cosigner has not committed yet (lifecycle ${rec.pending?.lifecycleId ?? "?"}); it is settled on the next use`, {
        walletName: this.walletName,
      });
    }
    return rec;
  }

  /** The device party, opened in wasm (its shares and identity key stay there). */
  private async party(rec: storage.WalletRecord): Promise<WalletParty> {
    // A refresh in another context (the presign Worker, another tab) changes the epoch.
    if (this.partyCache && this.partyCache.shareEpoch === (rec.shareEpoch ?? 0)) return this.partyCache;
    this.partyCache?.free();
    this.partyCache = undefined;
    const p = await this.openRecord(rec);
    this.partyCache = p;
    return p;
  }

  /** Opens a record's share in wasm (not cached). */
  private async openRecord(rec: storage.WalletRecord): Promise<WalletParty> {
    const mpc = await this.wasm();
    const source = `wallet "${rec.walletName}"`;
    let p: WalletParty;
    try {
      if (rec.protection === "passphrase") {
        if (!this.config.passphrase) {
          throw new StorageError("wrong_passphrase", `wallet "${rec.walletName}" is protected by a passphrase: set one`);
        }
        p = mpc.WalletParty.fromPassphraseFile(rec.walletId, rec.passphraseFile ?? "", this.config.passphrase, source);
      } else {
        const bytes = await storage.decryptBundle(rec);
        try {
          p = mpc.WalletParty.fromBytes(rec.walletId, bytes!, source);
        } finally {
          bytes?.fill(0);
        }
      }
    } catch (e) {
      throw flowError(e, "opening the key shares");
    }
    if (p.partyIndex !== DEVICE) {
      p.free();
      throw new StorageError("storage", `stored share belongs to party ${String(p.partyIndex)}, not the device`);
    }
    return p;
  }

  // -------------------------------------------------------------------------------
  // Key lifecycle (lifecycle.ts, lifecycle-replace.ts)

  /** The shared context of the lifecycle flows. */
  private async lifecycleCtx(rep: Reporter, signal: AbortSignal | undefined, timeoutMs: number): Promise<LifecycleCtx> {
    const mpc = await this.wasm();
    const protection: LifecycleCtx["protection"] = {};
    return {
      walletName: this.walletName,
      mpc,
      cosigner: this.cosigner(),
      session: this.sessionConfig(),
      protection,
      open: (r) => this.openRecord(r),
      emit: (phase, pct, msg, extra) => rep.emit(phase, pct, msg, extra),
      signal,
      timeoutMs,
    };
  }

  /** See `WalletClient.refreshShares`. */
  async refreshShares(opts: RefreshSharesOptions & CrossWorkerOptions = {}): Promise<LifecycleResult> {
    const reason = opts.reason ?? "";
    if (typeof reason !== "string" || reason.length > 200) throw new InvalidInputError("reason must be a string of at most 200 characters");
    const rep = new Reporter(opts.onProgress, [
      ["agent", 20],
      ["refresh", 60],
      ["store", 5],
      ["confirm", 15],
    ]);
    const abort = callSignal(opts);
    try {
      const rec = await this.record();
      const agent = new AgentClient(opts.agentUrl ?? this.config.agentUrl, this.config.agentToken);
      const ctx = await this.lifecycleCtx(rep, abort.signal, opts.timeoutMs ?? 600_000);
      if (rec.protection === "passphrase") {
        ctx.protection.passphrase = this.config.passphrase ?? "";
        ctx.protection.insecureFastKdf = this.config.insecureFastKdf === true;
      }
      const party = await this.party(rec);
      const out = await refreshShares(ctx, rec, party, agent, reason);
      this.partyCache?.free();
      this.partyCache = undefined;
      return out;
    } finally {
      abort.close();
    }
  }

  /**
   * See `replaceDevice` (index.ts): this client's `walletName` receives the new share.
   * The config's `agentUrl` / `agentToken` / `cosignerUrl` / protection apply.
   */
  async replaceDevice(opts: { walletId: string; reason?: string; primeWorkers?: number; onProgress?: OnProgress; signal?: AbortSignal; timeoutMs?: number } & CrossWorkerOptions): Promise<LifecycleResult> {
    if (typeof opts?.walletId !== "string" || !opts.walletId.trim()) throw new InvalidInputError("walletId is missing");
    const reason = opts.reason ?? "";
    if (typeof reason !== "string" || reason.length > 200) throw new InvalidInputError("reason must be a string of at most 200 characters");
    const devPrimes = this.config.insecureDevPrimes === true;
    const { onProgress, onPrimes } = withPrimeCounters(opts.onProgress);
    const rep = new Reporter(onProgress, [
      ["primes", devPrimes ? 0 : 60],
      ["agent", 10],
      ["aux-info", 60],
      ["repair", 10],
      ["refresh", 10],
      ["store", 2],
      ["confirm", 5],
    ]);
    const abort = callSignal(opts);
    try {
      const protection = this.checkedProtection(undefined);
      const agent = new AgentClient(this.config.agentUrl, this.config.agentToken);
      const ctx = await this.lifecycleCtx(rep, abort.signal, opts.timeoutMs ?? 20 * 60_000);
      this.checkedProtection(ctx.mpc);
      if (protection === "passphrase") {
        ctx.protection.passphrase = this.config.passphrase ?? "";
        ctx.protection.insecureFastKdf = this.config.insecureFastKdf === true;
      }
      const primes: { source: NonNullable<WalletInfo["primesSource"]>; fixture: boolean } = {
        source: devPrimes ? "insecure-dev-fixture" : "searched",
        fixture: devPrimes,
      };
      const gate = new AbortGate(abort.signal, "replacing the device");
      const out = await replaceDevice(ctx, {
        walletId: opts.walletId.trim(),
        reason,
        agent,
        protection,
        primes: this.primesSupplier(ctx.mpc, rep, devPrimes, opts.primeWorkers, onPrimes, gate, primes, { primesMs: 0 }),
        insecureDevPrimes: () => primes.fixture,
      });
      // The primes now belong to this wallet's aux info: never reuse them.
      if (primes.source !== "insecure-dev-fixture") await this.consumePrimes();
      this.partyCache?.free();
      this.partyCache = undefined;
      return out;
    } finally {
      abort.close();
    }
  }

  private findAccount(rec: storage.WalletRecord, accountId: string | undefined): AccountInfo {
    const id = accountId ?? rec.accounts[0]?.accountId;
    const a = rec.accounts.find((x) => x.accountId === id);
    if (!a) {
      throw new StorageError("unknown_account", `unknown account ${JSON.stringify(id)} (this wallet has: ${rec.accounts.map((x) => x.accountId).join(", ")})`, {
        accountId: id,
      });
    }
    return a;
  }

  /** Accounts of the stored wallet (no decryption, no network). */
  async listAccounts(): Promise<AccountInfo[]> {
    return (await this.record()).accounts;
  }

  /**
   * Public key and addresses of an account at a (non-hardened) path, computed locally
   * from the account's public key and chain code.
   */
  async getPublicKey(accountId?: string, derivationPath?: string, bitcoinNetwork?: BitcoinNetwork): Promise<PublicKeyInfo> {
    const network = this.bitcoinNetwork(bitcoinNetwork);
    const rec = await this.record();
    const acct = this.findAccount(rec, accountId);
    const path = normPath(derivationPath);
    const mpc = await this.wasm();
    try {
      let pk = acct.publicKey;
      if (path) {
        if (acct.kind !== "hd" || !acct.chainCode) {
          throw new InvalidInputError(`account ${acct.accountId} is not an HD account: only its root key exists`);
        }
        pk = mpc.derivePublicKey(acct.publicKey, acct.chainCode, path);
      }
      return {
        accountId: acct.accountId,
        derivationPath: path || "m",
        publicKey: pk,
        ethereumAddress: mpc.ethereumAddress(pk) as Address,
        bitcoinAddress: mpc.bitcoinAddress(pk, network),
        bitcoinNetwork: network,
      };
    } catch (e) {
      throw wasmError(e, "deriving the public key");
    }
  }

  /** A Bitcoin network name, checked; none: the config's, else mainnet. */
  private bitcoinNetwork(network: BitcoinNetwork | undefined): BitcoinNetwork {
    const n = network ?? this.config.bitcoinNetwork ?? "mainnet";
    if (!BITCOIN_NETWORKS.includes(n)) {
      throw new InvalidInputError(`unknown Bitcoin network ${JSON.stringify(n)} (expected one of ${BITCOIN_NETWORKS.join(", ")})`, {
        reason: "unknown_network",
      });
    }
    return n;
  }

  /** An HD account (Bitcoin needs its chain code), or `invalid_input`. */
  private hdAccount(rec: storage.WalletRecord, accountId: string | undefined): AccountInfo & { chainCode: string } {
    const acct = this.findAccount(rec, accountId);
    if (acct.kind !== "hd" || !acct.chainCode) {
      throw new InvalidInputError(`account ${acct.accountId} is not an HD account: Bitcoin addresses, descriptors and PSBTs need BIP-32 paths`, {
        accountId: acct.accountId,
      });
    }
    return acct as AccountInfo & { chainCode: string };
  }

  /**
   * The watch-only export of an HD account: xpub and receive / change descriptors
   * (`wpkh([fingerprint/84/0/0]xpub/0/*)#checksum`), computed locally.
   */
  async bitcoinWatchOnly(opts: BitcoinWatchOnlyOptions = {}): Promise<BitcoinWatchOnly> {
    const network = this.bitcoinNetwork(opts.network);
    const acct = this.hdAccount(await this.record(), opts.accountId);
    const mpc = await this.wasm();
    try {
      const w = mpc.bitcoinWatchOnly(acct.publicKey, acct.chainCode, opts.accountPath, network) as Omit<BitcoinWatchOnly, "accountId">;
      return { accountId: acct.accountId, ...w };
    } catch (e) {
      throw wasmError(e, "exporting the watch-only descriptors", { accountId: acct.accountId });
    }
  }

  /**
   * Signs every input of a PSBT (BIP-174 version 0 or BIP-370 version 2; base64 text or
   * binary) of an HD account and finalizes it.
   *
   * The wasm core analyzes the PSBT first with the wallet's Bitcoin codec (rust-bitcoin):
   * every input must be this account's P2WPKH (its `bip32_derivation` carries the root
   * fingerprint and a path deriving the key), with its witness UTXO, SIGHASH_ALL;
   * anything else is an {@link InvalidInputError} whose `details.reason` is the codec's
   * code (`not_our_input`, `missing_utxo`, `unsupported_script`, `invalid_base64`, …),
   * before any request. Then one signing per input, in order, at the input's path over
   * its BIP-143 preimage: from the path's presignature pool where `presign` allows, else
   * a signing session; the cosigner receives the whole PSBT with each, analyzes it
   * itself and applies its Bitcoin policy. A failure on any input rejects with that
   * error: nothing is returned signed partially. Finally each signature is normalized
   * to low S, verified and the PSBT finalized; `txHex` is ready to broadcast.
   */
  async signPsbt(psbt: Uint8Array | string, opts: SignPsbtOptions & CrossWorkerOptions = {}): Promise<SignedPsbtResult> {
    const started = Date.now();
    const network = this.bitcoinNetwork(opts.network);
    const bytes = typeof psbt === "string" ? new TextEncoder().encode(psbt.trim()) : psbt;
    if (!(bytes instanceof Uint8Array) || bytes.length === 0) throw new InvalidInputError("nothing to sign: empty PSBT");
    const acct = this.hdAccount(await this.record(), opts.accountId);
    const mpc = await this.wasm();
    let plan: PsbtPlan;
    try {
      plan = mpc.psbtPlan(acct.publicKey, acct.chainCode, bytes, network) as PsbtPlan;
    } catch (e) {
      throw wasmError(e, "PSBT refused", { accountId: acct.accountId });
    }
    const n = plan.inputs.length;
    const signatures: { index: number; der: string }[] = [];
    const inputs: SignedPsbtInput[] = [];
    const abort = callSignal(opts);
    try {
    for (const [i, input] of plan.inputs.entries()) {
      const onProgress = opts.onProgress;
      const sig = await this.signPreimage(input.preimage, "double_sha256", "bitcoin_psbt_input", {
        accountId: acct.accountId,
        derivationPath: input.path,
        cosignerPayload: plan.psbt,
        bitcoin: { inputIndex: input.index, network },
        ...(opts.presign !== undefined ? { presign: opts.presign } : {}),
        ...(abort.signal !== undefined ? { signal: abort.signal } : {}),
        ...(onProgress
          ? {
              onProgress: (ev: ProgressEvent) =>
                onProgress({
                  ...ev,
                  overallPercent: Math.round(((i + ev.overallPercent / 100) / n) * 1000) / 10,
                  message: `input ${i + 1}/${n}: ${ev.message}`,
                }),
            }
          : {}),
      } as SignPreimageOptions & PsbtInputSigning);
      if (sig.digest !== `0x${input.sighash}`) {
        throw new WalletError("verification_failed", `input ${input.index}: signed digest ${sig.digest} is not its sighash ${input.sighash}`);
      }
      signatures.push({ index: input.index, der: sig.der });
      inputs.push({
        index: input.index,
        derivationPath: input.path,
        publicKey: input.publicKey,
        amountSats: input.amountSats,
        sighash: input.sighash,
        presigned: sig.presigned,
        requestId: sig.requestId,
      });
    }
    } finally {
      abort.close();
    }
    let done: { psbtVersion: number; psbtBase64: string; txHex: string; txid: string };
    try {
      done = mpc.psbtFinalize(acct.publicKey, acct.chainCode, plan.psbt, network, signatures);
    } catch (e) {
      throw wasmError(e, "finalizing the PSBT", { accountId: acct.accountId });
    }
    return { network, ...done, feeSats: plan.feeSats, inputs, elapsedMs: Date.now() - started };
  }

  /** EIP-55 address of an account at a path. */
  async getAddress(accountId?: string, derivationPath?: string): Promise<Address> {
    return (await this.getPublicKey(accountId, derivationPath)).ethereumAddress;
  }

  // -------------------------------------------------------------------------------
  // Prepared safe primes (primes.ts): searched ahead of time, resumable, consumed by
  // createWallet.

  private primeConfig(): CoordinatorConfig {
    const c: CoordinatorConfig = {};
    if (this.config.wasmUrl !== undefined) c.wasmUrl = this.config.wasmUrl;
    if (this.config.primeWorkerUrl !== undefined) c.primeWorkerUrl = this.config.primeWorkerUrl;
    return c;
  }

  private primeWorkers(w: number | undefined): number {
    return w ?? this.config.primeWorkers ?? defaultWorkers();
  }

  /**
   * Searches (or resumes, or joins the running search of) the 4 safe primes of this
   * wallet name and stores them encrypted, so that `createWallet` needs no search.
   * Idempotent: returns at once when they are ready.
   */
  async prepareDevice(opts: PrepareDeviceOptions = {}): Promise<PreparedStatus> {
    const started = Date.now();
    const cb = opts.onProgress;
    const onPrimes = (p: PrimeProgress) => {
      if (!cb) return;
      const percent = primePercent(p);
      const ev: ProgressEvent = {
        phase: "primes",
        round: p.found,
        totalRounds: p.needed,
        percent,
        overallPercent: percent,
        finished: p.done,
        message: primeMessage(p),
        elapsedMs: Date.now() - started,
        primes: p,
      };
      try {
        cb(ev);
      } catch {
        // ignored
      }
    };
    await prepareOnce(this.walletName, this.primeConfig(), { workers: this.primeWorkers(opts.workers), onProgress: onPrimes });
    return this.preparedStatus();
  }

  /** Whether this browser holds prepared primes for this wallet name (none / in progress / ready). */
  async preparedStatus(): Promise<PreparedStatus> {
    const c = await primeStore.getCounters(this.walletName);
    if (!c) return { state: "none" };
    const base = { found: c.found, needed: c.needed, candidates: c.candidates, searchMs: c.searchMs, updatedAtMs: c.updatedAtMs };
    if (c.found >= c.needed) return { state: "ready", ...base };
    return { state: "in_progress", ...base, running: isPreparing(this.walletName) };
  }

  /** Stops a running preparation in this client (its progress stays stored). Returns whether one ran. */
  stopPrepare(): Promise<boolean> {
    return stopPreparation(this.walletName);
  }

  /** Stops and deletes the prepared primes / search state of this wallet name. */
  async discardPreparedPrimes(): Promise<void> {
    await stopPreparation(this.walletName);
    await primeStore.deleteState(this.walletName);
  }

  private async devicePrimes(
    mpc: Mpc,
    rep: Reporter,
    workers: number | undefined,
    onPrimes: (p: PrimeProgress) => void,
  ): Promise<{ set: { primes: [string, string, string, string] }; source: "prepared" | "searched" }> {
    const before = await primeStore.getCounters(this.walletName);
    const ready = !!before && before.found >= before.needed && !isPreparing(this.walletName);
    rep.emit("primes", 0, ready ? "using the prepared safe primes" : "searching safe primes in parallel (minutes in the browser)", {
      round: before?.found ?? 0,
      totalRounds: PRIMES_NEEDED,
    });
    const hex = await prepareOnce(this.walletName, this.primeConfig(), {
      workers: this.primeWorkers(workers),
      onProgress: (p) => {
        onPrimes(p);
        rep.emit("primes", primePercent(p), primeMessage(p), { round: p.found, totalRounds: p.needed, finished: p.done });
      },
    });
    let set: { primes: [string, string, string, string] };
    try {
      set = mpc.assemblePrimeSet(hex);
    } catch (e) {
      throw wasmError(e, `the prepared primes of "${this.walletName}" are unusable (discard them and prepare again)`);
    }
    rep.emit("primes", 100, ready ? "prepared safe primes loaded" : "safe primes found", { round: 4, totalRounds: 4, finished: true });
    return { set, source: ready ? "prepared" : "searched" };
  }

  /** Deletes the used primes (retried once; a failure is an error: they must not be reused). */
  private async consumePrimes(): Promise<void> {
    try {
      await primeStore.deleteState(this.walletName);
    } catch {
      await primeStore.deleteState(this.walletName);
    }
  }

  /** Whether a usable device enrollment is stored for this wallet name. */
  async enrollmentStatus(): Promise<EnrollmentStatus> {
    const rec = await storage.getEnrollment(this.walletName);
    if (!rec || !storage.enrollmentUsable(rec)) return { state: "none" };
    return { state: "ready", enrollmentId: rec.enrollmentId, expiresAtMs: rec.expiresAtMs };
  }

  /**
   * Enrolls the device (aux info ahead of wallet creation) with the wasm core's
   * `Enroll` flow, or returns the usable enrollment already stored. One enrollment per
   * wallet name and browser: concurrent calls in this context join the running one, and
   * across contexts (tabs, Workers, an extension's offscreen document and service
   * worker) the Web Lock `wallet-mpc-web/enroll/<walletName>` serialises them; a caller
   * that waited for the lock returns the enrollment the holder stored, without any
   * network. An abort while waiting for the lock gives up the wait.
   */
  async enrollDevice(opts: EnrollDeviceOptions & CrossWorkerOptions = {}): Promise<EnrollmentInfo> {
    const abort = callSignal(opts);
    try {
      const stored = await this.storedEnrollment();
      if (stored) return stored;
      let running = enrolling.get(this.walletName);
      if (!running) {
        const what = "enrolling the device";
        running = withWebLock(
          enrollLockName(this.walletName),
          async () => (await this.storedEnrollment()) ?? (await this.enrollDeviceWith(opts, abort.signal)),
          { signal: abort.signal, what },
        ).finally(() => enrolling.delete(this.walletName));
        enrolling.set(this.walletName, running);
      }
      return await running;
    } finally {
      abort.close();
    }
  }

  /** The usable stored enrollment as a result (an expired one is deleted), or `undefined`. */
  private async storedEnrollment(): Promise<EnrollmentInfo | undefined> {
    const rec = await storage.getEnrollment(this.walletName);
    if (!rec) return undefined;
    if (!storage.enrollmentUsable(rec)) {
      await storage.deleteEnrollment(this.walletName);
      return undefined;
    }
    return { enrollmentId: rec.enrollmentId, expiresAtMs: rec.expiresAtMs, reused: true, timings: { primesMs: 0, auxInfoMs: 0, agentMs: 0, totalMs: 0 } };
  }

  /** The protection of a new wallet or enrollment, with the passphrase checks. */
  private checkedProtection(mpc: Mpc | undefined): "passphrase" | "webcrypto" {
    const protection = newWalletProtection(this.config);
    if (protection === "passphrase" && !this.config.passphrase) {
      throw new ConfigError(
        inExtension()
          ? "inside a browser extension new wallets are protected by a passphrase: pass `passphrase` (or `protection: \"webcrypto\"` to opt out explicitly)"
          : "`protection: \"passphrase\"` needs a `passphrase`",
      );
    }
    if (mpc && protection === "passphrase" && this.config.allowWeakPassphrase !== true && this.config.insecureFastKdf !== true) {
      try {
        mpc.checkPassphrase(this.config.passphrase ?? "");
      } catch (e) {
        throw new ConfigError(`the passphrase: ${(e as Error).message ?? String(e)} (allowWeakPassphrase overrides)`);
      }
    }
    return protection;
  }

  private async enrollDeviceWith(opts: EnrollDeviceOptions, signal: AbortSignal | undefined): Promise<EnrollmentInfo> {
    const what = "enrolling the device";
    throwIfAborted(signal, what);
    const devPrimes = this.config.insecureDevPrimes === true;
    this.checkedProtection(undefined);
    const { onProgress, onPrimes } = withPrimeCounters(opts.onProgress);
    const rep = new Reporter(onProgress, [
      ["connect", 2],
      ["primes", devPrimes ? 0 : 60],
      ["aux-info", 60],
      ["agent", 3],
      ["store", 1],
    ]);
    const t: EnrollTimings = { primesMs: 0, auxInfoMs: 0, agentMs: 0, totalMs: 0 };
    if (await storage.getWallet(this.walletName)) {
      throw new StorageError("wallet_exists", `a wallet named "${this.walletName}" already exists in this browser: it needs no enrollment`, {
        walletName: this.walletName,
      });
    }
    const cosigner = this.cosigner();
    const agent = new AgentClient(this.config.agentUrl, this.config.agentToken);
    rep.emit("connect", 0, "contacting the cosigner and the recovery agent");
    const mpc = await this.wasm();
    const protection = this.checkedProtection(mpc);
    const primes: { source: "prepared" | "searched" | "insecure-dev-fixture"; fixture: boolean } = {
      source: devPrimes ? "insecure-dev-fixture" : "searched",
      fixture: devPrimes,
    };
    const job = new AgentJob();
    const gate = new AbortGate(signal, what);
    const host = {
      ...this.gatedFlowHost(cosigner, agent, gate, (ev) =>
        emitSharedPhase(rep, ev, { agentDone: "recovery agent enrolled", stored: "enrollment stored", storing: "encrypting and storing the enrollment" }),
      ),
      primes: this.primesSupplier(mpc, rep, devPrimes, opts.primeWorkers, onPrimes, gate, primes, t),
      startEnrollment: async (e: {
        enrollmentId: string;
        cosignerIdentity: string;
        deviceIdentity: string;
        auxInfo: { sessionId: string; room: string; roomToken: string; gatewayUrl: string };
      }) => {
        gate.check();
        const jobId = await agent.createEnrollment({
          enrollment_id: e.enrollmentId,
          cosigner_identity: e.cosignerIdentity,
          device_identity: e.deviceIdentity,
          aux_info: agentRoomOf(e.auxInfo),
        });
        job.start(agent, jobId, this.agentTimeoutMs(), { publicKeys: false });
      },
      awaitEnrollment: async () => {
        gate.check();
        await job.wait(rep, signal, what);
      },
      persistEnrollment: async (e: { enrollmentId: string; expiresAtMs: number; passphraseFile?: string; bytes?: Uint8Array }) => {
        gate.commit(e.bytes);
        const meta: storage.NewEnrollment = {
          walletName: this.walletName,
          enrollmentId: e.enrollmentId,
          expiresAtMs: e.expiresAtMs,
          insecureDevPrimes: primes.fixture,
          createdAtMs: Date.now(),
          cosignerUrl: cosigner.url,
        };
        try {
          await storage.putEnrollment(meta, e.passphraseFile !== undefined ? { passphraseFile: e.passphraseFile } : { bytes: e.bytes! });
        } finally {
          e.bytes?.fill(0);
        }
      },
    };
    const params: Record<string, unknown> = {
      registrationCredential: opts.registrationCredential,
      ...this.sessionConfig(),
    };
    if (protection === "passphrase") {
      params.passphrase = this.config.passphrase;
      params.insecureFastKdf = this.config.insecureFastKdf === true;
    }
    let out: { enrollmentId: string; expiresAtMs: number; timings: { auxInfoMs: number; agentMs: number; totalMs: number } };
    try {
      out = await mpc.enrollDevice(host, params);
    } catch (e) {
      throw job.error ?? flowError(e, what);
    } finally {
      job.abort.aborted = true;
    }
    // The primes now belong to this enrollment's aux info: never reuse them.
    if (primes.source !== "insecure-dev-fixture") await this.consumePrimes();
    t.auxInfoMs = out.timings.auxInfoMs;
    t.agentMs = out.timings.agentMs;
    t.totalMs = rep.elapsedMs;
    return { enrollmentId: out.enrollmentId, expiresAtMs: out.expiresAtMs, reused: false, timings: t };
  }

  /**
   * Creates a wallet with the wasm core's creation flow (`client-core`): the core calls
   * the cosigner, runs aux info and one DKG per account over the gateway, checks that
   * the recovery agent got the same keys, and hands the encrypted bundle here to store
   * before confirming. This method supplies the platform: primes, the agent, IndexedDB.
   */
  async createWallet(opts: CreateWalletOptions & CrossWorkerOptions = {}): Promise<WalletInfo> {
    const abort = callSignal(opts);
    try {
      return await this.createWalletWith(opts, abort.signal);
    } finally {
      abort.close();
    }
  }

  private async createWalletWith(opts: CreateWalletOptions, signal: AbortSignal | undefined): Promise<WalletInfo> {
    throwIfAborted(signal, "creating the wallet");
    const accounts = opts.accounts ?? 1;
    const kind = opts.kind ?? "hd";
    if (!Number.isInteger(accounts) || accounts < 1 || accounts > 100) {
      throw new InvalidInputError(`accounts must be an integer between 1 and 100, got ${String(accounts)}`);
    }
    if (kind !== "hd" && kind !== "independent") throw new InvalidInputError(`kind must be "hd" or "independent"`);
    if (opts.enrollment !== undefined && typeof opts.enrollment !== "boolean") {
      throw new InvalidInputError("enrollment must be true or false");
    }
    const protection = this.checkedProtection(undefined);
    // The stored device enrollment, unless refused: its aux info is reused (keygens only).
    let enrollment: storage.EnrollmentRecord | undefined;
    if (opts.enrollment !== false) {
      enrollment = await storage.getEnrollment(this.walletName);
      if (enrollment && !storage.enrollmentUsable(enrollment)) {
        await storage.deleteEnrollment(this.walletName);
        enrollment = undefined;
      }
    }
    const devPrimes = !enrollment && this.config.insecureDevPrimes === true;
    // Phase "primes" events carry the search counters (`event.primes`).
    const { onProgress, onPrimes } = withPrimeCounters(opts.onProgress);
    const rep = new Reporter(onProgress, [
      ["connect", 2],
      ["primes", devPrimes || enrollment ? 0 : 60],
      ["aux-info", enrollment ? 0 : 60],
      ["keygen", 15 * accounts],
      ["agent", 3],
      ["store", 1],
      ["confirm", 2],
    ]);
    const t: WalletInfo["timings"] = { primesMs: 0, auxInfoMs: 0, keygenMs: 0, confirmMs: 0, totalMs: 0 };

    if (await storage.getWallet(this.walletName)) {
      throw new StorageError("wallet_exists", `a wallet named "${this.walletName}" already exists in this browser; refusing to overwrite key shares`, {
        walletName: this.walletName,
      });
    }
    const cosigner = this.cosigner();
    const agent = new AgentClient(this.config.agentUrl, this.config.agentToken);
    rep.emit("connect", 0, "contacting the cosigner and the recovery agent");
    const mpc = await this.wasm();
    this.checkedProtection(mpc);

    const primes: { source: NonNullable<WalletInfo["primesSource"]>; fixture: boolean } = {
      source: enrollment ? "enrollment" : devPrimes ? "insecure-dev-fixture" : "searched",
      fixture: enrollment ? enrollment.insecureDevPrimes : devPrimes,
    };
    let jobId: string | undefined;
    const job = new AgentJob();
    const accountIds: string[] = [];
    // Abort is honoured until the key share is stored (then the creation completes).
    const gate = new AbortGate(signal, "creating the wallet");
    const agentRoom = agentRoomOf;
    const host = {
      ...this.gatedFlowHost(cosigner, agent, gate, (ev) => {
        if (ev.phase === "keygen") {
          const k = Math.max(0, accountIds.indexOf(ev.accountId ?? ""));
          const label = `key generation ${accounts > 1 ? `${k + 1}/${accounts} ` : ""}`;
          rep.emit("keygen", ((k + ev.percent / 100) / accounts) * 100, `${label}round ${ev.round}/${ev.totalRounds}`, {
            round: ev.round,
            totalRounds: ev.totalRounds,
            ...(ev.accountId ? { accountId: ev.accountId } : {}),
            finished: false,
          });
        } else if (ev.phase === "confirm") {
          rep.emit("confirm", ev.percent, ev.finished ? "wallet created" : "confirming with the cosigner");
        } else {
          emitSharedPhase(rep, ev, { agentDone: "recovery agent holds its share", stored: "key share stored", storing: "encrypting and storing the key share" });
        }
      }),
      // Consumed after the wallet is committed.
      primes: this.primesSupplier(mpc, rep, devPrimes, opts.primeWorkers, onPrimes, gate, primes, t),
      startRecovery: async (r: {
        walletId: string;
        cosignerIdentity: string;
        deviceIdentity: string;
        kind: string;
        auxInfo?: { sessionId: string; room: string; roomToken: string; gatewayUrl: string };
        enrollmentId?: string;
        accounts: { accountId: string; keygen: { sessionId: string; room: string; roomToken: string; gatewayUrl: string } }[];
      }) => {
        gate.check();
        accountIds.push(...r.accounts.map((a) => a.accountId));
        jobId = await agent.createWallet({
          wallet_id: r.walletId,
          cosigner_identity: r.cosignerIdentity,
          device_identity: r.deviceIdentity,
          kind,
          // Exactly one: the agent reuses its own enrollment's aux info, or joins the room.
          ...(r.enrollmentId !== undefined ? { enrollment_id: r.enrollmentId } : { aux_info: agentRoom(r.auxInfo!) }),
          accounts: r.accounts.map((a) => ({ account_id: a.accountId, keygen: agentRoom(a.keygen) })),
        });
        job.start(agent, jobId, this.agentTimeoutMs());
      },
      awaitRecovery: async () => {
        gate.check();
        return await job.wait(rep, signal, "creating the wallet");
      },
      persist: async (w: { walletId: string; accounts: Parameters<typeof mapAccount>[0][]; passphraseFile?: string; bundle?: Uint8Array }) => {
        // The last point of no return: once the share is stored, the creation completes.
        gate.commit(w.bundle);
        const meta: storage.NewWallet = {
          walletName: this.walletName,
          walletId: w.walletId,
          accounts: w.accounts.map(mapAccount),
          protection,
          insecureDevPrimes: primes.fixture,
          createdAtMs: Date.now(),
          cosignerUrl: cosigner.url,
          partyIndex: DEVICE,
        };
        // The enrollment record goes in the same transaction as the share is stored.
        const put = { deleteEnrollment: !!enrollment };
        if (w.passphraseFile !== undefined) {
          await storage.putNewWallet(meta, { passphraseFile: w.passphraseFile }, put);
        } else {
          try {
            await storage.putNewWallet(meta, { bundle: w.bundle! }, put);
          } finally {
            w.bundle?.fill(0);
          }
        }
      },
    };
    const params: Record<string, unknown> = {
      accounts,
      kind,
      label: opts.label ?? "",
      registrationCredential: opts.registrationCredential,
      ...this.sessionConfig(),
    };
    if (protection === "passphrase") {
      params.passphrase = this.config.passphrase;
      params.insecureFastKdf = this.config.insecureFastKdf === true;
    }
    let enrollmentBytes: Uint8Array | undefined;
    if (enrollment) {
      if (enrollment.protection === "passphrase") {
        if (!this.config.passphrase) {
          throw new StorageError("wrong_passphrase", `the enrollment of "${this.walletName}" is protected by a passphrase: set one`);
        }
        // The wasm core opens the enrollment file with the wallet's passphrase.
        if (protection !== "passphrase") {
          throw new ConfigError("the stored enrollment is protected by a passphrase but the new wallet by WebCrypto: create with the same protection (or `enrollment: false`)");
        }
        params.enrollment = { passphraseFile: enrollment.passphraseFile ?? "" };
      } else {
        enrollmentBytes = await storage.decryptEnrollment(enrollment);
        params.enrollment = { bytes: enrollmentBytes };
      }
    }
    let created: {
      walletId: string;
      accounts: Parameters<typeof mapAccount>[0][];
      committed: boolean;
      timings: { auxInfoMs: number; keygenMs: number; confirmMs: number; totalMs: number };
    };
    try {
      created = await mpc.createWallet(host, params);
    } catch (e) {
      const err = flowError(e, "creating the wallet");
      if (enrollment && err.details?.enrollmentUnusable === true) {
        // The cosigner no longer knows the enrollment: the record is useless, delete it.
        await storage.deleteEnrollment(this.walletName).catch(() => undefined);
        throw new EnrollmentError(
          err.code === "unauthorized" ? "unauthorized" : "not_found",
          `the stored enrollment ${enrollment.enrollmentId} cannot be used any more (${err.message}); it was deleted: call enrollDevice() again, or createWallet({ enrollment: false })`,
          { enrollmentId: enrollment.enrollmentId },
        );
      }
      throw job.error ?? err;
    } finally {
      job.abort.aborted = true;
      enrollmentBytes?.fill(0);
    }
    // The primes now belong to this wallet's aux info: never reuse them.
    if (primes.source !== "insecure-dev-fixture" && primes.source !== "enrollment") await this.consumePrimes();
    t.auxInfoMs = created.timings.auxInfoMs;
    t.keygenMs = created.timings.keygenMs;
    t.confirmMs = created.timings.confirmMs;
    t.totalMs = rep.elapsedMs;
    this.partyCache?.free();
    this.partyCache = undefined;
    return {
      walletId: created.walletId,
      walletName: this.walletName,
      accounts: created.accounts.map(mapAccount),
      committed: created.committed,
      protection,
      insecureDevPrimes: primes.fixture,
      timings: t,
      primesSource: primes.source,
      ...(enrollment ? { enrollmentId: enrollment.enrollmentId } : {}),
    };
  }

  /**
   * Signs `preimage` (hashed with `digest` by both signers) with device + cosigner, by
   * the wasm core's signing flow: from the presignature pool where the account and
   * `presign` mode allow it, else a signing session. The cosigner checks its policy for
   * `payloadKind` first; the signature is verified against the account key. For
   * `ethereum_typed_data` the cosigner receives `opts.cosignerPayload` (the typed data's
   * JSON) in place of the preimage and derives its own.
   *
   * `opts.signal` is honoured until the cosigner is asked (or a presignature is taken);
   * from then on the signing completes.
   */
  async signPreimage(
    preimage: Uint8Array,
    digest: DigestKind,
    payloadKind: PayloadKind,
    opts: SignPreimageOptions & CrossWorkerOptions = {},
  ): Promise<SignatureResult> {
    const abort = callSignal(opts);
    try {
      return await this.signPreimageWith(preimage, digest, payloadKind, opts, abort.signal);
    } finally {
      abort.close();
    }
  }

  private async signPreimageWith(
    preimage: Uint8Array,
    digest: DigestKind,
    payloadKind: PayloadKind,
    opts: SignPreimageOptions,
    signal: AbortSignal | undefined,
  ): Promise<SignatureResult> {
    const rep = new Reporter(opts.onProgress, [
      ["connect", 5],
      ["sign", 95],
    ]);
    throwIfAborted(signal, "signing");
    if (!(preimage instanceof Uint8Array) || preimage.length === 0) throw new InvalidInputError("nothing to sign: empty preimage");
    const presignMode: PresignMode = opts.presign ?? "auto";
    if (presignMode !== "auto" && presignMode !== "off" && presignMode !== "require") {
      throw new InvalidInputError(`presign must be "auto", "off" or "require", got ${JSON.stringify(presignMode)}`);
    }
    const cosignerPayload = opts.cosignerPayload;
    const bitcoin = (opts as PsbtInputSigning).bitcoin;
    if (payloadKind === "ethereum_typed_data") {
      if (!(cosignerPayload instanceof Uint8Array) || cosignerPayload.length === 0) {
        throw new InvalidInputError("EIP-712 typed data is signed with its JSON for the cosigner (cosignerPayload): use signTypedData");
      }
    } else if (payloadKind === "bitcoin_psbt_input") {
      if (!(cosignerPayload instanceof Uint8Array) || bitcoin === undefined) {
        throw new InvalidInputError("a PSBT input is signed with the whole PSBT: use signPsbt");
      }
    } else if (cosignerPayload !== undefined) {
      throw new InvalidInputError("cosignerPayload is only sent for ethereum_typed_data");
    }
    const rec = await this.record();
    const acct = this.findAccount(rec, opts.accountId);
    const path = normPath(opts.derivationPath);
    await this.wasm();
    throwIfAborted(signal, "signing");
    const party = await this.party(rec);
    throwIfAborted(signal, "signing");
    // Abort is honoured until the cosigner is asked or a presignature is taken.
    let committed = false;
    const checkAbort = () => {
      if (!committed) throwIfAborted(signal, "signing");
    };
    const base = this.flowHost(this.cosigner(), (ev) => {
      if (ev.phase === "sign") {
        rep.emit("sign", ev.percent, ev.finished ? "signed" : `signing round ${ev.round}/${ev.totalRounds}`, {
          round: ev.round,
          totalRounds: ev.totalRounds,
          finished: ev.finished,
        });
      } else if (ev.phase === "connect") {
        rep.emit("connect", ev.percent, ev.finished ? "signing session opened" : "asking the cosigner to sign");
      }
    });
    const poolHost = pool.poolHost(this.poolWallet(rec), () => party.poolKeyMaterial(rec.walletName));
    const host = {
      ...base,
      callCosigner: (path: string, body: Uint8Array): Promise<CosignerAnswer> => {
        checkAbort();
        committed = true;
        return base.callCosigner(path, body);
      },
      ...poolHost,
      takePresignature: async (...args: Parameters<typeof poolHost.takePresignature>) => {
        checkAbort();
        const got = await poolHost.takePresignature(...args);
        if (got) committed = true;
        return got;
      },
    };
    let sig: FlowSignature;
    try {
      const input: Record<string, unknown> = {
        accountId: acct.accountId,
        derivationPath: path,
        preimage,
        digest,
        payloadKind,
        presign: presignMode,
        ...this.sessionConfig(),
      };
      if (cosignerPayload !== undefined) input.cosignerPayload = cosignerPayload;
      if (bitcoin !== undefined) input.bitcoin = bitcoin;
      sig = await party.sign(host, input);
    } catch (e) {
      const err = flowError(e, "signing", { accountId: acct.accountId });
      if (err instanceof PresignatureError && err.details?.reason === undefined) {
        // Independent accounts: the root pool; HD accounts: the pool of the path signed at.
        const eligible = acct.kind === "independent" ? path === "" : path !== "";
        const reason = !eligible ? "not_eligible" : err.details?.presignature ?? "empty";
        throw new PresignatureError(err.message, { ...err.details, reason });
      }
      throw err;
    }
    const f = sig.fastPath;
    const out = signatureResult(sig, rep.elapsedMs);
    if (sig.presigned && f.timings) {
      out.onlineMs = f.timings.totalMs;
      out.presign = { ...(f.used ? { presignatureId: f.used } : {}), timings: f.timings };
    } else if (f.tried) {
      const last = f.discarded[f.discarded.length - 1];
      out.presign = last ? { presignatureId: last[0], fallback: last[1] } : { fallback: "empty" };
    }
    return out;
  }

  /** See `WalletClient.signMessageWithRecovery`. */
  async signMessageWithRecovery(message: SignableMessageInput, opts: RecoverySignOptions & CrossWorkerOptions = {}): Promise<SignatureResult> {
    const preimage = messagePreimage(message);
    const rep = new Reporter(opts.onProgress, [
      ["agent", 40],
      ["sign", 60],
    ]);
    const abort = callSignal(opts);
    try {
      const rec = await this.record();
      const acct = this.findAccount(rec, opts.accountId);
      const path = normPath(opts.derivationPath);
      const agent = new AgentClient(this.config.agentUrl, this.config.agentToken);
      const req = await agent.requestSign(rec.walletId, {
        account_id: acct.accountId,
        path: path || "m",
        preimage_hex: toHex(preimage).slice(2),
        digest: "keccak256",
        chain: "legacy",
      });
      rep.emit("agent", 0, `confirm request ${req.request_id} on your recovery agent`, {
        requestId: req.request_id,
        confirmByMs: req.confirm_by_ms,
      });
      const running = await agent.waitRequest(req.request_id, {
        timeoutMs: opts.timeoutMs ?? 600_000,
        untilSession: true,
        ...(abort.signal ? { signal: abort.signal } : {}),
      });
      const room = running.session;
      if (!room) throw new AgentError("agent_failed", "recovery agent opened no signing room", { requestId: req.request_id });
      rep.emit("agent", 100, "confirmed on the recovery agent", { requestId: req.request_id, finished: true });
      await this.wasm();
      const party = await this.party(rec);
      const host = this.flowHost(this.cosigner(), (ev) => {
        if (ev.phase === "sign") {
          rep.emit("sign", ev.percent, ev.finished ? "signed" : `signing round ${ev.round}/${ev.totalRounds}`, {
            round: ev.round,
            totalRounds: ev.totalRounds,
            finished: ev.finished,
          });
        }
      });
      const { gatewayUrl: _override, ...session } = this.sessionConfig();
      let sig: FlowSignature;
      try {
        sig = await party.pairSign(host, {
          accountId: acct.accountId,
          derivationPath: path,
          preimage,
          digest: "keccak256",
          room: { sessionId: room.session_id, room: room.room, roomToken: room.room_token, gatewayUrl: room.gateway_url },
          ...session,
        });
      } catch (e) {
        throw flowError(e, "signing with the recovery agent", { accountId: acct.accountId, requestId: req.request_id });
      }
      return signatureResult(sig, rep.elapsedMs);
    } finally {
      abort.close();
    }
  }

  /**
   * Signs an EIP-191 personal message (`personal_sign`; `v` is 27/28). A string is
   * always its UTF-8 text (`"0x1234"` signs six characters); bytes are a `Uint8Array`
   * or `{ raw: Uint8Array | 0x-hex }`.
   */
  async signMessage(message: SignableMessageInput, opts: SignOptions & CrossWorkerOptions = {}): Promise<SignatureResult> {
    return this.signPreimage(messagePreimage(message), "keccak256", "ethereum_message", opts);
  }

  /**
   * Signs an unsigned Ethereum transaction: its signing payload (legacy RLP with or
   * without EIP-155 chain id, or a typed EIP-2930 / EIP-1559 / EIP-4844 (envelope, no
   * sidecars) / EIP-7702 payload starting with its type byte), decoded and re-encoded
   * by viem. Returns the signature, the serialized signed transaction and its hash.
   */
  async signTransaction(unsignedTx: Uint8Array | string, opts: SignOptions & CrossWorkerOptions = {}): Promise<SignedTransaction> {
    const tx = parseUnsignedTx(unsignedTx);
    const sig = await this.signPreimage(tx.payload, "keccak256", "ethereum_transaction", opts);
    const signed = serializeSignedTx(tx, sig);
    return {
      ...sig,
      v: Number(txV(tx, sig.yParity)),
      txType: tx.type,
      signedTransaction: signed,
      transactionHash: keccakHex(signed),
    };
  }

  /**
   * Signs EIP-712 typed data (viem's `TypedDataDefinition`; `eth_signTypedData_v4`):
   * the preimage `0x1901 || domainSeparator || hashStruct(message)` is computed here with
   * viem, the cosigner receives the typed data's JSON and computes its own (the digests
   * must agree). `v` is 27/28; `rsv` is the 65-byte signature.
   */
  async signTypedData<const T extends TypedData | Record<string, unknown>, P extends keyof T | "EIP712Domain">(
    typedData: TypedDataDefinition<T, P>,
    opts: SignOptions & CrossWorkerOptions = {},
  ): Promise<SignatureResult> {
    const p = typedDataPayload(typedData as TypedDataDefinition);
    return this.signPreimage(p.preimage, "keccak256", "ethereum_typed_data", { ...opts, cosignerPayload: p.json });
  }

  /**
   * Signs an EIP-7702 authorization (`0x05 || rlp([chain_id, address, nonce])`,
   * keccak-256): the result is viem's `SignedAuthorization` (for a type-4 transaction's
   * `authorizationList`) with the signature's facts.
   */
  async signAuthorization(request: AuthorizationRequest, opts: SignOptions & CrossWorkerOptions = {}): Promise<SignedAuthorizationResult> {
    const { preimage, authorization } = authorizationPreimage(request);
    const sig = await this.signPreimage(preimage, "keccak256", "ethereum_authorization", opts);
    return { ...sig, ...signedAuthorization(authorization, sig) };
  }

  // ---------------------------------------------------------------------------------
  // presign-web: presignature pools (the flows are the wasm core's; src/pool.ts stores)

  /** Validated `presignPool` settings. */
  private presignConfig(): { target: number; auto: boolean; concurrency: number } {
    const c = this.config.presignPool ?? {};
    const target = c.target ?? pool.DEFAULT_TARGET;
    const concurrency = c.concurrency ?? pool.DEFAULT_CONCURRENCY;
    if (!Number.isInteger(target) || target < 0 || target > pool.MAX_TARGET) {
      throw new ConfigError(`presignPool.target must be an integer in 0..=${pool.MAX_TARGET}, got ${String(target)}`);
    }
    if (!Number.isInteger(concurrency) || concurrency < 1 || concurrency > 4) {
      throw new ConfigError(`presignPool.concurrency must be an integer in 1..=4, got ${String(concurrency)}`);
    }
    return { target, auto: c.auto !== false, concurrency };
  }

  private poolWallet(rec: storage.WalletRecord): pool.PoolWallet {
    return { walletName: rec.walletName, walletId: rec.walletId, protection: rec.protection };
  }

  /**
   * The account and path of a pool: an independent account at its root (`""`), an HD
   * account at a child path (default: its first address, {@link pool.DEFAULT_HD_PATH}).
   */
  private poolAccount(rec: storage.WalletRecord, accountId: string | undefined, derivationPath: string | undefined): { acct: AccountInfo; path: string } {
    const acct = this.findAccount(rec, accountId);
    const asked = normPath(derivationPath);
    if (acct.kind === "independent") {
      if (asked !== "") {
        throw new PresignatureError(`account ${acct.accountId} is an independent account: its presignature pool is at the root, not at ${asked}`, {
          reason: "not_eligible",
          accountId: acct.accountId,
        });
      }
      return { acct, path: "" };
    }
    return { acct, path: asked === "" ? pool.DEFAULT_HD_PATH : asked };
  }

  /** Runs the wasm refill flow (with a target) or only its status query (without) for the pool at `path` (`""`: the root). */
  private async poolFlow(rec: storage.WalletRecord, accountId: string, path: string, target: number | undefined, onProgress?: OnProgress): Promise<FlowPool> {
    const party = await this.party(rec);
    const started = Date.now();
    const host = {
      ...this.flowHost(this.cosigner(), (ev) => {
        if (!onProgress || ev.phase !== "presign") return;
        const pct = Math.round(Math.max(0, Math.min(100, ev.percent)) * 10) / 10;
        try {
          onProgress({
            phase: "presign",
            round: ev.round,
            totalRounds: ev.totalRounds,
            percent: pct,
            overallPercent: pct,
            accountId,
            finished: ev.finished,
            message: `presignatures ${ev.round}/${ev.totalRounds}`,
            elapsedMs: Date.now() - started,
          });
        } catch {
          // a listener's exception never breaks the refill
        }
      }),
      ...pool.poolHost(this.poolWallet(rec), () => party.poolKeyMaterial(rec.walletName)),
    };
    const params: Record<string, unknown> = {
      accountId,
      derivationPath: path === "" ? "m" : path,
      concurrency: this.presignConfig().concurrency,
      ...this.sessionConfig(),
    };
    if (target !== undefined) params.target = target;
    try {
      return (await party.refill(host, params)) as FlowPool;
    } catch (e) {
      throw flowError(e, target === undefined ? "presignature pool status" : "refilling presignatures", { accountId });
    }
  }

  private poolStatusOf(f: FlowPool, path: string, target: number, running: boolean): PresignPoolStatus {
    return {
      accountId: f.accountId,
      derivationPath: path,
      signers: f.signers,
      device: f.local,
      cosigner: f.cosigner,
      usable: f.usable,
      cosignerRunning: f.cosignerRunning,
      cosignerCap: f.cosignerCap,
      running,
      target,
    };
  }

  /**
   * Fills the presignature pool of an account (default: the first) at a path (an
   * independent account: its root; an HD account: `derivationPath`, default its first
   * address) up to `target` (default `presignPool.target`). Runs the presignature
   * sessions in THIS context: `WalletClient` calls it in its separate presign Worker.
   * One refill per pool at a time (across tabs and workers).
   */
  async refillPresignatures(opts: RefillOptions = {}): Promise<PresignPoolStatus> {
    const rec = await this.record();
    const { acct, path } = this.poolAccount(rec, opts.accountId, opts.derivationPath);
    const cfg = this.presignConfig();
    const target = opts.target ?? cfg.target;
    if (!Number.isInteger(target) || target < 0 || target > pool.MAX_TARGET) {
      throw new InvalidInputError(`target must be an integer in 0..=${pool.MAX_TARGET}, got ${String(target)}`);
    }
    const w = this.poolWallet(rec);
    return pool.withRefillLock(w, pool.poolName(acct.accountId, path), async () => {
      const f = await this.poolFlow(rec, acct.accountId, path, target, opts.onProgress);
      return { ...this.poolStatusOf(f, path, target, false), generated: f.generated, failed: f.failed, discarded: f.discarded, elapsedMs: f.elapsedMs };
    });
  }

  /** Pool of an account (default: the first) at a path (see {@link refillPresignatures}): this device's count and the cosigner's. */
  async presignPoolStatus(accountId?: string, derivationPath?: string): Promise<PresignPoolStatus> {
    const rec = await this.record();
    const { acct, path } = this.poolAccount(rec, accountId, derivationPath);
    const f = await this.poolFlow(rec, acct.accountId, path, undefined);
    return this.poolStatusOf(f, path, this.presignConfig().target, pool.isRefilling(this.poolWallet(rec), pool.poolName(acct.accountId, path)));
  }
}

/** Percent of a prime search: primes found, smoothed by the expected remaining time. */
function primePercent(p: PrimeProgress): number {
  if (p.done) return 100;
  let f = p.found / p.needed;
  if (p.etaMs !== undefined && p.elapsedMs > 0) f = Math.max(f, p.elapsedMs / (p.elapsedMs + p.etaMs));
  return Math.min(99, Math.round(f * 1000) / 10);
}

function primeMessage(p: PrimeProgress): string {
  if (p.done) return `safe primes ready (${p.found}/${p.needed})`;
  const eta = p.etaMs === undefined ? "" : `, ~${Math.max(1, Math.round(p.etaMs / 60_000))} min left`;
  return `safe primes ${p.found}/${p.needed}: ${p.candidates.toLocaleString("en")} candidates, ${p.workers} ${p.mode === "inline" ? "inline search" : "workers"}${eta}`;
}

/** The agent's (snake_case) form of a room. */
function agentRoomOf(r: { sessionId: string; room: string; roomToken: string; gatewayUrl: string }): AgentRoom {
  return { session_id: r.sessionId, room: r.room, room_token: r.roomToken, gateway_url: r.gatewayUrl };
}

/** Enrollments running in this context, by wallet name (a second call joins the first). */
const enrolling = new Map<string, Promise<EnrollmentInfo>>();

/** The Web Lock held while a wallet name's device enrollment runs (one per browser). */
export function enrollLockName(walletName: string): string {
  return `wallet-mpc-web/enroll/${walletName}`;
}

/** Whether this code runs inside a browser extension (a page, Worker or service worker of one). */
export function inExtension(): boolean {
  const g = globalThis as { chrome?: { runtime?: { id?: string } }; location?: { protocol?: string } };
  return typeof g.chrome?.runtime?.id === "string" || /-extension:$/.test(g.location?.protocol ?? "");
}

/** How a new wallet's shares are protected (see `WalletConfig.protection`). */
export function newWalletProtection(c: { protection?: "passphrase" | "webcrypto"; passphrase?: string }): "passphrase" | "webcrypto" {
  if (c.protection) return c.protection;
  return c.passphrase || inExtension() ? "passphrase" : "webcrypto";
}
