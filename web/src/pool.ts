/**
 * Presignature pools of the device (party 0): encrypted storage in IndexedDB, the
 * take-once signing fast path, and the refill that runs presignature sessions with the
 * cosigner. Used by {@link WalletCore} in whatever context it runs: the protocol Worker
 * (signing), the separate presign Worker `pool-worker.ts` (background refills), or the
 * calling thread (inline mode).
 *
 * Storage: IndexedDB database `wallet-mpc-web-presign` (separate from the wallet
 * database, so that its schema evolves on its own), stores
 * - `presignatures`: one record per unused presignature, key
 *   `[walletName, walletId, accountId, presignatureId]`. The presignature (the wasm
 *   `Presignature.toBytes()`, secret) is AES-256-GCM ciphertext; the AAD binds wallet
 *   name and id, account, signer pair and presignature id, so a record moved to another
 *   key does not decrypt. The key:
 *   - `webcrypto` wallets: the wallet's own non-extractable AES-GCM key (the one that
 *     encrypts its key shares, `storage.ts`);
 *   - `passphrase` wallets: a non-extractable AES-GCM key derived with WebCrypto HKDF-SHA256
 *     from the device's identity secret, which only exists in clear after the Argon2id
 *     keystore was opened with the passphrase (the signing path opens it anyway). So the
 *     presignatures are exactly as protected as the key shares in both modes.
 * - `tombstones`: one record per presignature ever taken, same key. A presignature is
 *   never stored again under an id that has a tombstone, and a stored copy found next to
 *   a tombstone (a restored backup, a replayed record) is deleted, never used.
 *
 * Take-once: ONE readwrite transaction with durability `strict` deletes the record and
 * writes its tombstone; it must have COMMITTED before the presignature is decrypted, its
 * partial signature computed, or any request naming it sent. A crash (tab closed, reload)
 * after the commit loses that presignature; it is never used twice. The cosigner does the
 * same on its side (its store commit happens before it computes its partial).
 */

import type { CosignerClient } from "./cosigner.js";
import { CosignerError, PresignatureError, SessionError, StorageError } from "./errors.js";
import { dbOpener, plain, req, subtle, txDone } from "./idb.js";
import * as storage from "./storage.js";
import type { DigestKind, PresignPoolStatus, PresignTimings, ProgressEvent } from "./types.js";
import { wasmError, type Mpc } from "./wasm.js";

const DB_NAME = "wallet-mpc-web-presign";
const DB_VERSION = 1;
const PRESIGS = "presignatures";
const TOMBS = "tombstones";
const AAD_DOMAIN = "wallet-mpc-web/presign/v1";
const HKDF_SALT = "wallet-mpc-web/presign-pool/v1";

/** Device and cosigner. */
export const POOL_SIGNERS: readonly number[] = [0, 1];
const DEVICE = 0;
/** Most presignatures one StartPresign asks for. */
const CHUNK = 16;
/**
 * A tombstone younger than this whose outcome is still `taken` may belong to a
 * SignWithPresignature in flight (another tab or worker): its id is not released at the
 * cosigner yet. Twice the RPC deadline below.
 */
const IN_FLIGHT_MS = 60_000;
/** Deadline of SignWithPresignature. */
export const SIGN_RPC_TIMEOUT_MS = 30_000;
/** Default pool target and refill concurrency. */
export const DEFAULT_TARGET = 2;
export const DEFAULT_CONCURRENCY = 2;
export const MAX_TARGET = 32;

type PoolKey = [string, string, string, string];
/** A wasm `Presignature` handle. */
type Presig = ReturnType<Mpc["Presignature"]["fromBytes"]>;

/** A stored (encrypted) presignature. */
export interface PresignRecord {
  format: 1;
  walletName: string;
  walletId: string;
  accountId: string;
  signers: number[];
  id: string;
  createdAtMs: number;
  iv: Uint8Array;
  ciphertext: Uint8Array;
}

