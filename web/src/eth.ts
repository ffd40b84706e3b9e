/**
 * Ethereum transaction helpers: minimal RLP, unsigned payload parsing (legacy,
 * EIP-155, EIP-2930, EIP-1559) and signed serialization. The signature itself comes
 * from the wasm core; this file only assembles bytes.
 */

import { keccak_256 } from "@noble/hashes/sha3.js";
import { InvalidInputError } from "./errors.js";

/** A decoded RLP item. */
export type Rlp = Uint8Array | Rlp[];

/** Hex (optional 0x) → bytes. */
export function hexToBytes(hex: string, what = "hex"): Uint8Array {
  const h = hex.startsWith("0x") || hex.startsWith("0X") ? hex.slice(2) : hex;
  if (h.length % 2 !== 0 || !/^[0-9a-fA-F]*$/.test(h)) throw new InvalidInputError(`${what} is not valid hex`);
  const out = new Uint8Array(h.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(h.slice(2 * i, 2 * i + 2), 16);
  return out;
}

/** Bytes → lowercase hex without prefix. */
export function bytesToHex(b: Uint8Array): string {
  let s = "";
  for (const x of b) s += x.toString(16).padStart(2, "0");
  return s;
}

/** keccak-256 as 0x-hex. */
export function keccakHex(b: Uint8Array): `0x${string}` {
  return `0x${bytesToHex(keccak_256(b))}`;
}

function concat(parts: Uint8Array[]): Uint8Array {
  const n = parts.reduce((a, p) => a + p.length, 0);
  const out = new Uint8Array(n);
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

function lengthPrefix(len: number, offset: number): Uint8Array {
  if (len < 56) return Uint8Array.of(offset + len);
  const lb: number[] = [];
  for (let l = len; l > 0; l = Math.floor(l / 256)) lb.unshift(l % 256);
  return Uint8Array.of(offset + 55 + lb.length, ...lb);
}

/** RLP encoding. */
export function rlpEncode(item: Rlp): Uint8Array {
  if (item instanceof Uint8Array) {
    if (item.length === 1 && item[0]! < 0x80) return item;
    return concat([lengthPrefix(item.length, 0x80), item]);
  }
  const body = concat(item.map(rlpEncode));
  return concat([lengthPrefix(body.length, 0xc0), body]);
}

/** RLP decoding of exactly one item spanning all of `b`. */
export function rlpDecode(b: Uint8Array): Rlp {
  const [item, end] = decodeAt(b, 0, 0);
  if (end !== b.length) throw new InvalidInputError("RLP: trailing bytes after the item");
  return item;
}

function readLen(b: Uint8Array, pos: number, n: number): number {
  if (pos + n > b.length) throw new InvalidInputError("RLP: truncated length");
  if (b[pos] === 0) throw new InvalidInputError("RLP: non-canonical length");
  let l = 0;
  for (let i = 0; i < n; i++) l = l * 256 + b[pos + i]!;
  if (l < 56) throw new InvalidInputError("RLP: non-canonical long length");
  return l;
}

function decodeAt(b: Uint8Array, pos: number, depth: number): [Rlp, number] {
  if (depth > 16) throw new InvalidInputError("RLP: nested too deep");
  if (pos >= b.length) throw new InvalidInputError("RLP: truncated");
  const p = b[pos]!;
  if (p < 0x80) return [b.slice(pos, pos + 1), pos + 1];
  if (p < 0xb8) {
    const len = p - 0x80;
    const end = pos + 1 + len;
    if (end > b.length) throw new InvalidInputError("RLP: truncated string");
    if (len === 1 && b[pos + 1]! < 0x80) throw new InvalidInputError("RLP: non-canonical single byte");
    return [b.slice(pos + 1, end), end];
  }
  if (p < 0xc0) {
    const n = p - 0xb7;
    const len = readLen(b, pos + 1, n);
    const start = pos + 1 + n;
    if (start + len > b.length) throw new InvalidInputError("RLP: truncated string");
    return [b.slice(start, start + len), start + len];
  }
  let start: number;
  let len: number;
  if (p < 0xf8) {
    len = p - 0xc0;
    start = pos + 1;
  } else {
    const n = p - 0xf7;
    len = readLen(b, pos + 1, n);
    start = pos + 1 + n;
  }
  const end = start + len;
  if (end > b.length) throw new InvalidInputError("RLP: truncated list");
  const items: Rlp[] = [];
  let q = start;
  while (q < end) {
    const [it, next] = decodeAt(b, q, depth + 1);
    items.push(it);
    q = next;
  }
  if (q !== end) throw new InvalidInputError("RLP: list length mismatch");
  return [items, end];
}

function toBigInt(b: Rlp, what: string): bigint {
  if (!(b instanceof Uint8Array)) throw new InvalidInputError(`transaction field ${what} must be a byte string`);
  return b.length === 0 ? 0n : BigInt(`0x${bytesToHex(b)}`);
}

function uintBytes(v: bigint): Uint8Array {
  if (v === 0n) return new Uint8Array();
  let h = v.toString(16);
  if (h.length % 2) h = `0${h}`;
  return hexToBytes(h);
}

/** A parsed unsigned transaction payload. */
export interface UnsignedTx {
  type: "legacy" | "eip155" | "eip2930" | "eip1559";
  chainId?: bigint;
  fields: Rlp[];
}

/** Parses the unsigned signing payload of a transaction (what gets keccak-256 hashed). */
export function parseUnsignedTx(payload: Uint8Array): UnsignedTx {
  if (payload.length === 0) throw new InvalidInputError("empty transaction payload");
  const first = payload[0]!;
  const list = (b: Uint8Array): Rlp[] => {
    const d = rlpDecode(b);
    if (!Array.isArray(d)) throw new InvalidInputError("transaction payload is not an RLP list");
    return d;
  };
  if (first === 0x02) {
    const f = list(payload.subarray(1));
    if (f.length !== 9) throw new InvalidInputError(`EIP-1559 payload must have 9 fields, got ${f.length}`);
    return { type: "eip1559", chainId: toBigInt(f[0]!, "chainId"), fields: f };
  }
  if (first === 0x01) {
    const f = list(payload.subarray(1));
    if (f.length !== 8) throw new InvalidInputError(`EIP-2930 payload must have 8 fields, got ${f.length}`);
    return { type: "eip2930", chainId: toBigInt(f[0]!, "chainId"), fields: f };
  }
  if (first >= 0xc0) {
    const f = list(payload);
    if (f.length === 6) return { type: "legacy", fields: f };
    if (f.length === 9) {
      if (toBigInt(f[7]!, "r") !== 0n || toBigInt(f[8]!, "s") !== 0n) {
        throw new InvalidInputError("EIP-155 payload must end with chainId, 0, 0 (is this a signed transaction?)");
      }
      return { type: "eip155", chainId: toBigInt(f[6]!, "chainId"), fields: f };
    }
    throw new InvalidInputError(`legacy payload must have 6 or 9 fields, got ${f.length}`);
  }
  throw new InvalidInputError(`unsupported transaction type 0x${first.toString(16)}`);
}

/** `v` of a transaction signature. */
export function txV(tx: UnsignedTx, yParity: 0 | 1): bigint {
  switch (tx.type) {
    case "legacy":
      return 27n + BigInt(yParity);
    case "eip155":
      return tx.chainId! * 2n + 35n + BigInt(yParity);
    default:
      return BigInt(yParity);
  }
}

/** The serialized signed transaction. */
export function serializeSignedTx(tx: UnsignedTx, r: Uint8Array, s: Uint8Array, yParity: 0 | 1): Uint8Array {
  const rr = uintBytes(BigInt(`0x${bytesToHex(r)}`));
  const ss = uintBytes(BigInt(`0x${bytesToHex(s)}`));
  const v = uintBytes(txV(tx, yParity));
  switch (tx.type) {
    case "legacy":
      return rlpEncode([...tx.fields, v, rr, ss]);
    case "eip155":
      return rlpEncode([...tx.fields.slice(0, 6), v, rr, ss]);
    case "eip2930":
      return concat([Uint8Array.of(0x01), rlpEncode([...tx.fields, v, rr, ss])]);
    case "eip1559":
      return concat([Uint8Array.of(0x02), rlpEncode([...tx.fields, v, rr, ss])]);
  }
}
