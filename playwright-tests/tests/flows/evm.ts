// EVM end to end (issue 15), on the demo wallet (flows/wallet.ts creates it; this opens it
// in a second page of the same context through the package's API, worker mode) which is
// funded on a real local node (anvil, chain id 31337) from an anvil dev account;
// an EIP-1559 transaction signed in the page — once with WalletClient.signTransaction,
// once through the package's viem account (`toViemAccount`) — is broadcast here with
// eth_sendRawTransaction and mined (receipt status success, balances moved); EIP-191
// messages (text and bytes), EIP-712 typed data (an EIP-2612 Permit) and an EIP-7702
// authorization are signed in the page and verified here with viem's and ethers' own
// functions; the permit is accepted on chain by a token contract compiled here with
// solc-js and deployed to anvil (allowance set); the authorization rides in a type-4
// transaction a dev account sends, after which the wallet's code is the delegation
// designator; an aborted call rejects at once.
//
// Cosigner policy of the harness (global-setup.ts): transactions only to 0x…dEaD. The
// typed data and the authorization need the cosigner's EIP-712 / EIP-7702 policy to
// allow TOKEN (the permit's verifying contract), PERMIT_SPENDER (PERMIT_VALUE) and
// DELEGATE on chain 31337.
import { createRequire } from "node:module";
import { join } from "node:path";
import { expect, test, type Page } from "@playwright/test";
import {
  createPublicClient,
  createWalletClient,
  defineChain,
  http,
  parseEther,
  parseGwei,
  parseSignature,
  parseTransaction,
  recoverMessageAddress,
  recoverTransactionAddress,
  recoverTypedDataAddress,
  serializeTransaction,
  verifyMessage as viemVerifyMessage,
  verifyTypedData as viemVerifyTypedData,
  type Address,
  type Hex,
} from "viem";
import { privateKeyToAccount } from "viem/accounts";
import { recoverAuthorizationAddress } from "viem/utils";
import { verifyAuthorization, verifyMessage as ethersVerifyMessage, verifyTypedData as ethersVerifyTypedData } from "ethers";
import { ANVIL_CHAIN_ID, REPO } from "../../harness/global-setup.js";
import { env, logPage, type DemoWallet } from "./demo.js";
import { WALLET } from "./wallet.js";

/** Where the demo signs an HD account (its first BIP-44 address): this flow signs there too. */
const PATH = "m/44/60/0/0/0"; // (the page code below spells it out: it runs in the page)

/** Anvil's first default dev account (public, funded with 10000 ETH at start); no other
 * spec may use it (its first transaction deploys TOKEN; extension.spec.ts uses the third). */
const DEV_KEY = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80";
/** Anvil's second default dev account: the permit's spender, who submits it. */
const SPENDER_KEY = "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d";
/** The one destination the harness policy allows. */
const DEAD: Address = "0x000000000000000000000000000000000000dEaD";
/** EIP-7702 delegate of the authorization test. */
const DELEGATE: Address = "0x000000000000000000000000000000000000bEEF";
/**
 * The EIP-2612 token: the first contract anvil's first dev account deploys (nonce 0),
 * so its address is fixed and the cosigner's policy can name it.
 */
const TOKEN: Address = "0x5FbDB2315678afecb367f032d93F642f64180aa3";
const PERMIT_SPENDER: Address = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8";
const PERMIT_VALUE = 10n ** 21n;
const PERMIT_DOMAIN = { name: "Test Token", version: "1", chainId: ANVIL_CHAIN_ID, verifyingContract: TOKEN };
const PERMIT_TYPES = {
  Permit: [
    { name: "owner", type: "address" },
    { name: "spender", type: "address" },
    { name: "value", type: "uint256" },
    { name: "nonce", type: "uint256" },
    { name: "deadline", type: "uint256" },
  ],
} as const;

