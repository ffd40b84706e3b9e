/**
 * Key lifecycle in the browser (`docs/lifecycle.md`): a proactive refresh of the
 * wallet's shares, and the replacement of a lost device by a NEW browser profile,
 * every address unchanged. The recovery agent starts each session (it signs as the
 * recovery party, after its user confirmed on its machine); the page joins it.
 *
 * Crash safety: the new shares are stored as PENDING (encrypted exactly like the
 * current share) BEFORE this profile confirms them to the cosigner, and promoted (the
 * current share replaced, the old epoch's presignature pools dropped) only once the
 * cosigner committed. A pending record left by a crash is settled when the wallet is
 * next used ({@link settlePending}): promoted when the cosigner's accounts are at its
 * epoch, dropped once the session expired, kept (the current share in use) otherwise.
 */

import { AgentClient, type AgentRequest } from "./agent.js";
import type { CosignerAnswer, CosignerTransport } from "./cosigner.js";
import { AgentError, throwIfAborted, WalletError } from "./errors.js";
import type { LifecycleResult } from "./lifecycle-types.js";
import * as pool from "./pool.js";
import * as storage from "./storage.js";
import type { AccountInfo, Phase } from "./types.js";
import { flowError, type Mpc } from "./wasm.js";

type WalletParty = Mpc["WalletParty"]["prototype"];

/** What the flows need from the wallet core. */
export interface LifecycleCtx {
  walletName: string;
  mpc: Mpc;
  cosigner: CosignerTransport;
  /** Session settings of the wasm flows (`WalletConfig`). */
  session: Record<string, unknown>;
  /** `{ passphrase, insecureFastKdf }` for a passphrase wallet, `{}` for WebCrypto. */
  protection: { passphrase?: string; insecureFastKdf?: boolean };
  /** Opens a record's share in wasm (not cached). */
  open(rec: storage.WalletRecord): Promise<WalletParty>;
  /** Progress of one phase. */
  emit(phase: Phase, percent: number, message: string, extra?: { requestId?: string; confirmByMs?: number; finished?: boolean; accountId?: string; round?: number; totalRounds?: number }): void;
  signal: AbortSignal | undefined;
  timeoutMs: number;
}

/** The wasm flow's progress event. */
interface FlowProgress {
  phase: string;
  round: number;
  totalRounds: number;
  percent: number;
  finished: boolean;
  accountId?: string;
}

/** What the wasm flow hands to `persistPending`. */
export interface PendingOut {
  walletId: string;
  lifecycleId: string;
  epoch: number;
  expiresAtMs: number;
  digests: Record<string, string>;
  accounts: { accountId: string; kind: string; publicKey: string; chainCode?: string; ethereumAddress: string; createdAt: number }[];
  passphraseFile?: string;
  bundle?: Uint8Array;
}

/** The wasm flow's result. */
export interface JoinedOut {
  walletId: string;
  lifecycleId: string;
  kind: "refresh" | "replace_device";
  epoch: number;
  committed: boolean;
  accounts: PendingOut["accounts"];
  timings: { sessionsMs: number; confirmMs: number; totalMs: number };
}

/** Standard (padded) base64 to bytes; `invalid_response` when malformed. */
export function fromBase64(b64: string, what: string): Uint8Array {
  try {
    const bin = atob(b64);
    const out = new Uint8Array(bin.length);
    for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
    return out;
  } catch {
    throw new WalletError("invalid_response", `the recovery agent's ${what} is not base64`);
  }
}

