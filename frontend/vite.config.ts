import react from "@vitejs/plugin-react";
import { defineConfig } from "vitest/config";
import { mockLibraryApi } from "./mock/mockApi.ts";

// `npm run dev` serves a mock library API; VITE_API_TARGET=http://127.0.0.1:8080 proxies to a real one.
const apiTarget = process.env.VITE_API_TARGET;

export default defineConfig({
  plugins: [react(), ...(apiTarget ? [] : [mockLibraryApi()])],
  server: apiTarget ? { proxy: { "/api": apiTarget } } : {},
  build: { outDir: "dist", emptyOutDir: true, target: "es2022" },
  // Pure modules run in node; component tests (*.test.tsx) declare `@vitest-environment jsdom`.
  test: { environment: "node", include: ["src/**/*.test.{ts,tsx}"], setupFiles: ["src/test/setup.ts"] },
});