/** A minimal EIP-2612 token (written for this test): permit() sets the allowance. */
const TOKEN_SOURCE = `// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

contract PermitToken {
    string public constant name = "Test Token";
    string public constant version = "1";
    bytes32 public immutable DOMAIN_SEPARATOR;
    bytes32 private constant PERMIT_TYPEHASH =
        keccak256("Permit(address owner,address spender,uint256 value,uint256 nonce,uint256 deadline)");
    mapping(address => uint256) public nonces;
    mapping(address => mapping(address => uint256)) public allowance;

    event Approval(address indexed owner, address indexed spender, uint256 value);

    constructor() {
        DOMAIN_SEPARATOR = keccak256(abi.encode(
            keccak256("EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)"),
            keccak256(bytes(name)), keccak256(bytes(version)), block.chainid, address(this)));
    }

    function permit(address owner, address spender, uint256 value, uint256 deadline, uint8 v, bytes32 r, bytes32 s) external {
        require(block.timestamp <= deadline, "permit expired");
        bytes32 structHash = keccak256(abi.encode(PERMIT_TYPEHASH, owner, spender, value, nonces[owner]++, deadline));
        address signer = ecrecover(keccak256(abi.encodePacked(hex"1901", DOMAIN_SEPARATOR, structHash)), v, r, s);
        require(signer != address(0) && signer == owner, "invalid signature");
        allowance[owner][spender] = value;
        emit Approval(owner, spender, value);
    }
}
`;

/** Compiles {@link TOKEN_SOURCE} with solc-js (testing/evm-tools, `bash scripts/setup.sh evm`). */
function compileToken(): { abi: unknown[]; bytecode: Hex } {
  const req = createRequire(join(REPO, "testing", "evm-tools", "package.json"));
  const solc = req("solc") as { compile(input: string): string };
  const input = {
    language: "Solidity",
    sources: { "PermitToken.sol": { content: TOKEN_SOURCE } },
    settings: { optimizer: { enabled: true, runs: 200 }, outputSelection: { "*": { "*": ["abi", "evm.bytecode.object"] } } },
  };
  const out = JSON.parse(solc.compile(JSON.stringify(input))) as {
    errors?: { severity: string; formattedMessage: string }[];
    contracts: Record<string, Record<string, { abi: unknown[]; evm: { bytecode: { object: string } } }>>;
  };
  const errors = (out.errors ?? []).filter((e) => e.severity === "error");
  if (errors.length) throw new Error(`solc: ${errors.map((e) => e.formattedMessage).join("\n")}`);
  const c = out.contracts["PermitToken.sol"]!["PermitToken"]!;
  return { abi: c.abi, bytecode: `0x${c.evm.bytecode.object}` };
}

let token: { abi: unknown[]; bytecode: Hex };

const chain = defineChain({
  id: ANVIL_CHAIN_ID,
  name: "anvil",
  nativeCurrency: { name: "Ether", symbol: "ETH", decimals: 18 },
  rpcUrls: { default: { http: [env?.rpcUrl ?? ""] } },
});

let page: Page;
let address: Address;

/** Shape of the page's globals set by the module script below. */
interface PageGlobals {
  __wm: {
    WalletClient: typeof import("../../../web/src/index.js").WalletClient;
    toViemAccount: typeof import("../../../web/src/viem.js").toViemAccount;
    client?: import("../../../web/src/index.js").WalletClient;
  };
}

function publicClient() {
  return createPublicClient({ chain, transport: http(env.rpcUrl) });
}

/** Fields of an EIP-1559 transfer from the wallet, with the node's nonce and fees. */
async function transfer(value: bigint) {
  const pc = publicClient();
  const [nonce, fees] = await Promise.all([pc.getTransactionCount({ address, blockTag: "pending" }), pc.estimateFeesPerGas()]);
  return {
    type: "eip1559" as const,
    chainId: ANVIL_CHAIN_ID,
    nonce,
    to: DEAD,
    value,
    gas: 21_000n,
    maxFeePerGas: fees.maxFeePerGas,
    maxPriorityFeePerGas: fees.maxPriorityFeePerGas ?? parseGwei("1"),
  };
}

/** Broadcasts a signed transaction, waits for its receipt, checks it succeeded and moved `value` to 0x…dEaD. */
async function broadcast(signed: Hex, value: bigint) {
  const pc = publicClient();
  expect(await recoverTransactionAddress({ serializedTransaction: signed as never })).toBe(address);
  const before = { dead: await pc.getBalance({ address: DEAD }), me: await pc.getBalance({ address }) };
  const hash = await pc.request({ method: "eth_sendRawTransaction", params: [signed] });
  const receipt = await pc.waitForTransactionReceipt({ hash, timeout: 30_000 });
  expect(receipt.status).toBe("success");
  expect(receipt.from.toLowerCase()).toBe(address.toLowerCase());
  expect(await pc.getBalance({ address: DEAD })).toBe(before.dead + value);
  expect(await pc.getBalance({ address })).toBe(before.me - value - receipt.gasUsed * receipt.effectiveGasPrice);
  return hash;
}

