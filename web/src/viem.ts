/**
 * `@wallet-mpc/web/viem`: the wallet as a viem `LocalAccount`, for `createWalletClient`,
 * `sendTransaction`, `signTypedData`, `signAuthorization` and every viem action that
 * signs locally.
 *
 * ```ts
 * import { createWalletClient, http } from "viem";
 * import { toViemAccount } from "@wallet-mpc/web/viem";
 * const account = await toViemAccount(wallet);           // wallet: a WalletClient
 * const client = createWalletClient({ account, chain, transport: http(rpcUrl) });
 * const hash = await client.sendTransaction({ to, value }); // co-signed by the cosigner
 * ```
 *
 * Every signature is a 2-of-3 signature of the device and the cosigner; the cosigner's
 * policy sees the decoded payload. There is no raw-hash `sign`: the cosigner never
 * signs a digest it did not compute from a payload it decoded.
 */

import { serializeTransaction, type Hex, type LocalAccount, type NonceManager, type SerializeTransactionFn, type TransactionSerializable } from "viem";
import { toAccount } from "viem/accounts";
import { toWalletError } from "./errors.js";
import type { EvmWallet, SignOptions } from "./types.js";

/** Options of {@link toViemAccount}. */
export interface ViemAccountOptions {
  /** Account id (default: the wallet's first account). */
  accountId?: string;
  /** BIP-32 path (non-hardened), e.g. `m/44/60/0/0/0` (default: the root key). */
  derivationPath?: string;
  /** Presignature mode of every signature (see {@link SignOptions.presign}). */
  presign?: SignOptions["presign"];
  /** Progress of every signature. */
  onProgress?: SignOptions["onProgress"];
  /** viem's nonce manager for the account (optional). */
  nonceManager?: NonceManager;
}

/**
 * The wallet's account (at a path) as a viem `LocalAccount` (`source: "custom"`):
 * `signMessage`, `signTransaction` (honours viem's `serializer` argument: the unsigned
 * form it produces is what is co-signed, and the signed form is its output with the
 * signature; a blob transaction is signed as its envelope, like viem's own accounts),
 * `signTypedData` and `signAuthorization`. `publicKey` is the compressed SEC1 key.
 * Resolves once the address is known; errors are {@link WalletError}s.
 */
export async function toViemAccount(wallet: EvmWallet, options: ViemAccountOptions = {}): Promise<LocalAccount> {
  const info = await wallet.getPublicKey(options.accountId, options.derivationPath);
  const opts: SignOptions = {};
  if (options.accountId !== undefined) opts.accountId = options.accountId;
  if (options.derivationPath !== undefined) opts.derivationPath = options.derivationPath;
  if (options.presign !== undefined) opts.presign = options.presign;
  if (options.onProgress !== undefined) opts.onProgress = options.onProgress;
  const wrap = async <T>(f: () => Promise<T>): Promise<T> => {
    try {
      return await f();
    } catch (e) {
      throw toWalletError(e);
    }
  };
  const account = toAccount({
    address: info.ethereumAddress,
    ...(options.nonceManager ? { nonceManager: options.nonceManager } : {}),
    signMessage: ({ message }) => wrap(async () => (await wallet.signMessage(message, opts)).rsv),
    signTypedData: (typedData) => wrap(async () => (await wallet.signTypedData(typedData as never, opts)).rsv),
    signAuthorization: (request) =>
      wrap(async () => {
        const a = await wallet.signAuthorization(request, opts);
        return { address: a.address, chainId: a.chainId, nonce: a.nonce, r: a.r, s: a.s, yParity: a.yParity, v: a.v };
      }),
    signTransaction: (transaction, args) =>
      wrap(async () => {
        const serializer = (args?.serializer ?? serializeTransaction) as SerializeTransactionFn<TransactionSerializable>;
        const tx = transaction as TransactionSerializable;
        // A blob transaction is signed without its sidecars (the envelope), as viem does.
        const signable = tx.type === "eip4844" ? ({ ...tx, sidecars: false } as TransactionSerializable) : tx;
        const unsigned = await serializer(signable);
        const sig = await wallet.signTransaction(unsigned, opts);
        return (await serializer(tx, { r: sig.r, s: sig.s, yParity: sig.yParity, v: 27n + BigInt(sig.yParity) })) as Hex;
      }),
  });
  return { ...account, publicKey: `0x${info.publicKey.replace(/^0x/, "")}` as Hex };
}
