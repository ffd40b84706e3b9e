// `npm pack` / `npm publish` guard: refuses to pack a package without its wasm core or
// its build output (both are git-ignored and produced by separate steps).
import { existsSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const need = [
  ["wasm/mpc_wasm_bg.wasm", "build the wasm core first: bash crates/mpc-wasm/build.sh (from the repository root)"],
  ["wasm/mpc_wasm.js", "build the wasm core first: bash crates/mpc-wasm/build.sh (from the repository root)"],
  ["dist/index.js", "build the package first: npm run build (in web/)"],
  ["dist/index.d.ts", "build the package first: npm run build (in web/)"],
  ["browser/wallet-mpc.js", "build the package first: npm run build (in web/)"],
];
const missing = need.filter(([f]) => !existsSync(join(root, f)));
if (missing.length) {
  console.error("@wallet-mpc/web prepack: refusing to pack an incomplete package:");
  for (const [f, fix] of missing) console.error(`  missing ${f}: ${fix}`);
  process.exit(1);
}