/** The wasm host of a lifecycle run: cosigner calls, progress, `persistPending`. */
export function lifecycleHost(ctx: LifecycleCtx, persist: (p: PendingOut) => Promise<void>) {
  return {
    callCosigner: (path: string, body: Uint8Array): Promise<CosignerAnswer> => ctx.cosigner.call(path, body),
    onProgress: (ev: FlowProgress) => {
      if (ev.phase === "refresh" || ev.phase === "repair" || ev.phase === "aux-info") {
        const acct = ev.accountId ? ` (${ev.accountId})` : "";
        ctx.emit(ev.phase, ev.percent, `${ev.phase} round ${ev.round}/${ev.totalRounds}${acct}`, {
          round: ev.round,
          totalRounds: ev.totalRounds,
          finished: false,
          ...(ev.accountId ? { accountId: ev.accountId } : {}),
        });
      } else if (ev.phase === "store") {
        ctx.emit("store", ev.percent, ev.finished ? "new shares stored as pending" : "encrypting and storing the new shares");
      } else if (ev.phase === "confirm") {
        ctx.emit("confirm", ev.percent, ev.finished ? "the cosigner committed the new shares" : "confirming the new shares with the cosigner");
      }
    },
    persistPending: async (p: PendingOut) => {
      try {
        // The last point of no return: once stored, the flow completes.
        throwIfAborted(ctx.signal, "the key lifecycle session");
        await persist(p);
      } finally {
        p.bundle?.fill(0);
      }
    },
  };
}

/** The secret of `p` for storage. */
export function pendingSecret(p: PendingOut): { bundle: Uint8Array } | { passphraseFile: string } {
  if (p.passphraseFile !== undefined) return { passphraseFile: p.passphraseFile };
  if (!p.bundle) throw new WalletError("internal", "the wasm core handed no pending shares");
  // A copy: the caller wipes the wasm's buffer once stored.
  return { bundle: new Uint8Array(p.bundle) };
}

/** Asks the agent, waits for its user and for the plan. */
export async function awaitPlan(ctx: LifecycleCtx, agent: AgentClient, req: AgentRequest, until: (r: AgentRequest) => boolean): Promise<AgentRequest> {
  ctx.emit("agent", 0, `confirm request ${req.request_id} on your recovery agent`, { requestId: req.request_id, confirmByMs: req.confirm_by_ms });
  const r = await agent.waitRequest(req.request_id, {
    timeoutMs: ctx.timeoutMs,
    ...(ctx.signal ? { signal: ctx.signal } : {}),
    until,
  });
  return r;
}

/** The agent's half done (best effort, short: its confirmation preceded the commit). */
export async function agentDone(agent: AgentClient, id: string): Promise<boolean> {
  try {
    const r = await agent.waitRequest(id, { timeoutMs: 30_000 });
    return r.outcome?.lifecycle?.committed === true;
  } catch {
    return false;
  }
}

export function mapAccounts(a: PendingOut["accounts"]): AccountInfo[] {
  return a.map((x) => {
    const out: AccountInfo = {
      accountId: x.accountId,
      kind: x.kind === "independent" ? "independent" : "hd",
      publicKey: x.publicKey,
      ethereumAddress: x.ethereumAddress as AccountInfo["ethereumAddress"],
      createdAt: x.createdAt,
    };
    if (x.chainCode) out.chainCode = x.chainCode;
    return out;
  });
}

/** The addresses stay: same accounts, same public keys (checked in wasm too). */
export function checkSameAccounts(before: { accountId: string; publicKey: string }[], after: { accountId: string; publicKey: string }[]): void {
  const key = (xs: { accountId: string; publicKey: string }[]) =>
    xs
      .map((x) => `${x.accountId}=${x.publicKey.toLowerCase()}`)
      .sort()
      .join(",");
  if (key(before) !== key(after)) {
    throw new WalletError("internal", "the new shares' accounts or public keys differ from the wallet's: the addresses would change");
  }
}

/**
 * This wallet's half of a refresh the recovery agent starts: see
 * `WalletClient.refreshShares`.
 */
