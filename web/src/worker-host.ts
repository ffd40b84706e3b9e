/**
 * The call loop shared by the package's dedicated Workers (`worker.ts`, the protocol
 * Worker, and `pool-worker.ts`, the presign Worker): hosts one {@link WalletCore} per
 * configuration, answers {@link CallMessage}s with progress, result or error messages,
 * and posts `ready` once listening.
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

/**
 * Serves calls in this Worker. With `only`, any other method is refused with an
 * `invalid_input` error naming the Worker (`what`).
 */
export function serveCalls(only?: { what: string; methods: ReadonlySet<CoreMethod> }): void {
  const scope = globalThis as unknown as WorkerScope;
  const cores = new Map<string, WalletCore>();
  const coreFor = (config: CallMessage["config"]): WalletCore => {
    const key = JSON.stringify(config);
    let c = cores.get(key);
    if (!c) {
      c = new WalletCore(config);
      cores.set(key, c);
    }
    return c;
  };

  scope.addEventListener("message", (e: MessageEvent<CallMessage>) => {
    const m = e.data;
    if (!m || m.type !== "call") return;
    void (async () => {
      try {
        if (only && !only.methods.has(m.method)) {
          throw new InvalidInputError(`the ${only.what} runs only ${[...only.methods].join(", ")}, not ${JSON.stringify(m.method)}`);
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
}
