import { describe, expect, it } from "vitest";
import { addRow, applyNote, collect, isDirty, offersRestart, removeRow, rowsFrom, updateRow } from "./env";

describe("environment variable rows", () => {
  it("lists the saved variables by name", () => {
    const rows = rowsFrom({ ZED: "z", API_URL: "https://x", DEBUG: "1" });
    expect(rows.map((r) => r.name)).toEqual(["API_URL", "DEBUG", "ZED"]);
    expect(new Set(rows.map((r) => r.key)).size).toBe(3);
    expect(rowsFrom(null)).toEqual([]);
  });

  it("adds, edits and deletes, and saves what is left", () => {
    let rows = rowsFrom({ A: "1", B: "2" });
    rows = addRow(rows);
    const added = rows.at(-1)!;
    expect(new Set(rows.map((r) => r.key)).size).toBe(3);
    rows = updateRow(rows, added.key, { name: "  NEW ", value: " spaced value " });
    rows = updateRow(rows, rows[0]!.key, { value: "one" });
    rows = removeRow(rows, rows[1]!.key);
    expect(collect(rows)).toEqual({ ok: true, vars: { A: "one", NEW: " spaced value " } });
  });

  it("keeps a new key after a delete, so reveal toggles don't jump rows", () => {
    let rows = addRow(addRow([]));
    rows = removeRow(rows, rows[0]!.key);
    rows = addRow(rows);
    expect(new Set(rows.map((r) => r.key)).size).toBe(rows.length);
  });

  it("leaves out empty rows and refuses a value without a name or a name twice", () => {
    expect(collect(addRow([]))).toEqual({ ok: true, vars: {} });
    const nameless = updateRow(addRow([]), 0, { value: "x" });
    expect(collect(nameless)).toEqual({ ok: false, key: 0, message: "A variable needs a name." });
    const twice = updateRow(addRow(rowsFrom({ TOKEN: "a" })), 1, { name: "TOKEN", value: "b" });
    expect(collect(twice)).toEqual({ ok: false, key: 1, message: "TOKEN is set twice." });
  });

  it("sends names the hub decides on, such as reserved ones, for the hub to refuse", () => {
    const rows = updateRow(addRow([]), 0, { name: "AETHER_PROJECT_ID", value: "mine" });
    expect(collect(rows)).toEqual({ ok: true, vars: { AETHER_PROJECT_ID: "mine" } });
  });

  it("knows when the form differs from what is saved", () => {
    const saved = { A: "1" };
    const rows = rowsFrom(saved);
    expect(isDirty(saved, rows)).toBe(false);
    expect(isDirty(saved, addRow(rows))).toBe(false);
    expect(isDirty(saved, updateRow(rows, 0, { value: "2" }))).toBe(true);
    expect(isDirty(saved, removeRow(rows, 0))).toBe(true);
    expect(isDirty(null, [])).toBe(false);
  });

  it("says a running VM needs a restart for new values, a stopped one not", () => {
    expect(applyNote("running")).toMatch(/restart/);
    expect(offersRestart("running")).toBe(true);
    expect(applyNote("stopped")).toBe("Saved. The VM gets them when it starts.");
    expect(offersRestart("stopped")).toBe(false);
  });
});
