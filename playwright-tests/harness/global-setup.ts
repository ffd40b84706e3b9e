// Global setup: builds (unless given) and starts the real servers on loopback port 0
// (each reports the port it got through `--port-file`), serves the demo page, starts a
// local Ethereum node (anvil, chain id 31337, port 0: its port read from its stdout),
// and hands the URLs to the tests through WALLET_E2E (JSON in the environment,
// inherited by the test workers).
//
// Binaries: SIGN_GATEWAY_BIN, SIGN_SERVICE_BIN, RECOVERY_AGENT_BIN if set; otherwise
// built with cargo (one package per invocation so sign-service keeps its GMP backend)
// into $CARGO_TARGET_DIR or $HOME/.cache/wallet-mpc/target.
import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import { appendFileSync, existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, writeFileSync } from "node:fs";
import { homedir, tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { extensionOrigin } from "./extension.js";

const here = dirname(fileURLToPath(import.meta.url));
export const REPO = resolve(here, "..", "..");
export const RUN_DIR = resolve(here, "..", "test-results", "servers");

/** What the tests get. */
export interface E2eEnv {
  demoUrl: string;
  origin: string;
  gatewayUrl: string;
  cosignerUrl: string;
  agentUrl: string;
  agentToken: string;
  /** The recovery agent's binary and data directory: the tests confirm its requests as its user would (`recovery-agent confirm`). */
  agentBin: string;
  agentDataDir: string;
  cosignerPid: number;
  logs: Record<string, string>;
  timingsFile: string;
  /**
   * JSON-RPC URL of the local Ethereum node (Foundry's anvil, chain id 31337, its
   * default funded dev accounts), or "" when anvil is not installed (`bash
   * scripts/setup.sh evm`): the EVM spec then fails saying so.
   */
  rpcUrl: string;
  /** `chrome-extension://<id>` of the example extension (web/examples/extension), in every CORS list. */
  extensionOrigin: string;
}

const STORE_KEY = "5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e";
const children: { name: string; proc: ChildProcess }[] = [];

/**
 * Waits until `proc` has written its bound address to `file` (the `--port-file` contract:
 * HOST:PORT and a newline, written atomically once listening) and returns it.
 */
async function waitPortFile(name: string, proc: ChildProcess, file: string, log: string, timeoutMs: number): Promise<string> {
  const start = Date.now();
  for (;;) {
    if (existsSync(file)) return readFileSync(file, "utf8").trim();
    if (proc.exitCode !== null || proc.signalCode !== null) {
      throw new Error(`${name} exited early (${proc.exitCode ?? proc.signalCode}); log ${log}:\n${tail(log)}`);
    }
    if (Date.now() - start > timeoutMs) throw new Error(`${name} wrote no ${file} after ${timeoutMs} ms; log ${log}:\n${tail(log)}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

function tail(file: string): string {
  try {
    return readFileSync(file, "utf8").split("\n").slice(-40).join("\n");
  } catch {
    return "(no log)";
  }
}

function start(name: string, bin: string, args: string[], env: Record<string, string>, log: string): ChildProcess {
  const fd = openSync(log, "a");
  const clean = { ...process.env };
  for (const k of Object.keys(clean)) {
    if (/^(SIGN_GATEWAY_|SIGN_SERVICE_|RECOVERY_AGENT_)/.test(k)) delete clean[k];
  }
  const proc = spawn(bin, args, { env: { ...clean, ...env }, stdio: ["ignore", fd, fd] });
  children.push({ name, proc });
  return proc;
}

function targetDir(): string {
  return process.env.CARGO_TARGET_DIR || join(homedir(), ".cache", "wallet-mpc", "target");
}

/** The binary from `envVar`, or built with cargo. */
function binary(envVar: string, pkg: string, bin: string): string {
  const given = process.env[envVar];
  if (given) {
    if (!existsSync(given)) throw new Error(`${envVar}=${given} does not exist`);
    return given;
  }
  const target = targetDir();
  console.log(`[e2e] cargo build -p ${pkg} --bin ${bin} (target ${target}; set ${envVar} to skip)`);
  // The cosigner is a cargo workspace of its own (GMP only).
  const manifest = pkg === "sign-service" ? ["--manifest-path", join(REPO, "sign-service", "Cargo.toml")] : [];
  execFileSync("cargo", ["build", "-q", ...manifest, "-p", pkg, "--bin", bin], {
    cwd: REPO,
    stdio: "inherit",
    env: { ...process.env, CARGO_TARGET_DIR: target },
  });
  const p = join(target, "debug", bin);
  if (!existsSync(p)) throw new Error(`built ${bin} but ${p} is missing`);
  return p;
}

/** Chain id of the local anvil node. */
export const ANVIL_CHAIN_ID = 31337;

/**
 * Starts anvil (`$ANVIL_BIN`, default: the npm package's binary that `scripts/setup.sh
 * evm` installs) on loopback port 0 and resolves to its JSON-RPC URL, read from the
 * "Listening on HOST:PORT" line of its stdout (also copied to `log`). Resolves to ""
 * when the binary is missing.
 */
async function startAnvil(log: string, timeoutMs: number): Promise<string> {
  const bin = process.env.ANVIL_BIN || join(REPO, "testing", "evm-tools", "node_modules", "@foundry-rs", "anvil-linux-amd64", "bin", "anvil");
  if (!existsSync(bin)) {
    console.log(`[e2e] anvil not found at ${bin} (bash scripts/setup.sh evm): the EVM spec will fail`);
    return "";
  }
  const proc = spawn(bin, ["--host", "127.0.0.1", "--port", "0", "--chain-id", String(ANVIL_CHAIN_ID)], {
    stdio: ["ignore", "pipe", "pipe"],
  });
  children.push({ name: "anvil", proc });
  return new Promise<string>((resolvePromise, reject) => {
    let seen = "";
    const timer = setTimeout(() => reject(new Error(`anvil printed no "Listening on" line within ${timeoutMs} ms; log ${log}:\n${tail(log)}`)), timeoutMs);
    const onData = (chunk: Buffer) => {
      appendFileSync(log, chunk);
      seen += chunk.toString("utf8");
      const m = /Listening on (\S+:\d+)/.exec(seen);
      if (m) {
        clearTimeout(timer);
        resolvePromise(`http://${m[1]}`);
      }
    };
    proc.stdout?.on("data", onData);
    proc.stderr?.on("data", (c: Buffer) => appendFileSync(log, c));
    proc.on("exit", (code, signal) => {
      clearTimeout(timer);
      reject(new Error(`anvil exited early (${code ?? signal}); log ${log}:\n${tail(log)}`));
    });
  });
}

