import { describe, expect, it } from "vitest";
import type { DirEntry, WatchEvent } from "../api/types";
import { childRef, invalidName, isWithin, movedPath, parentPath } from "./paths";
import {
  applyPlan,
  EMPTY_TREE,
  nodesOf,
  planWatch,
  setExpanded,
  treeKey,
  visibleRows,
  withListing,
  withLoading,
  type TreeState,
} from "./tree";

function entry(name: string, type: DirEntry["type"] = "file"): DirEntry {
  return { name, type, size: 1, mtime: null, mode: 0o644 };
}

function listed(state: TreeState, path: string, entries: DirEntry[]): TreeState {
  return withListing(state, path, nodesOf({ type: "dir", path, entries }, path, path));
}

/** home: src/ (open: app.ts, lib/ (open: util.ts)), docs/ (closed, cached), README.md */
function sample(): TreeState {
  let s = listed(EMPTY_TREE, "", [entry("README.md"), entry("src", "dir"), entry("docs", "dir")]);
  s = listed(s, "src", [entry("lib", "dir"), entry("app.ts")]);
  s = listed(s, "src/lib", [entry("util.ts")]);
  s = listed(s, "docs", [entry("guide.md")]);
  s = setExpanded(s, "src", true);
  s = setExpanded(s, "src/lib", true);
  return s;
}

const paths = (s: TreeState) => visibleRows(s).map((r) => `${"  ".repeat(r.depth)}${r.node.path}`);

describe("paths", () => {
  it("splits and joins", () => {
    expect(parentPath("a/b/c")).toBe("a/b");
    expect(parentPath("a")).toBe("");
    expect(isWithin("a/b", "a")).toBe(true);
    expect(isWithin("ab", "a")).toBe(false);
    expect(isWithin("x", "")).toBe(true);
    expect(movedPath("a/b/c", "a/b", "z")).toBe("z/c");
    expect(movedPath("a/bc", "a/b", "z")).toBeNull();
  });

  it("keeps names that are not UTF-8 addressable", () => {
    const ref = childRef("", "", { name: "caf\uFFFD", raw_name: "caf%E9" });
    expect(ref).toEqual({ encoded: "caf%E9", text: "caf\uFFFD" });
    expect(childRef(ref, "caf\uFFFD", { name: "a b" })).toEqual({ encoded: "caf%E9/a%20b", text: "caf\uFFFD/a b" });
    expect(childRef("src", "src", { name: "a b" })).toBe("src/a b");
  });

  it("refuses names that cannot be", () => {
    expect(invalidName("", false)).toMatch(/name/);
    expect(invalidName("a/b", false)).toMatch(/“\/”/);
    expect(invalidName("a/b", true)).toBeNull();
    expect(invalidName("a//b", true)).toMatch(/empty/);
    expect(invalidName("..", false)).toMatch(/not names/);
    expect(invalidName("ok.txt", false)).toBeNull();
  });
});

describe("tree", () => {
  it("sorts folders first, then names as people do", () => {
    const s = listed(EMPTY_TREE, "", [entry("b.txt"), entry("Z", "dir"), entry("a10"), entry("a2"), entry("a", "dir")]);
    expect(paths(s)).toEqual(["a", "Z", "a2", "a10", "b.txt"]);
  });

  it("shows the children of open folders only", () => {
    expect(paths(sample())).toEqual(["docs", "src", "  src/lib", "    src/lib/util.ts", "  src/app.ts", "README.md"]);
  });

  it("keeps the old entries visible while a folder is listed again", () => {
    const s = withLoading(sample(), "src");
    expect(s.folders.get("src")).toMatchObject({ status: "loading" });
    expect(paths(s)).toContain("  src/app.ts");
  });

  it("drops a sub-folder that a new listing no longer has", () => {
    const s = listed(sample(), "src", [entry("app.ts")]);
    expect(s.folders.has("src/lib")).toBe(false);
    expect(s.expanded.has("src/lib")).toBe(false);
  });
});

