// User confirmation of dapp requests: one approval window per request
// (src/approval/approval.html?id=<request id>). Closing the window rejects (EIP-1193
// 4001).
//
// Approvals survive a stopped service worker. Each dapp request carries an id chosen by
// the content script; its approval is a record in chrome.storage.session ("dapp:<id>"),
// not only a promise in this worker's memory. When Chrome stops the worker while the
// window is open, the content script sends the request again with the same id (resume),
// the restarted worker finds the record and waits for the same window's answer (an
// answer that arrived in between is in the record): the page gets its signature as if
// nothing happened. The record's states:
//   pending    the window is open, the user has not decided
//   approved   the user approved; nothing was executed yet
//   executing  the approved request is being carried out (signing, sending)
//   done       its result is kept for a resume (RESULT_TTL_MS) then deleted
//   failed     rejected (4001) or an error, kept likewise
// The one request that is not repeated after a stop is an eth_sendTransaction caught
// `executing`: whether it reached the node is unknown, so the page gets 4900 and must
// look at the account before sending again (sw.ts, dapp.ts).
export interface ApprovalRequest {
  id: string;
  origin: string;
  method: string;
  /** What the user approves, as text. */
  summary: string;
}

export type ApprovalState = "pending" | "approved" | "executing" | "done" | "failed";

export interface DappRecord extends ApprovalRequest {
  state: ApprovalState;
  windowId?: number;
  updatedAt: number;
  result?: unknown;
  error?: { code: number; message: string; walletCode?: string };
}

/** How long a finished request's outcome stays for a resume. */
const RESULT_TTL_MS = 2 * 60_000;
/** How long an undecided approval stays (its window is long gone by then). */
const PENDING_TTL_MS = 60 * 60_000;
const PREFIX = "dapp:";

/** Waiters of this worker instance, by request id (settled by the user's answer). */
const waiters = new Map<string, Set<(approved: boolean) => void>>();

export function rejected(): Error {
  return Object.assign(new Error("User rejected the request."), { code: "user_rejected", eip1193Code: 4001 });
}

export async function getRecord(id: string): Promise<DappRecord | undefined> {
  const key = PREFIX + id;
  const got = await chrome.storage.session.get(key);
  return got[key] as DappRecord | undefined;
}

async function putRecord(r: DappRecord): Promise<void> {
  await chrome.storage.session.set({ [PREFIX + r.id]: { ...r, updatedAt: Date.now() } });
}

async function allRecords(): Promise<DappRecord[]> {
  const all: Record<string, unknown> = await chrome.storage.session.get(null);
  return Object.entries(all)
    .filter(([k]) => k.startsWith(PREFIX))
    .map(([, v]) => v as DappRecord);
}

/** Deletes outcomes nobody came back for and abandoned approvals. */
async function prune(): Promise<void> {
  const now = Date.now();
  const old = (await allRecords()).filter((r) =>
    r.state === "done" || r.state === "failed" ? now - r.updatedAt > RESULT_TTL_MS : now - r.updatedAt > PENDING_TTL_MS,
  );
  if (old.length) await chrome.storage.session.remove(old.map((r) => PREFIX + r.id));
}

/** The user's decision on `id`: waits for it, or reads it when it was recorded already. */
async function decision(id: string): Promise<boolean> {
  const decided = new Promise<boolean>((resolve) => {
    const set = waiters.get(id) ?? new Set();
    waiters.set(id, set);
    set.add(resolve);
  });
  // An answer recorded before this waiter existed (e.g. by a worker that was stopped).
  const r = await getRecord(id);
  if (r && r.state !== "pending") wake(id, r.state === "approved" || r.state === "executing" || r.state === "done");
  return decided;
}

function wake(id: string, approved: boolean): void {
  const set = waiters.get(id);
  waiters.delete(id);
  for (const w of set ?? []) w(approved);
}

async function windowOpen(windowId: number | undefined): Promise<boolean> {
  if (windowId === undefined) return true; // still being opened
  try {
    await chrome.windows.get(windowId);
    return true;
  } catch {
    return false;
  }
}

/**
 * The user's approval of request `id`: opens its window the first time, re-attaches to
 * the open window after a worker restart. Resolves once approved (the record is then
 * `executing`); rejects with 4001 when rejected or the window is closed.
 */
export async function requestApproval(id: string, origin: string, method: string, summary: string): Promise<void> {
  let r = await getRecord(id);
  if (r && r.origin !== origin) throw Object.assign(new Error("request id of another origin"), { eip1193Code: -32603, code: "invalid_input" });
  if (!r) {
    await prune();
    r = { id, origin, method, summary, state: "pending", updatedAt: Date.now() };
    await putRecord(r);
    const waited = decision(id);
    try {
      const w: { id?: number } = await chrome.windows.create({
        url: chrome.runtime.getURL(`src/approval/approval.html?id=${encodeURIComponent(id)}`),
        type: "popup",
        width: 420,
        height: 640,
        focused: true,
      });
      const now = await getRecord(id);
      if (now?.state === "pending" && w.id !== undefined) await putRecord({ ...now, windowId: w.id });
    } catch (e) {
      waiters.delete(id);
      await chrome.storage.session.remove(PREFIX + id);
      throw e;
    }
    if (!(await waited)) throw rejected();
  } else if (r.state === "pending") {
    // A resume: the window of the first attempt is still the one to answer.
    if (!(await windowOpen(r.windowId))) {
      await finishRequest(id, { error: { code: 4001, message: "User rejected the request." } });
      throw rejected();
    }
    if (!(await decision(id))) throw rejected();
  } else if (r.state === "failed") {
    throw Object.assign(new Error(r.error?.message ?? "request failed"), { eip1193Code: r.error?.code ?? -32603, code: r.error?.walletCode ?? "internal" });
  }
  // approved (now or before a restart), or executing when an earlier attempt was cut short.
  const now = await getRecord(id);
  if (now) await putRecord({ ...now, state: "executing" });
}

/** The request an approval window shows, while it waits for the user. */
export async function getApproval(id: string): Promise<ApprovalRequest | undefined> {
  const r = await getRecord(id);
  return r?.state === "pending" ? { id: r.id, origin: r.origin, method: r.method, summary: r.summary } : undefined;
}

/** The user's answer (from the approval window). Recorded first, so a worker restart loses nothing. */
export async function answerApproval(id: string, approved: boolean): Promise<void> {
  const r = await getRecord(id);
  if (!r || r.state !== "pending") throw Object.assign(new Error("this request is no longer pending"), { code: "invalid_input" });
  if (approved) await putRecord({ ...r, state: "approved" });
  else await finishRequest(id, { error: { code: 4001, message: "User rejected the request." } });
  wake(id, approved);
}

/** Records the outcome of a request that went through an approval (kept for a resume). */
export async function finishRequest(id: string, outcome: { result: unknown } | { error: NonNullable<DappRecord["error"]> }): Promise<void> {
  const r = await getRecord(id);
  if (!r) return;
  await putRecord("result" in outcome ? { ...r, state: "done", result: outcome.result } : { ...r, state: "failed", error: outcome.error });
}

chrome.windows.onRemoved.addListener((windowId: number) => {
  void (async () => {
    for (const r of await allRecords()) {
      if (r.windowId === windowId && r.state === "pending") {
        await finishRequest(r.id, { error: { code: 4001, message: "User rejected the request." } });
        wake(r.id, false);
      }
    }
  })();
});
