// Builds the package: tsc (dist/: ESM + .d.ts for bundlers), esbuild (browser/: two
// self-contained ESM files for a plain <script type="module">), and the demo's
// verification bundle (demo/vendor/verify.js). The wasm core must already be in wasm/
// (crates/mpc-wasm/build.sh).
import { execFileSync } from "node:child_process";
import { existsSync, rmSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import * as esbuild from "esbuild";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const wasmJs = join(root, "wasm", "mpc_wasm.js");
if (!existsSync(wasmJs) || !existsSync(join(root, "wasm", "mpc_wasm_bg.wasm"))) {
  console.error(`missing ${wasmJs} (or its .wasm): build the wasm core first with crates/mpc-wasm/build.sh`);
  process.exit(1);
}
for (const d of ["dist", "browser", join("demo", "vendor")]) rmSync(join(root, d), { recursive: true, force: true });

const tsc = join(root, "node_modules", "typescript", "bin", "tsc");
execFileSync(process.execPath, [tsc, "-p", join(root, "tsconfig.json")], { stdio: "inherit" });

const common = {
  bundle: true,
  format: "esm",
  platform: "browser",
  target: "es2022",
  sourcemap: true,
  logLevel: "warning",
};
await esbuild.build({
  ...common,
  entryPoints: {
    "wallet-mpc": join(root, "src", "index.ts"),
    worker: join(root, "src", "worker.ts"),
    // presign-web: the presign Worker (background presignature refills).
    "pool-worker": join(root, "src", "pool-worker.ts"),
    // The viem adapter (toViemAccount) for a plain <script type="module"> page.
    viem: join(root, "src", "viem.ts"),
  },
  outdir: join(root, "browser"),
  minify: true,
});
await esbuild.build({
  ...common,
  entryPoints: { verify: join(root, "demo", "verify.ts") },
  outdir: join(root, "demo", "vendor"),
  minify: true,
});
console.log("built dist/ (tsc), browser/ (esbuild) and demo/vendor/");

// The safe-prime search worker (primes.ts starts it next to the module that runs the
// wallet core: browser/worker.js or browser/wallet-mpc.js in inline mode).
await esbuild.build({
  ...common,
  entryPoints: { "prime-worker": join(root, "src", "prime-worker.ts") },
  outdir: join(root, "browser"),
  minify: true,
});
console.log("built browser/prime-worker.js");
