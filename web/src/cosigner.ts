/**
 * gRPC-web client of the cosigner (`sign-service`, tonic-web) over
 * `@connectrpc/connect-web`'s grpc-web transport, with errors mapped to the package's
 * typed errors. Request signatures are computed by the wasm core (same canonical bytes
 * as `crates/cosigner-api/src/auth.rs`), never in TypeScript.
 */

import { Code, ConnectError, createClient, type Client } from "@connectrpc/connect";
import { createGrpcWebTransport } from "@connectrpc/connect-web";
import { create } from "@bufbuild/protobuf";
import {
  AuthSchema,
  Cosigner,
  type Auth,
  type CreateWalletResponse,
  type HealthResponse,
} from "./gen/wallet/cosigner/v1/cosigner_pb.js";
import type {
  PresignPoolStatusResponse,
  SignWithPresignatureResponse,
  StartPresignResponse,
} from "./gen/wallet/cosigner/v1/cosigner_pb.js";
import { ConfigError, CosignerError, InvalidInputError, SessionError, UnavailableError, WalletError } from "./errors.js";
import type { ErrorCode } from "./errors.js";
import * as mpc from "../wasm/mpc_wasm.js";
import { PresignatureError } from "./errors.js";

/** Validates and normalises a base URL (no trailing slash). */
export function normalizeUrl(what: string, url: string | undefined): string {
  if (!url || !url.trim()) throw new ConfigError(`${what} URL is not set`);
  let u: URL;
  try {
    u = new URL(url.trim());
  } catch {
    throw new ConfigError(`${what} URL is not a valid URL: ${JSON.stringify(url)}`);
  }
  if (u.protocol !== "http:" && u.protocol !== "https:") {
    throw new ConfigError(`${what} URL must be http(s): ${JSON.stringify(url)}`);
  }
  return u.toString().replace(/\/+$/, "");
}

/** A failed cosigner call decoded by the wasm core (`decodeCosignerError`). */
export interface DecodedCosignerError {
  code: ErrorCode;
  rule?: string;
  presignature?: "unknown" | "used";
  party?: number;
  retryable: boolean;
}

/**
 * Decodes a ConnectError of a cosigner call: the cosigner's `google.rpc.ErrorInfo` (in
 * the `grpc-status-details-bin` trailer) through the wasm core's decoder, the same code
 * as the native client's; without it the gRPC code decides. Never the message text.
 */
export function decodeCosigner(ce: ConnectError): DecodedCosignerError {
  const details = new TextEncoder().encode(ce.metadata.get("grpc-status-details-bin") ?? "");
  try {
    return mpc.decodeCosignerError(ce.code, ce.rawMessage, details) as DecodedCosignerError;
  } catch {
    // The wasm core is not initialised in this thread: the gRPC code alone.
    return { code: ce.code === Code.Unavailable ? "cosigner_unavailable" : "cosigner_rejected", retryable: false };
  }
}

/** Maps any failure of a cosigner call to a typed error. */
export function cosignerError(e: unknown, url: string, method: string): WalletError {
  if (e instanceof WalletError) return e;
  const ce = ConnectError.from(e);
  const msg = ce.rawMessage || ce.message;
  const d = decodeCosigner(ce);
  const details: Record<string, unknown> = { url, method, grpcCode: Code[ce.code], retryable: d.retryable };
  if (d.rule !== undefined) details.rule = d.rule;
  if (d.party !== undefined) details.party = d.party;
  if (d.presignature !== undefined) details.presignature = d.presignature;
  // A fetch that never reached a server (refused, DNS, CORS) surfaces as a TypeError
  // wrapped into Code.Unknown / Internal by connect-web (no status, so no ErrorInfo).
  const networkish =
    d.code === "cosigner_unavailable" ||
    ((ce.code === Code.Unknown || ce.code === Code.Internal) && ce.cause instanceof TypeError);
  if (networkish) {
    return new UnavailableError(
      "cosigner_unavailable",
      `cosigner unreachable at ${url} (${method}): ${msg}. Check that sign-service is running, the URL is right and it allows this origin (CORS).`,
      details,
      { cause: e },
    );
  }
  switch (d.code) {
    case "policy_denied":
      return new CosignerError(d.code, `cosigner policy refused to sign${d.rule ? ` (rule ${d.rule})` : ""}: ${msg}`, details);
    case "timeout":
    case "session_failed":
      return new SessionError(d.code, `cosigner ${d.code === "timeout" ? "request timed out" : "session failed"} (${method}): ${msg}`, details);
    case "invalid_input":
      return new InvalidInputError(`the cosigner refused the input (${method}): ${msg}`, details);
    case "gateway_unavailable":
      return new UnavailableError(d.code, `the cosigner cannot reach the gateway (${method}): ${msg}`, details);
    case "presignature_unavailable":
      return new PresignatureError(`presignature unavailable (${method}): ${msg}`, details);
    default:
      return new CosignerError(d.code, `cosigner refused (${d.code}, ${method}): ${msg}`, details);
  }
}

/** The typed cosigner client. */
export class CosignerClient {
  readonly url: string;
  private readonly client: Client<typeof Cosigner>;

