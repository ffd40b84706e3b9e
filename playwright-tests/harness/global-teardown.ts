// Prints the timings the demo page reported (the lead copies them into the notes).
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { RUN_DIR } from "./global-setup.js";

export default async function globalTeardown(): Promise<void> {
  const f = join(RUN_DIR, "timings.json");
  if (!existsSync(f)) return;
  let t: Record<string, number>;
  try {
    t = JSON.parse(readFileSync(f, "utf8")) as Record<string, number>;
  } catch {
    return;
  }
  const rows = Object.entries(t);
  if (rows.length === 0) return;
  console.log("\nTimings reported by the demo page (headless Chromium, device in wasm):");
  for (const [k, v] of rows) console.log(`  ${k.padEnd(28)} ${(v / 1000).toFixed(2).padStart(9)} s`);
}
