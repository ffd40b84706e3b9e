/**
 * The protocol core: wallet creation and signing for the device (party 0). Runs in a
 * dedicated Web Worker (see `worker.ts`) or directly in the calling thread (extension
 * service workers, environments without `Worker`): it needs only `fetch`, IndexedDB,
 * WebCrypto and (optionally) `EventSource` — no SharedArrayBuffer, no nested workers.
 * (Exception: the safe-prime search of `primes.ts` starts prime Workers — nested when the
 * core runs in the protocol Worker — wherever `Worker` exists, and runs inline otherwise.)
 */

import { AgentClient, type AgentRoom } from "./agent.js";
import { CosignerClient, normalizeUrl } from "./cosigner.js";
import {
  ConfigError,
  CosignerError,
  InvalidInputError,
  SessionError,
  StorageError,
  WalletError,
} from "./errors.js";
import { bytesToHex, hexToBytes, keccakHex, parseUnsignedTx, serializeSignedTx, txV } from "./eth.js";
import { AccountKind as PbAccountKind, DigestKind as PbDigestKind, PayloadKind as PbPayloadKind } from "./gen/wallet/cosigner/v1/cosigner_pb.js";
import type { SessionRoom } from "./gen/wallet/cosigner/v1/cosigner_pb.js";
import * as storage from "./storage.js";
import type {
  AccountInfo,
  CosignerHealth,
  CreateWalletOptions,
  DigestKind,
  OnProgress,
  PayloadKind,
  Phase,
  ProgressEvent,
  PublicKeyInfo,
  SignatureResult,
  SignedTransaction,
  SignOptions,
  StoredWalletInfo,
  WalletConfig,
  WalletInfo,
} from "./types.js";
import { loadWasm, wasmError, type Mpc } from "./wasm.js";
import * as primeStore from "./prime-store.js";
import { defaultWorkers, isPreparing, prepareOnce, PRIMES_NEEDED, stopPreparation, type CoordinatorConfig, type PrimeProgress } from "./primes.js";
import type { PrepareDeviceOptions, PreparedStatus } from "./types.js";
// presign-web: presignature pools.
import { PresignatureError } from "./errors.js";
import * as pool from "./pool.js";
import type { PresignMode, PresignPoolStatus, PresignSignInfo, RefillOptions } from "./types.js";

const DEVICE = 0;
const COSIGNER = 1;
const RECOVERY = 2;

type Bundle = InstanceType<Mpc["Bundle"]>;

/** Progress report of a wasm session (API.md). */
interface WasmProgress {
  round: number;
  totalRounds: number;
  percent: number;
  finished: boolean;
}

/** A wasm signature result (API.md). */
interface WasmSignature {
  r: string;
  s: string;
  yParity: number;
  digest: string;
  der: string;
  rsv: string;
  publicKey: string;
  ethereumAddress: string;
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
    extra: { round?: number; totalRounds?: number; accountId?: string; finished?: boolean } = {},
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
    try {
      this.cb(ev);
    } catch {
      // a listener's exception never breaks the protocol
    }
  }
}

function digestKindToPb(d: DigestKind): PbDigestKind {
  switch (d) {
    case "keccak256":
      return PbDigestKind.KECCAK256;
    case "double_sha256":
      return PbDigestKind.DOUBLE_SHA256;
    case "sha256":
      return PbDigestKind.SHA256;
    default:
      throw new InvalidInputError(`unknown digest kind ${JSON.stringify(d)}`);
  }
}

function payloadKindToPb(p: PayloadKind): PbPayloadKind {
  switch (p) {
    case "raw":
      return PbPayloadKind.RAW;
    case "ethereum_transaction":
      return PbPayloadKind.ETHEREUM_TRANSACTION;
    case "ethereum_message":
      return PbPayloadKind.ETHEREUM_MESSAGE;
    default:
      throw new InvalidInputError(`unknown payload kind ${JSON.stringify(p)}`);
  }
}

