/**
 * The file tree panel: the project home's folders, listed as they are
 * opened and kept current by the watch. Click or Enter opens a file; the
 * arrows move and open folders, F2 renames, Delete deletes (after asking).
 * New files and folders and renames are typed in place, in the tree; the
 * same actions are in the header and in a right-click menu.
 */
import { memo, useCallback, useEffect, useMemo, useRef, useState, type KeyboardEvent, type MouseEvent, type ReactNode } from "react";
import type { ProjectStatus } from "../api/types";
import { Button } from "../ui/Button";
import { Dialog } from "../ui/Dialog";
import { ChevronRightIcon, CollapseIcon, CopyIcon, FilePlusIcon, FolderIcon, FolderPlusIcon, PencilIcon, RefreshIcon, TrashIcon } from "../ui/icons";
import { ContextMenu, type MenuEntry } from "../ui/Menu";
import { Spinner } from "../ui/Spinner";
import { FileIcon } from "./FileIcon";
import { baseName, parentPath } from "./paths";
import { findNode, treeKey, visibleRows, type FolderState, type TreeNode } from "./tree";
import type { FileTreeApi } from "./useFileTree";
import type { WatchState } from "./watch";

type Editing = { kind: "create"; dir: string; type: "file" | "dir" } | { kind: "rename"; path: string };

const INDENT = 12;
const ROW = "flex h-[26px] items-center gap-1.5 pr-2 text-[13px]";

export interface FileTreeProps {
  status: ProjectStatus;
  tree: FileTreeApi;
  /** The file shown in the editor, highlighted in the tree. */
  activePath: string | null;
  /** Open a file in the editor; `focus` moves the keyboard there (Enter, a new file), a click leaves it in the tree. */
  onOpenFile(node: TreeNode, options?: { focus?: boolean }): void;
}

