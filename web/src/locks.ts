/**
 * Web Locks (`navigator.locks`): one holder per lock name across every tab, Worker,
 * service worker and offscreen document of the origin. The package serialises with
 * them what must run once per browser: a presignature pool's refill and take
 * (`pool.ts`), a safe-prime search (`primes.ts`) and a device enrollment (`core.ts`).
 * Where the API is missing (old browsers, Node), `f` runs at once: callers keep their
 * own in-context de-duplication as well.
 */

import { AbortedError } from "./errors.js";

/** The part of the Web Locks `LockManager` this package uses. */
export interface LockManagerLike {
  request<T>(name: string, options: { signal?: AbortSignal }, callback: () => Promise<T>): Promise<T>;
}

/** The origin's lock manager, if this context has one. */
export function webLocks(): LockManagerLike | undefined {
  const n = (globalThis as { navigator?: { locks?: LockManagerLike } }).navigator;
  return n?.locks && typeof n.locks.request === "function" ? n.locks : undefined;
}

/**
 * Runs `f` holding the exclusive Web Lock `name` (or at once without the API). While
 * waiting for the lock, an abort of `signal` gives up the wait and rejects with an
 * {@link AbortedError} naming `what`; once `f` runs, `f` alone honours the signal.
 */
export async function withWebLock<T>(name: string, f: () => Promise<T>, opts: { signal?: AbortSignal | undefined; what?: string } = {}): Promise<T> {
  const lm = webLocks();
  if (!lm) return f();
  const { signal } = opts;
  if (signal?.aborted) throw AbortedError.fromSignal(signal, opts.what ?? "waiting for a lock");
  let entered = false;
  try {
    return await lm.request(name, signal ? { signal } : {}, () => {
      entered = true;
      return f();
    });
  } catch (e) {
    // The lock request itself was aborted (an AbortError DOMException): say so typed.
    if (!entered && signal?.aborted) throw AbortedError.fromSignal(signal, opts.what ?? "waiting for a lock");
    throw e;
  }
}
