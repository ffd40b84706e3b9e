// The wallet's settings (options page, or a test writing chrome.storage.local "config").
export interface ExtConfig {
  /** sign-service (gRPC-web). */
  cosignerUrl: string;
  /** Overrides the gateway URL the cosigner announces (optional). */
  gatewayUrl: string;
  /** recovery-agent and its pairing token (only to create the wallet). */
  agentUrl: string;
  agentToken: string;
  /** JSON-RPC node for eth_sendTransaction, and its chain id (eth_chainId). */
  rpcUrl: string;
  chainId: number;
  /** Lock after this many minutes without use (chrome.alarms: at least 0.5). */
  autoLockMinutes: number;
  /** Presignatures kept per account (0 = no pool). */
  presignTarget: number;
  /** TESTS ONLY: the PUBLIC dev fixture primes and a fast KDF. Never for funds. */
  insecureDev: boolean;
}

export const DEFAULT_CONFIG: ExtConfig = {
  cosignerUrl: "http://127.0.0.1:50051",
  gatewayUrl: "",
  agentUrl: "http://127.0.0.1:7350",
  agentToken: "",
  rpcUrl: "http://127.0.0.1:8545",
  chainId: 31337,
  autoLockMinutes: 15,
  presignTarget: 2,
  insecureDev: false,
};

export const WALLET_NAME = "extension";

/**
 * The wallet's one HD account and the BIP-44 path of its address (Ethereum's first
 * address, as MetaMask and Ledger derive it). Every address, signature and presignature
 * pool of the extension is at this path: pools are per (account, path), and a
 * presignature signs only at the path it was generated for.
 */
export const ACCOUNT_PATH = "m/44/60/0/0/0";

export async function loadConfig(): Promise<ExtConfig> {
  const { config } = await chrome.storage.local.get("config");
  return { ...DEFAULT_CONFIG, ...(config ?? {}) };
}

export async function saveConfig(c: Partial<ExtConfig>): Promise<ExtConfig> {
  const next = { ...(await loadConfig()), ...c };
  await chrome.storage.local.set({ config: next });
  return next;
}