/** What happened to a taken presignature. */
export type TombstoneOutcome =
  /** Taken; the signature was not finished (in flight, or the context died). */
  | "taken"
  /** The cosigner issued its partial: used on both sides. */
  | "signed"
  /** The cosigner did not hold it (unknown / used). */
  | "unavailable"
  /** The request failed (refused by policy, network...): the cosigner may still hold it. */
  | "failed"
  /** Dropped while reconciling with the cosigner, or a copy found next to a tombstone. */
  | "discarded"
  /** Did not decrypt or parse. */
  | "corrupt";

/** The record left where a presignature was taken. */
export interface Tombstone {
  id: string;
  takenAtMs: number;
  outcome: TombstoneOutcome;
  updatedAtMs: number;
}

// ---------------------------------------------------------------------------------
// IndexedDB

const openDb = dbOpener(DB_NAME, DB_VERSION, [PRESIGS, TOMBS]);

function key(walletName: string, walletId: string, accountId: string, id: string): PoolKey {
  return [walletName, walletId, accountId, id];
}

/** Every key of one account (arrays sort after strings: `[]` closes the range). */
function accountRange(walletName: string, walletId: string, accountId: string): IDBKeyRange {
  return IDBKeyRange.bound([walletName, walletId, accountId], [walletName, walletId, accountId, []]);
}