export default async function globalSetup(): Promise<() => Promise<void>> {
  for (const f of ["web/browser/wallet-mpc.js", "web/wasm/mpc_wasm_bg.wasm", "web/demo/vendor/verify.js"]) {
    if (!existsSync(join(REPO, f))) throw new Error(`missing ${f}: run playwright-tests/run.sh (builds the wasm and the package)`);
  }
  const gatewayBin = binary("SIGN_GATEWAY_BIN", "sign-gateway", "sign-gateway");
  const serviceBin = binary("SIGN_SERVICE_BIN", "sign-service", "sign-service");
  const agentBin = binary("RECOVERY_AGENT_BIN", "recovery-agent", "recovery-agent");

  mkdirSync(RUN_DIR, { recursive: true });
  const work = mkdtempSync(join(tmpdir(), "wallet-mpc-pw-"));

  // The demo first: its origin goes into every server's CORS list.
  const { startServer } = (await import(join(REPO, "web", "demo", "serve.mjs"))) as {
    startServer: (o: { host?: string; port?: number }) => Promise<{ url: string; close: () => Promise<void> }>;
  };
  const demo = await startServer({ host: "127.0.0.1", port: 0 });
  const origin = demo.url;
  // The example extension's exact origin (its manifest's fixed key): never a wildcard.
  const extOrigin = extensionOrigin();
  const corsList = `["${origin}", "${extOrigin}"]`;

  const logs = {
    gateway: join(RUN_DIR, "sign-gateway.log"),
    cosigner: join(RUN_DIR, "sign-service.log"),
    agent: join(RUN_DIR, "recovery-agent.log"),
    anvil: join(RUN_DIR, "anvil.log"),
  };
  for (const l of Object.values(logs)) writeFileSync(l, "");

  const gwCfg = join(work, "sign-gateway.yaml");
  const gwPortFile = join(work, "sign-gateway.port");
  writeFileSync(gwCfg, `host: 127.0.0.1\nport: 0\ncors_origins: ${corsList}\nlogging:\n  level: info\n  format: pretty\n`);
  const gw = start("sign-gateway", gatewayBin, ["--config", gwCfg, "--port-file", gwPortFile], {}, logs.gateway);
  const gatewayUrl = `http://${await waitPortFile("sign-gateway", gw, gwPortFile, logs.gateway, 20_000)}`;

  const coDir = join(work, "cosigner");
  mkdirSync(coDir);
  const coCfg = join(coDir, "sign-service.yaml");
  writeFileSync(
    coCfg,
    [
      "host: 127.0.0.1",
      "port: 0",
      `gateway_url: ${gatewayUrl}`,
      `key_store: ${join(coDir, "store.redb")}`,
      `audit_log: ${join(coDir, "audit.jsonl")}`,
      `cors_origins: ${corsList}`,
      "insecure_dev_primes: true",
      // The test pages create wallets without a registration credential.
      "dev_open_registration: true",
      "prime_pool_size: 0",
      "session_timeout_secs: 300",
      "wallet_creation_timeout_secs: 1200",
      // One destination allowed: the policy-refusal test sends elsewhere.
      "policy:",
      "  ethereum:",
      '    allowed_destinations: ["0x000000000000000000000000000000000000dEaD"]',
      // tests/flows/evm.ts: the EIP-2612 token anvil's first dev account deploys first, its
      // permit spender (anvil's second dev account) and the EIP-7702 delegate.
      "    erc20:",
      "      tokens:",
      '        "0x5FbDB2315678afecb367f032d93F642f64180aa3": { max_amount_per_tx: "1000000000000000000000" }',
      "    typed_data:",
      '      allowed_verifying_contracts: ["0x5FbDB2315678afecb367f032d93F642f64180aa3"]',
      '      permit_spenders: ["0x70997970C51812dc3A010C7d01b50e0d17dc79C8"]',
      "    eip7702:",
      '      allowed_delegates: ["0x000000000000000000000000000000000000bEEF"]',
      // tests/flows/bitcoin.ts: regtest PSBTs paying one address (hash160 = 0x11 × 20).
      "  bitcoin:",
      "    allowed_networks: [regtest]",
      '    allowed_destinations: ["bcrt1qzyg3zyg3zyg3zyg3zyg3zyg3zyg3zyg3lgth6c"]',
      "    max_fee_sats: 20000",
      "logging:\n  level: info\n  format: pretty",
      "",
    ].join("\n"),
  );
  const coPortFile = join(coDir, "sign-service.port");
  const co = start("sign-service", serviceBin, ["--config", coCfg, "--port-file", coPortFile], { SIGN_SERVICE_STORE_KEY: STORE_KEY }, logs.cosigner);
  const cosignerUrl = `http://${await waitPortFile("sign-service", co, coPortFile, logs.cosigner, 60_000)}`;

  const agentToken = "e2e-pairing-token-0123456789abcdef";
  const agentDataDir = join(work, "agent");
  const agPortFile = join(work, "recovery-agent.port");
  const ag = start(
    "recovery-agent",
    agentBin,
    [
      "--listen",
      "127.0.0.1:0",
      "--port-file",
      agPortFile,
      "--data-dir",
      agentDataDir,
      "--allow-origin",
      origin,
      "--allow-origin",
      extOrigin,
      "--insecure-dev-primes",
      "--insecure-fast-kdf",
      "--prime-pool-size",
      "0",
    ],
    { RECOVERY_AGENT_TOKEN: agentToken, RECOVERY_AGENT_PASSPHRASE: "e2e recovery passphrase", RECOVERY_AGENT_LOG: "info" },
    logs.agent,
  );
  const agentUrl = `http://${await waitPortFile("recovery-agent", ag, agPortFile, logs.agent, 30_000)}`;

  const rpcUrl = await startAnvil(logs.anvil, 30_000);

  const q = new URLSearchParams({ cosigner: cosignerUrl, agent: agentUrl, token: agentToken, devPrimes: "1" });
  const env: E2eEnv = {
    demoUrl: `${origin}/demo/?${q.toString()}`,
    origin,
    gatewayUrl,
    cosignerUrl,
    agentUrl,
    agentToken,
    agentBin,
    agentDataDir,
    cosignerPid: co.pid ?? -1,
    logs,
    timingsFile: join(RUN_DIR, "timings.json"),
    rpcUrl,
    extensionOrigin: extOrigin,
  };
  writeFileSync(env.timingsFile, "{}");
  process.env.WALLET_E2E = JSON.stringify(env);
  console.log(`[e2e] demo ${origin}, gateway ${gatewayUrl}, cosigner ${cosignerUrl}, agent ${agentUrl}, anvil ${rpcUrl || "(none)"}; logs in ${RUN_DIR}`);

  return async () => {
    for (const { proc } of children.reverse()) {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill("SIGTERM");
    }
    await demo.close();
  };
}
