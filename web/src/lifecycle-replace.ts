/**
 * The new profile of a device replacement (see `lifecycle.ts` for the overview): the
 * new identity is generated inside wasm, the recovery agent asks the cosigner
 * (ReplaceDevice, with this identity's proof of possession, which this profile signs
 * in wasm), then this profile receives its share (aux info, repair, refresh), stores
 * it as pending and confirms with the NEW identity.
 */

import type { AgentClient } from "./agent.js";
import { AgentError, StorageError, WalletError } from "./errors.js";
import type { LifecycleResult } from "./lifecycle-types.js";
import { agentDone, awaitPlan, fromBase64, lifecycleHost, mapAccounts, pendingSecret, promote, type JoinedOut, type LifecycleCtx } from "./lifecycle.js";
import * as storage from "./storage.js";
import { flowError, type Mpc } from "./wasm.js";

/** The wasm `NewDevice` (src/lifecycle_new.rs): the new identity lives in it. */
type NewDeviceObj = Mpc["NewDevice"]["prototype"];

/** What the replacement needs besides the shared context. */
export interface ReplaceParams {
  walletId: string;
  reason: string;
  agent: AgentClient;
  protection: "webcrypto" | "passphrase";
  /** This profile's prime set (the prime pool, or the dev fixture). */
  primes: () => Promise<{ primes: [string, string, string, string] }>;
  /** Whether the primes are the public fixture (dev only). */
  insecureDevPrimes: () => boolean;
}

/** Runs the replacement: see `replaceDevice` in `index.ts`. */
export async function replaceDevice(ctx: LifecycleCtx, p: ReplaceParams): Promise<LifecycleResult> {
  const started = Date.now();
  const existing = await storage.getWallet(ctx.walletName);
  if (existing && storage.hasShare(existing)) {
    throw new StorageError("wallet_exists", `a wallet named "${ctx.walletName}" already exists in this browser; refusing to overwrite key shares`, {
      walletName: ctx.walletName,
    });
  }
  let dev: NewDeviceObj;
  try {
    dev = new ctx.mpc.NewDevice(p.walletId);
  } catch (e) {
    throw flowError(e, "the new device identity");
  }
  try {
    // The primes first: the search may take minutes, the possession challenge 60 s.
    const primes = await p.primes();
    const req = await p.agent.requestLifecycle(p.walletId, {
      kind: "replace_device",
      cosigner_url: ctx.cosigner.url,
      new_device_identity: dev.identity,
      ...(p.reason ? { reason: p.reason } : {}),
    });
    const asked = await awaitPlan(ctx, p.agent, req, (r) => (r.state === "awaiting_device" && !!r.possession_challenge) || (r.state === "running" && !!r.lifecycle));
    // The cosigner this profile reaches: the challenge and the template must name it
    // (else the agent chose the party this identity proves itself to, or runs with).
    const cosignerIdentity = (await ctx.cosigner.health()).identity.toLowerCase();
    if (asked.state === "awaiting_device" && asked.possession_challenge) {
      const c = asked.possession_challenge;
      if (typeof c.audience !== "string" || c.audience.toLowerCase() !== cosignerIdentity) {
        throw new WalletError("invalid_response", `the recovery agent's possession challenge is for cosigner ${String(c.audience).slice(0, 16)}…, not ${ctx.cosigner.url}'s ${cosignerIdentity.slice(0, 16)}…; nothing was signed`, {
          requestId: req.request_id,
        });
      }
      let sig: string;
      try {
        sig = dev.signPossession(c.message_hex, c.audience, c.timestamp_ms, c.nonce_hex);
      } catch (e) {
        throw flowError(e, "the recovery agent's possession challenge", { requestId: req.request_id });
      }
      await p.agent.possession(req.request_id, sig);
    }
    ctx.emit("agent", 100, "confirmed on the recovery agent", { requestId: req.request_id, finished: true });
    const running = await p.agent.waitRequest(req.request_id, {
      timeoutMs: ctx.timeoutMs,
      ...(ctx.signal ? { signal: ctx.signal } : {}),
      until: (r) => r.state === "running" && !!r.lifecycle,
    });
    const lc = running.lifecycle;
    if (!lc || lc.kind !== "replace_device" || lc.template === undefined) {
      throw new AgentError("agent_failed", `recovery agent request ${req.request_id} gave no replacement plan`, { requestId: req.request_id, requestState: running.state });
    }
    const named = (lc.template as { cosigner_identity?: unknown }).cosigner_identity;
    if (typeof named !== "string" || named.toLowerCase() !== cosignerIdentity) {
      throw new WalletError("invalid_response", `the recovery agent's replacement names cosigner ${String(named).slice(0, 16)}…, not ${ctx.cosigner.url}'s ${cosignerIdentity.slice(0, 16)}…`, {
        requestId: req.request_id,
      });
    }
    const agentMs = Date.now() - started;
    const plan = fromBase64(lc.plan_b64, "plan");
    const host = lifecycleHost(ctx, async (o) => {
      const meta: storage.NewWallet = {
        walletName: ctx.walletName,
        walletId: p.walletId,
        accounts: mapAccounts(o.accounts),
        protection: p.protection,
        insecureDevPrimes: p.insecureDevPrimes(),
        createdAtMs: Date.now(),
        cosignerUrl: ctx.cosigner.url,
        partyIndex: 0,
      };
      await storage.putReplacement(meta, { lifecycleId: o.lifecycleId, kind: "replace_device", epoch: o.epoch, expiresAtMs: o.expiresAtMs, accounts: meta.accounts }, pendingSecret(o));
    });
    let out: JoinedOut;
    try {
      out = (await dev.run(host, { plan, template: JSON.stringify(lc.template), primes, ...ctx.protection, ...ctx.session })) as JoinedOut;
    } catch (e) {
      throw flowError(e, "replacing the device", { requestId: req.request_id });
    }
    await promote(ctx.walletName, out.lifecycleId);
    return {
      walletId: p.walletId,
      walletName: ctx.walletName,
      lifecycleId: out.lifecycleId,
      kind: "replace_device",
      epoch: out.epoch,
      committed: true,
      accounts: mapAccounts(out.accounts),
      requestId: req.request_id,
      agentDone: await agentDone(p.agent, req.request_id),
      timings: { agentMs, sessionsMs: out.timings.sessionsMs, confirmMs: out.timings.confirmMs, totalMs: Date.now() - started },
    };
  } finally {
    dev.free();
  }
}
