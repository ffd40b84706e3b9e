/**
 * The presign Worker: a dedicated Worker, separate from the protocol Worker that signs,
 * that runs presignature refills (seconds of wasm CPU per presignature) so that online
 * signing from the pool never waits behind them. Started by `WalletClient` with
 * `new Worker(new URL("./pool-worker.js", import.meta.url), { type: "module" })`; it
 * answers only the pool methods (`refillPresignatures`, `presignPoolStatus`) with the
 * same messages as `worker.ts`.
 */

import { WalletCore } from "./core.js";
import { InvalidInputError, toWalletError } from "./errors.js";
import type { CallMessage, CoreMethod, ReplyMessage } from "./rpc.js";
import { dispatch } from "./dispatch.js";
import type { ProgressEvent } from "./types.js";

interface WorkerScope {
  postMessage(m: ReplyMessage): void;
  addEventListener(t: "message", f: (e: MessageEvent<CallMessage>) => void): void;
}

const POOL_METHODS: ReadonlySet<CoreMethod> = new Set<CoreMethod>(["refillPresignatures", "presignPoolStatus"]);
const scope = globalThis as unknown as WorkerScope;
const cores = new Map<string, WalletCore>();

function coreFor(config: CallMessage["config"]): WalletCore {
  const key = JSON.stringify(config);
  let c = cores.get(key);
  if (!c) {
    c = new WalletCore(config);
    cores.set(key, c);
  }
  return c;
}

scope.addEventListener("message", (e: MessageEvent<CallMessage>) => {
  const m = e.data;
  if (!m || m.type !== "call") return;
  void (async () => {
    try {
      if (!POOL_METHODS.has(m.method)) {
        throw new InvalidInputError(`the presign worker runs only ${[...POOL_METHODS].join(", ")}, not ${JSON.stringify(m.method)}`);
      }
      const onProgress =
        m.progressArg === undefined
          ? undefined
          : (event: ProgressEvent) => scope.postMessage({ type: "progress", id: m.id, event });
      const value = await dispatch(coreFor(m.config), m.method, m.args, m.progressArg, onProgress);
      scope.postMessage({ type: "result", id: m.id, value });
    } catch (err) {
      scope.postMessage({ type: "error", id: m.id, error: toWalletError(err).toJSON() });
    }
  })();
});

scope.postMessage({ type: "ready" });