describe("watch events", () => {
  const ev = (type: WatchEvent["type"], path: string, from?: string): WatchEvent => (from === undefined ? { type, path } : { type, path, from });

  it("lists again only the listed parents of created and removed paths, once", () => {
    const plan = planWatch(sample(), [
      ev("created", "src/new.ts"),
      ev("created", "src/other.ts"),
      ev("removed", "README.md"),
      ev("created", "not/listed/x"),
    ]);
    expect([...plan.relist].sort()).toEqual(["", "src"]);
    expect([...plan.removed]).toEqual(["README.md"]);
    expect(plan.changed.has("src/new.ts")).toBe(true);
  });

  it("reports modified files without listing anything", () => {
    const plan = planWatch(sample(), [ev("modified", "src/app.ts"), ev("modified", "src/app.ts")]);
    expect(plan.relist.size).toBe(0);
    expect([...plan.changed]).toEqual(["src/app.ts"]);
  });

  it("forgets removed folders and what was open inside them", () => {
    const { state, relist } = applyPlan(sample(), planWatch(sample(), [ev("removed", "src")]));
    expect(relist).toEqual([""]);
    expect(state.folders.has("src")).toBe(false);
    expect(state.folders.has("src/lib")).toBe(false);
    expect(state.expanded.size).toBe(0);
  });

  it("carries open folders across a rename and lists them under the new name", () => {
    const { state, relist } = applyPlan(sample(), planWatch(sample(), [ev("renamed", "source", "src")]));
    expect([...state.expanded].sort()).toEqual(["source", "source/lib"]);
    expect(state.folders.has("src")).toBe(false);
    expect(relist.sort()).toEqual(["", "source", "source/lib"]);
  });

  it("on resync lists every open folder again and drops closed cached ones", () => {
    const { state, relist } = applyPlan(sample(), planWatch(sample(), [ev("resync", "")]));
    expect(relist.sort()).toEqual(["", "src", "src/lib"]);
    expect(state.folders.has("docs")).toBe(false);
  });

  it("a file created then removed in one batch is only a removal", () => {
    const plan = planWatch(sample(), [ev("created", "src/tmp"), ev("removed", "src/tmp")]);
    expect(plan.changed.has("src/tmp")).toBe(false);
    expect(plan.removed.has("src/tmp")).toBe(true);
  });
});

describe("keyboard", () => {
  const s = sample();
  const rows = visibleRows(s);

  it("moves up and down and to the ends", () => {
    expect(treeKey(rows, s, "docs", "ArrowDown")).toEqual({ kind: "focus", path: "src" });
    expect(treeKey(rows, s, "docs", "ArrowUp")).toEqual({ kind: "focus", path: "docs" });
    expect(treeKey(rows, s, "src", "End")).toEqual({ kind: "focus", path: "README.md" });
    expect(treeKey(rows, s, null, "ArrowDown")).toEqual({ kind: "focus", path: "docs" });
  });

  it("opens and closes folders with the arrows, then moves in and out", () => {
    expect(treeKey(rows, s, "docs", "ArrowRight")).toEqual({ kind: "expand", path: "docs" });
    expect(treeKey(rows, s, "src", "ArrowRight")).toEqual({ kind: "focus", path: "src/lib" });
    expect(treeKey(rows, s, "src", "ArrowLeft")).toEqual({ kind: "collapse", path: "src" });
    expect(treeKey(rows, s, "src/app.ts", "ArrowLeft")).toEqual({ kind: "focus", path: "src" });
  });

  it("Enter opens a file or toggles a folder; F2 renames; Delete deletes", () => {
    expect(treeKey(rows, s, "src/app.ts", "Enter")).toEqual({ kind: "open", path: "src/app.ts" });
    expect(treeKey(rows, s, "docs", "Enter")).toEqual({ kind: "expand", path: "docs" });
    expect(treeKey(rows, s, "src", "Enter")).toEqual({ kind: "collapse", path: "src" });
    expect(treeKey(rows, s, "README.md", "F2")).toEqual({ kind: "rename", path: "README.md" });
    expect(treeKey(rows, s, "README.md", "Delete")).toEqual({ kind: "delete", path: "README.md" });
  });
});
