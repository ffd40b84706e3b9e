import { defineConfig } from "vite";

export default defineConfig({
  base: "./",
  // Dev server: keep the package's files next to their import.meta.url (see web/README.md).
  optimizeDeps: { exclude: ["@wallet-mpc/web"] },
  worker: { format: "es" },
  build: { target: "es2022", chunkSizeWarningLimit: 4096 },
});