export const FileTree = memo(function FileTree({ status, tree, activePath, onOpenFile }: FileTreeProps) {
  const { state } = tree;
  const [focused, setFocused] = useState<string | null>(null);
  const [editing, setEditing] = useState<Editing | null>(null);
  const [menu, setMenu] = useState<{ x: number; y: number; node: TreeNode | null } | null>(null);
  const [deleting, setDeleting] = useState<TreeNode | null>(null);
  const treeRef = useRef<HTMLDivElement>(null);
  const rows = useMemo(() => visibleRows(state), [state]);
  const focusShown = rows.some((r) => r.node.path === focused);
  const running = status === "running";
  const root = state.folders.get("");

  const focusRow = useCallback((path: string) => {
    setFocused(path);
    requestAnimationFrame(() => {
      const el = treeRef.current?.querySelector<HTMLElement>(`[data-path="${CSS.escape(path)}"]`);
      el?.focus();
      el?.scrollIntoView({ block: "nearest" });
    });
  }, []);

  // Follow the editor: switching files makes that file the tree's current row.
  useEffect(() => {
    if (activePath) setFocused(activePath);
  }, [activePath]);

  /** Where "New file" puts it: in the focused folder, or beside the focused file. */
  function targetDir(node: TreeNode | null): string {
    if (!node) return "";
    return node.type === "dir" ? node.path : parentPath(node.path);
  }

  function startCreate(type: "file" | "dir", node: TreeNode | null = focusedNode()) {
    const dir = targetDir(node);
    if (dir !== "") tree.toggle(dir, true);
    setEditing({ kind: "create", dir, type });
  }

  function focusedNode(): TreeNode | null {
    return (focused && findNode(state, focused)) || null;
  }

  function activate(node: TreeNode) {
    setFocused(node.path);
    if (node.type === "dir") tree.toggle(node.path);
    else onOpenFile(node);
  }

  function onKey(event: KeyboardEvent<HTMLDivElement>) {
    if (editing || event.target instanceof HTMLInputElement) return;
    if ((event.key === "F10" && event.shiftKey) || event.key === "ContextMenu") {
      event.preventDefault();
      const el = focused ? treeRef.current?.querySelector<HTMLElement>(`[data-path="${CSS.escape(focused)}"]`) : null;
      const rect = el?.getBoundingClientRect();
      setMenu({ x: (rect?.left ?? 0) + 24, y: rect?.bottom ?? 0, node: focusedNode() });
      return;
    }
    const action = treeKey(rows, state, focused, event.key);
    if (action.kind === "none") return;
    event.preventDefault();
    const node = findNode(state, action.path);
    switch (action.kind) {
      case "focus":
        focusRow(action.path);
        break;
      case "expand":
        tree.toggle(action.path, true);
        break;
      case "collapse":
        tree.toggle(action.path, false);
        break;
      case "open":
        if (node) onOpenFile(node, { focus: true });
        break;
      case "rename":
        setEditing({ kind: "rename", path: action.path });
        break;
      case "delete":
        if (node) setDeleting(node);
        break;
    }
  }

  function openMenu(event: MouseEvent, node: TreeNode | null) {
    event.preventDefault();
    event.stopPropagation();
    if (!running) return;
    if (node) setFocused(node.path);
    setMenu({ x: event.clientX, y: event.clientY, node });
  }

  function menuItems(node: TreeNode | null): MenuEntry[] {
    const items: MenuEntry[] = [
      { label: "New file", icon: <FilePlusIcon className="size-3.5" />, onSelect: () => startCreate("file", node), testId: "menu-new-file" },
      { label: "New folder", icon: <FolderPlusIcon className="size-3.5" />, onSelect: () => startCreate("dir", node), testId: "menu-new-folder" },
    ];
    if (node) {
      items.push(
        "separator",
        {
          label: "Rename",
          icon: <PencilIcon className="size-3.5" />,
          shortcut: "F2",
          onSelect: () => setEditing({ kind: "rename", path: node.path }),
          testId: "menu-rename",
        },
        {
          label: "Copy path",
          icon: <CopyIcon className="size-3.5" />,
          onSelect: () => void navigator.clipboard?.writeText(node.path).catch(() => {}),
        },
        "separator",
        { label: "Delete", icon: <TrashIcon className="size-3.5" />, shortcut: "Del", danger: true, onSelect: () => setDeleting(node), testId: "menu-delete" },
      );
    }
    return items;
  }

  async function submitEdit(name: string): Promise<void> {
    const edit = editing;
    if (!edit) return;
    if (edit.kind === "create") {
      const path = edit.type === "file" ? await tree.createFile(edit.dir, name) : await tree.createFolder(edit.dir, name);
      setEditing(null);
      setFocused(path);
      if (edit.type === "file") onOpenFile({ name: baseName(path), path, ref: path, type: "file", size: 0, mtime: null }, { focus: true });
      else focusRow(path);
    } else {
      const node = findNode(state, edit.path);
      if (!node) {
        setEditing(null);
        return;
      }
      const to = await tree.rename(node, name);
      setEditing(null);
      focusRow(to);
    }
  }

  const header = (
    <div className="flex h-9 shrink-0 items-center gap-1 border-b border-line bg-surface pr-1.5 pl-3">
      <span className="text-[11px] font-semibold tracking-wider text-muted uppercase">Files</span>
      <WatchDot state={running ? tree.watch : null} onRetry={tree.retryWatch} />
      <div className="flex-1" />
      <IconButton label="New file" onClick={() => startCreate("file")} disabled={!running || !root} testId="tree-new-file">
        <FilePlusIcon className="size-3.5" />
      </IconButton>
      <IconButton label="New folder" onClick={() => startCreate("dir")} disabled={!running || !root} testId="tree-new-folder">
        <FolderPlusIcon className="size-3.5" />
      </IconButton>
      <IconButton label="Refresh" onClick={tree.refresh} disabled={!running} testId="tree-refresh">
        <RefreshIcon className="size-3.5" />
      </IconButton>
      <IconButton label="Collapse folders" onClick={tree.collapseAll} disabled={!running || state.expanded.size === 0}>
        <CollapseIcon className="size-3.5" />
      </IconButton>
    </div>
  );

  let body: ReactNode;
  if (!running) {
    body = (
      <PanelMessage
        icon={status === "starting" || status === "stopping" ? <Spinner className="size-4" /> : <FolderIcon className="size-4" />}
        title={status === "starting" ? "Starting the machine…" : status === "stopping" ? "Stopping the machine…" : "VM stopped"}
        testId="tree-stopped"
      >
        {status === "starting" ? "Files appear as soon as it is up." : status === "stopping" ? "Files on its disk are kept." : "Start it to browse files."}
      </PanelMessage>
    );
  } else if (!root || (root.status === "loading" && root.entries === null)) {
    body = <TreeSkeleton />;
  } else if (root.status === "error" && root.entries === null) {
    body = (
      <PanelMessage icon={<FolderIcon className="size-4" />} title="Could not list files" tone="danger">
        <span>{root.message}</span>
        <Button size="sm" variant="secondary" className="mt-1" onClick={tree.refresh}>
          Try again
        </Button>
      </PanelMessage>
    );
  } else {
    const creatingIn = editing?.kind === "create" ? editing.dir : null;
    const out: ReactNode[] = [];
    const walk = (path: string, depth: number) => {
      const folder = state.folders.get(path);
      if (creatingIn === path && editing?.kind === "create") {
        out.push(
          <NameInput
            key={`create:${path}`}
            depth={depth}
            type={editing.type}
            initial=""
            onSubmit={submitEdit}
            onCancel={() => setEditing(null)}
            testId="tree-name-input"
          />,
        );
      }
      const status = folderStatus(folder, path === "" ? null : depth);
      if (status && !(path === "" && creatingIn === "")) out.push(status);
      for (const node of folder?.entries ?? []) {
        const open = node.type === "dir" && state.expanded.has(node.path);
        if (editing?.kind === "rename" && editing.path === node.path) {
          out.push(
            <NameInput
              key={`rename:${node.path}`}
              depth={depth}
              type={node.type === "dir" ? "dir" : "file"}
              initial={node.name}
              onSubmit={submitEdit}
              onCancel={() => {
                setEditing(null);
                focusRow(node.path);
              }}
              testId="tree-rename-input"
            />,
          );
        } else {
          out.push(
            <Row
              key={node.path}
              node={node}
              depth={depth}
              open={open}
              loading={open && state.folders.get(node.path)?.status === "loading"}
              focused={focused === node.path}
              active={activePath === node.path}
              tabbable={focused === node.path || (!focusShown && node === rows[0]?.node)}
              onClick={() => activate(node)}
              onContextMenu={(e) => openMenu(e, node)}
              onFocus={() => setFocused(node.path)}
            />,
          );
        }
        if (open) walk(node.path, depth + 1);
      }
    };
    walk("", 0);
    const empty = root.status === "loaded" && root.entries.length === 0 && creatingIn !== "";
    body = empty ? (
      <PanelMessage icon={<FolderIcon className="size-4" />} title="No files yet">
        <span>Create one here, or in the terminal.</span>
        <div className="mt-1 flex gap-2">
          <Button size="sm" variant="secondary" icon={<FilePlusIcon className="size-3.5" />} onClick={() => startCreate("file")}>
            New file
          </Button>
          <Button size="sm" variant="ghost" icon={<FolderPlusIcon className="size-3.5" />} onClick={() => startCreate("dir")}>
            New folder
          </Button>
        </div>
      </PanelMessage>
    ) : (
      <div
        ref={treeRef}
        role="tree"
        aria-label="Files"
        onKeyDown={onKey}
        onContextMenu={(e) => openMenu(e, null)}
        className="min-h-0 flex-1 overflow-auto py-1"
        data-testid="file-tree"
      >
        {out}
        <div className="h-8" aria-hidden="true" />
      </div>
    );
  }

  return (
    <div className="flex h-full min-w-0 flex-col bg-surface/60">
      {header}
      {body}
      {menu && <ContextMenu x={menu.x} y={menu.y} items={menuItems(menu.node)} onClose={() => setMenu(null)} label="File actions" />}
      <DeleteDialog
        node={deleting}
        onClose={() => setDeleting(null)}
        onDelete={async (node) => {
          await tree.remove(node);
          setDeleting(null);
          const parent = parentPath(node.path);
          if (parent) focusRow(parent);
          else setFocused(null);
        }}
      />
    </div>
  );
});

