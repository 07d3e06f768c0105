// Vite builds the SPA into dist/ (served by the hub, same origin as the
// API, on every path the hub doesn't answer itself); in development it
// proxies /api, WebSockets included, and the hub's own pages (the landing
// page at `/`, the docs) to a hub on 127.0.0.1:8080 (AETHER_HUB_URL
// overrides). Vitest shares this config.
import { defineConfig } from "vitest/config";
import react from "@vitejs/plugin-react";
import tailwindcss from "@tailwindcss/vite";

const hub = process.env.AETHER_HUB_URL ?? "http://127.0.0.1:8080";

export default defineConfig({
  plugins: [react(), tailwindcss()],
  server: {
    proxy: {
      "/api": { target: hub, ws: true },
      "^/$": { target: hub },
      "/docs": { target: hub },
    },
  },
  build: {
    outDir: "dist",
    emptyOutDir: true,
    sourcemap: true,
    manifest: true,
    chunkSizeWarningLimit: 600,
    rollupOptions: {
      output: {
        // Chunks of packages are named after what they hold (`codemirror`, `cm-lang-python`), not `dist`.
        chunkFileNames: (chunk) => {
          if (chunk.name !== "dist") return "assets/[name]-[hash].js";
          const ids = chunk.moduleIds;
          if (ids.some((id) => id.includes("/@codemirror/view/"))) return "assets/codemirror-[hash].js";
          const lang = ids.map((id) => /@codemirror\/(lang-[^/]+)/.exec(id)?.[1]).find(Boolean);
          if (lang) return `assets/cm-${lang}-[hash].js`;
          const pkg = ids.map((id) => /node_modules\/(?:@([^/]+)\/)?([^/]+)/.exec(id)).find((m) => m !== null);
          return pkg ? `assets/${pkg[1] ? `${pkg[1]}-` : ""}${pkg[2]}-[hash].js` : "assets/[name]-[hash].js";
        },
      },
    },
  },
  test: {
    include: ["src/**/*.test.ts"],
    environment: "node",
  },
});
