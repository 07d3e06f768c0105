// Vite builds the SPA into dist/ (served by the hub at `/`, same origin as
// the API); in development it proxies /api, WebSockets included, to a hub
// on 127.0.0.1:8080 (AETHER_HUB_URL overrides). Vitest shares this config.
import { defineConfig } from "vitest/config";
import react from "@vitejs/plugin-react";
import tailwindcss from "@tailwindcss/vite";

const hub = process.env.AETHER_HUB_URL ?? "http://127.0.0.1:8080";

export default defineConfig({
  plugins: [react(), tailwindcss()],
  server: {
    proxy: {
      "/api": { target: hub, ws: true },
    },
  },
  build: {
    outDir: "dist",
    emptyOutDir: true,
    sourcemap: true,
    chunkSizeWarningLimit: 600,
  },
  test: {
    include: ["src/**/*.test.ts"],
    environment: "node",
  },
});
