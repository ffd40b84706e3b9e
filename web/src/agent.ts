/**
 * HTTP client of the recovery agent (party 2), per the agent contract:
 * `GET /v1/health`, `GET /v1/identity`, `POST /v1/wallets`, `GET /v1/jobs/{id}`, every
 * call but health with `Authorization: Bearer <pairing token>`, JSON errors
 * `{"error": {"code", "message"}}`.
 */

import { AgentError, ConfigError, SessionError, UnavailableError, WalletError } from "./errors.js";
import { normalizeUrl } from "./cosigner.js";

/** A room as the agent expects it (snake_case JSON). */
export interface AgentRoom {
  session_id: string;
  room: string;
  room_token: string;
  gateway_url: string;
}

/** Body of `POST /v1/wallets`: exactly one of `aux_info` and `enrollment_id`. */
export interface AgentWalletRequest {
  wallet_id: string;
  cosigner_identity: string;
  device_identity: string;
  kind: "hd" | "independent";
  aux_info?: AgentRoom;
  /** The agent's enrollment (`POST /v1/enrollments`) whose aux info it reuses. */
  enrollment_id?: string;
  accounts: { account_id: string; keygen: AgentRoom }[];
}

/** Body of `POST /v1/enrollments` (what the cosigner's `EnrollDevice` answered). */
export interface AgentEnrollmentRequest {
  enrollment_id: string;
  cosigner_identity: string;
  device_identity: string;
  aux_info: AgentRoom;
}

/** `GET /v1/jobs/{id}`. */
export interface AgentJob {
  state: "running" | "done" | "failed";
  progress?: { stage: string; percent: number };
  public_keys?: Record<string, string>;
  error?: { code: string; message: string };
}

/** `POST /v1/wallets/{id}/controls` and `GET /v1/requests/{id}` (snake_case JSON). */
export interface AgentRequest {
  request_id: string;
  wallet_id: string;
  action: "revoke_device" | "freeze" | "unfreeze" | "refresh" | "replace_device";
  state: "awaiting_confirmation" | "awaiting_device" | "running" | "done" | "failed" | "rejected" | "expired";
  confirm_by_ms: number;
  controls?: { frozen: boolean; frozen_at_ms?: number | null; unfreeze_at_ms?: number | null; revoked_parties: number[] };
  /** A confirmed signing's room on the agent's relay, with the device's token. */
  session?: { session_id: string; room: string; room_token: string; gateway_url: string };
  error?: { code: string; message: string };
  /** A replacement, once confirmed: what the new profile signs with its new identity. */
  possession_challenge?: AgentPossessionChallenge;
  /** A lifecycle session, once the agent has the cosigner's plan. */
  lifecycle?: AgentLifecycle;
  /** A done request's result (a lifecycle: `{ lifecycle: { epoch, committed } }`). */
  outcome?: { lifecycle?: { epoch: number; committed: boolean } };
}

/** `possession_challenge` of a replacement in state `awaiting_device`. */
export interface AgentPossessionChallenge {
  message_hex: string;
  audience: string;
  timestamp_ms: number;
  nonce_hex: string;
}

/** `lifecycle` of a refresh or replacement request (state `running`). */
export interface AgentLifecycle {
  kind: "refresh" | "replace_device";
  /** The cosigner's `LifecycleResponse` protobuf bytes, standard base64. */
  plan_b64: string;
  /** A replacement: the `NewDeviceTemplate` (JSON object). */
  template?: unknown;
}

/** Body of `POST /v1/wallets/{id}/lifecycle`. */
export interface AgentLifecycleRequest {
  kind: "refresh" | "replace_device";
  cosigner_url: string;
  reason?: string;
  /** A replacement: the new profile's identity (128 hex). */
  new_device_identity?: string;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The recovery agent client. */
export class AgentClient {
  readonly url: string;
  private readonly token: string;

  constructor(url: string | undefined, token: string | undefined) {
    this.url = normalizeUrl("recovery agent", url);
    if (!token || !token.trim()) throw new ConfigError("recovery agent pairing token is not set");
    this.token = token.trim();
  }

