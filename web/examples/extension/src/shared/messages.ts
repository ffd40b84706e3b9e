// Messages between the extension's contexts (chrome.runtime messaging). `to` names the
// receiver: "sw" (service worker), "offscreen" (the offscreen document), "ui" (any
// open extension page: popup, approval window; broadcasts).

/**
 * A long job run in the offscreen document's protocol Worker: `enroll` (the device
 * enrollment: aux info, minutes, started when the passphrase is set), `create` (the
 * wallet: the DKG only after an enrollment), `refill` (presignatures).
 */
export interface Job {
  id: string;
  kind: "enroll" | "create" | "refill";
  state: "running" | "done" | "failed";
  startedAt: number;
  endedAt?: number;
  percent?: number;
  phase?: string;
  error?: { code: string; message: string };
  result?: unknown;
}

export interface Reply<T = unknown> {
  ok: boolean;
  value?: T;
  error?: { code: string; message: string; eip1193Code?: number };
}

/** Sends to the service worker and unwraps the reply (throws `Error` with `.code`). */
export async function toSw<T = unknown>(type: string, body: Record<string, unknown> = {}): Promise<T> {
  const r: Reply<T> | undefined = await chrome.runtime.sendMessage({ to: "sw", type, ...body });
  if (!r) throw Object.assign(new Error("no answer from the service worker"), { code: "internal" });
  if (!r.ok) throw Object.assign(new Error(r.error?.message ?? "failed"), { code: r.error?.code ?? "internal" });
  return r.value as T;
}

/** `{ code, message }` of any thrown value (WalletError keeps its code). */
export function errorInfo(e: unknown): { code: string; message: string; eip1193Code?: number } {
  const x = (e ?? {}) as { code?: unknown; message?: unknown; eip1193Code?: unknown };
  const out: { code: string; message: string; eip1193Code?: number } = {
    code: typeof x.code === "string" ? x.code : typeof x.code === "number" ? String(x.code) : "internal",
    message: typeof x.message === "string" ? x.message : String(e),
  };
  if (typeof x.eip1193Code === "number") out.eip1193Code = x.eip1193Code;
  return out;
}

/** Answers a chrome.runtime message with `Reply` from an async handler. */
export function answer(p: Promise<unknown>, sendResponse: (r: Reply) => void): true {
  p.then(
    (value) => sendResponse({ ok: true, value }),
    (e) => sendResponse({ ok: false, error: errorInfo(e) }),
  );
  return true;
}