/** A folder's loading, error or empty line under it; null when it just shows its entries. */
function folderStatus(folder: FolderState | undefined, depth: number | null): ReactNode {
  const pad = { paddingLeft: 8 + (depth ?? -1) * INDENT + INDENT + 22 };
  if (!folder || (folder.status === "loading" && folder.entries === null)) {
    return depth === null ? null : (
      <div key="status" className={`${ROW} text-faint`} style={pad}>
        <Spinner className="size-3" /> Loading…
      </div>
    );
  }
  if (folder.status === "error") {
    return (
      <div key="status" className={`${ROW} text-danger`} style={pad} title={folder.message}>
        <span className="truncate">{folder.message}</span>
      </div>
    );
  }
  if (folder.status === "loaded" && folder.entries.length === 0 && depth !== null) {
    return (
      <div key="status" className={`${ROW} text-faint italic`} style={pad}>
        Empty folder
      </div>
    );
  }
  return null;
}

const Row = memo(function Row({
  node,
  depth,
  open,
  loading,
  focused,
  active,
  tabbable,
  onClick,
  onContextMenu,
  onFocus,
}: {
  node: TreeNode;
  depth: number;
  open: boolean;
  loading: boolean;
  focused: boolean;
  active: boolean;
  tabbable: boolean;
  onClick: () => void;
  onContextMenu: (event: MouseEvent) => void;
  onFocus: () => void;
}) {
  const isDir = node.type === "dir";
  return (
    <div
      role="treeitem"
      aria-level={depth + 1}
      aria-expanded={isDir ? open : undefined}
      aria-selected={focused}
      tabIndex={tabbable ? 0 : -1}
      data-path={node.path}
      data-type={node.type}
      data-testid="tree-item"
      title={node.path}
      onClick={onClick}
      onContextMenu={onContextMenu}
      onFocus={onFocus}
      style={{ paddingLeft: 8 + depth * INDENT }}
      className={`${ROW} relative cursor-pointer outline-none select-none focus-visible:outline-1 focus-visible:-outline-offset-1 focus-visible:outline-accent ${
        active ? "bg-accent/15 text-fg" : focused ? "bg-hover text-fg" : "text-fg/85 hover:bg-hover/70"
      }`}
    >
      <span className="flex size-4 shrink-0 items-center justify-center text-faint">
        {isDir &&
          (loading ? <Spinner className="size-3" /> : <ChevronRightIcon className={`size-3.5 transition-transform ${open ? "rotate-90" : ""}`} />)}
      </span>
      <FileIcon name={node.name} type={node.type} open={open} className="size-4" />
      <span className="min-w-0 truncate">{node.name}</span>
    </div>
  );
});