  private async request<T>(method: "GET" | "POST", path: string, body?: unknown, auth = true): Promise<T> {
    const headers: Record<string, string> = {};
    if (auth) headers["authorization"] = `Bearer ${this.token}`;
    if (body !== undefined) headers["content-type"] = "application/json";
    let res: Response;
    try {
      res = await fetch(`${this.url}${path}`, {
        method,
        headers,
        body: body === undefined ? null : JSON.stringify(body),
      });
    } catch (e) {
      throw new UnavailableError(
        "agent_unavailable",
        `recovery agent unreachable at ${this.url} (${method} ${path}): ${e instanceof Error ? e.message : String(e)}. ` +
          "Check that recovery-agent is running, the URL is right and it allows this origin (--allow-origin).",
        { url: this.url, path },
        { cause: e },
      );
    }
    const text = await res.text().catch(() => "");
    let json: unknown;
    try {
      json = text ? JSON.parse(text) : undefined;
    } catch {
      json = undefined;
    }
    if (!res.ok) {
      const err = (json as { error?: { code?: string; message?: string } } | undefined)?.error;
      const what = err?.message ?? (text.slice(0, 200) || res.statusText);
      const details = { url: this.url, path, status: res.status, agentCode: err?.code };
      if (res.status === 401 || res.status === 403) {
        throw new AgentError("agent_unauthorized", `recovery agent refused the pairing token: ${what}`, details);
      }
      throw new AgentError("agent_failed", `recovery agent error ${res.status} on ${method} ${path}: ${what}`, details);
    }
    if (json === undefined) {
      throw new AgentError("agent_failed", `recovery agent sent a non-JSON answer to ${method} ${path}`, { url: this.url, path });
    }
    return json as T;
  }

  health(): Promise<{ status: string; version: string; party_index: number }> {
    return this.request("GET", "/v1/health", undefined, false);
  }

  async identity(): Promise<string> {
    const r = await this.request<{ identity?: unknown }>("GET", "/v1/identity");
    if (typeof r.identity !== "string" || !/^[0-9a-f]{128}$/i.test(r.identity)) {
      throw new AgentError("agent_failed", "recovery agent returned an invalid identity", { url: this.url });
    }
    return r.identity.toLowerCase();
  }

  async createWallet(body: AgentWalletRequest): Promise<string> {
    const r = await this.request<{ job_id?: unknown }>("POST", "/v1/wallets", body);
    if (typeof r.job_id !== "string" || !r.job_id) {
      throw new AgentError("agent_failed", "recovery agent returned no job id", { url: this.url });
    }
    return r.job_id;
  }

  /** Starts the agent's enrollment job (its aux info alone); returns the job id. */
  async createEnrollment(body: AgentEnrollmentRequest): Promise<string> {
    const r = await this.request<{ job_id?: unknown }>("POST", "/v1/enrollments", body);
    if (typeof r.job_id !== "string" || !r.job_id) {
      throw new AgentError("agent_failed", "recovery agent returned no job id", { url: this.url });
    }
    return r.job_id;
  }

  /**
   * Submits a wallet control for the agent to send with the recovery identity; it waits
   * for the user's confirmation on the agent's machine (`state: "awaiting_confirmation"`).
   */
  async requestControl(
    walletId: string,
    body: { action: AgentRequest["action"]; reason: string; cosigner_url: string },
  ): Promise<AgentRequest> {
    const r = await this.request<AgentRequest>("POST", `/v1/wallets/${encodeURIComponent(walletId)}/controls`, body);
    if (typeof r.request_id !== "string" || !r.request_id) {
      throw new AgentError("agent_failed", "recovery agent returned no request id", { url: this.url });
    }
    return r;
  }

  /** Submits a signing by the device and the agent without the cosigner (awaits the agent's user). */
  async requestSign(
    walletId: string,
    body: { account_id: string; path: string; preimage_hex: string; digest: string; chain: "legacy" },
  ): Promise<AgentRequest> {
    const r = await this.request<AgentRequest>("POST", `/v1/wallets/${encodeURIComponent(walletId)}/sign-requests`, body);
    if (typeof r.request_id !== "string" || !r.request_id) {
      throw new AgentError("agent_failed", "recovery agent returned no request id", { url: this.url });
    }
    return r;
  }

  /**
   * Asks the agent to start a lifecycle session (refresh or replacement) signed as the
   * recovery party; it waits for its user's confirmation (`awaiting_confirmation`).
   */
  async requestLifecycle(walletId: string, body: AgentLifecycleRequest): Promise<AgentRequest> {
    const r = await this.request<AgentRequest>("POST", `/v1/wallets/${encodeURIComponent(walletId)}/lifecycle`, body);
    if (typeof r.request_id !== "string" || !r.request_id) {
      throw new AgentError("agent_failed", "recovery agent returned no request id", { url: this.url });
    }
    return r;
  }

