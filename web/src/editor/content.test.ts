import { describe, expect, it } from "vitest";
import { languageOf } from "./languages";
import { classifyContent, formatSize, lineSeparatorOf, MAX_TEXT_BYTES, SNIFF_BYTES } from "./content";

const utf8 = (s: string) => new TextEncoder().encode(s);

describe("binary detection", () => {
  it("opens UTF-8 text, a byte-order mark included", () => {
    expect(classifyContent(utf8("héllo ✓\n"), 10)).toEqual({ kind: "text", text: "héllo ✓\n", lineSeparator: "\n" });
    const bom = classifyContent(new Uint8Array([0xef, 0xbb, 0xbf, 0x61]), 4);
    expect(bom).toMatchObject({ kind: "text", text: "\uFEFFa" });
  });

  it("refuses a NUL byte in the first 8 KB", () => {
    const bytes = utf8("abc\0def");
    expect(classifyContent(bytes, bytes.length)).toEqual({ kind: "binary", reason: "nul" });
  });

  it("only sniffs the first 8 KB for NUL", () => {
    const bytes = new Uint8Array(SNIFF_BYTES + 10).fill(0x61);
    bytes[SNIFF_BYTES + 5] = 0;
    // A NUL past the sniffed prefix is valid UTF-8 and opens as text.
    expect(classifyContent(bytes, bytes.length).kind).toBe("text");
  });

  it("refuses bytes that are not valid UTF-8", () => {
    expect(classifyContent(new Uint8Array([0x63, 0x61, 0x66, 0xe9]), 4)).toEqual({ kind: "binary", reason: "encoding" });
    expect(classifyContent(new Uint8Array([0xff, 0xd8, 0xff, 0xe0]), 4)).toEqual({ kind: "binary", reason: "encoding" });
  });

  it("does not open files over 5 MB, downloaded or not", () => {
    expect(classifyContent(null, MAX_TEXT_BYTES + 1)).toEqual({ kind: "too_large" });
    expect(classifyContent(new Uint8Array(MAX_TEXT_BYTES + 1), MAX_TEXT_BYTES + 1)).toEqual({ kind: "too_large" });
    expect(classifyContent(new Uint8Array(0), 0)).toMatchObject({ kind: "text", text: "" });
  });

  it("keeps CRLF files CRLF", () => {
    expect(lineSeparatorOf("a\r\nb\r\nc\n")).toBe("\r\n");
    expect(lineSeparatorOf("a\nb\r\nc\n")).toBe("\n");
    expect(lineSeparatorOf("no breaks")).toBe("\n");
  });

  it("formats sizes", () => {
    expect(formatSize(1)).toBe("1 byte");
    expect(formatSize(1536)).toBe("1.5 KB");
    expect(formatSize(12 * 1024 * 1024)).toBe("12 MB");
  });
});

describe("languages", () => {
  it("picks a mode by name and falls back to plain text", () => {
    expect(languageOf("src/App.tsx")).toBe("tsx");
    expect(languageOf("a/b.mjs")).toBe("javascript");
    expect(languageOf("Cargo.toml")).toBe("toml");
    expect(languageOf("deploy/Dockerfile")).toBe("dockerfile");
    expect(languageOf(".bashrc")).toBe("shell");
    expect(languageOf("config.YML")).toBe("yaml");
    expect(languageOf("Makefile")).toBe("plain");
    expect(languageOf("notes")).toBe("plain");
  });
});

describe("minimal change", () => {
  it("replaces only what differs", async () => {
    const { minimalChange } = await import("./diff");
    expect(minimalChange("same", "same")).toBeNull();
    expect(minimalChange("a\nb\nc\n", "a\nB\nc\n")).toEqual({ from: 2, to: 3, insert: "B" });
    expect(minimalChange("abc", "abXc")).toEqual({ from: 2, to: 2, insert: "X" });
    expect(minimalChange("aaa", "aa")).toEqual({ from: 2, to: 3, insert: "" });
    const apply = (s: string, c: { from: number; to: number; insert: string }) => s.slice(0, c.from) + c.insert + s.slice(c.to);
    for (const [a, b] of [["hello world", "hello there world"], ["xyz", ""], ["", "new"], ["abab", "ab"]] as const) {
      const c = minimalChange(a, b);
      expect(c && apply(a, c)).toBe(b);
    }
  });
});
