/**
 * The EVM codec of the package, on viem: what gets signed for each Ethereum payload kind
 * (transactions of types 0–4, EIP-191 messages, EIP-712 typed data, EIP-7702
 * authorizations) and the signed results assembled from a signature `(r, s, yParity)`.
 * The signature itself comes from the wasm core; this module only encodes, decodes and
 * validates, and turns every encoding failure into an {@link InvalidInputError} before
 * any protocol session starts.
 */

import {
  BaseError,
  bytesToHex,
  concatHex,
  getAddress,
  getTypesForEIP712Domain,
  hashDomain,
  hashStruct,
  hexToBytes,
  isAddress,
  isHex,
  keccak256,
  numberToHex,
  parseTransaction,
  serializeTransaction,
  toPrefixedMessage,
  toRlp,
  validateTypedData,
  type Hex,
  type TransactionSerializable,
  type TypedDataDefinition,
} from "viem";
import { InvalidInputError } from "./errors.js";
import type { Address, AuthorizationRequest, EthTxType, SignableMessageInput, SignedAuthorization } from "./types.js";

/**
 * Largest payload accepted (bytes): an unsigned transaction, a message, the JSON of
 * typed data. The same bound as the wasm core and the cosigner (`MAX_PREIMAGE_LEN`).
 */
export const MAX_PAYLOAD_BYTES = 1 << 20;

/** The readable part of an error thrown by viem (its `shortMessage`), else the message. */
function reason(e: unknown): string {
  if (e instanceof BaseError) return e.shortMessage || e.message;
  return e instanceof Error ? e.message : String(e);
}

function checkSize(n: number, what: string): void {
  if (n > MAX_PAYLOAD_BYTES) {
    throw new InvalidInputError(`${what} has ${n} bytes; at most ${MAX_PAYLOAD_BYTES} are accepted`, { size: n, limit: MAX_PAYLOAD_BYTES });
  }
}

/** Strict `0x`-hex (even length) → bytes; anything else is an {@link InvalidInputError}. */
export function hexInput(hex: string, what: string): Uint8Array {
  if (typeof hex !== "string" || !isHex(hex, { strict: true }) || hex.length % 2 !== 0) {
    throw new InvalidInputError(`${what} must be 0x-prefixed hex with an even number of digits`);
  }
  checkSize((hex.length - 2) / 2, what);
  return hexToBytes(hex);
}

/** Bytes → `0x`-hex. */
export function toHex(b: Uint8Array): Hex {
  return bytesToHex(b);
}

/** keccak-256 as `0x`-hex. */
export function keccakHex(b: Uint8Array | Hex): Hex {
  return keccak256(b);
}

/** A checksummed address, or an {@link InvalidInputError} naming `what`. */
export function checkAddress(a: unknown, what: string): Address {
  if (typeof a !== "string" || !isAddress(a, { strict: false })) {
    throw new InvalidInputError(`${what} must be a 20-byte 0x-hex address, got ${JSON.stringify(a)}`);
  }
  return getAddress(a);
}

// ---------------------------------------------------------------------------------
// EIP-191 personal messages

/**
 * The EIP-191 (`personal_sign`) preimage of a message: `"\x19Ethereum Signed
 * Message:\n" || len || message`. A string is ALWAYS its UTF-8 text (also when it looks
 * like hex: `"0x1234"` is 6 characters); bytes are given as a `Uint8Array` or as
 * `{ raw }` (viem's `SignableMessage`: `raw` is a `Uint8Array` or `0x`-hex).
 */
export function messagePreimage(message: SignableMessageInput): Uint8Array {
  let body: Hex | Uint8Array;
  if (typeof message === "string") {
    body = new TextEncoder().encode(message);
  } else if (message instanceof Uint8Array) {
    body = message;
  } else if (message !== null && typeof message === "object" && "raw" in message) {
    const raw: unknown = message.raw;
    if (raw instanceof Uint8Array) body = raw;
    else if (typeof raw === "string") body = hexInput(raw, "message.raw");
    else throw new InvalidInputError("message.raw must be a Uint8Array or 0x-hex");
  } else {
    throw new InvalidInputError("a message is a string (UTF-8 text), a Uint8Array or { raw: Uint8Array | 0x-hex }");
  }
  checkSize(body.length, "the message");
  return hexToBytes(toPrefixedMessage({ raw: body }));
}

// ---------------------------------------------------------------------------------
// Transactions (types 0, 1, 2, 3, 4)

/** A decoded unsigned transaction. */
export interface UnsignedTx {
  /** The transaction type (`eip155`: legacy with a chain id). */
  type: EthTxType;
  /** Chain id (absent for pre-EIP-155 legacy transactions). */
  chainId?: number;
  /** viem's decoded fields. */
  transaction: TransactionSerializable;
  /** The signing payload exactly as given (what is keccak-256 hashed and co-signed). */
  payload: Uint8Array;
}

