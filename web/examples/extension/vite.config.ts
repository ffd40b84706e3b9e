// Builds the extension into dist/ (load it unpacked) in two passes:
//   vite build             the HTML pages (popup, approval window, options, offscreen
//                          document) and the two content scripts (content.js,
//                          provider.js: classic scripts, so they import nothing)
//   vite build --mode sw   the module service worker, as ONE file (sw.js): dynamic
//                          import() is forbidden in service workers, and viem has a few
//                          (inlined here by inlineDynamicImports)
// public/manifest.json is copied as is. scripts/check-dist.mjs then checks the output.
import { resolve } from "node:path";
import { defineConfig } from "vite";

export default defineConfig(({ mode }) => {
  const sw = mode === "sw";
  return {
    base: "./",
    publicDir: sw ? false : "public",
    build: {
      outDir: "dist",
      emptyOutDir: !sw,
      target: "es2022",
      minify: false,
      sourcemap: true,
      modulePreload: false,
      chunkSizeWarningLimit: 4096,
      rollupOptions: sw
        ? {
            input: { sw: resolve(__dirname, "src/background/sw.ts") },
            output: { entryFileNames: "[name].js", inlineDynamicImports: true },
          }
        : {
            input: {
              popup: resolve(__dirname, "src/popup/popup.html"),
              approval: resolve(__dirname, "src/approval/approval.html"),
              options: resolve(__dirname, "src/options/options.html"),
              offscreen: resolve(__dirname, "src/offscreen/offscreen.html"),
              content: resolve(__dirname, "src/content/content.ts"),
              provider: resolve(__dirname, "src/provider/provider.ts"),
            },
            output: {
              entryFileNames: (c) => (c.name === "content" || c.name === "provider" ? "[name].js" : "assets/[name]-[hash].js"),
            },
          },
    },
    worker: { format: "es" },
  };
});
