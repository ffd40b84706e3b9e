// Content script (isolated world): relays the page-world provider's requests to the
// service worker and the answers back. A classic script: it imports nothing.
//
// Each request gets an id here. When Chrome stops the service worker before it
// answered (the message channel closes), the request is sent again with the same id:
// the restarted worker resumes it — an approval still open is answered in the same
// window, a finished one returns its kept outcome (src/background/approvals.ts). Only
// when the wallet stays unreachable does the page get EIP-1193 4900 (disconnected).
const TO_CONTENT = "wallet-mpc:to-content";
const TO_PAGE = "wallet-mpc:to-page";
/** Attempts after a lost answer, ~6 s in all: a stopped worker restarts in well under a second. */
const RESEND_DELAYS_MS = [100, 250, 500, 1000, 2000, 2000];

function requestId(): string {
  const b = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
}

/** The errors of a worker that went away mid-request (or was not running yet). */
function workerGone(err: unknown): boolean {
  return /message channel closed|message port closed|Receiving end does not exist|No SW/i.test(String((err as Error)?.message ?? err));
}

window.addEventListener("message", (e: MessageEvent) => {
  if (e.source !== window || e.data?.target !== TO_CONTENT) return;
  const { id, request } = e.data as { id: number; request: { method: string; params?: unknown } };
  const reply = (r: unknown) => window.postMessage({ target: TO_PAGE, id, reply: r }, location.origin);
  const msg = { to: "sw", type: "dapp", id: requestId(), request: { method: String(request?.method), params: request?.params } };
  void (async () => {
    for (let attempt = 0; ; attempt++) {
      try {
        const r: unknown = await chrome.runtime.sendMessage(msg);
        reply(r ?? { ok: false, error: { code: -32603, message: "the wallet did not answer" } });
        return;
      } catch (err) {
        const delay = RESEND_DELAYS_MS[attempt];
        if (delay !== undefined && workerGone(err)) {
          await new Promise((r) => setTimeout(r, delay));
          continue;
        }
        reply({ ok: false, error: { code: 4900, message: `the wallet is unavailable: ${String((err as Error)?.message ?? err)}` } });
        return;
      }
    }
  })();
});
