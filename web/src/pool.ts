/**
 * Presignature pools of the device (party 0): the platform half. The flows (the
 * take-once fast path, refills with reconciliation against the cosigner) are the wasm
 * core's (`crates/client-core`, driven by `crates/mpc-wasm/src/flows.rs`); this module is
 * the storage they ask for: encrypted records in IndexedDB, take-once, tombstones,
 * listing with in-flight ids, and the per-account refill lock. Used by
 * {@link WalletCore} in whatever context it runs: the protocol Worker (signing), the
 * separate presign Worker `pool-worker.ts` (background refills), or the calling thread
 * (inline mode).
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
 *   - `passphrase` wallets: a non-extractable AES-GCM key from HKDF-SHA256 of the
 *     device's identity secret, computed in wasm (`WalletParty.poolKeyMaterial`: the
 *     identity secret never leaves wasm), which can only happen after the Argon2id
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

import { StorageError } from "./errors.js";
import { dbOpener, plain, req, subtle, txDone } from "./idb.js";
import { withWebLock } from "./locks.js";
import * as storage from "./storage.js";

const DB_NAME = "wallet-mpc-web-presign";
const DB_VERSION = 1;
const PRESIGS = "presignatures";
const TOMBS = "tombstones";
const AAD_DOMAIN = "wallet-mpc-web/presign/v1";

/** Device and cosigner. */
export const POOL_SIGNERS: readonly number[] = [0, 1];
/** Default pool target and refill concurrency. */
export const DEFAULT_TARGET = 2;
/** The pool an HD account refills when none is named: its first address. */
export const DEFAULT_HD_PATH = "m/44/60/0/0/0";

/**
 * The name of one pool (what the wasm flows pass as the first argument of the pool
 * host's methods, and what the IndexedDB records and locks are keyed by): the account
 * id for an account's root (independent accounts), `accountId@m/44/60/0/0/0` for an HD
 * account's path. A presignature signs at the path it was generated for, so each path
 * has its own pool. Same rule as the Rust `client_core::pool_key`.
 */
export function poolName(accountId: string, path: string): string {
  if (path === "" || path === "m") return accountId;
  const canonical = "m" + path.replace(/^m/, "").split("/").filter((s) => s !== "").map((s) => `/${Number.parseInt(s, 10)}`).join("");
  return `${accountId}@${canonical}`;
}
export const DEFAULT_CONCURRENCY = 2;
export const MAX_TARGET = 32;

type PoolKey = [string, string, string, string];

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
 * passphrase wallets `keyMaterial` (the wasm `WalletParty.poolKeyMaterial`) is called
 * once per context; its bytes are wiped here once imported.
 */
export function poolKey(w: PoolWallet, keyMaterial: () => Uint8Array): Promise<CryptoKey> {
  const cacheKey = `${w.walletName}\u0000${w.walletId}\u0000${w.protection}`;
  let k = keyCache.get(cacheKey);
  if (!k) {
    k = (async () => {
      if (w.protection === "webcrypto") {
        const wk = await storage.getWalletKey(w.walletName);
        if (!wk) throw new StorageError("storage", `the encryption key of wallet "${w.walletName}" is missing from IndexedDB`);
        return wk;
      }
      const bytes = keyMaterial();
      try {
        return await subtle().importKey("raw", plain(bytes), { name: "AES-GCM", length: 256 }, false, ["encrypt", "decrypt"]);
      } finally {
        bytes.fill(0);
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
// The host of the wasm flows (crates/mpc-wasm/src/flows.rs): the pool's storage

/** The pool methods of a wasm flow host, for one wallet. */
export interface PoolHost {
  takePresignature(accountId: string, signers: number[]): Promise<{ id: string; plaintext: Uint8Array } | null>;
  presignatureOutcome(accountId: string, id: string, outcome: TombstoneOutcome): void;
  listPresignatures(accountId: string, signers: number[], inFlightMs: number): Promise<{ ids: string[]; inFlight: string[] }>;
  discardPresignatures(accountId: string, signers: number[], ids: string[]): Promise<number>;
  storePresignature(accountId: string, signers: number[], id: string, plaintext: Uint8Array): Promise<void>;
}

/**
 * The pool storage the wasm flows ask for. `keyMaterial` gives the passphrase wallets'
 * pool key bytes (wasm `WalletParty.poolKeyMaterial`).
 */
export function poolHost(w: PoolWallet, keyMaterial: () => Uint8Array): PoolHost {
  return {
    async takePresignature(accountId, signers) {
      const { taken, refused } = await takePresignature(w, accountId, signers);
      for (const id of refused) ignore(setOutcome(w, accountId, id, "discarded"));
      if (!taken) return null;
      let plaintext: Uint8Array;
      try {
        plaintext = await decryptRecord(w, await poolKey(w, keyMaterial), taken.record);
      } catch {
        // The core sees an unreadable record, drops it (outcome `corrupt`) and asks again.
        plaintext = new Uint8Array(0);
      }
      return { id: taken.record.id, plaintext };
    },
    // Best effort and off the signing path: the flow does not wait for the tombstone.
    presignatureOutcome(accountId, id, outcome) {
      ignore(setOutcome(w, accountId, id, outcome));
    },
    async listPresignatures(accountId, signers, inFlightMs) {
      const ids = await listPresignatures(w, accountId, signers);
      const inFlight = await inFlightIds(w, accountId, inFlightMs);
      return { ids, inFlight };
    },
    async discardPresignatures(accountId, signers, ids) {
      let n = 0;
      for (const id of ids) {
        const { taken } = await takePresignature(w, accountId, signers, id);
        if (taken) {
          n += 1;
          await setOutcome(w, accountId, id, "discarded");
        }
      }
      return n;
    },
    async storePresignature(accountId, signers, id, plaintext) {
      await putPresignature(w, await poolKey(w, keyMaterial), accountId, signers, id, plaintext);
    },
  };
}

/** Ids taken less than `inFlightMs` ago whose signature may still be running. */
async function inFlightIds(w: PoolWallet, accountId: string, inFlightMs: number): Promise<string[]> {
  const db = await openDb();
  const tx = db.transaction(TOMBS, "readonly");
  const all = (await req(tx.objectStore(TOMBS).getAll(accountRange(w.walletName, w.walletId, accountId)))) as Tombstone[];
  const now = Date.now();
  return all.filter((t) => t.outcome === "taken" && now - t.takenAtMs < inFlightMs).map((t) => t.id);
}

function ignore(p: Promise<unknown>): void {
  p.catch(() => undefined);
}

// ---------------------------------------------------------------------------------
// One refill per account at a time

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
  const next = prev.catch(() => undefined).then(() => withWebLock(`wallet-mpc-web/presign/${encodeURIComponent(k)}`, f));
  chains.set(k, next);
  try {
    return await next;
  } finally {
    if (chains.get(k) === next) chains.delete(k);
  }
}

/**
 * Runs `refill` as the only refill of this account: serialised across tabs and workers
 * (a Web Lock) and within this context; {@link isRefilling} says whether one runs here.
 */
export function withRefillLock<T>(w: PoolWallet, accountId: string, refill: () => Promise<T>): Promise<T> {
  return withPoolLock(w, accountId, async () => {
    const rk = runningKey(w, accountId);
    running.add(rk);
    try {
      return await refill();
    } finally {
      running.delete(rk);
    }
  });
}