/**
 * Decodes the signing payload of an unsigned transaction (legacy RLP with or without
 * EIP-155 chain id, or a typed EIP-2930 / EIP-1559 / EIP-4844 / EIP-7702 envelope
 * starting with its type byte). Refused: signed transactions, blob transactions in
 * their network form (with sidecars: sign the envelope), unknown types and
 * non-canonical encodings (the payload must be exactly viem's serialization of what it
 * decodes to, so the signed transaction is the one that was co-signed).
 */
export function parseUnsignedTx(input: Uint8Array | string): UnsignedTx {
  const payload = typeof input === "string" ? hexInput(input, "the transaction") : input;
  if (!(payload instanceof Uint8Array)) throw new InvalidInputError("a transaction is bytes or 0x-hex");
  if (payload.length === 0) throw new InvalidInputError("empty transaction payload");
  checkSize(payload.length, "the transaction");
  const first = payload[0]!;
  if (first < 0xc0 && first > 0x04) {
    throw new InvalidInputError(`unsupported transaction type 0x${first.toString(16).padStart(2, "0")} (types 0 to 4 are signed)`, { txType: first });
  }
  const hex = bytesToHex(payload);
  let tx: TransactionSerializable;
  try {
    tx = parseTransaction(hex) as TransactionSerializable;
  } catch (e) {
    throw new InvalidInputError(`not an unsigned transaction: ${reason(e)}`);
  }
  const sig = tx as { r?: unknown; s?: unknown; v?: unknown; yParity?: unknown };
  if (sig.r !== undefined || sig.s !== undefined || sig.v !== undefined || sig.yParity !== undefined) {
    throw new InvalidInputError("the transaction is already signed: pass its unsigned signing payload");
  }
  if (tx.type === "eip4844" && ("sidecars" in tx && tx.sidecars !== undefined && tx.sidecars !== false)) {
    throw new InvalidInputError("a blob transaction is signed in its envelope form, without blobs, commitments and proofs");
  }
  let again: Hex;
  try {
    again = serializeTransaction(tx);
  } catch (e) {
    throw new InvalidInputError(`the transaction does not re-encode: ${reason(e)}`);
  }
  if (again !== hex) {
    throw new InvalidInputError("the transaction payload is not canonically encoded (it does not re-encode to the same bytes)");
  }
  const type: EthTxType = tx.type === "legacy" || tx.type === undefined ? (tx.chainId !== undefined ? "eip155" : "legacy") : (tx.type as EthTxType);
  if (!["legacy", "eip155", "eip2930", "eip1559", "eip4844", "eip7702"].includes(type)) {
    throw new InvalidInputError(`unsupported transaction type ${String(tx.type)}`);
  }
  const out: UnsignedTx = { type, transaction: tx, payload };
  if (tx.chainId !== undefined) out.chainId = tx.chainId;
  return out;
}

/** `v` of a transaction signature: 27/28 (legacy), EIP-155 `chainId·2+35+y`, else `yParity`. */
export function txV(tx: UnsignedTx, yParity: 0 | 1): bigint {
  switch (tx.type) {
    case "legacy":
      return 27n + BigInt(yParity);
    case "eip155":
      return BigInt(tx.chainId!) * 2n + 35n + BigInt(yParity);
    default:
      return BigInt(yParity);
  }
}

/** The serialized signed transaction (for `eth_sendRawTransaction`; blob transactions: the envelope). */
export function serializeSignedTx(tx: UnsignedTx, sig: { r: Hex; s: Hex; yParity: 0 | 1 }): Hex {
  const v = txV(tx, sig.yParity);
  return serializeTransaction(tx.transaction, { r: sig.r, s: sig.s, v, yParity: sig.yParity });
}

// ---------------------------------------------------------------------------------
// EIP-712 typed data

/** What signing typed data sends: the preimage both parties hash, and the JSON the cosigner decodes. */
export interface TypedDataPayload {
  /** `0x1901 || domainSeparator || hashStruct(message)` (66 bytes). */
  preimage: Uint8Array;
  /**
   * UTF-8 JSON of the typed data in `eth_signTypedData_v4` form (`types` includes
   * `EIP712Domain`; bigints as decimal strings, bytes as `0x`-hex): what the cosigner
   * receives, decodes and hashes itself.
   */
  json: Uint8Array;
  /** keccak-256 of the preimage (viem's `hashTypedData`). */
  digest: Hex;
}

/** JSON of typed-data values: bigints as decimal strings, bytes as hex. */
function jsonValue(_key: string, value: unknown): unknown {
  if (typeof value === "bigint") return value.toString(10);
  if (value instanceof Uint8Array) return bytesToHex(value);
  return value;
}

