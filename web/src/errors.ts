/**
 * Typed errors of the package. Every error thrown by the public API is a
 * {@link WalletError} (or a subclass) with a stable `code` an application can switch on,
 * a readable `message`, and optional `details`. Errors cross the Worker boundary as
 * plain objects ({@link SerializedError}) and are rebuilt into the same classes.
 */

/**
 * Every stable error code: the wallet's one vocabulary (`docs/errors.md`, Rust
 * `wallet_types::ErrorCode`), plus `wasm` (the wasm core failed to load). A unit test
 * keeps this list equal to the documented table.
 */
export const ERROR_CODES = [
  "config",
  "invalid_input",
  "no_wallet",
  "wallet_exists",
  "unknown_account",
  "wrong_passphrase",
  "storage",
  "unsupported",
  "aborted",
  "cosigner_unavailable",
  "gateway_unavailable",
  "agent_unavailable",
  "agent_unauthorized",
  "agent_failed",
  "tls_failed",
  "unauthorized",
  "registration_required",
  "not_found",
  "wallet_not_ready",
  "policy_denied",
  "presignature_unavailable",
  "pool_full",
  "busy",
  "rate_limited",
  "cosigner_rejected",
  "session_failed",
  "timeout",
  "digest_mismatch",
  "verification_failed",
  "invalid_response",
  "internal",
  "wasm",
] as const;

/** Stable error codes (see {@link ERROR_CODES}). */
export type ErrorCode = (typeof ERROR_CODES)[number];

/**
 * EIP-1193 provider error codes: `4001` user rejected the request, `4100` unauthorized
 * (the method or account is not authorized), `4200` unsupported method, `-32602` invalid
 * params, `-32603` internal error.
 */
export type Eip1193Code = 4001 | 4100 | 4200 | -32602 | -32603;

/**
 * The EIP-1193 code of each wallet code that is not `-32603` (internal): what a wallet
 * built on this package answers a dapp (see {@link WalletError.eip1193Code}). `aborted`
 * and `policy_denied` are rejections of the request (the caller cancelled it, or the
 * wallet's signing policy declined it); the codes saying the wallet or account cannot
 * act for this caller are `4100`; `unsupported` is `4200`; `invalid_input` is `-32602`.
 * Everything else (unreachable services, failed sessions, storage) is `-32603`.
 */
export const EIP1193_CODES: Readonly<Partial<Record<ErrorCode, Eip1193Code>>> = Object.freeze({
  aborted: 4001,
  policy_denied: 4001,
  unauthorized: 4100,
  registration_required: 4100,
  no_wallet: 4100,
  unknown_account: 4100,
  wrong_passphrase: 4100,
  wallet_not_ready: 4100,
  agent_unauthorized: 4100,
  unsupported: 4200,
  invalid_input: -32602,
});

/** The EIP-1193 code of a wallet code (`-32603` unless listed in {@link EIP1193_CODES}). */
export function eip1193CodeOf(code: ErrorCode): Eip1193Code {
  return EIP1193_CODES[code] ?? -32603;
}

/** An EIP-1193 `ProviderRpcError` (what `request()` of a provider rejects with). */
export interface ProviderRpcErrorShape {
  /** The EIP-1193 code. */
  code: Eip1193Code;
  message: string;
  /** The wallet's own code and details. */
  data: { walletCode: ErrorCode; details?: Record<string, unknown> };
}

/** The shape of an error on the wire (Worker messages). */
export interface SerializedError {
  name: string;
  code: ErrorCode;
  message: string;
  details?: Record<string, unknown>;
}

/** Base class of every error thrown by the package. */
export class WalletError extends Error {
  /** Stable category (see {@link ErrorCode}). */
  readonly code: ErrorCode;
  /** Extra facts (URL, session id, HTTP status...). */
  readonly details?: Record<string, unknown>;

  constructor(code: ErrorCode, message: string, details?: Record<string, unknown>, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "WalletError";
    this.code = code;
    if (details !== undefined) this.details = details;
  }

  /** The EIP-1193 provider error code of {@link code} (see {@link EIP1193_CODES}). */
  get eip1193Code(): Eip1193Code {
    return eip1193CodeOf(this.code);
  }

  /** This error as an EIP-1193 `ProviderRpcError` object (for a wallet's `request()`). */
  toProviderRpcError(): ProviderRpcErrorShape {
    const data: ProviderRpcErrorShape["data"] = { walletCode: this.code };
    if (this.details !== undefined) data.details = this.details;
    return { code: this.eip1193Code, message: this.message, data };
  }

