/**
 * The file tree's life in React: list the home and the folders the user
 * opens, follow the watch on "" while the VM runs (events batched for a few
 * milliseconds, then folded by `planWatch`), tell the open editor tabs what
 * changed, and carry out create / rename / delete. Which folders are open
 * is remembered per project, so a reload shows the same tree.
 */
import { useCallback, useEffect, useRef, useState } from "react";
import { api, ApiError, isAbort, type PathRef } from "../api/client";
import type { WatchEvent } from "../api/types";
import type { OpenFiles } from "../editor/openFiles";
import { browserSocketFactory } from "../live/reconnectingSocket";
import { invalidName, joinPath, parentPath } from "./paths";
import {
  ancestorsOpen,
  applyPlan,
  EMPTY_TREE,
  findNode,
  forget,
  isOpen,
  moveTree,
  nodesOf,
  planWatch,
  setExpanded,
  withError,
  withListing,
  withLoading,
  type TreeNode,
  type TreeState,
} from "./tree";
import { FileWatch, watchUrl, type WatchState } from "./watch";

/** How long watch events are gathered before the tree acts on them. */
const BATCH_MS = 60;

export interface FileTreeApi {
  state: TreeState;
  watch: WatchState;
  toggle(path: string, open?: boolean): void;
  /** List every open folder again. */
  refresh(): void;
  collapseAll(): void;
  retryWatch(): void;
  /** Create an empty file (folders on the way included); answers its path. Throws an Error with a message for people. */
  createFile(dir: string, name: string): Promise<string>;
  createFolder(dir: string, name: string): Promise<string>;
  rename(node: TreeNode, name: string): Promise<string>;
  remove(node: TreeNode): Promise<void>;
}

function expandedKey(projectId: string): string {
  return `aether.tree.${projectId}`;
}

function loadExpanded(projectId: string): Set<string> {
  try {
    const value: unknown = JSON.parse(localStorage.getItem(expandedKey(projectId)) ?? "[]");
    return new Set(Array.isArray(value) ? value.filter((v): v is string => typeof v === "string") : []);
  } catch {
    return new Set();
  }
}

/** An error for people out of whatever a file operation threw. */
export function fileError(error: unknown, fallback: string): Error {
  if (error instanceof ApiError) {
    if (error.status === 503) return new Error("The VM is not running. Start it first.");
    if (error.status === 409) return new Error("Something with that name already exists.");
    if (error.status === 404) return new Error("It no longer exists; the tree is being refreshed.");
    return new Error(error.message);
  }
  return error instanceof Error ? error : new Error(fallback);
}