function NameInput({
  depth,
  type,
  initial,
  onSubmit,
  onCancel,
  testId,
}: {
  depth: number;
  type: "file" | "dir";
  initial: string;
  onSubmit: (name: string) => Promise<void>;
  onCancel: () => void;
  testId: string;
}) {
  const [value, setValue] = useState(initial);
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const input = useRef<HTMLInputElement>(null);

  useEffect(() => {
    const el = input.current;
    if (!el) return;
    el.focus();
    // Select the name without its extension, as file managers do.
    const dot = type === "file" ? initial.lastIndexOf(".") : -1;
    el.setSelectionRange(0, dot > 0 ? dot : initial.length);
  }, [initial, type]);

  async function submit() {
    if (busy) return;
    if (value.trim() === "" || value === initial) {
      onCancel();
      return;
    }
    setBusy(true);
    setError(null);
    try {
      await onSubmit(value);
    } catch (e) {
      setError(e instanceof Error ? e.message : "That did not work.");
      setBusy(false);
      input.current?.focus();
    }
  }

  return (
    <div className="relative" style={{ paddingLeft: 8 + depth * INDENT }}>
      <div className={`${ROW} pl-0`}>
        <span className="size-4 shrink-0" />
        <FileIcon name={value} type={type} className="size-4" />
        <input
          ref={input}
          value={value}
          disabled={busy}
          onChange={(e) => {
            setValue(e.target.value);
            setError(null);
          }}
          onKeyDown={(e) => {
            e.stopPropagation();
            if (e.key === "Enter") {
              e.preventDefault();
              void submit();
            } else if (e.key === "Escape") {
              e.preventDefault();
              onCancel();
            }
          }}
          onBlur={() => {
            if (!busy && !error) void submit();
          }}
          aria-label={type === "dir" ? "Folder name" : "File name"}
          aria-invalid={error ? true : undefined}
          spellCheck={false}
          autoComplete="off"
          className={`h-[22px] min-w-0 flex-1 rounded-sm border bg-canvas px-1.5 font-sans text-[13px] text-fg outline-none ${error ? "border-danger" : "border-accent"}`}
          data-testid={testId}
        />
        {busy && <Spinner className="size-3 text-muted" />}
      </div>
      {error && (
        <div className="mx-2 mb-1 rounded-sm border border-danger/40 bg-danger/15 px-2 py-1 text-xs text-danger" role="alert">
          {error}
        </div>
      )}
    </div>
  );
}

