/**
 * Dedicated Worker entry: hosts {@link WalletCore}s and answers {@link CallMessage}s.
 * Started by `WalletClient` with `new Worker(new URL("./worker.js", import.meta.url),
 * { type: "module" })`.
 */

import { WalletCore } from "./core.js";
import { toWalletError } from "./errors.js";
import type { CallMessage, ReplyMessage } from "./rpc.js";
import { dispatch } from "./dispatch.js";
import type { ProgressEvent } from "./types.js";

interface WorkerScope {
  postMessage(m: ReplyMessage): void;
  addEventListener(t: "message", f: (e: MessageEvent<CallMessage>) => void): void;
}

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