  /** Plain-object form (for postMessage). */
  toJSON(): SerializedError {
    const out: SerializedError = { name: this.name, code: this.code, message: this.message };
    if (this.details !== undefined) out.details = this.details;
    return out;
  }
}

/** Bad configuration (missing URL, malformed URL, inconsistent options). */
export class ConfigError extends WalletError {
  constructor(message: string, details?: Record<string, unknown>) {
    super("config", message, details);
    this.name = "ConfigError";
  }
}

/** A caller argument is invalid (hex, transaction bytes, derivation path...). */
export class InvalidInputError extends WalletError {
  constructor(message: string, details?: Record<string, unknown>) {
    super("invalid_input", message, details);
    this.name = "InvalidInputError";
  }
}

/** A remote service (cosigner, gateway or recovery agent) cannot be reached. */
export class UnavailableError extends WalletError {
  constructor(
    code: "cosigner_unavailable" | "gateway_unavailable" | "agent_unavailable",
    message: string,
    details?: Record<string, unknown>,
    options?: { cause?: unknown },
  ) {
    super(code, message, details, options);
    this.name = "UnavailableError";
  }
}

/** The cosigner refused the request (auth, policy or another refusal). */
export class CosignerError extends WalletError {
  constructor(
    code: ErrorCode,
    message: string,
    details?: Record<string, unknown>,
  ) {
    super(code, message, details);
    this.name = "CosignerError";
  }
}

/** The recovery agent refused or failed the job. */
export class AgentError extends WalletError {
  constructor(code: "agent_unauthorized" | "agent_failed", message: string, details?: Record<string, unknown>) {
    super(code, message, details);
    this.name = "AgentError";
  }
}

/** A protocol session (aux info, DKG, signing) failed or timed out. */
export class SessionError extends WalletError {
  constructor(code: "session_failed" | "timeout" | "verification_failed", message: string, details?: Record<string, unknown>) {
    super(code, message, details);
    this.name = "SessionError";
  }
}

/** Local key storage problems (no wallet, existing wallet, wrong passphrase, IndexedDB). */
export class StorageError extends WalletError {
  constructor(
    code: "no_wallet" | "wallet_exists" | "unknown_account" | "wrong_passphrase" | "storage",
    message: string,
    details?: Record<string, unknown>,
  ) {
    super(code, message, details);
    this.name = "StorageError";
  }
}

/**
 * The caller cancelled the operation through its `AbortSignal` (code `aborted`,
 * EIP-1193 `4001`). `details.reason` is the signal's reason when it is a string or an
 * error's message.
 */
export class AbortedError extends WalletError {
  constructor(message: string, details?: Record<string, unknown>, options?: { cause?: unknown }) {
    super("aborted", message, details, options);
    this.name = "AbortedError";
  }

  /** The error of an aborted `signal` (its reason kept as `cause`). */
  static fromSignal(signal: AbortSignal, what = "the operation"): AbortedError {
    const r: unknown = signal.reason;
    const text = typeof r === "string" ? r : r instanceof Error && r.name !== "AbortError" ? r.message : undefined;
    return new AbortedError(`${what} was aborted${text ? `: ${text}` : ""}`, text ? { reason: text } : undefined, { cause: r });
  }
}

/** Throws an {@link AbortedError} when `signal` is aborted. */
export function throwIfAborted(signal: AbortSignal | undefined, what?: string): void {
  if (signal?.aborted) throw AbortedError.fromSignal(signal, what);
}

// presign-web: presignature pool errors.
/**
 * Signing from the presignature pool was required (`presign: "require"`) but is not
 * possible: `details.reason` is `empty` (no presignature left for the account),
 * `unknown` / `used` (the cosigner does not hold that presignature or already used it:
 * it was discarded), `not_eligible` (no pool serves that account at that path: an
 * independent account's pool is at its root, an HD account's are at child paths such
 * as `m/44/60/0/0/0`) or `disabled` (the cosigner has
 * presignatures turned off).
 */
export class PresignatureError extends WalletError {
  constructor(message: string, details?: Record<string, unknown>) {
    super("presignature_unavailable", message, details);
    this.name = "PresignatureError";
  }
}

/**
 * The stored device enrollment cannot be used (the cosigner no longer knows it:
 * expired, used, or its records were lost): `createWallet` deleted the stale record;
 * call `enrollDevice()` again (or `createWallet({ enrollment: false })`). Code
 * `not_found` (or `unauthorized`, as the cosigner answered); `details.enrollmentId`,
 * `details.enrollAgain: true`.
 */
