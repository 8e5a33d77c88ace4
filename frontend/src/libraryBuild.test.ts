/**
 * The library build (`npm run build:lib`) as a host would consume it: one ES module that leaves
 * React, ReactDOM and react-window to the host, imports no CSS (no style side effects), and a
 * stylesheet whose every rule is scoped to the picker's own `tp-` classes.
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { build } from "vite";

let outDir: string;
beforeAll(async () => {
  outDir = mkdtempSync(join(tmpdir(), "picker-lib-"));
  // As `npm run build:lib` runs it (vitest sets NODE_ENV=test, which would pick React's dev JSX runtime).
  const nodeEnv = process.env.NODE_ENV;
  process.env.NODE_ENV = "production";
  try {
    await build({ configFile: join(__dirname, "..", "vite.lib.config.ts"), logLevel: "silent", build: { outDir } });
  } finally {
    process.env.NODE_ENV = nodeEnv;
  }
}, 60_000);
afterAll(() => rmSync(outDir, { recursive: true, force: true }));

describe("library build", () => {
  it("is one ES module with React and react-window left to the host, and no CSS import", () => {
    expect(readdirSync(outDir).sort()).toEqual(["picker.css", "thumbs-picker.js"]);
    const js = readFileSync(join(outDir, "thumbs-picker.js"), "utf8");
    const imports = [...js.matchAll(/^import[^;]*?from\s*"([^"]+)"/gm)].map((m) => m[1]);
    expect([...new Set(imports)].sort()).toEqual(["react", "react-window", "react/jsx-runtime"]);
    expect(js).not.toMatch(/\.css["']/);
    expect(js).toMatch(/export\s*\{[^}]*\bImagePicker\b/);
    expect(js).not.toContain("react.production"); // React itself is not bundled
  });

  it("styles only its own scoped classes", () => {
    const css = readFileSync(join(outDir, "picker.css"), "utf8").replace(/\/\*[\s\S]*?\*\//g, "");
    // Selector lists of every rule (at-rule preludes such as @media are not selectors).
    const selectors = [...css.matchAll(/([^{}]+)\{/g)]
      .map((m) => m[1]!.trim())
      .filter((s) => !s.startsWith("@"))
      .flatMap((s) => s.split(","))
      .map((s) => s.trim());
    expect(selectors.length).toBeGreaterThan(10);
    const unscoped = selectors.filter((s) => !s.startsWith(".tp-"));
    expect(unscoped).toEqual([]);
    expect(css).toContain("--tp-accent");
    expect(css).toMatch(/\.tp-picker\[data-theme=("?)dark\1\]/);
  });
});