  /** Posts the new identity's signature of the possession challenge (a replacement). */
  possession(id: string, signatureHex: string): Promise<AgentRequest> {
    return this.request<AgentRequest>("POST", `/v1/requests/${encodeURIComponent(id)}/possession`, { signature_hex: signatureHex });
  }

  /** One look at a request. */
  getRequest(id: string): Promise<AgentRequest> {
    return this.request<AgentRequest>("GET", `/v1/requests/${encodeURIComponent(id)}`);
  }

  /**
   * Polls a request until it ran (`done`) or, with `untilSession`, until a confirmed
   * signing's room is there: resolves with the request; throws `agent_failed` with
   * `details.requestState` when it was rejected, expired or failed (then with the
   * cosigner's code in `details.agentCode`).
   */
  async waitRequest(
    id: string,
    opts: {
      timeoutMs: number;
      intervalMs?: number;
      signal?: { aborted: boolean };
      untilSession?: boolean;
      /** Returns the request as soon as this holds (besides `done`). */
      until?: (r: AgentRequest) => boolean;
    },
  ): Promise<AgentRequest> {
    const deadline = Date.now() + opts.timeoutMs;
    let failures = 0;
    for (;;) {
      let r: AgentRequest | undefined;
      try {
        r = await this.request<AgentRequest>("GET", `/v1/requests/${encodeURIComponent(id)}`);
        failures = 0;
      } catch (e) {
        if (e instanceof UnavailableError && ++failures < 5) r = undefined;
        else throw e;
      }
      if (r?.state === "done" || (opts.untilSession && r?.state === "running" && r.session) || (r && opts.until?.(r))) return r;
      if (r && (r.state === "failed" || r.state === "rejected" || r.state === "expired")) {
        const why =
          r.state === "failed"
            ? `the cosigner refused it: ${r.error?.message ?? "unknown error"}`
            : r.state === "rejected"
              ? "the user rejected it on the recovery agent"
              : "nobody confirmed it on the recovery agent in time";
        throw new AgentError("agent_failed", `recovery agent request ${id} ${r.state}: ${why}`, {
          requestId: id,
          requestState: r.state,
          agentCode: r.error?.code,
        });
      }
      if (Date.now() > deadline) {
        throw new SessionError("timeout", `recovery agent request ${id} not done after ${Math.round(opts.timeoutMs / 1000)} s`, { requestId: id });
      }
      if (opts.signal?.aborted) throw new WalletError("aborted", "aborted");
      await sleep(opts.intervalMs ?? 500);
    }
  }

  job(id: string): Promise<AgentJob> {
    return this.request("GET", `/v1/jobs/${encodeURIComponent(id)}`);
  }

  /**
   * Polls a job until it is done (returns its public keys) or failed (throws), calling
   * `onProgress` with the agent's progress. A few transient network errors are
   * tolerated; a longer outage or `timeoutMs` ends the wait.
   */
  async waitJob(
    id: string,
    opts: {
      timeoutMs: number;
      intervalMs?: number;
      signal?: { aborted: boolean };
      onProgress?: (p: { stage: string; percent: number }) => void;
      /** `false` for an enrollment job, which ends without public keys (resolves `{}`). */
      publicKeys?: boolean;
    },
  ): Promise<Record<string, string>> {
    const deadline = Date.now() + opts.timeoutMs;
    let failures = 0;
    for (;;) {
      let job: AgentJob | undefined;
      try {
        job = await this.job(id);
        failures = 0;
      } catch (e) {
        if (e instanceof UnavailableError && ++failures < 5) {
          job = undefined;
        } else {
          throw e;
        }
      }
      if (job) {
        if (job.progress && opts.onProgress) opts.onProgress(job.progress);
        if (job.state === "done") {
          if (opts.publicKeys === false) return job.public_keys ?? {};
          if (!job.public_keys || typeof job.public_keys !== "object") {
            throw new AgentError("agent_failed", "recovery agent finished without public keys", { jobId: id });
          }
          return job.public_keys;
        }
        if (job.state === "failed") {
          throw new AgentError("agent_failed", `recovery agent job failed: ${job.error?.message ?? "unknown error"}`, {
            jobId: id,
            agentCode: job.error?.code,
          });
        }
      }
      if (Date.now() > deadline) {
        throw new SessionError("timeout", `recovery agent job ${id} not done after ${Math.round(opts.timeoutMs / 1000)} s`, { jobId: id });
      }
      if (opts.signal?.aborted) throw new WalletError("aborted", "aborted");
      await sleep(opts.intervalMs ?? 500);
    }
  }
}
