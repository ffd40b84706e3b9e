// Content script (isolated world): relays the page-world provider's requests to the
// service worker and the answers back. A classic script: it imports nothing.
const TO_CONTENT = "wallet-mpc:to-content";
const TO_PAGE = "wallet-mpc:to-page";

window.addEventListener("message", (e: MessageEvent) => {
  if (e.source !== window || e.data?.target !== TO_CONTENT) return;
  const { id, request } = e.data as { id: number; request: { method: string; params?: unknown } };
  const reply = (r: unknown) => window.postMessage({ target: TO_PAGE, id, reply: r }, location.origin);
  chrome.runtime.sendMessage({ to: "sw", type: "dapp", request: { method: String(request?.method), params: request?.params } }).then(
    (r: unknown) => reply(r ?? { ok: false, error: { code: -32603, message: "the wallet did not answer" } }),
    (err: unknown) => reply({ ok: false, error: { code: -32603, message: `the wallet is unavailable: ${String((err as Error)?.message ?? err)}` } }),
  );
});
