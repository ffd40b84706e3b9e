// The offscreen document (reason WORKERS) hosts the protocol Worker for long work —
// wallet creation (aux info, DKG) and presignature refills — so that the service
// worker may be stopped at any time without interrupting it. Jobs are fire-and-forget:
// the offscreen document broadcasts their progress ({ to: "ui", type: "job" }).
import type { Job } from "../shared/messages";

const PATH = "src/offscreen/offscreen.html";
let creating: Promise<void> | undefined;

async function exists(): Promise<boolean> {
  const url = chrome.runtime.getURL(PATH);
  const found = await chrome.runtime.getContexts({ contextTypes: ["OFFSCREEN_DOCUMENT"], documentUrls: [url] });
  return found.length > 0;
}

export async function ensureOffscreen(): Promise<void> {
  if (await exists()) return;
  creating ??= chrome.offscreen
    .createDocument({
      url: PATH,
      reasons: ["WORKERS"],
      justification: "runs the wallet's protocol Worker (wallet creation, presignature refills) independently of the service worker's lifetime",
    })
    .finally(() => {
      creating = undefined;
    });
  await creating;
}

async function ask<T>(msg: Record<string, unknown>): Promise<T> {
  for (let i = 0; ; i++) {
    try {
      const r = await chrome.runtime.sendMessage({ to: "offscreen", ...msg });
      if (!r?.ok) throw Object.assign(new Error(r?.error?.message ?? "offscreen document: no answer"), { code: r?.error?.code ?? "internal" });
      return r.value as T;
    } catch (e) {
      // The document may still be loading its module.
      if (i < 30 && /Receiving end does not exist/.test(String((e as Error).message))) {
        await new Promise((r) => setTimeout(r, 100));
        continue;
      }
      throw e;
    }
  }
}

export async function startJob(kind: Job["kind"], params: Record<string, unknown>): Promise<Job> {
  await ensureOffscreen();
  return ask<Job>({ type: "start", kind, ...params });
}

export async function listJobs(): Promise<Job[]> {
  if (!(await exists())) return [];
  return ask<Job[]>({ type: "jobs" });
}