function toBytes(data: Uint8Array | string, what: string): Uint8Array {
  if (data instanceof Uint8Array) return data;
  if (typeof data === "string") {
    if (/^0x/i.test(data)) return hexToBytes(data, what);
    return new TextEncoder().encode(data);
  }
  throw new InvalidInputError(`${what} must be a Uint8Array or a string`);
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
    ethereumAddress: a.ethereumAddress,
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
  private bundleCache: Bundle | undefined;

  constructor(config: WalletConfig) {
    if (!config || typeof config !== "object") throw new ConfigError("config is missing");
    this.config = { ...config };
    this.walletName = config.walletName?.trim() || "default";
  }

  private wasm(): Promise<Mpc> {
    return loadWasm(this.config.wasmUrl);
  }

  private cosigner(): CosignerClient {
    return new CosignerClient(this.config.cosignerUrl);
  }

  /** The room with this device's gateway URL applied. */
  private room(r: SessionRoom | undefined, what: string) {
    if (!r || !r.sessionId || !r.room) {
      throw new CosignerError("cosigner_rejected", `the cosigner returned no ${what} room`);
    }
    const gatewayUrl = this.config.gatewayUrl?.trim()
      ? normalizeUrl("gateway", this.config.gatewayUrl)
      : normalizeUrl("gateway (from the cosigner)", r.gatewayUrl);
    return { sessionId: r.sessionId, room: r.room, roomToken: r.roomToken, gatewayUrl };
  }

  private sessionOpts() {
    const o: { transport?: "auto" | "eventsource" | "fetch"; timeoutMs?: number } = {};
    if (this.config.transport) o.transport = this.config.transport;
    if (this.config.sessionTimeoutMs) o.timeoutMs = this.config.sessionTimeoutMs;
    return o;
  }

  /** Cosigner health (no authentication). */
  async health(): Promise<CosignerHealth> {
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
    this.bundleCache?.free();
    this.bundleCache = undefined;
    await storage.deleteWallet(this.walletName);
    // presign-web: the presignatures and tombstones of this wallet name go with it.
    await pool.deletePool(this.walletName);
  }

  private async record(): Promise<storage.WalletRecord> {
    const rec = await storage.getWallet(this.walletName);
    if (!rec) {
      throw new StorageError("no_wallet", `no wallet named "${this.walletName}" in this browser: create one first`, {
        walletName: this.walletName,
      });
    }
    return rec;
  }

  private async bundle(rec: storage.WalletRecord): Promise<Bundle> {
    if (this.bundleCache) return this.bundleCache;
    const mpc = await this.wasm();
    let b: Bundle;
    if (rec.protection === "passphrase") {
      if (!this.config.passphrase) {
        throw new StorageError("wrong_passphrase", `wallet "${rec.walletName}" is protected by a passphrase: set one`);
      }
      try {
        b = mpc.Bundle.decryptWithPassphrase(rec.passphraseFile ?? "", this.config.passphrase);
      } catch (e) {
        throw wasmError(e, "opening the key shares");
      }
    } else {
      const bytes = await storage.decryptBundle(rec);
      try {
        b = mpc.Bundle.fromBytes(bytes!);
      } finally {
        bytes?.fill(0);
      }
    }
    if (b.partyIndex !== DEVICE) {
      b.free();
      throw new StorageError("storage", `stored share belongs to party ${String(b.partyIndex)}, not the device`);
    }
    this.bundleCache = b;
    return b;
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
  async getPublicKey(accountId?: string, derivationPath?: string): Promise<PublicKeyInfo> {
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
        ethereumAddress: mpc.ethereumAddress(pk),
        bitcoinAddress: mpc.bitcoinAddress(pk, "mainnet"),
      };
    } catch (e) {
      throw wasmError(e, "deriving the public key");
    }
  }

  /** EIP-55 address of an account at a path. */
  async getAddress(accountId?: string, derivationPath?: string): Promise<string> {
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

  /**
   * Creates a wallet: device identity and primes here, recovery identity and job at the
   * agent, rooms from the cosigner, aux info and one DKG per account in wasm over the
   * gateway, checks that all three parties agree, stores the encrypted share, confirms.
   */
  async createWallet(opts: CreateWalletOptions = {}): Promise<WalletInfo> {
    const accounts = opts.accounts ?? 1;
    const kind = opts.kind ?? "hd";
    if (!Number.isInteger(accounts) || accounts < 1 || accounts > 100) {
      throw new InvalidInputError(`accounts must be an integer between 1 and 100, got ${String(accounts)}`);
    }
    if (kind !== "hd" && kind !== "independent") throw new InvalidInputError(`kind must be "hd" or "independent"`);
    const devPrimes = this.config.insecureDevPrimes === true;
    const protection = newWalletProtection(this.config);
    if (protection === "passphrase" && !this.config.passphrase) {
      throw new ConfigError(
        inExtension()
          ? "inside a browser extension new wallets are protected by a passphrase: pass `passphrase` (or `protection: \"webcrypto\"` to opt out explicitly)"
          : "`protection: \"passphrase\"` needs a `passphrase`",
      );
    }
    // Phase "primes" events carry the search counters (`event.primes`).
    let lastPrimes: PrimeProgress | undefined;
    const userProgress = opts.onProgress;
    const onProgress: OnProgress | undefined =
      userProgress && ((ev) => userProgress(ev.phase === "primes" && lastPrimes ? { ...ev, primes: lastPrimes } : ev));
    const rep = new Reporter(onProgress, [
      ["connect", 2],
      ["primes", devPrimes ? 0 : 60],
      ["aux-info", 60],
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

    // 1. Reach everybody before any heavy work.
    rep.emit("connect", 0, "contacting the cosigner and the recovery agent");
    const mpc = await this.wasm();
    if (protection === "passphrase" && this.config.allowWeakPassphrase !== true && this.config.insecureFastKdf !== true) {
      try {
        mpc.checkPassphrase(this.config.passphrase ?? "");
      } catch (e) {
        throw new ConfigError(`the passphrase: ${(e as Error).message ?? String(e)} (allowWeakPassphrase overrides)`);
      }
    }
    const health = await cosigner.health();
    const recoveryIdentity = await agent.identity();
    rep.emit("connect", 100, "cosigner and recovery agent reachable");

    // 2. Primes of the device's Paillier keys.
    let primes: { primes: [string, string, string, string] };
    // (the wasm returns plain objects typed `any`; shapes per crates/mpc-wasm/API.md)
    const tp = Date.now();
    let primesSource: NonNullable<WalletInfo["primesSource"]>;
    if (devPrimes) {
      const f = mpc.devFixturePrimes();
      const set = f.parties[DEVICE];
      if (!set) throw new WalletError("wasm", "the wasm core has no dev prime fixture for party 0");
      primes = set;
      primesSource = "insecure-dev-fixture";
    } else {
      // Prepared primes (prepareDevice) when complete; otherwise the parallel search,
      // resuming any partial preparation. Consumed after the wallet is committed.
      const got = await this.devicePrimes(mpc, rep, opts.primeWorkers, (p) => (lastPrimes = p));
      primes = got.set;
      primesSource = got.source;
    }
    const fixturePrimes = devPrimes || mpc.isPublicFixturePrimes(primes);
    t.primesMs = Date.now() - tp;

    // 3. Identities and rooms.
    const id = mpc.generateIdentity() as { secret: Uint8Array; publicIdentity: string };
    const secret: Uint8Array = id.secret;
    try {
      let signed;
      try {
        signed = mpc.signCreateWallet(secret, {
          recoveryIdentity,
          accounts,
          kind: kind === "hd" ? PbAccountKind.HD : PbAccountKind.INDEPENDENT,
          label: opts.label ?? "",
        });
      } catch (e) {
        throw wasmError(e, "signing CreateWallet");
      }
      const created = await cosigner.createWallet(signed);
      const walletId = created.walletId;
      const cosignerIdentity = created.cosignerIdentity.toLowerCase();
      if (!/^[0-9a-f]{128}$/.test(cosignerIdentity)) {
        throw new CosignerError("cosigner_rejected", "the cosigner returned an invalid identity");
      }
      if (health.identity && health.identity.toLowerCase() !== cosignerIdentity) {
        throw new CosignerError("cosigner_rejected", "the cosigner's identity changed between Health and CreateWallet");
      }
      if (created.accounts.length !== accounts) {
        throw new CosignerError("cosigner_rejected", `asked for ${accounts} accounts, the cosigner opened ${created.accounts.length}`);
      }
      const roster: Record<number, string> = {
        [DEVICE]: id.publicIdentity,
        [COSIGNER]: cosignerIdentity,
        [RECOVERY]: recoveryIdentity,
      };
      const agentRoom = (r: SessionRoom | undefined): AgentRoom => ({
        session_id: r?.sessionId ?? "",
        room: r?.room ?? "",
        room_token: r?.roomToken ?? "",
        gateway_url: r?.gatewayUrl ?? "",
      });

      // 4. The recovery agent joins the same rooms.
      const jobId = await agent.createWallet({
        wallet_id: walletId,
        cosigner_identity: cosignerIdentity,
        device_identity: id.publicIdentity,
        kind,
        aux_info: agentRoom(created.auxInfo),
        accounts: created.accounts.map((a) => ({ account_id: a.accountId, keygen: agentRoom(a.keygen) })),
      });
      // Poll the agent alongside our sessions so that its failure ends the wait early.
      const agentAbort = { aborted: false };
      let agentProgress = "";
      const agentDone = agent.waitJob(jobId, {
        timeoutMs: this.config.agentTimeoutMs ?? 20 * 60_000,
        intervalMs: 1000,
        signal: agentAbort,
        onProgress: (p) => {
          agentProgress = `${p.stage} ${p.percent}%`;
        },
      });
      // Surface an agent failure even while a long wasm step runs.
      let agentFailure: unknown;
      agentDone.catch((e) => {
        agentFailure = e;
      });

      let bundle: Bundle;
      try {
        bundle = new mpc.Bundle(DEVICE, secret, { [COSIGNER]: cosignerIdentity, [RECOVERY]: recoveryIdentity });
      } catch (e) {
        throw wasmError(e, "creating the key-share bundle");
      }
      try {
        // 5. Aux info.
        const ta = Date.now();
        rep.emit("aux-info", 0, "aux info (Paillier keys and proofs)");
        const auxRoom = this.room(created.auxInfo, "aux-info");
        let aux;
        try {
          aux = await mpc.runAuxInfo(
            { room: auxRoom, me: DEVICE, identitySecret: secret, roster, ...this.sessionOpts() },
            primes,
            (p: WasmProgress) => rep.emit("aux-info", p.percent, `aux info round ${p.round}/${p.totalRounds}`, { round: p.round, totalRounds: p.totalRounds, finished: p.finished }),
          );
        } catch (e) {
          if (agentFailure) throw agentFailure;
          throw wasmError(e, "aux info", { sessionId: auxRoom.sessionId });
        }
        bundle.setAuxInfo(aux);
        t.auxInfoMs = Date.now() - ta;
        rep.emit("aux-info", 100, "aux info done", { finished: true });

        // 6. One DKG per account.
        const tk = Date.now();
        const createdAt = Math.floor(Date.now() / 1000);
        const mine: Record<string, string> = {};
        for (const [k, acct] of created.accounts.entries()) {
          if (agentFailure) throw agentFailure;
          const room = this.room(acct.keygen, "keygen");
          const base = (k / accounts) * 100;
          const label = `key generation ${accounts > 1 ? `${k + 1}/${accounts} ` : ""}`;
          let share;
          try {
            share = await mpc.runKeygen({ room, me: DEVICE, identitySecret: secret, roster, ...this.sessionOpts() }, (p: WasmProgress) =>
              rep.emit("keygen", base + p.percent / accounts, `${label}round ${p.round}/${p.totalRounds}`, {
                round: p.round,
                totalRounds: p.totalRounds,
                accountId: acct.accountId,
                finished: false,
              }),
            );
          } catch (e) {
            if (agentFailure) throw agentFailure;
            throw wasmError(e, `key generation of ${acct.accountId}`, { sessionId: room.sessionId });
          }
          let info;
          try {
            info = bundle.addAccount(acct.accountId, kind, share, createdAt);
          } catch (e) {
            throw wasmError(e, `storing the share of ${acct.accountId}`);
          }
          mine[acct.accountId] = info.publicKey;
        }
        t.keygenMs = Date.now() - tk;
        rep.emit("keygen", 100, "key generation done", { finished: true });

        // 7. The recovery party must have the same keys.
        rep.emit("agent", 0, "waiting for the recovery agent");
        const poll = setInterval(() => rep.emit("agent", 50, `waiting for the recovery agent (${agentProgress})`), 1000);
        let theirs: Record<string, string>;
        try {
          theirs = await agentDone;
        } finally {
          clearInterval(poll);
        }
        for (const [acctId, pk] of Object.entries(mine)) {
          if ((theirs[acctId] ?? "").toLowerCase() !== pk.toLowerCase()) {
            throw new SessionError("verification_failed", `the recovery agent obtained a different public key for ${acctId}`, {
              accountId: acctId,
            });
          }
        }
        rep.emit("agent", 100, "recovery agent holds its share");

        // 8. Persist before confirming: from now on these shares are the user's funds.
        rep.emit("store", 0, "encrypting and storing the key share");
        const accountsInfo = bundle.accounts().map(mapAccount);
        const meta: storage.NewWallet = {
          walletName: this.walletName,
          walletId,
          accounts: accountsInfo,
          protection,
          insecureDevPrimes: fixturePrimes,
          createdAtMs: Date.now(),
          cosignerUrl: cosigner.url,
          partyIndex: DEVICE,
        };
        if (protection === "passphrase" && this.config.passphrase) {
          let file: string;
          try {
            file = bundle.encryptWithPassphrase(this.config.passphrase, this.config.insecureFastKdf === true);
          } catch (e) {
            throw wasmError(e, "encrypting the key shares");
          }
          await storage.putNewWallet(meta, { passphraseFile: file });
        } else {
          const bytes = bundle.toBytes();
          try {
            await storage.putNewWallet(meta, { bundle: bytes });
          } finally {
            bytes.fill(0);
          }
        }
        rep.emit("store", 100, "key share stored");

        // 9. Confirm.
        const tc = Date.now();
        rep.emit("confirm", 0, "confirming with the cosigner");
        let auth;
        try {
          auth = mpc.signAuth(secret, "ConfirmWallet", walletId, DEVICE, { publicKeys: mine });
        } catch (e) {
          throw wasmError(e, "signing ConfirmWallet");
        }
        const conf = await cosigner.confirmWallet(auth, mine);
        if (!conf.committed) {
          throw new CosignerError("cosigner_rejected", "the cosigner did not commit the wallet (its keys differ?)");
        }
        t.confirmMs = Date.now() - tc;
        // The primes now belong to this wallet's aux info: never reuse them.
        if (primesSource !== "insecure-dev-fixture") await this.consumePrimes();
        t.totalMs = rep.elapsedMs;
        rep.emit("confirm", 100, "wallet created");
        this.bundleCache?.free();
        this.bundleCache = undefined;
        return {
          walletId,
          walletName: this.walletName,
          accounts: accountsInfo,
          committed: true,
          protection: meta.protection,
          insecureDevPrimes: fixturePrimes,
          timings: t,
          primesSource,
        };
      } finally {
        agentAbort.aborted = true;
        bundle.free();
      }
    } finally {
      secret.fill(0);
    }
  }

  /**
   * Signs `preimage` (hashed with `digest` by both signers) with device + cosigner.
   * The cosigner checks its policy for `payloadKind` first. The signature is verified
   * against the account key before it is returned.
   */
  async signPreimage(
    preimage: Uint8Array,
    digest: DigestKind,
    payloadKind: PayloadKind,
    opts: SignOptions = {},
  ): Promise<SignatureResult> {
    const rep = new Reporter(opts.onProgress, [
      ["connect", 5],
      ["sign", 95],
    ]);
    if (!(preimage instanceof Uint8Array) || preimage.length === 0) throw new InvalidInputError("nothing to sign: empty preimage");
    const rec = await this.record();
    const acct = this.findAccount(rec, opts.accountId);
    const path = normPath(opts.derivationPath);
    const mpc = await this.wasm();
    const bundle = await this.bundle(rec);
    const pbDigest = digestKindToPb(digest);

    // presign-web: the fast path, one round trip from the presignature pool.
    const presignMode: PresignMode = opts.presign ?? "auto";
    if (presignMode !== "auto" && presignMode !== "off" && presignMode !== "require") {
      throw new InvalidInputError(`presign must be "auto", "off" or "require", got ${JSON.stringify(presignMode)}`);
    }
    const eligible = acct.kind === "independent" && path === "";
    if (presignMode === "require" && !eligible) {
      throw new PresignatureError(
        acct.kind !== "independent"
          ? `account ${acct.accountId} is an HD account: presignatures exist only for independent accounts (the protocol forbids presignatures with HD derivation)`
          : `presignatures sign at the root of an independent account only, not at ${path}`,
        { reason: "not_eligible", accountId: acct.accountId },
      );
    }
    let presignInfo: PresignSignInfo | undefined;
    if (eligible && presignMode !== "off") {
      const fast = await this.signFromPool(rec, bundle, mpc, acct, preimage, digest, payloadKind, rep);
      if ("result" in fast) return fast.result;
      if (presignMode === "require") throw fast.error;
      presignInfo = fast.info;
    }

    const expected = await this.getPublicKey(acct.accountId, path);

    rep.emit("connect", 0, "asking the cosigner to sign");
    const secret = bundle.identitySecret();
    let started;
    try {
      let auth;
      try {
        auth = mpc.signAuth(secret, "StartSign", rec.walletId, DEVICE, {
          accountId: acct.accountId,
          derivationPath: path,
          preimage,
          digest: pbDigest,
          payloadKind: payloadKindToPb(payloadKind),
        });
      } catch (e) {
        throw wasmError(e, "signing StartSign");
      }
      started = await this.cosigner().startSign(auth, {
        accountId: acct.accountId,
        derivationPath: path,
        preimage,
        digest: pbDigest,
        payloadKind: payloadKindToPb(payloadKind),
      });
    } finally {
      secret.fill(0);
    }
    const ownDigest = mpc.digest(digest, preimage);
    if (started.digest && started.digest.toLowerCase().replace(/^0x/, "") !== ownDigest) {
      throw new CosignerError("cosigner_rejected", `the cosigner would sign digest ${started.digest}, expected ${ownDigest}`);
    }
    const signers = [...started.signers].sort((a, b) => a - b);
    if (!signers.includes(DEVICE) || !signers.includes(COSIGNER) || signers.length !== 2) {
      throw new CosignerError("cosigner_rejected", `unexpected signer set [${signers.join(", ")}]`);
    }
    rep.emit("connect", 100, "signing session opened");
    const room = this.room(started.session, "signing");
    const signOpts: Record<string, unknown> = {
      room,
      signers,
      accountId: acct.accountId,
      derivationPath: path,
      preimage,
      digest,
      ...this.sessionOpts(),
    };
    let sig: WasmSignature;
    try {
      sig = await mpc.runSign(bundle, signOpts as never, (p: WasmProgress) =>
        rep.emit("sign", p.percent, `signing round ${p.round}/${p.totalRounds}`, { round: p.round, totalRounds: p.totalRounds, finished: p.finished }),
      );
    } catch (e) {
      throw wasmError(e, "signing", { sessionId: room.sessionId, requestId: started.requestId });
    }
    if (sig.publicKey.toLowerCase() !== expected.publicKey.toLowerCase()) {
      throw new SessionError("verification_failed", "the signature was made by an unexpected key");
    }
    rep.emit("sign", 100, "signed", { finished: true });
    const yParity = sig.yParity === 1 ? 1 : 0;
    return {
      accountId: acct.accountId,
      derivationPath: path || "m",
      r: `0x${sig.r}`,
      s: `0x${sig.s}`,
      yParity,
      v: 27 + yParity,
      rsv: `0x${sig.rsv}`,
      der: sig.der,
      digest: `0x${sig.digest}`,
      publicKey: sig.publicKey,
      ethereumAddress: sig.ethereumAddress,
      signers,
      requestId: started.requestId,
      elapsedMs: rep.elapsedMs,
      presigned: false,
      ...(presignInfo ? { presign: presignInfo } : {}),
    };
  }

  /** Signs an EIP-191 personal message (`personal_sign`): `v` is 27/28. */
  async signMessage(message: Uint8Array | string, opts: SignOptions = {}): Promise<SignatureResult> {
    const mpc = await this.wasm();
    const msg = toBytes(message, "message");
    let preimage: Uint8Array;
    try {
      preimage = mpc.eip191Preimage(msg);
    } catch (e) {
      throw wasmError(e, "EIP-191 preimage");
    }
    return this.signPreimage(preimage, "keccak256", "ethereum_message", opts);
  }

  /**
   * Signs an unsigned Ethereum transaction: its signing payload (legacy RLP with or
   * without EIP-155 chain id, or a typed EIP-2930 / EIP-1559 payload starting with its
   * type byte). Returns the signature, the serialized signed transaction and its hash.
   */
  async signTransaction(unsignedTx: Uint8Array | string, opts: SignOptions = {}): Promise<SignedTransaction> {
    const payload = typeof unsignedTx === "string" ? hexToBytes(unsignedTx, "transaction") : unsignedTx;
    if (!(payload instanceof Uint8Array)) throw new InvalidInputError("transaction must be bytes or hex");
    const tx = parseUnsignedTx(payload);
    const sig = await this.signPreimage(payload, "keccak256", "ethereum_transaction", opts);
    const signed = serializeSignedTx(tx, hexToBytes(sig.r), hexToBytes(sig.s), sig.yParity);
    const v = txV(tx, sig.yParity);
    return {
      ...sig,
      v: Number(v),
      txType: tx.type,
      signedTransaction: `0x${bytesToHex(signed)}`,
      transactionHash: keccakHex(signed),
    };
  }

  // ---------------------------------------------------------------------------------
  // presign-web: presignature pools (src/pool.ts)

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

  private poolContext(rec: storage.WalletRecord, bundle: Bundle, mpc: Mpc): pool.PoolContext {
    return {
      walletName: rec.walletName,
      walletId: rec.walletId,
      protection: rec.protection,
      mpc,
      cosigner: this.cosigner(),
      identitySecret: () => bundle.identitySecret(),
    };
  }

  private independentAccount(rec: storage.WalletRecord, accountId: string | undefined): AccountInfo {
    const acct = this.findAccount(rec, accountId);
    if (acct.kind !== "independent") {
      throw new PresignatureError(
        `account ${acct.accountId} is an HD account: presignatures exist only for independent accounts (create the wallet with kind "independent")`,
        { reason: "not_eligible", accountId: acct.accountId },
      );
    }
    return acct;
  }

  /** One signature from the pool, or why not (the caller falls back or throws). */
  private async signFromPool(
    rec: storage.WalletRecord,
    bundle: Bundle,
    mpc: Mpc,
    acct: AccountInfo,
    preimage: Uint8Array,
    digest: DigestKind,
    payloadKind: PayloadKind,
    rep: Reporter,
  ): Promise<{ result: SignatureResult } | { info: PresignSignInfo; error: PresignatureError }> {
    rep.emit("connect", 0, "signing from the presignature pool");
    const out = await pool.signFromPool(this.poolContext(rec, bundle, mpc), {
      accountId: acct.accountId,
      publicKey: acct.publicKey,
      preimage,
      digest,
      pbDigest: digestKindToPb(digest),
      pbPayloadKind: payloadKindToPb(payloadKind),
    });
    if (out.kind === "signed") {
      rep.emit("sign", 100, "signed from the presignature pool", { finished: true });
      const sig = out.sig;
      const yParity = sig.yParity === 1 ? 1 : 0;
      return {
        result: {
          accountId: acct.accountId,
          derivationPath: "m",
          r: `0x${sig.r}`,
          s: `0x${sig.s}`,
          yParity,
          v: 27 + yParity,
          rsv: `0x${sig.rsv}`,
          der: sig.der,
          digest: `0x${sig.digest}`,
          publicKey: sig.publicKey,
          ethereumAddress: sig.ethereumAddress,
          signers: out.signers,
          requestId: out.requestId,
          elapsedMs: rep.elapsedMs,
          presigned: true,
          onlineMs: out.timings.totalMs,
          presign: { presignatureId: out.presignatureId, timings: out.timings },
        },
      };
    }
    if (out.kind === "empty") {
      return { info: { fallback: "empty" }, error: pool.requireError("empty", acct.accountId) };
    }
    const reason = out.kind === "unavailable" ? out.reason : "corrupt";
    return {
      info: { fallback: reason, presignatureId: out.presignatureId },
      error: pool.requireError(reason, acct.accountId, { presignatureId: out.presignatureId, cause: out.message }),
    };
  }

  /**
   * Fills the presignature pool of an independent account (default: the first) up to
   * `target` (default `presignPool.target`). Runs the presignature sessions in THIS
   * context: `WalletClient` calls it in its separate presign Worker.
   */
  async refillPresignatures(opts: RefillOptions = {}): Promise<PresignPoolStatus> {
    const rec = await this.record();
    const acct = this.independentAccount(rec, opts.accountId);
    const cfg = this.presignConfig();
    const target = opts.target ?? cfg.target;
    if (!Number.isInteger(target) || target < 0 || target > pool.MAX_TARGET) {
      throw new InvalidInputError(`target must be an integer in 0..=${pool.MAX_TARGET}, got ${String(target)}`);
    }
    const mpc = await this.wasm();
    const bundle = await this.bundle(rec);
    const ctx = this.poolContext(rec, bundle, mpc);
    if ((await pool.listPresignatures(ctx, acct.accountId)).length >= target) {
      return pool.poolStatus(ctx, acct.accountId, target, false);
    }
    const params: pool.RefillParams = { accountId: acct.accountId, target, concurrency: cfg.concurrency };
    if (opts.onProgress) params.onProgress = opts.onProgress;
    return pool.refillPool(
      {
        ...ctx,
        bundle,
        room: (r) => this.room(r as SessionRoom | undefined, "presign"),
        sessionOpts: this.sessionOpts(),
      },
      params,
    );
  }

  /** Pool of an independent account (default: the first): this device's count and the cosigner's. */
  async presignPoolStatus(accountId?: string): Promise<PresignPoolStatus> {
    const rec = await this.record();
    const acct = this.independentAccount(rec, accountId);
    const mpc = await this.wasm();
    const bundle = await this.bundle(rec);
    return pool.poolStatus(this.poolContext(rec, bundle, mpc), acct.accountId, this.presignConfig().target, true);
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
