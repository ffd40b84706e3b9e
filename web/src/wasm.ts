/**
 * Loads the wasm core (`crates/mpc-wasm`, wasm-bindgen `--target web` output in
 * `web/wasm/`) once per thread and maps its errors to the package's typed errors.
 */

import init, * as mpc from "../wasm/mpc_wasm.js";
import { InvalidInputError, SessionError, StorageError, UnavailableError, WalletError } from "./errors.js";

/** The wasm module's exports. */
export type Mpc = typeof mpc;

let ready: Promise<Mpc> | undefined;

/** Default location of the wasm binary: `../wasm/` relative to this module. */
export function defaultWasmUrl(): URL {
  return new URL("../wasm/mpc_wasm_bg.wasm", import.meta.url);
}

/** Initialises the wasm module (once) and returns its exports. */
export function loadWasm(wasmUrl?: string | URL): Promise<Mpc> {
  if (!ready) {
    ready = (async () => {
      try {
        await init({ module_or_path: wasmUrl ?? defaultWasmUrl() });
      } catch (e) {
        throw new WalletError("wasm", `cannot load the wasm core from ${String(wasmUrl ?? defaultWasmUrl())}: ${e instanceof Error ? e.message : String(e)}`, undefined, {
          cause: e,
        });
      }
      return mpc;
    })();
    ready.catch(() => {
      ready = undefined;
    });
  }
  return ready;
}

interface MpcErrorShape {
  code?: string;
  message?: string;
  party?: number;
  status?: number;
}

/** Maps an error thrown by the wasm core to a typed error; `context` names the step. */
export function wasmError(e: unknown, context: string, extra: Record<string, unknown> = {}): WalletError {
  if (e instanceof WalletError) return e;
  const err = (e ?? {}) as MpcErrorShape & Error;
  const code = typeof err.code === "string" ? err.code : undefined;
  const msg = `${context}: ${err.message ?? String(e)}`;
  const details: Record<string, unknown> = { ...extra, wasmCode: code };
  if (typeof err.party === "number") details.party = err.party;
  if (typeof err.status === "number") details.status = err.status;
  switch (code) {
    case "invalid_input":
      return new InvalidInputError(msg, details);
    case "gateway":
    case "stream_ended":
      return new UnavailableError(
        "gateway_unavailable",
        `${msg}. Check that the gateway (sign-gateway) is running, reachable from this page, and allows this origin (CORS).`,
        details,
        { cause: e },
      );
    case "timeout":
      return new SessionError("timeout", msg, details);
    case "malformed_message":
    case "protocol_aborted":
    case "session":
    case "wire":
      return new SessionError("session_failed", msg, details);
    case "invalid_signature":
      return new SessionError("verification_failed", msg, details);
    case "wrong_passphrase":
      return new StorageError("wrong_passphrase", `${context}: wrong passphrase (or the stored wallet was altered)`, details);
    case "keystore":
      return new StorageError("storage", msg, details);
    case "presignature_used":
      return new SessionError("session_failed", msg, details);
    default:
      if (e instanceof WebAssembly.RuntimeError) {
        return new WalletError("wasm", `${context}: the wasm core crashed (${err.message}); this is a bug`, details, { cause: e });
      }
      return new WalletError("internal", msg, details, { cause: e });
  }
}