export function useFileTree(projectId: string, running: boolean, files: OpenFiles): FileTreeApi {
  const [state, setState] = useState<TreeState>(() => ({ ...EMPTY_TREE, expanded: loadExpanded(projectId) }));
  const [watch, setWatch] = useState<WatchState>({ kind: "closed" });
  const stateRef = useRef(state);
  const seq = useRef(new Map<string, number>());
  const watchRef = useRef<FileWatch | null>(null);

  const commit = useCallback((change: (s: TreeState) => TreeState) => {
    const next = change(stateRef.current);
    if (next === stateRef.current) return;
    stateRef.current = next;
    setState(next);
  }, []);

  useEffect(() => {
    try {
      localStorage.setItem(expandedKey(projectId), JSON.stringify([...state.expanded]));
    } catch {
      // not remembered, that is all
    }
  }, [projectId, state.expanded]);

  const refOf = useCallback((path: string): PathRef => (path === "" ? "" : (findNode(stateRef.current, path)?.ref ?? path)), []);

  const list = useCallback(
    async (path: string) => {
      const n = (seq.current.get(path) ?? 0) + 1;
      seq.current.set(path, n);
      const ref = refOf(path);
      commit((s) => withLoading(s, path));
      try {
        const listing = await api.listFolder(projectId, ref);
        if (seq.current.get(path) !== n) return;
        commit((s) => (s.folders.has(path) ? withListing(s, path, nodesOf(listing, path, ref)) : s));
      } catch (error) {
        if (isAbort(error) || seq.current.get(path) !== n) return;
        if (error instanceof ApiError && error.status === 404 && path !== "") {
          // Gone meanwhile: the parent's next listing drops it.
          commit((s) => forget(s, [path]));
          return;
        }
        const e = error instanceof ApiError ? error : new ApiError(0, "internal", "Could not list the folder.");
        commit((s) => (s.folders.has(path) ? withError(s, path, e.code, fileError(e, "Could not list the folder.").message) : s));
      }
    },
    [commit, projectId, refOf],
  );

  /** List the home and every remembered open folder that can be seen. */
  const listOpen = useCallback(() => {
    const s = stateRef.current;
    const open = ["", ...[...s.expanded].filter((p) => ancestorsOpen(s, p))].sort((a, b) => a.split("/").length - b.split("/").length);
    for (const path of open) void list(path);
  }, [list]);

  // Listing and watching while the VM runs; a fresh start when it comes back.
  useEffect(() => {
    if (!running) {
      commit((s) => ({ folders: new Map(), expanded: s.expanded }));
      return;
    }
    listOpen();
    let pending: WatchEvent[] = [];
    let timer: ReturnType<typeof setTimeout> | null = null;
    const flush = () => {
      timer = null;
      const events = pending;
      pending = [];
      const plan = planWatch(stateRef.current, events);
      const { state: next, relist } = applyPlan(stateRef.current, plan);
      commit(() => next);
      for (const path of relist) void list(path);
      for (const { from, to } of plan.renamed) files.renamed(from, to);
      files.removed(plan.removed);
      files.changed(plan.changed);
    };
    const fw = new FileWatch(
      {
        getTicket: async () => (await api.createTicket(projectId, "watch")).ticket,
        buildUrl: (ticket) => watchUrl(window.location, projectId, ticket, ""),
        createSocket: browserSocketFactory,
        isFatalTicketError: (error) => error instanceof ApiError && [401, 403, 404].includes(error.status),
      },
      {
        onEvent: (event) => {
          pending.push(event);
          timer ??= setTimeout(flush, BATCH_MS);
        },
        onReady: ({ resumed }) => {
          if (!resumed) {
            // A listing that failed while the machine was still coming up gets another go.
            if ([...stateRef.current.folders.values()].some((f) => f.status === "error")) listOpen();
            return;
          }
          // Events may have been missed while disconnected.
          pending.push({ type: "resync", path: "" });
          timer ??= setTimeout(flush, 0);
          files.checkAll();
        },
        onState: setWatch,
      },
    );
    watchRef.current = fw;
    fw.start();
    files.retryFailed();
    return () => {
      if (timer) clearTimeout(timer);
      fw.dispose();
      watchRef.current = null;
    };
  }, [running, projectId, commit, list, listOpen, files]);

  const toggle = useCallback(
    (path: string, open?: boolean) => {
      const want = open ?? !stateRef.current.expanded.has(path);
      commit((s) => setExpanded(s, path, want));
      if (want) void list(path);
    },
    [commit, list],
  );

  const refresh = useCallback(() => {
    const { state: next, relist } = applyPlan(stateRef.current, { relist: new Set(), changed: new Set(), removed: new Set(), renamed: [], resync: true });
    commit(() => next);
    for (const path of relist) void list(path);
    files.checkAll();
  }, [commit, list, files]);

  const collapseAll = useCallback(() => commit((s) => ({ ...s, expanded: new Set() })), [commit]);

  const reveal = useCallback(
    (path: string) => {
      for (let p = parentPath(path); p !== ""; p = parentPath(p)) {
        if (!isOpen(stateRef.current, p)) toggle(p, true);
      }
    },
    [toggle],
  );

  const exists = useCallback(
    async (path: string): Promise<boolean> => {
      try {
        await api.statPath(projectId, path);
        return true;
      } catch (error) {
        if (error instanceof ApiError && error.status === 404) return false;
        throw error;
      }
    },
    [projectId],
  );

  const createFile = useCallback(
    async (dir: string, name: string) => {
      const problem = invalidName(name, true);
      if (problem) throw new Error(problem);
      const path = joinPath(dir, name);
      try {
        if (await exists(path)) throw new Error(`“${name}” already exists.`);
        const parent = parentPath(path);
        if (parent !== dir) await api.makeFolder(projectId, parent);
        await api.writeFile(projectId, path, new Uint8Array(0));
      } catch (error) {
        throw fileError(error, "Could not create the file.");
      }
      reveal(path);
      void list(dir);
      if (parentPath(path) !== dir && isOpen(stateRef.current, parentPath(path))) void list(parentPath(path));
      return path;
    },
    [exists, list, projectId, reveal],
  );

  const createFolder = useCallback(
    async (dir: string, name: string) => {
      const problem = invalidName(name, true);
      if (problem) throw new Error(problem);
      const path = joinPath(dir, name);
      try {
        if (await exists(path)) throw new Error(`“${name}” already exists.`);
        await api.makeFolder(projectId, path);
      } catch (error) {
        throw fileError(error, "Could not create the folder.");
      }
      void list(dir);
      return path;
    },
    [exists, list, projectId],
  );

  const rename = useCallback(
    async (node: TreeNode, name: string) => {
      const problem = invalidName(name, false);
      if (problem) throw new Error(problem);
      const to = joinPath(parentPath(node.path), name);
      if (to === node.path) return to;
      try {
        await api.renamePath(projectId, node.path, to);
      } catch (error) {
        if (error instanceof ApiError && error.status === 409) throw new Error(`“${name}” already exists.`);
        throw fileError(error, "Could not rename.");
      }
      commit((s) => moveTree(s, node.path, to));
      files.renamed(node.path, to);
      void list(parentPath(node.path));
      return to;
    },
    [commit, files, list, projectId],
  );

  const remove = useCallback(
    async (node: TreeNode) => {
      try {
        await api.deletePath(projectId, node.ref, { recursive: node.type === "dir" });
      } catch (error) {
        throw fileError(error, "Could not delete.");
      }
      commit((s) => forget(s, [node.path]));
      files.closeCleanWithin(node.path);
      void list(parentPath(node.path));
    },
    [commit, files, list, projectId],
  );

  const retryWatch = useCallback(() => watchRef.current?.retry(), []);

  return { state, watch, toggle, refresh, collapseAll, retryWatch, createFile, createFolder, rename, remove };
}
