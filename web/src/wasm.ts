/**
 * Loads the wasm core (`crates/mpc-wasm`, wasm-bindgen `--target web` output in
 * `web/wasm/`) once per thread and maps its errors to the package's typed errors.
 */

import init, * as mpc from "../wasm/mpc_wasm.js";
import { errorForCode, WalletError } from "./errors.js";

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
  /** A finer machine-readable reason (backups: `wrong_passphrase`, `not_a_backup`). */
  reason?: string;
}

/**
 * Maps an error thrown by the wasm core to a typed error; `context` names the step. The
 * wasm core's codes are the wallet's one vocabulary (`docs/errors.md`), so the class
 * follows from the code.
 */
export function wasmError(e: unknown, context: string, extra: Record<string, unknown> = {}): WalletError {
  if (e instanceof WalletError) return e;
  const err = (e ?? {}) as MpcErrorShape & Error;
  const details: Record<string, unknown> = { ...extra };
  if (typeof err.party === "number") details.party = err.party;
  if (typeof err.status === "number") details.status = err.status;
  if (typeof err.reason === "string") details.reason = err.reason;
  if (e instanceof WebAssembly.RuntimeError) {
    return new WalletError("wasm", `${context}: the wasm core crashed (${err.message}); this is a bug`, details, { cause: e });
  }
  if (typeof err.code !== "string") return new WalletError("internal", `${context}: ${err.message ?? String(e)}`, details, { cause: e });
  if (err.code === "wrong_passphrase") {
    return errorForCode(err.code, `${context}: wrong passphrase (or the stored wallet was altered)`, details);
  }
  return errorForCode(err.code, `${context}: ${err.message ?? String(e)}`, details);
}

/** The facts a wasm flow error carries (`crates/mpc-wasm/src/flows.rs`). */
interface FlowErrorShape {
  name?: string;
  code?: string;
  message?: string;
  retryable?: boolean;
  rule?: string;
  presignatureId?: string;
  presignature?: string;
  blamed?: number[];
  stage?: string;
  sessionId?: string;
  enrollmentId?: string;
  enrollmentUnusable?: boolean;
  walletRefusal?: "identity_revoked" | "frozen";
  unfreezeAtMs?: number;
}

/**
 * Maps an error of a wasm flow to a typed error: a `FlowError` carries the wallet's
 * own code (`docs/errors.md`), so its class follows from the code; an error a host
 * method threw (IndexedDB, the recovery agent) comes back unchanged.
 */
export function flowError(e: unknown, context: string, extra: Record<string, unknown> = {}): WalletError {
  if (e instanceof WalletError) return e;
  const err = (e ?? {}) as FlowErrorShape;
  if (err.name !== "FlowError" || typeof err.code !== "string") return wasmError(e, context, extra);
  const details: Record<string, unknown> = { ...extra };
  for (const k of ["retryable", "rule", "presignatureId", "presignature", "blamed", "stage", "sessionId", "enrollmentId", "enrollmentUnusable", "walletRefusal", "unfreezeAtMs"] as const) {
    if (err[k] !== undefined) details[k] = err[k];
  }
  return errorForCode(err.code, `${context}: ${err.message ?? "failed"}`, details);
}
