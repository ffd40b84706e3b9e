// webpack 5: the package's `new Worker(new URL("./worker.js", import.meta.url))` and
// `new URL("../wasm/mpc_wasm_bg.wasm", import.meta.url)` are resolved by webpack itself
// (worker chunks, asset modules); ES module output so the Worker stays a module worker.
import { copyFileSync, mkdirSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));

export default {
  mode: "production",
  entry: join(here, "src", "main.js"),
  experiments: { outputModule: true },
  output: { path: join(here, "dist"), filename: "main.js", module: true, clean: true },
  performance: { hints: false },
  // The check is that webpack resolves the package (workers, wasm asset), not the
  // minifier: skipping it halves the build time in CI.
  optimization: { minimize: false },
  plugins: [
    {
      apply(compiler) {
        compiler.hooks.afterEmit.tap("copy-html", () => {
          mkdirSync(join(here, "dist"), { recursive: true });
          copyFileSync(join(here, "src", "index.html"), join(here, "dist", "index.html"));
        });
      },
    },
  ],
};