function DeleteDialog({ node, onClose, onDelete }: { node: TreeNode | null; onClose: () => void; onDelete: (node: TreeNode) => Promise<void> }) {
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const [shown, setShown] = useState<TreeNode | null>(node);
  if (node && node !== shown) {
    setShown(node);
    setError(null);
    setBusy(false);
  }
  const target = node ?? shown;
  const isDir = target?.type === "dir";

  return (
    <Dialog
      open={node !== null}
      onClose={() => !busy && onClose()}
      title={`Delete ${isDir ? "folder" : "file"} “${target?.name ?? ""}”?`}
      description={
        isDir
          ? "The folder and everything in it will be deleted from the machine's disk. This cannot be undone."
          : "The file will be deleted from the machine's disk. This cannot be undone."
      }
      testId="delete-file-dialog"
    >
      {error && <p className="text-sm text-danger">{error}</p>}
      <p className="truncate rounded-md border border-line bg-canvas px-3 py-2 font-mono text-xs text-muted" title={target?.path}>
        {target?.path}
      </p>
      <div className="flex justify-end gap-2">
        <Button variant="ghost" onClick={onClose} disabled={busy}>
          Cancel
        </Button>
        <Button
          variant="danger"
          loading={busy}
          data-autofocus=""
          onClick={async () => {
            if (!node) return;
            setBusy(true);
            setError(null);
            try {
              await onDelete(node);
            } catch (e) {
              setError(e instanceof Error ? e.message : "Could not delete.");
            } finally {
              setBusy(false);
            }
          }}
          data-testid="confirm-delete-file"
        >
          Delete
        </Button>
      </div>
    </Dialog>
  );
}

function IconButton({ label, onClick, disabled, children, testId }: { label: string; onClick: () => void; disabled?: boolean; children: ReactNode; testId?: string }) {
  return (
    <button
      type="button"
      aria-label={label}
      title={label}
      onClick={onClick}
      disabled={disabled}
      className="flex size-7 items-center justify-center rounded-md text-muted outline-offset-[-2px] transition-colors hover:bg-hover hover:text-fg disabled:pointer-events-none disabled:opacity-35"
      data-testid={testId}
    >
      {children}
    </button>
  );
}

function WatchDot({ state, onRetry }: { state: WatchState | null; onRetry: () => void }) {
  if (!state || state.kind === "closed" || state.kind === "connecting") return null;
  if (state.kind === "live") {
    return <span className="ml-1.5 size-1.5 rounded-full bg-ok/70" title="Live: changes on the machine show up here as they happen" data-testid="watch-state" data-state="live" />;
  }
  const label = state.kind === "failed" ? `Live updates stopped: ${state.message}` : `Live updates paused (${state.reason}); reconnecting…`;
  return (
    <button
      onClick={onRetry}
      title={`${label} Click to retry now.`}
      className="ml-1 flex items-center gap-1 rounded px-1 text-[11px] text-warn hover:bg-hover"
      data-testid="watch-state"
      data-state={state.kind}
    >
      <span className="size-1.5 animate-pulse rounded-full bg-warn" />
      {state.kind === "failed" ? "Offline" : "Reconnecting"}
    </button>
  );
}

function PanelMessage({ icon, title, children, tone, testId }: { icon: ReactNode; title: string; children: ReactNode; tone?: "danger"; testId?: string }) {
  return (
    <div className="flex flex-1 flex-col items-center justify-center gap-2 px-5 pb-10 text-center" data-testid={testId}>
      <span className={`flex size-9 items-center justify-center rounded-full bg-raised ${tone === "danger" ? "text-danger" : "text-muted"}`}>{icon}</span>
      <p className="text-sm font-medium text-fg">{title}</p>
      <div className="flex flex-col items-center gap-1 text-xs text-muted">{children}</div>
    </div>
  );
}

/** Placeholder rows while the home is listed for the first time. */
export function TreeSkeleton() {
  const widths = [62, 48, 70, 40, 56, 66, 44];
  return (
    <div className="flex flex-col gap-[9px] px-3 py-2.5" aria-label="Loading files">
      {widths.map((w, i) => (
        <div key={i} className="flex items-center gap-2" style={{ paddingLeft: i === 2 || i === 3 ? INDENT : 0 }}>
          <span className="size-3.5 animate-pulse rounded-sm bg-raised" />
          <span className="h-2.5 animate-pulse rounded-sm bg-raised" style={{ width: `${w}%` }} />
        </div>
      ))}
    </div>
  );
}