/**
 * The EIP-712 preimage of typed data (viem's `TypedDataDefinition`: `types`,
 * `primaryType`, `domain`, `message`; `EIP712Domain` in `types` is optional and derived
 * from the domain's fields when absent), validated by viem (addresses, integer ranges,
 * byte sizes, missing fields), and the JSON the cosigner receives.
 */
export function typedDataPayload(typedData: TypedDataDefinition): TypedDataPayload {
  if (typedData === null || typeof typedData !== "object") throw new InvalidInputError("typed data must be an object { types, primaryType, domain, message }");
  const { primaryType, message } = typedData as { primaryType: unknown; message?: unknown };
  const given = (typedData as { types?: unknown }).types;
  if (given === null || typeof given !== "object" || Array.isArray(given)) throw new InvalidInputError("typed data: `types` must be an object of struct definitions");
  if (typeof primaryType !== "string" || primaryType === "") throw new InvalidInputError("typed data: `primaryType` must be a type name");
  if (primaryType === "EIP712Domain") {
    throw new InvalidInputError("typed data: signing the domain alone (primaryType EIP712Domain) is not supported; sign a message type");
  }
  const domain = (typedData.domain ?? {}) as Record<string, unknown>;
  if (typeof domain !== "object" || Array.isArray(domain)) throw new InvalidInputError("typed data: `domain` must be an object");
  if (message === null || typeof message !== "object" || Array.isArray(message)) throw new InvalidInputError("typed data: `message` must be an object");
  let types: Record<string, readonly { name: string; type: string }[]>;
  let preimage: Hex;
  try {
    types = {
      EIP712Domain: getTypesForEIP712Domain({ domain }),
      ...(given as Record<string, readonly { name: string; type: string }[]>),
    };
    if (!Array.isArray(types[primaryType])) throw new InvalidInputError(`typed data: primaryType ${JSON.stringify(primaryType)} is not defined in types`);
    validateTypedData({ domain, message: message as Record<string, unknown>, primaryType, types });
    preimage = concatHex([
      "0x1901",
      hashDomain({ domain, types }),
      hashStruct({ data: message as Record<string, unknown>, primaryType, types }),
    ]);
  } catch (e) {
    if (e instanceof InvalidInputError) throw e;
    throw new InvalidInputError(`invalid typed data: ${reason(e)}`);
  }
  let text: string;
  try {
    text = JSON.stringify({ types, primaryType, domain, message }, jsonValue);
  } catch (e) {
    throw new InvalidInputError(`typed data is not serializable: ${reason(e)}`);
  }
  const json = new TextEncoder().encode(text);
  checkSize(json.length, "the typed data's JSON");
  return { preimage: hexToBytes(preimage), json, digest: keccak256(preimage) };
}

// ---------------------------------------------------------------------------------
// EIP-7702 authorizations

function uint64(v: unknown, what: string): number {
  if (typeof v !== "number" || !Number.isSafeInteger(v) || v < 0) {
    throw new InvalidInputError(`${what} must be a non-negative safe integer, got ${String(v)}`);
  }
  return v;
}

/**
 * The EIP-7702 authorization preimage `0x05 || rlp([chain_id, address, nonce])`
 * (keccak-256: viem's `hashAuthorization`) and the normalized authorization.
 */
export function authorizationPreimage(req: AuthorizationRequest): {
  preimage: Uint8Array;
  authorization: { address: Address; chainId: number; nonce: number };
} {
  if (req === null || typeof req !== "object") throw new InvalidInputError("an authorization is { address | contractAddress, chainId, nonce }");
  const r = req as { address?: unknown; contractAddress?: unknown; chainId?: unknown; nonce?: unknown };
  if (r.address !== undefined && r.contractAddress !== undefined && String(r.address).toLowerCase() !== String(r.contractAddress).toLowerCase()) {
    throw new InvalidInputError("authorization: `address` and `contractAddress` differ");
  }
  const address = checkAddress(r.contractAddress ?? r.address, "authorization.address");
  const chainId = uint64(r.chainId, "authorization.chainId");
  const nonce = uint64(r.nonce, "authorization.nonce");
  const preimage = concatHex(["0x05", toRlp([chainId ? numberToHex(chainId) : "0x", address, nonce ? numberToHex(nonce) : "0x"])]);
  return { preimage: hexToBytes(preimage), authorization: { address, chainId, nonce } };
}

/** viem's `SignedAuthorization` from an authorization and its signature. */
export function signedAuthorization(
  authorization: { address: Address; chainId: number; nonce: number },
  sig: { r: Hex; s: Hex; yParity: 0 | 1 },
): SignedAuthorization {
  return { ...authorization, r: sig.r, s: sig.s, yParity: sig.yParity, v: 27n + BigInt(sig.yParity) };
}