/** The EVM tests, on the demo wallet of `w` (run after flows/wallet.ts's walletTests). */
export function evmTests(w: DemoWallet) {
  test("deploy the EIP-2612 token (solc-js) from anvil's first dev account", async () => {
    expect(env.rpcUrl, "anvil is not running: install it with `bash scripts/setup.sh evm` (or set ANVIL_BIN)").not.toBe("");
    token = compileToken();
    const dev = createWalletClient({ account: privateKeyToAccount(DEV_KEY), chain, transport: http(env.rpcUrl) });
    expect(await publicClient().getTransactionCount({ address: dev.account.address }), "the token must be the dev account's first transaction").toBe(0);
    const hash = await dev.deployContract({ abi: token.abi, bytecode: token.bytecode });
    const receipt = await publicClient().waitForTransactionReceipt({ hash, timeout: 30_000 });
    expect(receipt.status).toBe("success");
    expect(receipt.contractAddress?.toLowerCase()).toBe(TOKEN.toLowerCase());
  });

  test("evm: the demo wallet, opened with the package's API in a second page, is funded from an anvil dev account", async () => {
    expect(w.address, "the demo wallet was not created").not.toBe("");
    page = await w.context.newPage();
    logPage(page);
    await page.goto(`${env.origin}/demo/index.html`);
    await page.addScriptTag({
      type: "module",
      content: `import { WalletClient } from "/browser/wallet-mpc.js"; import { toViemAccount } from "/browser/viem.js"; window.__wm = { WalletClient, toViemAccount };`,
    });
    await page.waitForFunction(() => "__wm" in window);
    const opened = await page.evaluate(
      async ({ cosignerUrl, agentUrl, agentToken, name, path }) => {
        const wm = (window as unknown as PageGlobals).__wm;
        const client = await wm.WalletClient.open({ cosignerUrl, agentUrl, agentToken, walletName: name });
        wm.client = client;
        return { mode: client.mode, address: await client.getAddress(undefined, path) };
      },
      { cosignerUrl: env.cosignerUrl, agentUrl: env.agentUrl, agentToken: env.agentToken, name: WALLET, path: PATH },
    );
    expect(opened.mode).toBe("worker");
    expect(opened.address).toBe(w.address);
    address = opened.address as Address;

    const dev = createWalletClient({ account: privateKeyToAccount(DEV_KEY), chain, transport: http(env.rpcUrl) });
    const hash = await dev.sendTransaction({ to: address, value: parseEther("10") });
    const receipt = await publicClient().waitForTransactionReceipt({ hash, timeout: 30_000 });
    expect(receipt.status).toBe("success");
    expect(await publicClient().getBalance({ address })).toBe(parseEther("10"));
  });

  test("an EIP-1559 transaction signed in the page is accepted by eth_sendRawTransaction and mined", async () => {
    const tx = await transfer(parseEther("0.25"));
    const unsigned = serializeTransaction(tx);
    const signed = await page.evaluate(async (u) => {
      const r = await (window as unknown as PageGlobals).__wm.client!.signTransaction(u, { derivationPath: "m/44/60/0/0/0" });
      return { signedTransaction: r.signedTransaction, transactionHash: r.transactionHash, txType: r.txType, v: r.v, yParity: r.yParity };
    }, unsigned);
    expect(signed.txType).toBe("eip1559");
    expect(signed.v).toBe(signed.yParity);
    const parsed = parseTransaction(signed.signedTransaction);
    expect(parsed.nonce).toBe(tx.nonce);
    expect(parsed.value).toBe(tx.value);
    const hash = await broadcast(signed.signedTransaction, tx.value);
    expect(hash).toBe(signed.transactionHash);
  });

  test("the package's viem account (toViemAccount) signs a transaction in the page; mined", async () => {
    const tx = await transfer(parseEther("0.125"));
    const fields = { ...tx, value: tx.value.toString(), gas: tx.gas.toString(), maxFeePerGas: tx.maxFeePerGas.toString(), maxPriorityFeePerGas: tx.maxPriorityFeePerGas.toString() };
    const got = await page.evaluate(async (f) => {
      const wm = (window as unknown as PageGlobals).__wm;
      const account = await wm.toViemAccount(wm.client!, { derivationPath: "m/44/60/0/0/0" });
      const signed = await account.signTransaction({
        ...f,
        value: BigInt(f.value),
        gas: BigInt(f.gas),
        maxFeePerGas: BigInt(f.maxFeePerGas),
        maxPriorityFeePerGas: BigInt(f.maxPriorityFeePerGas),
      });
      return { address: account.address, type: account.type, signed };
    }, fields);
    expect(got.address).toBe(address);
    expect(got.type).toBe("local");
    await broadcast(got.signed, tx.value);
  });

  test("signMessage: a \"0x…\" string is signed as text, { raw } as bytes; viem and ethers verify", async () => {
    const sigs = await page.evaluate(async () => {
      const c = (window as unknown as PageGlobals).__wm.client!;
      const text = await c.signMessage("0x1234", { derivationPath: "m/44/60/0/0/0" });
      const raw = await c.signMessage({ raw: "0x1234" }, { derivationPath: "m/44/60/0/0/0" });
      return { text: text.rsv, raw: raw.rsv, v: text.v };
    });
    expect([27, 28]).toContain(sigs.v);
    expect(await recoverMessageAddress({ message: "0x1234", signature: sigs.text })).toBe(address);
    expect(await viemVerifyMessage({ address, message: "0x1234", signature: sigs.text })).toBe(true);
    expect(ethersVerifyMessage("0x1234", sigs.text)).toBe(address);
    expect(await recoverMessageAddress({ message: { raw: "0x1234" }, signature: sigs.raw })).toBe(address);
    expect(ethersVerifyMessage(Uint8Array.of(0x12, 0x34), sigs.raw)).toBe(address);
    // the text signature is not a signature of the two bytes
    expect(await recoverMessageAddress({ message: { raw: "0x1234" }, signature: sigs.text })).not.toBe(address);
  });

  test("an aborted call rejects at once with `aborted` (EIP-1193 4001); the client keeps working", async () => {
    const r = await page.evaluate(async () => {
      const c = (window as unknown as PageGlobals).__wm.client!;
      const early = new AbortController();
      early.abort();
      const first = await c.signMessage("never", { signal: early.signal, derivationPath: "m/44/60/0/0/0" }).then(
        () => null,
        (e: { code: string; eip1193Code: number }) => ({ code: e.code, eip: e.eip1193Code }),
      );
      const ctl = new AbortController();
      const t0 = performance.now();
      const p = c.signMessage("cancelled", { signal: ctl.signal, derivationPath: "m/44/60/0/0/0" });
      ctl.abort("user closed the dialog");
      const second = await p.then(
        () => null,
        (e: { code: string; message: string }) => ({ code: e.code, message: e.message, ms: performance.now() - t0 }),
      );
      const after = await c.signMessage("still works", { derivationPath: "m/44/60/0/0/0" });
      return { first, second, after: after.rsv };
    });
    expect(r.first).toEqual({ code: "aborted", eip: 4001 });
    expect(r.second?.code).toBe("aborted");
    expect(r.second?.message).toContain("user closed the dialog");
    expect(r.second!.ms).toBeLessThan(1000);
    expect(await recoverMessageAddress({ message: "still works", signature: r.after })).toBe(address);
  });

  test("signTypedData (EIP-2612 Permit): viem and ethers verify it, the token accepts permit() on chain", async () => {
    const pc = publicClient();
    const nonce = (await pc.readContract({ address: TOKEN, abi: token.abi, functionName: "nonces", args: [address] })) as bigint;
    expect(nonce).toBe(0n);
    const deadline = BigInt(Math.floor(Date.now() / 1000) + 3600);
    const message = { owner: address, spender: PERMIT_SPENDER, value: PERMIT_VALUE.toString(), nonce: nonce.toString(), deadline: deadline.toString() };
    const sig = await page.evaluate(
      async ({ domain, types, m }) => {
        const c = (window as unknown as PageGlobals).__wm.client!;
        const r = await c.signTypedData({
          domain,
          types,
          primaryType: "Permit",
          message: { ...m, value: BigInt(m.value), nonce: BigInt(m.nonce), deadline: BigInt(m.deadline) },
        }, { derivationPath: "m/44/60/0/0/0" });
        return { rsv: r.rsv, digest: r.digest };
      },
      { domain: PERMIT_DOMAIN, types: PERMIT_TYPES, m: message },
    );
    const typed = {
      domain: PERMIT_DOMAIN,
      types: PERMIT_TYPES,
      primaryType: "Permit" as const,
      message: { ...message, value: PERMIT_VALUE, nonce, deadline },
    };
    expect(await recoverTypedDataAddress({ ...typed, signature: sig.rsv })).toBe(address);
    expect(await viemVerifyTypedData({ ...typed, address, signature: sig.rsv })).toBe(true);
    expect(ethersVerifyTypedData(PERMIT_DOMAIN, { Permit: [...PERMIT_TYPES.Permit] }, typed.message, sig.rsv)).toBe(address);

    // On chain: anyone (here the spender's dev account) submits the permit.
    const { r, s, yParity } = parseSignature(sig.rsv);
    const spender = createWalletClient({ account: privateKeyToAccount(SPENDER_KEY), chain, transport: http(env.rpcUrl) });
    expect(spender.account.address).toBe(PERMIT_SPENDER);
    const hash = await spender.writeContract({
      address: TOKEN,
      abi: token.abi,
      functionName: "permit",
      args: [address, PERMIT_SPENDER, PERMIT_VALUE, deadline, 27 + yParity!, r, s],
    });
    const receipt = await pc.waitForTransactionReceipt({ hash, timeout: 30_000 });
    expect(receipt.status).toBe("success");
    expect(await pc.readContract({ address: TOKEN, abi: token.abi, functionName: "allowance", args: [address, PERMIT_SPENDER] })).toBe(PERMIT_VALUE);
    expect(await pc.readContract({ address: TOKEN, abi: token.abi, functionName: "nonces", args: [address] })).toBe(1n);
  });

  test("an EIP-7702 authorization signed in the page rides in a type-4 transaction; the wallet's code is the delegation designator", async () => {
    const pc = publicClient();
    // A dev account sends the transaction: the authorization's nonce is the wallet's current one.
    const nonce = await pc.getTransactionCount({ address, blockTag: "pending" });
    const auth = await page.evaluate(
      async ({ delegate, chainId, nonce }) => {
        const wm = (window as unknown as PageGlobals).__wm;
        const a = await wm.client!.signAuthorization({ contractAddress: delegate as `0x${string}`, chainId, nonce }, { derivationPath: "m/44/60/0/0/0" });
        const account = await wm.toViemAccount(wm.client!, { derivationPath: "m/44/60/0/0/0" });
        const viaViem = await account.signAuthorization!({ address: delegate as `0x${string}`, chainId, nonce });
        return { a: { address: a.address, chainId: a.chainId, nonce: a.nonce, r: a.r, s: a.s, yParity: a.yParity }, viaViem: { ...viaViem, v: undefined } };
      },
      { delegate: DELEGATE, chainId: ANVIL_CHAIN_ID, nonce },
    );
    expect(auth.a.address).toBe(DELEGATE);
    expect(await recoverAuthorizationAddress({ authorization: auth.a })).toBe(address);
    expect(await recoverAuthorizationAddress({ authorization: auth.viaViem as typeof auth.a })).toBe(address);
    expect(verifyAuthorization({ address: auth.a.address, chainId: BigInt(auth.a.chainId), nonce: BigInt(auth.a.nonce) }, auth.a)).toBe(address);

    const dev = createWalletClient({ account: privateKeyToAccount(DEV_KEY), chain, transport: http(env.rpcUrl) });
    const hash = await dev.sendTransaction({ to: address, authorizationList: [auth.a], gas: 100_000n });
    const receipt = await pc.waitForTransactionReceipt({ hash, timeout: 30_000 });
    expect(receipt.status).toBe("success");
    expect(receipt.type).toBe("eip7702");
    expect((await pc.getCode({ address }))?.toLowerCase()).toBe(`0xef0100${DELEGATE.slice(2).toLowerCase()}`);
    expect(await pc.getTransactionCount({ address })).toBe(nonce + 1);
  });
  test("evm: close the second page", async () => {
    await page?.close();
  });
}
