// The service worker: owns the wallet's state (lock and auto-lock, connected sites,
// pending approvals: kept in chrome.storage, never only in memory) and answers the
// popup, the approval window, the options page and web pages (through the content
// script). Listeners are registered synchronously at the
// top level so that a stopped worker restarts on the next message or alarm.
import { ACCOUNT_PATH, loadConfig } from "../shared/config";
import { answer, errorInfo, type Job } from "../shared/messages";
import { answerApproval, getApproval } from "./approvals";
import { handleDappRequest, type RpcRequest } from "./dapp";
import { startCreate, startEnroll, startRefill } from "./jobs";
import { listJobs } from "./offscreen";
import { AUTO_LOCK_ALARM, checkAutoLock, currentPassphrase, lock, lockedError, readClient, scheduleAutoLock, signClient, unlock } from "./session";

async function status() {
  const r = await readClient();
  const info = await r.walletInfo();
  const locked = !(await currentPassphrase());
  const c = await loadConfig();
  return {
    hasWallet: !!info,
    // The device enrollment (set passphrase → "Preparing your wallet…" → ready).
    enrollment: info ? { state: "none" } : await r.enrollmentStatus(),
    address: info ? await r.getAddress(undefined, ACCOUNT_PATH) : null,
    accounts: info?.accounts.map((a) => ({ accountId: a.accountId, kind: a.kind })) ?? [],
    insecureDev: c.insecureDev,
    locked,
    jobs: await listJobs(),
  };
}

async function ui(msg: Record<string, any>): Promise<unknown> {
  switch (msg.type) {
    case "status":
      return status();
    case "unlock":
      return unlock(String(msg.passphrase ?? ""));
    case "lock":
      return lock();
    case "enroll":
      return startEnroll(String(msg.passphrase ?? ""), msg.registrationCredential || undefined);
    case "create":
      return startCreate(String(msg.passphrase ?? ""), msg.registrationCredential || undefined);
    case "refill":
      return startRefill();
    case "pool":
      // The popup's polling: not a use of the wallet (the auto-lock delay runs on).
      return (await signClient({ use: false })).presignPoolStatus(undefined, ACCOUNT_PATH);
    case "approval:get":
      return { request: (await getApproval(String(msg.id))) ?? null, locked: !(await currentPassphrase()) };
    case "approval:answer": {
      const id = String(msg.id);
      const req = await getApproval(id);
      if (msg.approved && req) {
        if (msg.passphrase) await unlock(String(msg.passphrase));
        // Connecting needs no key; anything else cannot be approved while locked (the
        // request stays pending: enter the passphrase and approve again).
        else if (req.method !== "eth_requestAccounts" && !(await currentPassphrase())) {
          throw Object.assign(lockedError(), { message: "the wallet is locked: enter the passphrase to approve" });
        }
      }
      return answerApproval(id, !!msg.approved);
    }
    case "ping":
      return "pong";
  }
  throw Object.assign(new Error(`unknown message ${String(msg.type)}`), { code: "invalid_input" });
}

chrome.runtime.onMessage.addListener((msg: any, sender: any, sendResponse: (r: unknown) => void) => {
  if (msg?.to === "ui" && msg.type === "job") {
    onJob(msg.job as Job);
    return false;
  }
  if (msg?.to !== "sw") return false;
  if (msg.type === "dapp") {
    // Only content scripts of tabs speak for a web origin; the origin is Chrome's.
    if (sender.id !== chrome.runtime.id || !sender.tab || !sender.origin) {
      sendResponse({ ok: false, error: { code: -32603, message: "not from a web page" } });
      return false;
    }
    // The content script's id for this request (the same when it sends it again after
    // this worker was stopped: the request resumes, approvals.ts).
    const id = typeof msg.id === "string" && /^[0-9a-f]{32}$/.test(msg.id) ? msg.id : crypto.randomUUID().replaceAll("-", "");
    keepAlive(handleDappRequest(sender.origin, id, msg.request as RpcRequest)).then(
      (value) => sendResponse({ ok: true, value }),
      (e) => {
        const i = errorInfo(e);
        sendResponse({ ok: false, error: { code: i.eip1193Code ?? -32603, message: i.message, data: { walletCode: i.code } } });
      },
    );
    return true;
  }
  // Extension pages only (popup, approval window, options).
  if (sender.id !== chrome.runtime.id || sender.tab?.url?.startsWith("http")) return false;
  return answer(ui(msg), sendResponse);
});

/**
 * Keeps the worker from being stopped as idle while `p` runs (a full signature is
 * seconds of wasm; an approval waits for the user): an extension API call every 20 s
 * restarts Chrome's 30 s idle timer.
 */
function keepAlive<T>(p: Promise<T>): Promise<T> {
  const timer = setInterval(() => void chrome.runtime.getPlatformInfo(), 20_000);
  return p.finally(() => clearInterval(timer));
}

/** A created wallet gets its presignature pool filled at once. */
function onJob(job: Job): void {
  if (job.kind === "create" && job.state === "done") startRefill().catch(() => undefined);
}

chrome.alarms.onAlarm.addListener((a: { name: string }) => {
  if (a.name === AUTO_LOCK_ALARM) void checkAutoLock();
});

// A changed auto-lock delay applies at once (to the time already spent unused).
chrome.storage.onChanged.addListener((changes: Record<string, unknown>, area: string) => {
  if (area === "local" && "config" in changes) void checkAutoLock();
});

// A restarted worker re-arms its timer for the remaining delay (the alarm persisted).
void scheduleAutoLock();
