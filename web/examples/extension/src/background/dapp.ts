// EIP-1193 requests of web pages (through the content script), each signing request
// confirmed in the approval window first.
import { toViemAccount } from "@wallet-mpc/web/viem";
import { createWalletClient, defineChain, hexToBigInt, isAddressEqual, isHex, type Hex } from "viem";
import { http } from "viem";
import { ACCOUNT_PATH, loadConfig } from "../shared/config";
import { requestApproval } from "./approvals";
import { startRefill } from "./jobs";
import { readClient, signClient } from "./session";

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

export async function handleDapp(origin: string, req: RpcRequest): Promise<unknown> {
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
        await requestApproval(origin, req.method, `Connect ${origin} to ${a}`);
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
      await requestApproval(origin, req.method, `Sign this message:\n\n${text}`);
      const sig = await (await signClient()).signMessage(message, { derivationPath: ACCOUNT_PATH });
      kickRefill();
      return sig.rsv;
    }
    case "eth_signTypedData_v4": {
      await checkFrom(p[0]);
      const td = typeof p[1] === "string" ? JSON.parse(p[1]) : p[1];
      if (!td || typeof td !== "object") throw rpcError(-32602, "eth_signTypedData_v4: typed data expected");
      await requestApproval(origin, req.method, `Sign typed data (${String(td.primaryType)}):\n\n${JSON.stringify(td, null, 2)}`);
      const sig = await (await signClient()).signTypedData(td, { derivationPath: ACCOUNT_PATH });
      kickRefill();
      return sig.rsv;
    }
    case "eth_sendTransaction": {
      const tx = (p[0] ?? {}) as Record<string, string | undefined>;
      await checkFrom(tx.from);
      await requestApproval(origin, req.method, `Send a transaction on chain ${c.chainId} via ${c.rpcUrl}:\n\n${JSON.stringify(tx, null, 2)}`);
      const chain = defineChain({
        id: c.chainId,
        name: `chain ${c.chainId}`,
        nativeCurrency: { name: "Ether", symbol: "ETH", decimals: 18 },
        rpcUrls: { default: { http: [c.rpcUrl] } },
      });
      const account = await toViemAccount(await signClient(), { derivationPath: ACCOUNT_PATH });
      const wc = createWalletClient({ account, chain, transport: http(c.rpcUrl) });
      const hash = await wc.sendTransaction({
        to: tx.to as Hex | undefined,
        value: tx.value ? hexToBigInt(tx.value as Hex) : 0n,
        ...(tx.data ? { data: tx.data as Hex } : {}),
        ...(tx.gas ? { gas: hexToBigInt(tx.gas as Hex) } : {}),
      } as Parameters<typeof wc.sendTransaction>[0]);
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
