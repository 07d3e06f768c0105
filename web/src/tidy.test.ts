// Tidy checks over the source, in the spirit of rust-analyzer's: cheap rules
// that keep the codebase as STYLE.md describes it.
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join, relative } from "node:path";
import { describe, expect, it } from "vitest";

const root = new URL(".", import.meta.url).pathname;

function sources(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) return sources(path);
    return /\.tsx?$/.test(name) ? [path] : [];
  });
}

const files = sources(root).map((path) => ({ name: relative(root, path), text: readFileSync(path, "utf8") }));

describe("tidy", () => {
  it("has no `any` type", () => {
    const offenders = files
      .filter((f) => f.name !== "tidy.test.ts")
      .filter((f) => /(:\s*any\b|\bas any\b|<any>|any\[\])/.test(f.text.replace(/\/\/.*$|\/\*[\s\S]*?\*\//gm, "")))
      .map((f) => f.name);
    expect(offenders).toEqual([]);
  });

  it("opens every non-test module with a comment saying why it exists", () => {
    const missing = files
      .filter((f) => !f.name.endsWith(".test.ts") && f.name !== "main.tsx")
      .filter((f) => !/^\s*(\/\*\*|\/\/)/.test(f.text))
      .map((f) => f.name);
    expect(missing).toEqual([]);
  });

  it("keeps xterm out of everything but the terminal feature", () => {
    const leaks = files.filter((f) => !f.name.startsWith("terminal/") && /from "@xterm\//.test(f.text)).map((f) => f.name);
    expect(leaks).toEqual([]);
  });

  it("keeps CodeMirror in the editor chunk: imported only under editor/codemirror/, which is only loaded lazily", () => {
    const leaks = files.filter((f) => !f.name.startsWith("editor/codemirror/") && /from "@(codemirror|lezer)\//.test(f.text)).map((f) => f.name);
    expect(leaks).toEqual([]);
    const eager = files
      .filter((f) => !f.name.startsWith("editor/codemirror/") && !f.name.endsWith(".test.ts"))
      .filter((f) => /^\s*import\s[^;]*from\s+"[^"]*codemirror\//m.test(f.text))
      .map((f) => f.name);
    expect(eager).toEqual([]);
  });
});
