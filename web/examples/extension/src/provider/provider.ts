// Page-world script: the EIP-1193 provider, announced with EIP-6963. Requests travel
// by window.postMessage to the content script (isolated world), then to the service
// worker. A classic script: it imports nothing.
(() => {
  const TO_CONTENT = "wallet-mpc:to-content";
  const TO_PAGE = "wallet-mpc:to-page";
  type Listener = (...args: unknown[]) => void;
  const listeners = new Map<string, Set<Listener>>();
  const pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: unknown) => void; method: string }>();
  let nextId = 1;

  function emit(event: string, ...args: unknown[]): void {
    for (const l of listeners.get(event) ?? []) {
      try {
        l(...args);
      } catch {
        // a listener's exception is its own
      }
    }
  }

  class ProviderRpcError extends Error {
    constructor(
      readonly code: number,
      message: string,
      readonly data?: unknown,
    ) {
      super(message);
      this.name = "ProviderRpcError";
    }
  }

  window.addEventListener("message", (e: MessageEvent) => {
    if (e.source !== window || e.data?.target !== TO_PAGE) return;
    const p = pending.get(e.data.id);
    if (!p) return;
    pending.delete(e.data.id);
    const r = e.data.reply as { ok: boolean; value?: unknown; error?: { code: number; message: string; data?: unknown } };
    if (r.ok) {
      if (p.method === "eth_requestAccounts") emit("accountsChanged", r.value);
      p.resolve(r.value);
    } else {
      p.reject(new ProviderRpcError(r.error?.code ?? -32603, r.error?.message ?? "request failed", r.error?.data));
    }
  });

  const provider = {
    isWalletMpc: true,
    request(args: { method: string; params?: unknown[] | object }): Promise<unknown> {
      if (!args || typeof args.method !== "string") return Promise.reject(new ProviderRpcError(-32602, "request({ method, params })"));
      return new Promise((resolve, reject) => {
        const id = nextId++;
        pending.set(id, { resolve, reject, method: args.method });
        window.postMessage({ target: TO_CONTENT, id, request: { method: args.method, params: args.params } }, location.origin);
      });
    },
    on(event: string, l: Listener) {
      if (!listeners.has(event)) listeners.set(event, new Set());
      listeners.get(event)!.add(l);
      return provider;
    },
    removeListener(event: string, l: Listener) {
      listeners.get(event)?.delete(l);
      return provider;
    },
  };

  const icon =
    "data:image/svg+xml," +
    encodeURIComponent('<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 32 32"><circle cx="16" cy="16" r="15" fill="#3355ff"/><text x="16" y="21" font-size="12" text-anchor="middle" fill="#fff">2/3</text></svg>');
  const info = Object.freeze({ uuid: crypto.randomUUID(), name: "wallet-mpc example", icon, rdns: "org.wallet-mpc.example" });
  const detail = Object.freeze({ info, provider });
  const announce = () => window.dispatchEvent(new CustomEvent("eip6963:announceProvider", { detail }));
  window.addEventListener("eip6963:requestProvider", announce);
  announce();
})();
