/**
 * The workspace's panel sizes: the file tree's width, the terminal's share
 * of the main column and whether it sits below the editor or beside it.
 * Remembered in localStorage and read synchronously on the first render
 * (the skeleton uses the same numbers), so nothing jumps on load.
 */
export type TerminalPlacement = "bottom" | "right";

export interface Layout {
  /** Pixels. */
  treeWidth: number;
  treeOpen: boolean;
  /** Fraction of the main column the terminal takes. */
  terminalShare: number;
  terminal: TerminalPlacement;
}

export const TREE_MIN = 160;
export const TREE_MAX = 560;
export const SHARE_MIN = 0.15;
export const SHARE_MAX = 0.85;

export const DEFAULT_LAYOUT: Layout = { treeWidth: 248, treeOpen: true, terminalShare: 0.38, terminal: "bottom" };

const KEY = "aether.layout";

const clamp = (value: number, min: number, max: number) => Math.min(max, Math.max(min, value));

export function clampTreeWidth(px: number): number {
  return Math.round(clamp(px, TREE_MIN, TREE_MAX));
}

export function clampShare(share: number): number {
  return clamp(share, SHARE_MIN, SHARE_MAX);
}

/** A stored layout, with anything missing or out of range replaced by the default. */
export function parseLayout(raw: string | null): Layout {
  let value: unknown = null;
  try {
    value = raw === null ? null : JSON.parse(raw);
  } catch {
    value = null;
  }
  if (typeof value !== "object" || value === null) return DEFAULT_LAYOUT;
  const v = value as Record<string, unknown>;
  const num = (x: unknown) => (typeof x === "number" && Number.isFinite(x) ? x : null);
  return {
    treeWidth: clampTreeWidth(num(v.treeWidth) ?? DEFAULT_LAYOUT.treeWidth),
    treeOpen: typeof v.treeOpen === "boolean" ? v.treeOpen : DEFAULT_LAYOUT.treeOpen,
    terminalShare: clampShare(num(v.terminalShare) ?? DEFAULT_LAYOUT.terminalShare),
    terminal: v.terminal === "right" ? "right" : "bottom",
  };
}

export function loadLayout(): Layout {
  try {
    return parseLayout(localStorage.getItem(KEY));
  } catch {
    return DEFAULT_LAYOUT;
  }
}

export function saveLayout(layout: Layout): void {
  try {
    localStorage.setItem(KEY, JSON.stringify(layout));
  } catch {
    // storage full or disabled: the layout just isn't remembered
  }
}
