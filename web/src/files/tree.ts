/**
 * The file tree's state and every rule that changes it, without React:
 * folders are listed lazily and cached by path; which are open is a set;
 * watch events are folded into a plan (which open folders to list again,
 * which files changed) so a burst of events costs one request per folder.
 * Keyboard movement over the visible rows lives here too.
 */
import type { PathRef } from "../api/client";
import type { DirListing, FileKind, WatchEvent } from "../api/types";
import { childRef, isWithin, movedPath, parentPath } from "./paths";

export interface TreeNode {
  name: string;
  /** Relative to the home. */
  path: string;
  /** What to put in `?path=` (differs from `path` only for names that are not UTF-8). */
  ref: PathRef;
  type: FileKind;
  size: number;
  mtime: string | null;
}

export type FolderState =
  /** Being listed; `entries` are the previous ones (shown meanwhile) or null the first time. */
  | { status: "loading"; entries: readonly TreeNode[] | null }
  | { status: "loaded"; entries: readonly TreeNode[] }
  | { status: "error"; entries: readonly TreeNode[] | null; message: string; code: string };

export interface TreeState {
  /** Listed (or being listed) folders by path; "" is the home. */
  folders: ReadonlyMap<string, FolderState>;
  /** Folders shown open. The home is always open and never in this set. */
  expanded: ReadonlySet<string>;
}

export const EMPTY_TREE: TreeState = { folders: new Map(), expanded: new Set() };

/** Folders first, then by name as a person sorts (case-insensitive, numbers by value). */
export function compareNodes(a: Pick<TreeNode, "name" | "type">, b: Pick<TreeNode, "name" | "type">): number {
  const rank = (n: Pick<TreeNode, "type">) => (n.type === "dir" ? 0 : 1);
  return (
    rank(a) - rank(b) ||
    a.name.localeCompare(b.name, undefined, { numeric: true, sensitivity: "base" }) ||
    (a.name < b.name ? -1 : a.name > b.name ? 1 : 0)
  );
}

/** A listing as sorted nodes; `ref` is the listed folder's own ref. */
export function nodesOf(listing: DirListing, path: string, ref: PathRef): TreeNode[] {
  return listing.entries
    .map((e) => ({
      name: e.name,
      path: path === "" ? e.name : `${path}/${e.name}`,
      ref: childRef(ref, path, e),
      type: e.type,
      size: e.size,
      mtime: e.mtime,
    }))
    .sort(compareNodes);
}

export function isOpen(state: TreeState, path: string): boolean {
  return path === "" || state.expanded.has(path);
}

export function withLoading(state: TreeState, path: string): TreeState {
  const folders = new Map(state.folders);
  folders.set(path, { status: "loading", entries: state.folders.get(path)?.entries ?? null });
  return { ...state, folders };
}

export function withListing(state: TreeState, path: string, entries: readonly TreeNode[]): TreeState {
  const folders = new Map(state.folders);
  folders.set(path, { status: "loaded", entries });
  // Cached sub-folders that no longer exist go, and so does their open state.
  const dirs = new Set(entries.filter((e) => e.type === "dir").map((e) => e.path));
  const gone = (p: string) => parentPath(p) === path && p !== path && !dirs.has(p);
  const dropped = [...folders.keys()].filter(gone);
  if (dropped.length === 0) return { ...state, folders };
  return forget({ ...state, folders }, dropped);
}

export function withError(state: TreeState, path: string, code: string, message: string): TreeState {
  const folders = new Map(state.folders);
  folders.set(path, { status: "error", entries: state.folders.get(path)?.entries ?? null, code, message });
  return { ...state, folders };
}

export function setExpanded(state: TreeState, path: string, open: boolean): TreeState {
  if (path === "" || state.expanded.has(path) === open) return state;
  const expanded = new Set(state.expanded);
  if (open) expanded.add(path);
  else expanded.delete(path);
  return { ...state, expanded };
}

/** Drop every cached folder and open state at or below each of `paths`. */
export function forget(state: TreeState, paths: readonly string[]): TreeState {
  const hit = (p: string) => paths.some((gone) => gone !== "" && isWithin(p, gone));
  return {
    folders: new Map([...state.folders].filter(([p]) => !hit(p))),
    expanded: new Set([...state.expanded].filter((p) => !hit(p))),
  };
}

/** Carry open state and cached listings from `from` to `to` (a folder renamed). */
export function moveTree(state: TreeState, from: string, to: string): TreeState {
  const folders = new Map<string, FolderState>();
  for (const [p, f] of state.folders) {
    const moved = movedPath(p, from, to);
    // A moved folder's cached entries carry stale paths: keep only the fact that it was listed.
    if (moved === null) folders.set(p, f);
  }
  const expanded = new Set<string>();
  for (const p of state.expanded) expanded.add(movedPath(p, from, to) ?? p);
  return { folders, expanded };
}

/** What a batch of watch events asks for. */
export interface WatchPlan {
  /** Open folders to list again. */
  relist: Set<string>;
  /** Files whose contents (may) have changed, including ones created anew. */
  changed: Set<string>;
  /** Paths removed (a folder stands for everything below it). */
  removed: Set<string>;
  /** Renames in the order they happened. */
  renamed: { from: string; to: string }[];
  /** Events were lost: list every open folder again and check every open file. */
  resync: boolean;
}

/**
 * Fold watch events into one plan against the current tree. Only folders
 * that are listed matter: a change in a folder nobody has opened costs
 * nothing, it is listed fresh when opened.
 */