export class EnrollmentError extends WalletError {
  constructor(code: "not_found" | "unauthorized", message: string, details?: Record<string, unknown>) {
    super(code, message, { ...details, enrollAgain: true });
    this.name = "EnrollmentError";
  }
}

const CLASS_BY_NAME: Record<string, (e: SerializedError) => WalletError> = {
  EnrollmentError: (e) => new EnrollmentError(e.code as "not_found", e.message, e.details),
  PresignatureError: (e) => new PresignatureError(e.message, e.details),
  AbortedError: (e) => new AbortedError(e.message, e.details),
  ConfigError: (e) => new ConfigError(e.message, e.details),
  InvalidInputError: (e) => new InvalidInputError(e.message, e.details),
  UnavailableError: (e) => new UnavailableError(e.code as "cosigner_unavailable", e.message, e.details),
  CosignerError: (e) => new CosignerError(e.code as "unauthorized", e.message, e.details),
  AgentError: (e) => new AgentError(e.code as "agent_failed", e.message, e.details),
  SessionError: (e) => new SessionError(e.code as "session_failed", e.message, e.details),
  StorageError: (e) => new StorageError(e.code as "storage", e.message, e.details),
};

/** Rebuilds an error from its wire form. */
export function deserializeError(e: SerializedError): WalletError {
  const make = CLASS_BY_NAME[e.name];
  return make ? make(e) : new WalletError(e.code ?? "internal", e.message ?? "unknown error", e.details);
}

/** Any thrown value as a {@link WalletError}. */
export function toWalletError(e: unknown): WalletError {
  if (e instanceof WalletError) return e;
  if (e instanceof Error) {
    if (e.name === "AbortError") return new AbortedError("the operation was aborted", undefined, { cause: e });
    return new WalletError("internal", e.message, undefined, { cause: e });
  }
  return new WalletError("internal", String(e));
}

/** The class of each code, for errors whose code comes from the wasm core or the cosigner. */
const CLASS_BY_CODE: Partial<Record<ErrorCode, (message: string, details?: Record<string, unknown>) => WalletError>> = {
  config: (m, d) => new ConfigError(m, d),
  invalid_input: (m, d) => new InvalidInputError(m, d),
  cosigner_unavailable: (m, d) => new UnavailableError("cosigner_unavailable", m, d),
  gateway_unavailable: (m, d) => new UnavailableError("gateway_unavailable", m, d),
  agent_unavailable: (m, d) => new UnavailableError("agent_unavailable", m, d),
  agent_unauthorized: (m, d) => new AgentError("agent_unauthorized", m, d),
  agent_failed: (m, d) => new AgentError("agent_failed", m, d),
  session_failed: (m, d) => new SessionError("session_failed", m, d),
  timeout: (m, d) => new SessionError("timeout", m, d),
  verification_failed: (m, d) => new SessionError("verification_failed", m, d),
  no_wallet: (m, d) => new StorageError("no_wallet", m, d),
  wallet_exists: (m, d) => new StorageError("wallet_exists", m, d),
  unknown_account: (m, d) => new StorageError("unknown_account", m, d),
  wrong_passphrase: (m, d) => new StorageError("wrong_passphrase", m, d),
  storage: (m, d) => new StorageError("storage", m, d),
  presignature_unavailable: (m, d) => new PresignatureError(m, d),
  aborted: (m, d) => new AbortedError(m, d),
  unauthorized: (m, d) => new CosignerError("unauthorized", m, d),
  registration_required: (m, d) => new CosignerError("registration_required", m, d),
  not_found: (m, d) => new CosignerError("not_found", m, d),
  wallet_not_ready: (m, d) => new CosignerError("wallet_not_ready", m, d),
  policy_denied: (m, d) => new CosignerError("policy_denied", m, d),
  pool_full: (m, d) => new CosignerError("pool_full", m, d),
  busy: (m, d) => new CosignerError("busy", m, d),
  rate_limited: (m, d) => new CosignerError("rate_limited", m, d),
  cosigner_rejected: (m, d) => new CosignerError("cosigner_rejected", m, d),
  digest_mismatch: (m, d) => new CosignerError("digest_mismatch", m, d),
  invalid_response: (m, d) => new CosignerError("invalid_response", m, d),
};

/** The typed error of a code of the wallet's vocabulary (unknown codes: `internal`). */
export function errorForCode(code: string, message: string, details?: Record<string, unknown>): WalletError {
  const known = (ERROR_CODES as readonly string[]).includes(code) ? (code as ErrorCode) : "internal";
  const make = CLASS_BY_CODE[known];
  return make ? make(message, details) : new WalletError(known, message, details);
}