export async function refreshShares(ctx: LifecycleCtx, rec: storage.WalletRecord, party: WalletParty, agent: AgentClient, reason: string): Promise<LifecycleResult> {
  const started = Date.now();
  if (rec.pending) {
    throw new WalletError("busy", `wallet "${rec.walletName}" has new shares of lifecycle ${rec.pending.lifecycleId} waiting for their commit (until ${new Date(rec.pending.expiresAtMs).toISOString()}); try again later`, {
      lifecycleId: rec.pending.lifecycleId,
    });
  }
  throwIfAborted(ctx.signal, "the key refresh");
  const req = await agent.requestLifecycle(rec.walletId, { kind: "refresh", cosigner_url: ctx.cosigner.url, ...(reason ? { reason } : {}) });
  const running = await awaitPlan(ctx, agent, req, (r) => r.state === "running" && !!r.lifecycle);
  const lc = running.lifecycle;
  if (!lc || lc.kind !== "refresh") {
    throw new AgentError("agent_failed", `recovery agent request ${req.request_id} gave no refresh plan`, { requestId: req.request_id, requestState: running.state });
  }
  ctx.emit("agent", 100, "confirmed on the recovery agent", { requestId: req.request_id, finished: true });
  const agentMs = Date.now() - started;
  const plan = fromBase64(lc.plan_b64, "plan");
  const host = lifecycleHost(ctx, async (p) => {
    checkSameAccounts(rec.accounts, p.accounts);
    await storage.putPending(ctx.walletName, rec.walletId, { lifecycleId: p.lifecycleId, kind: "refresh", epoch: p.epoch, expiresAtMs: p.expiresAtMs, accounts: mapAccounts(p.accounts) }, pendingSecret(p));
  });
  let out: JoinedOut;
  try {
    out = (await party.joinRefresh(host, { plan, ...ctx.protection, ...ctx.session })) as JoinedOut;
  } catch (e) {
    throw flowError(e, "refreshing the key shares", { requestId: req.request_id });
  }
  await promote(ctx.walletName, out.lifecycleId);
  return {
    walletId: rec.walletId,
    walletName: ctx.walletName,
    lifecycleId: out.lifecycleId,
    kind: "refresh",
    epoch: out.epoch,
    committed: true,
    accounts: mapAccounts(out.accounts),
    requestId: req.request_id,
    agentDone: await agentDone(agent, req.request_id),
    timings: { agentMs, sessionsMs: out.timings.sessionsMs, confirmMs: out.timings.confirmMs, totalMs: Date.now() - started },
  };
}

/** Promotes committed pending shares and drops the old epoch's presignatures. */
export async function promote(walletName: string, lifecycleId: string): Promise<void> {
  await storage.promotePending(walletName, lifecycleId);
  // Presignatures of the old shares can never sign again.
  await pool.deletePool(walletName);
}

/**
 * Settles a pending record left by an interrupted session: opens the pending shares
 * and asks the cosigner (ListAccounts, signed with them) which epoch the wallet is at.
 * Promoted when it is the pending epoch, dropped when the session expired (or the
 * cosigner is past it), kept otherwise, and always kept while the cosigner cannot say
 * (unreachable): dropping shares the cosigner committed would leave the device with
 * none that sign. Returns the record to use.
 */
export async function settlePending(
  rec: storage.WalletRecord,
  open: (r: storage.WalletRecord) => Promise<WalletParty>,
  cosigner: CosignerTransport,
): Promise<storage.WalletRecord | undefined> {
  const p = rec.pending;
  const asRec = storage.pendingAsRecord(rec);
  if (!p || !asRec) return rec;
  const expired = p.expiresAtMs !== 0 && Date.now() > p.expiresAtMs;
  let epoch: number | undefined;
  let party: WalletParty | undefined;
  try {
    party = await open(asRec);
    epoch = (await party.cosignerEpoch({ callCosigner: (path: string, body: Uint8Array) => cosigner.call(path, body) })) as number;
  } catch (e) {
    // `unauthorized`: the identity is not registered (a new profile whose replacement
    // never committed) or revoked; the pending shares can only be dropped once expired.
    // Anything else (the cosigner unreachable, …) says nothing about the commit: keep
    // them, even past the expiry (the cosigner may have committed them before it).
    if ((e as { code?: unknown } | undefined)?.code !== "unauthorized") return rec;
    epoch = undefined;
  } finally {
    party?.free();
  }
  if (epoch === p.epoch) {
    await promote(rec.walletName, p.lifecycleId);
    return await storage.getWallet(rec.walletName);
  }
  if (expired || (epoch !== undefined && epoch > p.epoch)) {
    await storage.dropPending(rec.walletName, p.lifecycleId);
    return await storage.getWallet(rec.walletName);
  }
  return rec;
}
