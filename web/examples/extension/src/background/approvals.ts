// User confirmation of dapp requests: one approval window per request
// (src/approval/approval.html?id=...). Closing the window rejects (EIP-1193 4001).
export interface ApprovalRequest {
  id: string;
  origin: string;
  method: string;
  /** What the user approves, as text. */
  summary: string;
}

interface Pending extends ApprovalRequest {
  windowId?: number;
  settle: (approved: boolean) => void;
}

const pending = new Map<string, Pending>();

export function rejected(): Error {
  return Object.assign(new Error("User rejected the request."), { code: "user_rejected", eip1193Code: 4001 });
}

/** Opens the approval window and resolves once approved; rejects with 4001 otherwise. */
export function requestApproval(origin: string, method: string, summary: string): Promise<void> {
  const id = crypto.randomUUID();
  return new Promise<void>((resolve, reject) => {
    const p: Pending = { id, origin, method, summary, settle: (ok) => (ok ? resolve() : reject(rejected())) };
    pending.set(id, p);
    chrome.windows
      .create({ url: chrome.runtime.getURL(`src/approval/approval.html?id=${id}`), type: "popup", width: 420, height: 640, focused: true })
      .then((w: { id?: number }) => {
        p.windowId = w.id;
      })
      .catch((e: unknown) => {
        pending.delete(id);
        reject(e);
      });
  });
}

export function getApproval(id: string): ApprovalRequest | undefined {
  const p = pending.get(id);
  return p && { id: p.id, origin: p.origin, method: p.method, summary: p.summary };
}

export function answerApproval(id: string, approved: boolean): void {
  const p = pending.get(id);
  if (!p) throw Object.assign(new Error("this request is no longer pending"), { code: "invalid_input" });
  pending.delete(id);
  p.settle(approved);
}

chrome.windows.onRemoved.addListener((windowId: number) => {
  for (const p of pending.values()) {
    if (p.windowId === windowId) {
      pending.delete(p.id);
      p.settle(false);
    }
  }
});
