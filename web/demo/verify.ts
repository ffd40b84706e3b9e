// Independent checks for the demo page (viem, not the wallet's own code): recover the
// signer of a personal message and of a signed transaction, and build unsigned
// EIP-1559 transactions. Bundled to demo/vendor/verify.js by scripts/build.mjs.
import {
  getAddress,
  keccak256,
  parseEther,
  parseGwei,
  parseTransaction,
  recoverMessageAddress,
  recoverTransactionAddress,
  serializeTransaction,
  type Hex,
} from "viem";

export interface TxFields {
  chainId: number;
  nonce: number;
  to: string;
  valueEth: string;
  maxFeeGwei: string;
  maxPriorityFeeGwei: string;
  gas: string;
}

/** The unsigned EIP-1559 signing payload (0x02 || rlp([...])). */
export function unsignedEip1559(f: TxFields): Hex {
  return serializeTransaction({
    type: "eip1559",
    chainId: f.chainId,
    nonce: f.nonce,
    to: getAddress(f.to),
    value: parseEther(f.valueEth),
    maxFeePerGas: parseGwei(f.maxFeeGwei),
    maxPriorityFeePerGas: parseGwei(f.maxPriorityFeeGwei),
    gas: BigInt(f.gas),
  });
}

/** Signer of an EIP-191 personal message. */
export async function recoverMessageSigner(message: string, rsv: Hex): Promise<string> {
  return getAddress(await recoverMessageAddress({ message, signature: rsv }));
}

/** Signer and hash of a signed transaction, plus its decoded fields. */
export async function recoverTxSigner(signedTx: Hex): Promise<{ signer: string; hash: Hex; to?: string; value?: string; chainId?: number }> {
  const signer = getAddress(await recoverTransactionAddress({ serializedTransaction: signedTx as never }));
  const tx = parseTransaction(signedTx);
  const out: { signer: string; hash: Hex; to?: string; value?: string; chainId?: number } = { signer, hash: keccak256(signedTx) };
  if (tx.to) out.to = tx.to;
  if (tx.value !== undefined) out.value = tx.value.toString();
  if (tx.chainId !== undefined) out.chainId = tx.chainId;
  return out;
}
