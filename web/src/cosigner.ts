/**
 * The cosigner's transport: gRPC-web (binary) over `fetch` to `sign-service`
 * (tonic-web). The wasm core builds, signs and serializes every request and decodes
 * every response and every failure (`crates/client-core`, `cosigner-api`'s one
 * `google.rpc.ErrorInfo` decoder): this file only moves bytes. It frames the request,
 * unframes the response and hands back the body, or the failed call's gRPC status
 * (code, message, `grpc-status-details-bin`), or "no answer".
 *
 * Why by hand and not connect-web: connect-web's transports serialize a message they
 * build themselves, while the request bytes here must be the wasm core's, unchanged.
 * gRPC-web framing is five bytes per message and a trailer frame
 * (https://github.com/grpc/grpc/blob/master/doc/PROTOCOL-WEB.md).
 */

import { fromBinary } from "@bufbuild/protobuf";
import { HealthResponseSchema } from "./gen/wallet/cosigner/v1/cosigner_pb.js";
import { ConfigError, errorForCode, type ErrorCode, type WalletError } from "./errors.js";
import * as mpc from "../wasm/mpc_wasm.js";

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

/** The answer to one call, as the wasm flows' host gives it (`crates/mpc-wasm/src/flows.rs`). */
export type CosignerAnswer =
  | { body: Uint8Array }
  | { grpcCode: number; message: string; details: string }
  | { unavailable: string };

/** Default deadline of one cosigner call. */
export const CALL_TIMEOUT_MS = 60_000;

const GRPC_UNKNOWN = 2;

function frame(body: Uint8Array): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(5 + body.length);
  new DataView(out.buffer).setUint32(1, body.length);
  out.set(body, 5);
  return out;
}

function decodeGrpcMessage(m: string | null | undefined): string {
  if (!m) return "";
  try {
    return decodeURIComponent(m);
  } catch {
    return m;
  }
}

/** Trailer frame text (`key: value\r\n`…) as a map with lower-case keys. */
function parseTrailers(bytes: Uint8Array): Map<string, string> {
  const out = new Map<string, string>();
  for (const line of new TextDecoder().decode(bytes).split("\r\n")) {
    const i = line.indexOf(":");
    if (i > 0) out.set(line.slice(0, i).trim().toLowerCase(), line.slice(i + 1).trim());
  }
  return out;
}

/** The cosigner at one URL. */
export class CosignerTransport {
  readonly url: string;

  constructor(url: string | undefined) {
    this.url = normalizeUrl("cosigner", url);
  }

  /**
   * One unary call: `path` (`/wallet.cosigner.v1.Cosigner/Method`) with the request's
   * protobuf `body`. Never throws: a call with no answer (network, CORS, timeout) is
   * `{ unavailable }`.
   */
  async call(path: string, body: Uint8Array, timeoutMs = CALL_TIMEOUT_MS): Promise<CosignerAnswer> {
    const ctl = new AbortController();
    const timer = setTimeout(() => ctl.abort(), timeoutMs);
    let res: Response;
    let bytes: Uint8Array;
    try {
      res = await fetch(`${this.url}${path}`, {
        method: "POST",
        headers: {
          "content-type": "application/grpc-web+proto",
          accept: "application/grpc-web+proto",
          "x-grpc-web": "1",
          "grpc-timeout": `${Math.max(1, Math.floor(timeoutMs))}m`,
        },
        body: frame(body),
        signal: ctl.signal,
      });
      bytes = new Uint8Array(await res.arrayBuffer());
    } catch (e) {
      const why = ctl.signal.aborted ? `no answer within ${Math.round(timeoutMs / 1000)} s` : e instanceof Error ? e.message : String(e);
      return {
        unavailable: `cosigner unreachable at ${this.url} (${path}): ${why}. Check that sign-service is running, the URL is right and it allows this origin (CORS).`,
      };
    } finally {
      clearTimeout(timer);
    }
    // Trailers-only responses carry the status in the headers.
    const headerStatus = res.headers.get("grpc-status");
    if (headerStatus !== null && headerStatus !== "0") {
      return {
        grpcCode: Number(headerStatus),
        message: decodeGrpcMessage(res.headers.get("grpc-message")),
        details: res.headers.get("grpc-status-details-bin") ?? "",
      };
    }
    if (!res.ok) {
      return { unavailable: `cosigner at ${this.url} answered HTTP ${res.status} to ${path} (not a gRPC-web endpoint?)` };
    }
    let message: Uint8Array | undefined;
    let trailers = new Map<string, string>();
    for (let at = 0; at + 5 <= bytes.length; ) {
      const flag = bytes[at]!;
      const len = new DataView(bytes.buffer, bytes.byteOffset + at + 1, 4).getUint32(0);
      const data = bytes.subarray(at + 5, at + 5 + len);
      if (data.length !== len) break;
      if (flag & 0x80) trailers = parseTrailers(data);
      else if (message === undefined) message = data;
      at += 5 + len;
    }
    const status = trailers.get("grpc-status") ?? headerStatus ?? "0";
    if (status !== "0") {
      return {
        grpcCode: Number(status),
        message: decodeGrpcMessage(trailers.get("grpc-message")),
        details: trailers.get("grpc-status-details-bin") ?? "",
      };
    }
    if (message === undefined) {
      return { grpcCode: GRPC_UNKNOWN, message: `the cosigner answered ${path} without a message`, details: "" };
    }
    return { body: message.slice() };
  }

  /** `Health` (unauthenticated). */
  async health(): Promise<{ status: string; version: string; backend: string; identity: string }> {
    const a = await this.call("/wallet.cosigner.v1.Cosigner/Health", new Uint8Array(0));
    if ("body" in a) return fromBinary(HealthResponseSchema, a.body);
    throw answerError(a, "Health");
  }
}

/** A failed answer as a typed error (decoded by the wasm core, never by its text). */
export function answerError(a: Exclude<CosignerAnswer, { body: Uint8Array }>, method: string): WalletError {
  if ("unavailable" in a) return errorForCode("cosigner_unavailable", a.unavailable, { method });
  let code: ErrorCode = "cosigner_rejected";
  const details: Record<string, unknown> = { method, grpcCode: a.grpcCode };
  try {
    const d = mpc.decodeCosignerError(a.grpcCode, a.message, new TextEncoder().encode(a.details)) as {
      code: ErrorCode;
      rule?: string;
      retryable: boolean;
    };
    code = d.code;
    details.retryable = d.retryable;
    if (d.rule !== undefined) details.rule = d.rule;
  } catch {
    // the wasm core is not loaded in this thread: the gRPC code alone
    if (a.grpcCode === 14) code = "cosigner_unavailable";
  }
  return errorForCode(code, `cosigner (${method}): ${a.message}`, details);
}
