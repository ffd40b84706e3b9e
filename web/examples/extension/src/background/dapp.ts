// EIP-1193 requests of web pages (through the content script), each signing request
// confirmed in the approval window first. A request has an id (the content script's):
// sent again after the service worker was stopped, it resumes where it was
// (approvals.ts).
import { toViemAccount } from "@wallet-mpc/web/viem";
import { createWalletClient, defineChain, hexToBigInt, isAddressEqual, isHex, type Hex } from "viem";
import { http } from "viem";
import { ACCOUNT_PATH, loadConfig } from "../shared/config";
import { errorInfo } from "../shared/messages";
import { finishRequest, getRecord, requestApproval } from "./approvals";
import { startRefill } from "./jobs";
import { readClient, signClient, whileInUse } from "./session";

export interface RpcRequest {
  method: string;
  params?: unknown;
}

function rpcError(code: number, message: string): Error {
  return Object.assign(new Error(message), { eip1193Code: code, code: String(code) });
}

async function connected(origin: string): Promise<boolean> {
  const { connected } = await chrome.storage.local.get("connected");
  return Array.isArray(connected) && connected.includes(origin);
}

async function address(): Promise<`0x${string}`> {
  const r = await readClient();
  if (!(await r.walletInfo())) throw rpcError(4100, "no wallet yet: create one in the extension");
  return r.getAddress(undefined, ACCOUNT_PATH);
}

function params(req: RpcRequest): unknown[] {
  return Array.isArray(req.params) ? req.params : [];
}

async function checkFrom(from: unknown): Promise<void> {
  const a = await address();
  if (typeof from !== "string" || !isHex(from) || !isAddressEqual(from as Hex, a)) throw rpcError(4100, `unknown account ${String(from)}`);
}

/** Requests running in this worker instance, by origin and id (a resume joins its own). */
const inflight = new Map<string, Promise<unknown>>();

/**
 * Answers request `id` of `origin`: once, even when the content script sends it again
 * after the worker was stopped (a finished request's outcome is kept for that; an
 * approval still pending is waited for in its open window).
 */
export function handleDappRequest(origin: string, id: string, req: RpcRequest): Promise<unknown> {
  const key = `${origin} ${id}`;
  const running = inflight.get(key);
  if (running) return running;
  const p = resume(origin, id, req).finally(() => inflight.delete(key));
  inflight.set(key, p);
  return p;
}

async function resume(origin: string, id: string, req: RpcRequest): Promise<unknown> {
  const r = await getRecord(id);
  if (r && (r.origin !== origin || r.method !== req.method)) throw rpcError(-32603, "this request id belongs to another request");
  if (r?.state === "done") return r.result;
  if (r?.state === "failed") throw Object.assign(rpcError(r.error?.code ?? -32603, r.error?.message ?? "request failed"), r.error?.walletCode ? { code: r.error.walletCode } : {});
  if (r?.state === "executing" && r.method === "eth_sendTransaction") {
    // Signing again is harmless; sending again might spend twice.
    const message =
      "The wallet was restarted while sending this transaction: it may or may not have been broadcast. Check the account's transactions before sending it again.";
    await finishRequest(id, { error: { code: 4900, message } });
    throw rpcError(4900, message);
  }
  try {
    const value = await handleDapp(origin, id, req);
    await finishRequest(id, { result: value });
    return value;
  } catch (e) {
    const i = errorInfo(e);
    await finishRequest(id, { error: { code: i.eip1193Code ?? -32603, message: i.message, walletCode: i.code } });
    throw e;
  }
}

async function handleDapp(origin: string, id: string, req: RpcRequest): Promise<unknown> {
  const c = await loadConfig();
  const p = params(req);
  switch (req.method) {
    case "eth_chainId":
      return `0x${c.chainId.toString(16)}`;
    case "net_version":
      return String(c.chainId);
    case "eth_accounts":
      return (await connected(origin)) ? [await address()] : [];
    case "eth_requestAccounts": {
      const a = await address();
      if (!(await connected(origin))) {
        await requestApproval(id, origin, req.method, `Connect ${origin} to ${a}`);
        const { connected: list } = await chrome.storage.local.get("connected");
        await chrome.storage.local.set({ connected: [...(Array.isArray(list) ? list : []), origin] });
      }
      return [a];
    }
  }
  if (!(await connected(origin))) throw rpcError(4100, `${origin} is not connected: call eth_requestAccounts first`);
  switch (req.method) {
    case "personal_sign": {
      const [data, from] = isHex(p[0]) && (p[0] as string).length === 42 && !isHex(p[1]) ? [p[1], p[0]] : [p[0], p[1]];
      await checkFrom(from);
      if (typeof data !== "string") throw rpcError(-32602, "personal_sign: the message must be a string");
      const message = isHex(data) ? { raw: data as Hex } : data;
      const text = isHex(data) ? tryUtf8(data as Hex) : data;
      await requestApproval(id, origin, req.method, `Sign this message:\n\n${text}`);
      const sig = await whileInUse(async () => (await signClient()).signMessage(message, { derivationPath: ACCOUNT_PATH }));
      kickRefill();
      return sig.rsv;
    }
    case "eth_signTypedData_v4": {
      await checkFrom(p[0]);
      const td = typeof p[1] === "string" ? JSON.parse(p[1]) : p[1];
      if (!td || typeof td !== "object") throw rpcError(-32602, "eth_signTypedData_v4: typed data expected");
      await requestApproval(id, origin, req.method, `Sign typed data (${String(td.primaryType)}):\n\n${JSON.stringify(td, null, 2)}`);
      const sig = await whileInUse(async () => (await signClient()).signTypedData(td, { derivationPath: ACCOUNT_PATH }));
      kickRefill();
      return sig.rsv;
    }
    case "eth_sendTransaction": {
      const tx = (p[0] ?? {}) as Record<string, string | undefined>;
      await checkFrom(tx.from);
      await requestApproval(id, origin, req.method, `Send a transaction on chain ${c.chainId} via ${c.rpcUrl}:\n\n${JSON.stringify(tx, null, 2)}`);
      const chain = defineChain({
        id: c.chainId,
        name: `chain ${c.chainId}`,
        nativeCurrency: { name: "Ether", symbol: "ETH", decimals: 18 },
        rpcUrls: { default: { http: [c.rpcUrl] } },
      });
      const hash = await whileInUse(async () => {
        const account = await toViemAccount(await signClient(), { derivationPath: ACCOUNT_PATH });
        const wc = createWalletClient({ account, chain, transport: http(c.rpcUrl) });
        return wc.sendTransaction({
          to: tx.to as Hex | undefined,
          value: tx.value ? hexToBigInt(tx.value as Hex) : 0n,
          ...(tx.data ? { data: tx.data as Hex } : {}),
          ...(tx.gas ? { gas: hexToBigInt(tx.gas as Hex) } : {}),
        } as Parameters<typeof wc.sendTransaction>[0]);
      });
      kickRefill();
      return hash;
    }
  }
  throw rpcError(4200, `unsupported method ${req.method}`);
}

function tryUtf8(h: Hex): string {
  try {
    return new TextDecoder("utf-8", { fatal: true }).decode(Uint8Array.from(h.slice(2).match(/../g) ?? [], (b) => parseInt(b, 16)));
  } catch {
    return h;
  }
}

function kickRefill(): void {
  startRefill().catch(() => undefined);
}
