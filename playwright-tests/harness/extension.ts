// The example MV3 extension (web/examples/extension): where its build is, and its fixed
// id, derived from the public "key" of its manifest exactly as Chrome does (first 128
// bits of SHA-256 of the DER public key, hex digits 0-f written as a-p).
import { createHash } from "node:crypto";
import { existsSync, readFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const repo = resolve(dirname(fileURLToPath(import.meta.url)), "..", "..");
export const EXTENSION_DIR = join(repo, "web", "examples", "extension");
export const EXTENSION_DIST = join(EXTENSION_DIR, "dist");

export function extensionId(): string {
  const manifest = JSON.parse(readFileSync(join(EXTENSION_DIR, "public", "manifest.json"), "utf8")) as { key: string };
  const hex = createHash("sha256").update(Buffer.from(manifest.key, "base64")).digest("hex").slice(0, 32);
  return [...hex].map((c) => String.fromCharCode(97 + parseInt(c, 16))).join("");
}

export function extensionOrigin(): string {
  return `chrome-extension://${extensionId()}`;
}

export function extensionBuilt(): boolean {
  return existsSync(join(EXTENSION_DIST, "manifest.json")) && existsSync(join(EXTENSION_DIST, "sw.js"));
}