  constructor(url: string, opts: { timeoutMs?: number } = {}) {
    this.url = normalizeUrl("cosigner", url);
    const transport = createGrpcWebTransport({
      baseUrl: this.url,
      // tonic-web speaks binary grpc-web.
      useBinaryFormat: true,
      defaultTimeoutMs: opts.timeoutMs ?? 60_000,
    });
    this.client = createClient(Cosigner, transport);
  }

  private async call<T>(method: string, f: () => Promise<T>): Promise<T> {
    try {
      return await f();
    } catch (e) {
      throw cosignerError(e, this.url, method);
    }
  }

  health(): Promise<HealthResponse> {
    return this.call("Health", () => this.client.health({}));
  }

  createWallet(req: {
    deviceIdentity: string;
    recoveryIdentity: string;
    accounts: number;
    kind: number;
    label: string;
    timestampMs: number;
    nonce: Uint8Array;
    signature: Uint8Array;
  }): Promise<CreateWalletResponse> {
    return this.call("CreateWallet", () =>
      this.client.createWallet({ ...req, timestampMs: BigInt(req.timestampMs) }),
    );
  }

  confirmWallet(auth: WasmAuth, publicKeys: Record<string, string>) {
    return this.call("ConfirmWallet", () => this.client.confirmWallet({ auth: toAuth(auth), publicKeys }));
  }

  startSign(
    auth: WasmAuth,
    req: { accountId: string; derivationPath: string; preimage: Uint8Array; digest: number; payloadKind: number },
  ) {
    return this.call("StartSign", () => this.client.startSign({ auth: toAuth(auth), ...req }));
  }

  getPublicKey(auth: WasmAuth, accountId: string, derivationPath: string) {
    return this.call("GetPublicKey", () => this.client.getPublicKey({ auth: toAuth(auth), accountId, derivationPath }));
  }

  listAccounts(auth: WasmAuth) {
    return this.call("ListAccounts", () => this.client.listAccounts({ auth: toAuth(auth) }));
  }

  // presign-web: presignature pools (proto comments are the contract).

  /**
   * Opens presignature sessions for an independent account. `null` when the cosigner's
   * pool for this account is full (RESOURCE_EXHAUSTED); a `PresignatureError` (reason
   * `disabled`) when the cosigner has presignatures off.
   */
  async startPresign(
    auth: WasmAuth,
    req: { accountId: string; count: number; releaseIds: string[] },
  ): Promise<StartPresignResponse | null> {
    try {
      return await this.client.startPresign({ auth: toAuth(auth), ...req });
    } catch (e) {
      const ce = ConnectError.from(e);
      const d = decodeCosigner(ce);
      // pool_full: RESOURCE_EXHAUSTED when the pool is at its cap, FAILED_PRECONDITION
      // when the cosigner's cap is 0 (presignatures off).
      if (d.code === "pool_full" && ce.code === Code.ResourceExhausted) return null;
      if (d.code === "pool_full") {
        throw new PresignatureError(`the cosigner has presignatures turned off: ${ce.rawMessage}`, {
          reason: "disabled",
          url: this.url,
        });
      }
      throw cosignerError(e, this.url, "StartPresign");
    }
  }

  /** The cosigner's presignature pools for this caller (`accountId` empty: every independent account). */
  presignPoolStatus(auth: WasmAuth, accountId: string): Promise<PresignPoolStatusResponse> {
    return this.call("PresignPoolStatus", () => this.client.presignPoolStatus({ auth: toAuth(auth), accountId }));
  }

  /**
   * Asks for the cosigner's partial signature with a presignature. An unknown or used
   * id (`presignature_unavailable`, its ErrorInfo naming the state) resolves to
   * `{ unavailable: "unknown" | "used" }`; every other failure throws a typed error
   * (policy refusals stay `policy_denied`).
   */
  async signWithPresignature(
    auth: WasmAuth,
    req: { accountId: string; presignatureId: string; preimage: Uint8Array; digest: number; payloadKind: number },
    timeoutMs = 30_000,
  ): Promise<{ response: SignWithPresignatureResponse } | { unavailable: "unknown" | "used"; message: string }> {
    try {
      return { response: await this.client.signWithPresignature({ auth: toAuth(auth), ...req }, { timeoutMs }) };
    } catch (e) {
      const ce = ConnectError.from(e);
      const d = decodeCosigner(ce);
      if (d.code === "presignature_unavailable" && d.presignature) {
        return { unavailable: d.presignature, message: ce.rawMessage };
      }
      throw cosignerError(e, this.url, "SignWithPresignature");
    }
  }
}

/** The `Auth` object as produced by the wasm `signAuth`. */
export interface WasmAuth {
  walletId: string;
  party: number;
  timestampMs: number;
  nonce: Uint8Array;
  signature: Uint8Array;
}

function toAuth(a: WasmAuth): Auth {
  return create(AuthSchema, {
    walletId: a.walletId,
    party: a.party,
    timestampMs: BigInt(a.timestampMs),
    nonce: a.nonce,
    signature: a.signature,
  });
}
