import { fileURLToPath } from "node:url";
import { defineConfig } from "vite";

// The package as wasm-pack builds it (scripts/wasm.sh), resolved like an installed npm package.
export default defineConfig({
  root: fileURLToPath(new URL(".", import.meta.url)),
  resolve: { alias: { "restsip-wasm": fileURLToPath(new URL("../../../wasm-client/pkg/restsip_wasm.js", import.meta.url)) } },
  build: { outDir: fileURLToPath(new URL("../dist", import.meta.url)), emptyOutDir: true, target: "es2022" },
  logLevel: "warn",
});
