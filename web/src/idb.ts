/**
 * IndexedDB and WebCrypto plumbing shared by the package's three encrypted stores
 * (`storage.ts` key shares, `prime-store.ts` prepared primes, `pool.ts` presignatures).
 * Each store keeps its own database, so each versions independently; every failure is a
 * {@link StorageError} with code `storage`.
 */

import { StorageError } from "./errors.js";

function idb(): IDBFactory {
  if (typeof indexedDB === "undefined") throw new StorageError("storage", "IndexedDB is not available in this context");
  return indexedDB;
}

/** Resolves with the request's result; rejects with a `StorageError`. */
export function req<T>(r: IDBRequest<T>): Promise<T> {
  return new Promise((resolve, reject) => {
    r.onsuccess = () => resolve(r.result);
    r.onerror = () => reject(new StorageError("storage", `IndexedDB: ${r.error?.message ?? "request failed"}`));
  });
}

/** Resolves once the transaction committed; rejects if it aborted or failed. */
export function txDone(tx: IDBTransaction): Promise<void> {
  return new Promise((resolve, reject) => {
    tx.oncomplete = () => resolve();
    tx.onabort = () => reject(new StorageError("storage", `IndexedDB transaction aborted: ${tx.error?.message ?? "unknown"}`));
    tx.onerror = () => reject(new StorageError("storage", `IndexedDB: ${tx.error?.message ?? "transaction failed"}`));
  });
}

/**
 * A cached opener of database `name` at `version` that creates the missing object
 * `stores` (out-of-line keys) on upgrade. The connection is reopened after another
 * context upgrades the database, or after a failed open.
 */
export function dbOpener(name: string, version: number, stores: readonly string[]): () => Promise<IDBDatabase> {
  let dbPromise: Promise<IDBDatabase> | undefined;
  return () => {
    if (!dbPromise) {
      dbPromise = new Promise<IDBDatabase>((resolve, reject) => {
        let open: IDBOpenDBRequest;
        try {
          open = idb().open(name, version);
        } catch (e) {
          reject(e instanceof StorageError ? e : new StorageError("storage", `cannot open IndexedDB: ${String(e)}`));
          return;
        }
        open.onupgradeneeded = () => {
          const db = open.result;
          for (const s of stores) if (!db.objectStoreNames.contains(s)) db.createObjectStore(s);
        };
        open.onsuccess = () => {
          const db = open.result;
          db.onversionchange = () => {
            db.close();
            dbPromise = undefined;
          };
          resolve(db);
        };
        open.onerror = () => reject(new StorageError("storage", `cannot open IndexedDB: ${open.error?.message ?? "unknown"}`));
        open.onblocked = () => reject(new StorageError("storage", "IndexedDB upgrade blocked by another open tab"));
      });
      dbPromise.catch(() => {
        dbPromise = undefined;
      });
    }
    return dbPromise;
  };
}

/** `crypto.subtle`, or a `StorageError` outside a secure context. */
export function subtle(): SubtleCrypto {
  const s = globalThis.crypto?.subtle;
  if (!s) throw new StorageError("storage", "WebCrypto (crypto.subtle) is not available: a secure context (https or localhost) is needed");
  return s;
}

/** A view over a plain ArrayBuffer (WebCrypto refuses shared memory). */
export function plain(b: Uint8Array): Uint8Array<ArrayBuffer> {
  return b.buffer instanceof ArrayBuffer ? (b as Uint8Array<ArrayBuffer>) : new Uint8Array(b);
}
