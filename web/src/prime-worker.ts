/**
 * Dedicated Worker entry of one safe-prime search (see `primes.ts`). Started by the
 * {@link PrimeCoordinator} with `new Worker(new URL("./prime-worker.js", import.meta.url),
 * { type: "module" })`; receives one `start` message (optional checkpoint), then runs
 * `PrimeSearch` chunks and posts counters, a checkpoint and any find after every chunk
 * until it gets `stop` or is terminated.
 */

import { loadWasm } from "./wasm.js";
import { runSearchLoop, type PrimeWorkerReply, type PrimeWorkerRequest } from "./primes.js";

interface PrimeWorkerScope {
  postMessage(m: PrimeWorkerReply): void;
  addEventListener(t: "message", f: (e: MessageEvent<PrimeWorkerRequest>) => void): void;
}

const scope = globalThis as unknown as PrimeWorkerScope;
let started = false;
let stopped = false;

scope.addEventListener("message", (e: MessageEvent<PrimeWorkerRequest>) => {
  const m = e.data;
  if (!m) return;
  if (m.type === "stop") {
    stopped = true;
    return;
  }
  if (m.type !== "start" || started) return;
  started = true;
  void (async () => {
    try {
      const mpc = await loadWasm(m.wasmUrl);
      await runSearchLoop(mpc, { bits: m.bits, checkpoint: m.checkpoint }, (r) => scope.postMessage(r), () => stopped);
    } catch (err) {
      const x = err as { code?: string; message?: string };
      scope.postMessage({ type: "error", code: typeof x?.code === "string" ? x.code : "internal", message: x?.message ?? String(err) });
    }
  })();
});
