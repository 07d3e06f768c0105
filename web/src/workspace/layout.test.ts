import { describe, expect, it } from "vitest";
import { DEFAULT_LAYOUT, parseLayout, SHARE_MAX, TREE_MIN } from "./layout";
import { readRemembered } from "../editor/useRememberedTabs";

describe("layout", () => {
  it("falls back to the default for anything unreadable", () => {
    expect(parseLayout(null)).toEqual(DEFAULT_LAYOUT);
    expect(parseLayout("{not json")).toEqual(DEFAULT_LAYOUT);
    expect(parseLayout("42")).toEqual(DEFAULT_LAYOUT);
  });

  it("keeps what is valid and clamps what is out of range", () => {
    expect(parseLayout(JSON.stringify({ treeWidth: 20, treeOpen: false, terminalShare: 3, terminal: "right" }))).toEqual({
      treeWidth: TREE_MIN,
      treeOpen: false,
      terminalShare: SHARE_MAX,
      terminal: "right",
    });
    expect(parseLayout(JSON.stringify({ treeWidth: 300, terminal: "sideways" }))).toMatchObject({ treeWidth: 300, terminal: "bottom" });
  });
});

describe("remembered tabs", () => {
  it("reads paths and an active one that is among them", () => {
    expect(readRemembered(JSON.stringify({ paths: ["a", 1, "b"], active: "b" }))).toEqual({ paths: ["a", "b"], active: "b" });
    expect(readRemembered(JSON.stringify({ paths: ["a"], active: "zzz" }))).toEqual({ paths: ["a"], active: null });
    expect(readRemembered("garbage")).toEqual({ paths: [], active: null });
  });
});