function sameSigners(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

function validId(id: string): boolean {
  return typeof id === "string" && /^[A-Za-z0-9_:-]{1,128}$/.test(id);
}

// ---------------------------------------------------------------------------------
// Encryption

function aad(walletName: string, walletId: string, accountId: string, signers: readonly number[], id: string): Uint8Array<ArrayBuffer> {
  return new TextEncoder().encode([AAD_DOMAIN, walletName, walletId, accountId, signers.join("-"), id].join("\u0000"));
}

/** What the pool needs to know about the wallet. */
export interface PoolWallet {
  walletName: string;
  walletId: string;
  protection: "webcrypto" | "passphrase";
}

const keyCache = new Map<string, Promise<CryptoKey>>();

/**
 * The key that encrypts this wallet's presignatures (see the module docs). For
 * passphrase wallets `identitySecret` is called once per context (the caller zeroes
 * nothing: the returned copy is wiped here).
 */
export function poolKey(w: PoolWallet, identitySecret: () => Uint8Array): Promise<CryptoKey> {
  const cacheKey = `${w.walletName}\u0000${w.walletId}\u0000${w.protection}`;
  let k = keyCache.get(cacheKey);
  if (!k) {
    k = (async () => {
      if (w.protection === "webcrypto") {
        const wk = await storage.getWalletKey(w.walletName);
        if (!wk) throw new StorageError("storage", `the encryption key of wallet "${w.walletName}" is missing from IndexedDB`);
        return wk;
      }
      const secret = identitySecret();
      try {
        const ikm = await subtle().importKey("raw", plain(secret), "HKDF", false, ["deriveKey"]);
        return await subtle().deriveKey(
          {
            name: "HKDF",
            hash: "SHA-256",
            salt: new TextEncoder().encode(HKDF_SALT),
            info: new TextEncoder().encode(`${w.walletName}\u0000${w.walletId}\u0000party ${DEVICE}`),
          },
          ikm,
          { name: "AES-GCM", length: 256 },
          false,
          ["encrypt", "decrypt"],
        );
      } finally {
        secret.fill(0);
      }
    })();
    keyCache.set(cacheKey, k);
    k.catch(() => keyCache.delete(cacheKey));
  }
  return k;
}

// ---------------------------------------------------------------------------------
// Store operations

/**
 * Stores a presignature, encrypted. Refused (`storage`) when the id is already stored or
 * has a tombstone (it was taken before).
 */
export async function putPresignature(
  w: PoolWallet,
  cryptoKey: CryptoKey,
  accountId: string,
  signers: readonly number[],
  id: string,
  secretBytes: Uint8Array,
): Promise<void> {
  if (!validId(id)) throw new StorageError("storage", `presignature id ${JSON.stringify(id)} is not 1..=128 characters of A-Z a-z 0-9 _ : -`);
  const iv = crypto.getRandomValues(new Uint8Array(12));
  const ct = await subtle().encrypt(
    { name: "AES-GCM", iv, additionalData: aad(w.walletName, w.walletId, accountId, signers, id) },
    cryptoKey,
    plain(secretBytes),
  );
  const record: PresignRecord = {
    format: 1,
    walletName: w.walletName,
    walletId: w.walletId,
    accountId,
    signers: [...signers],
    id,
    createdAtMs: Date.now(),
    iv,
    ciphertext: new Uint8Array(ct),
  };
  const k = key(w.walletName, w.walletId, accountId, id);
  const db = await openDb();
  const tx = db.transaction([PRESIGS, TOMBS], "readwrite", { durability: "strict" });
  const done = txDone(tx);
  const [tomb, existing] = await Promise.all([req(tx.objectStore(TOMBS).getKey(k)), req(tx.objectStore(PRESIGS).getKey(k))]);
  if (tomb !== undefined || existing !== undefined) {
    tx.abort();
    await done.catch(() => undefined);
    throw new StorageError("storage", `presignature ${id} was stored or used before; refusing to store it again`, { presignatureId: id });
  }
  tx.objectStore(PRESIGS).add(record, k);
  await done;
}

/** Ids of the unused presignatures of an account and signer pair, oldest first. */
export async function listPresignatures(w: PoolWallet, accountId: string, signers: readonly number[] = POOL_SIGNERS): Promise<string[]> {
  const db = await openDb();
  const tx = db.transaction(PRESIGS, "readonly");
  const all = (await req(tx.objectStore(PRESIGS).getAll(accountRange(w.walletName, w.walletId, accountId)))) as PresignRecord[];
  return all
    .filter((r) => sameSigners(r.signers, signers))
    .sort((a, b) => a.createdAtMs - b.createdAtMs)
    .map((r) => r.id);
}

/** The tombstone of an id, if any. */
export async function getTombstone(w: PoolWallet, accountId: string, id: string): Promise<Tombstone | undefined> {
  const db = await openDb();
  const tx = db.transaction(TOMBS, "readonly");
  return (await req(tx.objectStore(TOMBS).get(key(w.walletName, w.walletId, accountId, id)))) as Tombstone | undefined;
}

/** A taken presignature (still encrypted) and what the take found. */
export interface Taken {
  record: PresignRecord;
  /** Stored copies found next to a tombstone and deleted unused. */
  refused: string[];
  /** Time until the transaction committed, ms. */
  commitMs: number;
}

/**
 * Takes the oldest presignature of an account ONCE: one readwrite transaction with
 * durability `strict` deletes the record and writes its tombstone, and this resolves
 * only after it committed. `id` picks a given presignature. Records that already have a
 * tombstone are deleted and never returned. `null` when none is left.
 */
export async function takePresignature(
  w: PoolWallet,
  accountId: string,
  signers: readonly number[] = POOL_SIGNERS,
  id?: string,
): Promise<{ taken: Taken | null; refused: string[] }> {
  const t0 = performance.now();
  const db = await openDb();
  const tx = db.transaction([PRESIGS, TOMBS], "readwrite", { durability: "strict" });
  const done = txDone(tx);
  const presigs = tx.objectStore(PRESIGS);
  const tombs = tx.objectStore(TOMBS);
  const refused: string[] = [];
  let chosen: PresignRecord | undefined;
  try {
    // Only IndexedDB requests are awaited here: the transaction stays active.
    const candidates = id
      ? ([await req(presigs.get(key(w.walletName, w.walletId, accountId, id)))].filter(Boolean) as PresignRecord[])
      : ((await req(presigs.getAll(accountRange(w.walletName, w.walletId, accountId)))) as PresignRecord[]);
    candidates.sort((a, b) => a.createdAtMs - b.createdAtMs);
    const now = Date.now();
    for (const r of candidates) {
      if (!sameSigners(r.signers, signers)) continue;
      const k = key(w.walletName, w.walletId, accountId, r.id);
      const tomb = await req(tombs.getKey(k));
      presigs.delete(k);
      if (tomb !== undefined) {
        refused.push(r.id); // a copy of a presignature taken before: never used again
        continue;
      }
      const t: Tombstone = { id: r.id, takenAtMs: now, outcome: "taken", updatedAtMs: now };
      tombs.put(t, k);
      chosen = r;
      break;
    }
    tx.commit();
  } catch (e) {
    try {
      tx.abort();
    } catch {
      // already finished
    }
    await done.catch(() => undefined);
    throw e;
  }
  await done;
  const commitMs = performance.now() - t0;
  return { taken: chosen ? { record: chosen, refused, commitMs } : null, refused };
}

/** Records what happened to a taken presignature (best effort, not on the critical path). */
export async function setOutcome(w: PoolWallet, accountId: string, id: string, outcome: TombstoneOutcome): Promise<void> {
  const db = await openDb();
  const tx = db.transaction(TOMBS, "readwrite");
  const done = txDone(tx);
  const store = tx.objectStore(TOMBS);
  const k = key(w.walletName, w.walletId, accountId, id);
  const t = (await req(store.get(k))) as Tombstone | undefined;
  const now = Date.now();
  store.put({ id, takenAtMs: t?.takenAtMs ?? now, outcome, updatedAtMs: now } satisfies Tombstone, k);
  await done;
}

/** Deletes every presignature and tombstone of a wallet name. */
export async function deletePool(walletName: string): Promise<void> {
  const db = await openDb();
  const tx = db.transaction([PRESIGS, TOMBS], "readwrite");
  const range = IDBKeyRange.bound([walletName], [walletName, []]);
  tx.objectStore(PRESIGS).delete(range);
  tx.objectStore(TOMBS).delete(range);
  await txDone(tx);
}

/** Decrypts a taken record (the plaintext is the wasm `Presignature.toBytes()`). */
export async function decryptRecord(w: PoolWallet, cryptoKey: CryptoKey, r: PresignRecord): Promise<Uint8Array> {
  try {
    const pt = await subtle().decrypt(
      { name: "AES-GCM", iv: plain(r.iv), additionalData: aad(w.walletName, w.walletId, r.accountId, r.signers, r.id) },
      cryptoKey,
      plain(r.ciphertext),
    );
    return new Uint8Array(pt);
  } catch {
    throw new StorageError("storage", `presignature ${r.id} does not decrypt (damaged, moved or another wallet's record)`, { presignatureId: r.id });
  }
}

// ---------------------------------------------------------------------------------
// Signing from the pool

/** A wasm signature result (API.md). */
export interface WasmSignature {
  r: string;
  s: string;
  yParity: number;
  digest: string;
  der: string;
  rsv: string;
  publicKey: string;
  ethereumAddress: string;
}

/** What the pool's signing and refill need from the core. */
export interface PoolContext extends PoolWallet {
  mpc: Mpc;
  cosigner: CosignerClient;
  /** A fresh copy of the device's identity secret (the callee wipes it). */
  identitySecret(): Uint8Array;
}

/** A request to sign from the pool. */
export interface PoolSignRequest {
  accountId: string;
  /** Compressed public key of the account (root). */
  publicKey: string;
  preimage: Uint8Array;
  digest: DigestKind;
  /** proto DigestKind / PayloadKind. */
  pbDigest: number;
  pbPayloadKind: number;
}

/** Result of {@link signFromPool}. */
export type PoolSignOutcome =
  | { kind: "signed"; sig: WasmSignature; presignatureId: string; requestId: string; signers: number[]; timings: PresignTimings }
  | { kind: "empty"; refused: string[] }
  | { kind: "unavailable"; reason: "unknown" | "used"; presignatureId: string; message: string }
  | { kind: "corrupt"; presignatureId: string; message: string };

function auth(ctx: PoolContext, method: string, fields: Record<string, unknown>) {
  const secret = ctx.identitySecret();
  try {
    return ctx.mpc.signAuth(secret, method, ctx.walletId, DEVICE, fields);
  } catch (e) {
    throw wasmError(e, `signing ${method}`);
  } finally {
    secret.fill(0);
  }
}

function ignore(p: Promise<unknown>): void {
  p.catch(() => undefined);
}

/**
 * Signs with one presignature of the pool: take once (committed) → decrypt → this
 * device's partial (consumes the presignature) → SignWithPresignature → combine and
 * verify against the account key. Unknown/used at the cosigner → `unavailable` (the
 * presignature is gone on both sides); every other failure throws (policy refusals as
 * `policy_denied`).
 */
export async function signFromPool(ctx: PoolContext, r: PoolSignRequest): Promise<PoolSignOutcome> {
  const t0 = performance.now();
  const { taken, refused } = await takePresignature(ctx, r.accountId, POOL_SIGNERS);
  for (const id of refused) ignore(setOutcome(ctx, r.accountId, id, "discarded"));
  if (!taken) return { kind: "empty", refused };
  const tTake = performance.now();
  const rec = taken.record;
  const id = rec.id;

  // 1. Decrypt and parse (after the commit).
  let publicData: Uint8Array;
  let mine: Uint8Array;
  let tDecrypt: number;
  try {
    const cryptoKey = await poolKey(ctx, ctx.identitySecret);
    const bytes = await decryptRecord(ctx, cryptoKey, rec);
    let p: Presig;
    try {
      p = ctx.mpc.Presignature.fromBytes(bytes);
    } catch (e) {
      throw wasmError(e, `parsing presignature ${id}`);
    } finally {
      bytes.fill(0);
    }
    try {
      if (p.id !== id || p.accountId !== r.accountId || !sameSigners(Array.from(p.signers), POOL_SIGNERS)) {
        throw new StorageError("storage", `presignature ${id} was filed under the wrong name`);
      }
      tDecrypt = performance.now();
      // 2. This device's partial signature (consumes the presignature).
      publicData = p.publicData();
      mine = p.issuePartial(r.preimage, r.digest);
    } finally {
      p.free();
    }
  } catch (e) {
    // Unusable (altered record, another wallet's, a wasm format change): discarded.
    ignore(setOutcome(ctx, r.accountId, id, "corrupt"));
    return { kind: "corrupt", presignatureId: id, message: e instanceof Error ? e.message : String(e) };
  }
  const tPartial = performance.now();

  // 3. The cosigner's partial.
  const fields = {
    accountId: r.accountId,
    presignatureId: id,
    preimage: r.preimage,
    digest: r.pbDigest,
    payloadKind: r.pbPayloadKind,
  };
  const a = auth(ctx, "SignWithPresignature", fields);
  const tAuth = performance.now();
  let answer;
  try {
    answer = await ctx.cosigner.signWithPresignature(
      a,
      { accountId: r.accountId, presignatureId: id, preimage: r.preimage, digest: r.pbDigest, payloadKind: r.pbPayloadKind },
      SIGN_RPC_TIMEOUT_MS,
    );
  } catch (e) {
    ignore(setOutcome(ctx, r.accountId, id, "failed"));
    throw e;
  }
  const tRpc = performance.now();
  if ("unavailable" in answer) {
    ignore(setOutcome(ctx, r.accountId, id, "unavailable"));
    return { kind: "unavailable", reason: answer.unavailable, presignatureId: id, message: answer.message };
  }
  const res = answer.response;
  ignore(setOutcome(ctx, r.accountId, id, "signed"));
  const ownDigest = ctx.mpc.digest(r.digest, r.preimage);
  if (res.digest && res.digest.toLowerCase().replace(/^0x/, "") !== ownDigest) {
    throw new CosignerError("cosigner_rejected", `the cosigner signed digest ${res.digest}, expected ${ownDigest}`, { presignatureId: id });
  }
  const signers = [...res.signers].sort((x, y) => x - y);
  if (!sameSigners(signers, POOL_SIGNERS)) {
    throw new CosignerError("cosigner_rejected", `unexpected signer set [${signers.join(", ")}]`, { presignatureId: id });
  }

  // 4. Combine (signers order) and verify against the account key.
  const partials = signers.map((s) => (s === DEVICE ? mine : res.partialSignature));
  let sig: WasmSignature;
  try {
    sig = ctx.mpc.combinePartialSignatures(publicData, partials, r.preimage, r.digest, r.publicKey) as WasmSignature;
  } catch (e) {
    throw wasmError(e, `combining the partial signatures of presignature ${id} (nothing usable was signed)`, {
      presignatureId: id,
      requestId: res.requestId,
    });
  }
  if (sig.publicKey.toLowerCase() !== r.publicKey.toLowerCase()) {
    throw new SessionError("verification_failed", "the pooled signature was made by an unexpected key", { presignatureId: id });
  }
  const tCombine = performance.now();
  const ms = (x: number) => Math.round(x * 1000) / 1000;
  return {
    kind: "signed",
    sig,
    presignatureId: id,
    requestId: res.requestId,
    signers,
    timings: {
      takeMs: ms(taken.commitMs),
      decryptMs: ms(tDecrypt - tTake),
      partialMs: ms(tPartial - tDecrypt),
      authMs: ms(tAuth - tPartial),
      rpcMs: ms(tRpc - tAuth),
      combineMs: ms(tCombine - tRpc),
      totalMs: ms(tCombine - t0),
    },
  };
}

// ---------------------------------------------------------------------------------
// Refill

/** What a refill needs on top of {@link PoolContext}. */
export interface RefillContext extends PoolContext {
  /** The device's key-share bundle (wasm `Bundle`). */
  bundle: unknown;
  /** The room with this device's gateway URL applied. */
  room(r: { sessionId: string; room: string; roomToken: string; gatewayUrl: string } | undefined): unknown;
  /** Transport / timeout options of wasm sessions. */
  sessionOpts: Record<string, unknown>;
}

const running = new Set<string>();
const chains = new Map<string, Promise<unknown>>();

function runningKey(w: PoolWallet, accountId: string): string {
  return `${w.walletName}\u0000${w.walletId}\u0000${accountId}`;
}

/** Whether a refill of this account runs in this context. */
export function isRefilling(w: PoolWallet, accountId: string): boolean {
  return running.has(runningKey(w, accountId));
}

/**
 * Runs `f` holding the pool lock of an account: a Web Lock (`navigator.locks`, shared by
 * every tab and worker of the origin) where available, and always an in-context queue.
 */
async function withPoolLock<T>(w: PoolWallet, accountId: string, f: () => Promise<T>): Promise<T> {
  const k = runningKey(w, accountId);
  const prev = chains.get(k) ?? Promise.resolve();
  const locks = (globalThis.navigator as { locks?: { request(name: string, cb: () => Promise<T>): Promise<T> } } | undefined)?.locks;
  const next = prev
    .catch(() => undefined)
    .then(() => (locks ? locks.request(`wallet-mpc-web/presign/${encodeURIComponent(k)}`, f) : f()));
  chains.set(k, next);
  try {
    return await next;
  } finally {
    if (chains.get(k) === next) chains.delete(k);
  }
}

interface RemotePool {
  ids: string[];
  running: number;
  cap: number;
}

async function remotePool(ctx: PoolContext, accountId: string): Promise<RemotePool> {
  const res = await ctx.cosigner.presignPoolStatus(auth(ctx, "PresignPoolStatus", { accountId }), accountId);
  const p = res.pools.find((x) => x.accountId === accountId && sameSigners([...x.signers].sort((a, b) => a - b), POOL_SIGNERS));
  return { ids: p ? [...p.presignatureIds] : [], running: p?.running ?? 0, cap: p?.cap ?? 0 };
}

/** Status of one account's pool; asks the cosigner unless `local` only. */
export async function poolStatus(ctx: PoolContext, accountId: string, target: number, askCosigner = true): Promise<PresignPoolStatus> {
  const local = await listPresignatures(ctx, accountId);
  const out: PresignPoolStatus = {
    accountId,
    signers: [...POOL_SIGNERS],
    device: local.length,
    cosigner: null,
    usable: null,
    cosignerRunning: 0,
    cosignerCap: 0,
    running: isRefilling(ctx, accountId),
    target,
  };
  if (askCosigner) {
    const remote = await remotePool(ctx, accountId);
    out.cosigner = remote.ids.length;
    out.usable = local.filter((id) => remote.ids.includes(id)).length;
    out.cosignerRunning = remote.running;
    out.cosignerCap = remote.cap;
  }
  return out;
}

/** Options of {@link refillPool}. */
export interface RefillParams {
  accountId: string;
  target: number;
  concurrency: number;
  onProgress?: (ev: ProgressEvent) => void;
}

/**
 * Fills the pool of an independent account up to `target`: reconciles with the cosigner
 * (drops local presignatures the cosigner does not hold; releases at the cosigner the
 * ones this device no longer holds), asks StartPresign for the rest, runs this device's
 * side of every granted session (`concurrency` at once) and stores each result
 * encrypted. Returns the settled status. Serialised per account across tabs/workers.
 */
export function refillPool(ctx: RefillContext, p: RefillParams): Promise<PresignPoolStatus> {
  return withPoolLock(ctx, p.accountId, async () => {
    const rk = runningKey(ctx, p.accountId);
    running.add(rk);
    try {
      return await refillLocked(ctx, p);
    } finally {
      running.delete(rk);
    }
  });
}

async function refillLocked(ctx: RefillContext, p: RefillParams): Promise<PresignPoolStatus> {
  const started = performance.now();
  const { accountId, target } = p;
  const emit = (percent: number, message: string, done: number, total: number, finished = false) => {
    if (!p.onProgress) return;
    const ev: ProgressEvent = {
      phase: "presign",
      round: done,
      totalRounds: total,
      percent: Math.round(Math.max(0, Math.min(100, percent)) * 10) / 10,
      overallPercent: Math.round(Math.max(0, Math.min(100, percent)) * 10) / 10,
      accountId,
      finished,
      message,
      elapsedMs: Math.round(performance.now() - started),
    };
    try {
      p.onProgress(ev);
    } catch {
      // a listener's exception never breaks the refill
    }
  };
  emit(0, "checking the presignature pools", 0, 0);
  let local = await listPresignatures(ctx, accountId);
  // Reconcile with the cosigner: a presignature only one side holds is useless.
  const remote = await remotePool(ctx, accountId);
  let discarded = 0;
  const release: string[] = [];
  if (remote.running === 0) {
    for (const id of local.filter((x) => !remote.ids.includes(x))) {
      const { taken } = await takePresignature(ctx, accountId, POOL_SIGNERS, id);
      if (taken) {
        discarded += 1;
        await setOutcome(ctx, accountId, id, "discarded");
      }
    }
    local = local.filter((x) => remote.ids.includes(x));
  }
  const now = Date.now();
  for (const id of remote.ids.filter((x) => !local.includes(x))) {
    // Not held here: released, unless a signature with it may still be in flight.
    const t = await getTombstone(ctx, accountId, id);
    if (t && t.outcome === "taken" && now - t.takenAtMs < IN_FLIGHT_MS) continue;
    release.push(id);
  }
  const released = release.length;
  discarded += released;

  let have = local.length;
  const want = Math.max(0, target - have);
  let generated = 0;
  let failed = 0;
  let lastError: unknown;
  const cryptoKey = await poolKey(ctx, ctx.identitySecret);
  emit(0, want > 0 ? `generating ${want} presignature(s)` : "the pool is full", 0, want, want === 0 && release.length === 0);
  // (With a full pool, ids to release wait for the next refill that asks for sessions:
  // StartPresign carries them.)
  while (have < target) {
    const count = Math.min(target - have, CHUNK);
    const batch = await ctx.cosigner.startPresign(auth(ctx, "StartPresign", { accountId, count, releaseIds: release }), {
      accountId,
      count,
      releaseIds: [...release],
    });
    release.length = 0;
    if (!batch) break; // the cosigner's pool is full
    const signers = [...batch.signers].sort((a, b) => a - b);
    if (!sameSigners(signers, POOL_SIGNERS)) {
      throw new CosignerError("cosigner_rejected", `StartPresign: unexpected signer set [${signers.join(", ")}]`);
    }
    if (batch.sessions.length === 0) break;
    const queue = [...batch.sessions];
    let batchFailed = false;
    const worker = async () => {
      for (;;) {
        const s = queue.shift();
        if (!s) return;
        const id = s.presignatureId;
        try {
          if (!validId(id) || s.session?.sessionId !== id) {
            throw new CosignerError("cosigner_rejected", `StartPresign: malformed session for presignature ${JSON.stringify(id)}`);
          }
          const room = ctx.room(s.session);
          let pre: Presig;
          try {
            pre = (await ctx.mpc.runPresign(
              ctx.bundle as never,
              { room, signers, accountId, ...ctx.sessionOpts } as never,
              (pr: { percent: number }) =>
                emit(((generated + pr.percent / 100) / Math.max(1, want)) * 100, `presignature ${generated + 1}/${want}`, generated, want),
            )) as Presig;
          } catch (e) {
            throw wasmError(e, `presignature session ${id}`, { sessionId: id });
          }
          try {
            if (pre.id !== id || pre.accountId !== accountId) {
              throw new SessionError("session_failed", `presignature session ${id} produced a presignature for another id/account`);
            }
            const bytes = pre.toBytes();
            try {
              await putPresignature(ctx, cryptoKey, accountId, signers, id, bytes);
            } finally {
              bytes.fill(0);
            }
          } finally {
            pre.free();
          }
          generated += 1;
          have += 1;
          emit((generated / Math.max(1, want)) * 100, `presignature ${generated}/${want} stored`, generated, want);
        } catch (e) {
          failed += 1;
          batchFailed = true;
          lastError = e;
        }
      }
    };
    await Promise.all(Array.from({ length: Math.max(1, Math.min(p.concurrency, queue.length)) }, worker));
    if (batchFailed) break;
  }
  if (generated === 0 && lastError) throw lastError;

  // Give the cosigner a moment to store its halves so the status reflects the pool.
  let settled = remote;
  const settle = performance.now();
  for (;;) {
    settled = await remotePool(ctx, accountId);
    if (settled.running === 0 || performance.now() - settle > 5_000) break;
    await new Promise((r) => setTimeout(r, 50));
  }
  const finalLocal = await listPresignatures(ctx, accountId);
  const status: PresignPoolStatus = {
    accountId,
    signers: [...POOL_SIGNERS],
    device: finalLocal.length,
    cosigner: settled.ids.length,
    usable: finalLocal.filter((id) => settled.ids.includes(id)).length,
    cosignerRunning: settled.running,
    cosignerCap: settled.cap,
    running: false,
    target,
    generated,
    failed,
    discarded,
    released,
    elapsedMs: Math.round(performance.now() - started),
  };
  emit(100, `pool: ${status.device} here, ${status.cosigner ?? "?"} at the cosigner`, generated, want, true);
  return status;
}

/** `PresignatureError` for `require` mode. */
export function requireError(reason: string, accountId: string, extra: Record<string, unknown> = {}): PresignatureError {
  const why: Record<string, string> = {
    empty: `no presignature left for account ${accountId}: refill the pool (refillPresignatures) or allow full signing (presign: "auto")`,
    unknown: `the cosigner does not hold the presignature taken for account ${accountId} (discarded)`,
    used: `the cosigner had already used the presignature taken for account ${accountId} (discarded; never reused)`,
    corrupt: `the stored presignature of account ${accountId} was unreadable (discarded)`,
    disabled: `the cosigner has presignatures turned off`,
  };
  return new PresignatureError(why[reason] ?? `presignature unavailable (${reason})`, { reason, accountId, ...extra });
}
