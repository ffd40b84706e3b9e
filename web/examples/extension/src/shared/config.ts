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
  /**
   * Lock after this many seconds without use (unlocking, signing; an open popup is not
   * use). Default 15 min; clamped to AUTO_LOCK_MIN_SECONDS..AUTO_LOCK_MAX_SECONDS.
   */
  autoLockSeconds: number;
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
  autoLockSeconds: 15 * 60,
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

/** The auto-lock delay's bounds (seconds): a few seconds (tests, shared machines) to a day. */
export const AUTO_LOCK_MIN_SECONDS = 5;
export const AUTO_LOCK_MAX_SECONDS = 24 * 60 * 60;

/** The auto-lock delay in milliseconds: the setting, clamped; the default if unusable. */
export function autoLockMs(c: ExtConfig): number {
  const s = Number.isFinite(c.autoLockSeconds) ? c.autoLockSeconds : DEFAULT_CONFIG.autoLockSeconds;
  return Math.round(Math.min(AUTO_LOCK_MAX_SECONDS, Math.max(AUTO_LOCK_MIN_SECONDS, s)) * 1000);
}

export async function loadConfig(): Promise<ExtConfig> {
  const { config } = await chrome.storage.local.get("config");
  const stored: Record<string, unknown> = config ?? {};
  // Settings saved by earlier versions: the delay was in minutes.
  if (typeof stored.autoLockMinutes === "number" && typeof stored.autoLockSeconds !== "number") {
    stored.autoLockSeconds = stored.autoLockMinutes * 60;
  }
  delete stored.autoLockMinutes;
  return { ...DEFAULT_CONFIG, ...stored } as ExtConfig;
}

export async function saveConfig(c: Partial<ExtConfig>): Promise<ExtConfig> {
  const next = { ...(await loadConfig()), ...c };
  await chrome.storage.local.set({ config: next });
  return next;
}