export function planWatch(state: TreeState, events: readonly WatchEvent[]): WatchPlan {
  const plan: WatchPlan = { relist: new Set(), changed: new Set(), removed: new Set(), renamed: [], resync: false };
  const touch = (path: string) => {
    const parent = parentPath(path);
    if (path !== "" && state.folders.has(parent)) plan.relist.add(parent);
  };
  for (const event of events) {
    switch (event.type) {
      case "created":
        touch(event.path);
        plan.changed.add(event.path);
        plan.removed.delete(event.path);
        break;
      case "modified":
        plan.changed.add(event.path);
        break;
      case "removed":
        touch(event.path);
        plan.removed.add(event.path);
        plan.changed.delete(event.path);
        break;
      case "renamed":
        if (event.from !== undefined) {
          touch(event.from);
          plan.renamed.push({ from: event.from, to: event.path });
          plan.changed.delete(event.from);
        }
        touch(event.path);
        plan.changed.add(event.path);
        break;
      case "resync":
        plan.resync = true;
        break;
      case "ready":
      case "error":
        break;
    }
  }
  return plan;
}

/**
 * Apply a plan to the tree: removed folders vanish from the cache, renamed
 * ones keep their open state under the new name. Answers the new state and
 * the folders to list again (on a resync: every open one; closed cached
 * folders are dropped, to be listed when opened).
 */
export function applyPlan(state: TreeState, plan: WatchPlan): { state: TreeState; relist: string[] } {
  let next = state;
  for (const { from, to } of plan.renamed) next = moveTree(next, from, to);
  if (plan.removed.size > 0) next = forget(next, [...plan.removed]);
  if (plan.resync) {
    const open = [...next.folders.keys()].filter((p) => isOpen(next, p) && ancestorsOpen(next, p));
    next = { ...next, folders: new Map([...next.folders].filter(([p]) => open.includes(p))) };
    return { state: next, relist: open };
  }
  const relist = [...plan.relist].filter((p) => next.folders.has(p));
  // Moved folders that are open need a fresh listing under their new name.
  for (const { to } of plan.renamed) {
    for (const p of next.expanded) if (isWithin(p, to) && !relist.includes(p) && ancestorsOpen(next, p)) relist.push(p);
  }
  return { state: next, relist };
}

/** True when every folder above `path` is open (so `path` can be seen). */
export function ancestorsOpen(state: TreeState, path: string): boolean {
  for (let p = parentPath(path); p !== ""; p = parentPath(p)) if (!state.expanded.has(p)) return false;
  return true;
}

export interface TreeRow {
  node: TreeNode;
  depth: number;
}

/** The rows a person sees, top to bottom: open folders' children follow their folder. */
export function visibleRows(state: TreeState): TreeRow[] {
  const rows: TreeRow[] = [];
  const walk = (path: string, depth: number) => {
    for (const node of state.folders.get(path)?.entries ?? []) {
      rows.push({ node, depth });
      if (node.type === "dir" && state.expanded.has(node.path)) walk(node.path, depth + 1);
    }
  };
  walk("", 0);
  return rows;
}

/** What a key press on the focused row does. */
export type TreeKeyAction =
  | { kind: "focus"; path: string }
  | { kind: "expand"; path: string }
  | { kind: "collapse"; path: string }
  | { kind: "open"; path: string }
  | { kind: "rename"; path: string }
  | { kind: "delete"; path: string }
  | { kind: "none" };

/** The tree pattern of WAI-ARIA, plus Enter to open, F2 to rename and Delete to delete. */
export function treeKey(rows: readonly TreeRow[], state: TreeState, focused: string | null, key: string): TreeKeyAction {
  if (rows.length === 0) return { kind: "none" };
  const i = rows.findIndex((r) => r.node.path === focused);
  const at = (j: number): TreeKeyAction => {
    const row = rows[Math.max(0, Math.min(rows.length - 1, j))];
    return row ? { kind: "focus", path: row.node.path } : { kind: "none" };
  };
  if (i < 0) return key === "End" ? at(rows.length - 1) : at(0);
  const row = rows[i];
  if (!row) return { kind: "none" };
  const { node } = row;
  const isDir = node.type === "dir";
  const open = isDir && state.expanded.has(node.path);
  switch (key) {
    case "ArrowDown":
      return at(i + 1);
    case "ArrowUp":
      return at(i - 1);
    case "Home":
      return at(0);
    case "End":
      return at(rows.length - 1);
    case "ArrowRight":
      if (!isDir) return { kind: "none" };
      if (!open) return { kind: "expand", path: node.path };
      return rows[i + 1]?.depth === row.depth + 1 ? at(i + 1) : { kind: "none" };
    case "ArrowLeft": {
      if (open) return { kind: "collapse", path: node.path };
      const parent = parentPath(node.path);
      return parent === "" ? { kind: "none" } : { kind: "focus", path: parent };
    }
    case "Enter":
      return isDir ? { kind: open ? "collapse" : "expand", path: node.path } : { kind: "open", path: node.path };
    case "F2":
      return { kind: "rename", path: node.path };
    case "Delete":
      return { kind: "delete", path: node.path };
    default:
      return { kind: "none" };
  }
}

/** The node at `path`, if its folder is listed. */
export function findNode(state: TreeState, path: string): TreeNode | undefined {
  return state.folders.get(parentPath(path))?.entries?.find((n) => n.path === path);
}
