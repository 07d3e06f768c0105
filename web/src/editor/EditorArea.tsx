/**
 * The editor panel: a tab per open file (a dot while it has unsaved
 * edits), the file's path, banners for what happened on disk, the text in
 * CodeMirror (its own lazily loaded chunk), or an info panel with a
 * download for binary and very large files. Ctrl/Cmd-S saves; a save that
 * the hub refuses as stale (412) opens the conflict dialog, and nothing is
 * ever overwritten without the user choosing so.
 */
import { lazy, memo, Suspense, useCallback, useEffect, useState, useSyncExternalStore, type ReactNode } from "react";
import { api, ApiError } from "../api/client";
import { FileIcon } from "../files/FileIcon";
import { baseName, parentPath } from "../files/paths";
import { Button } from "../ui/Button";
import { Dialog } from "../ui/Dialog";
import { AlertIcon, ChevronRightIcon, CloseIcon, DownloadIcon, FileBinaryIcon, FileCodeIcon } from "../ui/icons";
import { Spinner } from "../ui/Spinner";
import { formatSize } from "./content";
import type { CursorStore } from "./cursor";
import type { DocSnapshot, FileDocument } from "./document";
import type { OpenFiles } from "./openFiles";

const CodeEditor = lazy(() => import("./codemirror/CodeEditor"));

const IS_MAC = typeof navigator !== "undefined" && /Mac|iPhone|iPad/.test(navigator.platform);
const MOD = IS_MAC ? "⌘" : "Ctrl";

export interface EditorAreaProps {
  projectId: string;
  files: OpenFiles;
  cursor: CursorStore;
}

export const EditorArea = memo(function EditorArea({ projectId, files, cursor }: EditorAreaProps) {
  const { docs, active, focus } = useSyncExternalStore(files.subscribe, () => files.snapshot);
  const [closing, setClosing] = useState<string | null>(null);

  const save = useCallback(
    (path: string | null) => {
      const doc = path ? files.document(path) : undefined;
      if (!doc) return;
      const s = doc.snapshot;
      if (s.phase !== "text" || (!s.dirty && !s.deletedOnDisk && !s.error)) return;
      void doc.save();
    },
    [files],
  );

  // Ctrl/Cmd-S anywhere but in a terminal saves the active file (CodeMirror handles it itself when focused).
  useEffect(() => {
    const onKey = (event: KeyboardEvent) => {
      if (event.defaultPrevented || !(event.ctrlKey || event.metaKey) || event.altKey || event.key.toLowerCase() !== "s") return;
      if (event.target instanceof Element && event.target.closest(".xterm")) return;
      event.preventDefault();
      save(files.snapshot.active);
    };
    window.addEventListener("keydown", onKey);
    return () => window.removeEventListener("keydown", onKey);
  }, [files, save]);

  // Leaving the page with unsaved edits asks first.
  useEffect(() => {
    const onUnload = (event: BeforeUnloadEvent) => {
      if (!files.hasUnsaved) return;
      event.preventDefault();
      event.returnValue = "";
    };
    window.addEventListener("beforeunload", onUnload);
    return () => window.removeEventListener("beforeunload", onUnload);
  }, [files]);

  useEffect(() => {
    if (active === null) cursor.set(null);
  }, [active, cursor]);

  function requestClose(path: string) {
    const doc = files.document(path);
    if (doc?.snapshot.dirty) setClosing(path);
    else files.close(path);
  }

  const activeDoc = docs.find((d) => d.path === active) ?? null;
  const conflicted = docs.find((d) => d.conflict !== null && d.path === active) ?? docs.find((d) => d.conflict !== null) ?? null;
  const names = new Map<string, number>();
  for (const d of docs) names.set(baseName(d.path), (names.get(baseName(d.path)) ?? 0) + 1);

  return (
    <div className="flex h-full min-h-0 min-w-0 flex-col bg-canvas" data-testid="editor-area">
      <div className="flex h-9 shrink-0 items-stretch border-b border-line bg-surface">
        <div role="tablist" aria-label="Open files" className="flex min-w-0 flex-1 items-stretch overflow-x-auto [scrollbar-width:none]">
          {docs.map((d) => (
            <EditorTab
              key={d.path}
              doc={d}
              selected={d.path === active}
              hint={(names.get(baseName(d.path)) ?? 0) > 1 ? parentPath(d.path) || "~" : null}
              onSelect={() => files.activate(d.path, { focus: true })}
              onClose={() => requestClose(d.path)}
            />
          ))}
        </div>
      </div>

      {activeDoc && <Breadcrumb doc={activeDoc} />}
      {activeDoc && <Banners doc={activeDoc} files={files} onClose={() => requestClose(activeDoc.path)} />}

      <div className="relative min-h-0 flex-1">
        {docs.length === 0 && <NoFileOpen />}
        {docs.map((d) => {
          const doc = files.document(d.path);
          if (!doc) return null;
          const shown = d.path === active;
          if (d.phase === "text") {
            return (
              <Suspense key={d.path} fallback={shown ? <EditorSkeleton /> : null}>
                <CodeEditor doc={doc} active={shown} focusSeq={focus?.path === d.path ? focus.seq : 0} onSave={() => save(doc.path)} cursor={cursor} />
              </Suspense>
            );
          }
          if (!shown) return null;
          return <DocPanel key={d.path} projectId={projectId} snap={d} doc={doc} onClose={() => files.close(d.path)} />;
        })}
      </div>

      {conflicted && <ConflictDialog key={conflicted.path} snap={conflicted} files={files} />}
      <UnsavedDialog
        path={closing}
        onCancel={() => setClosing(null)}
        onDiscard={() => {
          if (closing) files.close(closing);
          setClosing(null);
        }}
        onSave={async () => {
          const doc = closing ? files.document(closing) : undefined;
          if (!doc) return;
          const outcome = await doc.save();
          if (outcome === "saved") files.close(doc.path);
          setClosing(null);
        }}
      />
    </div>
  );
});

function EditorTab({ doc, selected, hint, onSelect, onClose }: { doc: DocSnapshot; selected: boolean; hint: string | null; onSelect: () => void; onClose: () => void }) {
  const name = baseName(doc.path);
  const marker = doc.saving ? (
    <Spinner className="size-3 text-muted" />
  ) : doc.dirty ? (
    <span className="size-2 rounded-full bg-fg/80 group-hover:hidden" aria-hidden="true" />
  ) : null;
  return (
    <div
      className={`group relative flex max-w-56 shrink-0 items-center border-r border-line ${selected ? "bg-canvas text-fg" : "text-muted hover:bg-hover hover:text-fg"}`}
      onAuxClick={(e) => {
        if (e.button === 1) {
          e.preventDefault();
          onClose();
        }
      }}
    >
      {selected && <span className="absolute inset-x-0 top-0 h-0.5 bg-accent" aria-hidden="true" />}
      <button
        role="tab"
        aria-selected={selected}
        tabIndex={selected ? 0 : -1}
        onClick={onSelect}
        title={doc.path}
        className="flex h-full min-w-0 items-center gap-2 pr-1 pl-3 text-[13px] outline-offset-[-2px]"
        data-testid="editor-tab"
        data-path={doc.path}
        data-dirty={doc.dirty ? "true" : "false"}
        data-state={doc.conflict ? "conflict" : doc.saving ? "saving" : doc.phase}
      >
        <FileIcon name={name} type="file" className="size-3.5" />
        <span className={`truncate ${doc.deletedOnDisk ? "line-through decoration-danger/70" : ""}`}>{name}</span>
        {hint && <span className="truncate text-xs text-faint">{hint}</span>}
        {doc.dirty && <span className="sr-only">(unsaved)</span>}
      </button>
      <span className="relative mr-1.5 flex size-5 shrink-0 items-center justify-center">
        {marker && <span className="pointer-events-none absolute inset-0 flex items-center justify-center">{marker}</span>}
        <button
          aria-label={`Close ${name}`}
          title={doc.dirty ? "Close (asks to save first)" : "Close"}
          onClick={onClose}
          className={`flex size-5 items-center justify-center rounded text-faint outline-offset-[-2px] hover:bg-raised hover:text-fg focus-visible:opacity-100 ${
            marker ? "opacity-0 group-hover:opacity-100" : selected ? "" : "opacity-0 group-hover:opacity-100"
          }`}
          data-testid="editor-tab-close"
          data-path={doc.path}
        >
          <CloseIcon className="size-3" />
        </button>
      </span>
    </div>
  );
}

function Breadcrumb({ doc }: { doc: DocSnapshot }) {
  const parts = doc.path.split("/");
  return (
    <div className="flex h-7 shrink-0 items-center gap-1 overflow-hidden border-b border-line/60 bg-canvas px-3 text-xs text-faint" data-testid="editor-path">
      <span className="shrink-0">~</span>
      {parts.map((part, i) => (
        <span key={i} className="flex min-w-0 items-center gap-1">
          <ChevronRightIcon className="size-3 shrink-0 opacity-60" />
          <span className={`truncate ${i === parts.length - 1 ? "text-muted" : ""}`}>{part}</span>
        </span>
      ))}
    </div>
  );
}

function Banners({ doc, files, onClose }: { doc: DocSnapshot; files: OpenFiles; onClose: () => void }) {
  const file = files.document(doc.path);
  if (!file || doc.phase !== "text") return null;
  if (doc.deletedOnDisk && !doc.conflict) {
    return (
      <Banner tone="warn" testId="banner-deleted">
        <span className="min-w-0 flex-1">This file was deleted on disk. Your text is still here; saving creates it again.</span>
        <Button size="sm" variant="secondary" loading={doc.saving} onClick={() => void file.overwrite()}>
          Save again
        </Button>
        <Button size="sm" variant="ghost" onClick={onClose}>
          Close tab
        </Button>
      </Banner>
    );
  }
  if (doc.changedOnDisk && !doc.conflict) {
    return (
      <Banner tone="warn" testId="banner-changed">
        <span className="min-w-0 flex-1">
          <strong className="font-semibold">Changed on disk.</strong> This file was changed elsewhere while you have unsaved edits.
        </span>
        <Button size="sm" variant="secondary" onClick={() => void file.loadTheirs()} data-testid="banner-load-theirs">
          Load theirs
        </Button>
        <Button size="sm" variant="ghost" onClick={() => file.dismissDiskChange()}>
          Keep mine
        </Button>
      </Banner>
    );
  }
  if (doc.error) {
    return (
      <Banner tone="error" testId="banner-error">
        <span className="min-w-0 flex-1">{doc.error}</span>
        <Button size="sm" variant="secondary" loading={doc.saving} onClick={() => void (doc.failed === "load" ? file.load() : file.save())}>
          Try again
        </Button>
        <Button size="sm" variant="ghost" onClick={() => file.dismissError()}>
          Dismiss
        </Button>
      </Banner>
    );
  }
  return null;
}

function Banner({ tone, children, testId }: { tone: "warn" | "error"; children: ReactNode; testId: string }) {
  const style = tone === "warn" ? "border-warn/25 bg-warn/[0.07] text-warn" : "border-danger/25 bg-danger/[0.08] text-danger";
  return (
    <div className={`flex shrink-0 items-center gap-2 border-b px-3 py-1.5 text-[13px] ${style}`} role={tone === "error" ? "alert" : "status"} data-testid={testId}>
      <AlertIcon className="size-4 shrink-0" />
      {children}
    </div>
  );
}

/** What is shown instead of an editor: loading, an error, or a binary or large file's info. */
function DocPanel({ projectId, snap, doc, onClose }: { projectId: string; snap: DocSnapshot; doc: FileDocument; onClose: () => void }) {
  const name = baseName(snap.path);
  if (snap.phase === "loading") return <EditorSkeleton />;
  if (snap.phase === "error") {
    return (
      <CenteredCard icon={<AlertIcon className="size-5" />} tone="danger" title={`Could not open “${name}”`} testId="editor-error">
        <p className="text-sm text-muted">{snap.error}</p>
        <div className="flex gap-2">
          <Button size="sm" variant="secondary" onClick={() => void doc.load()}>
            Try again
          </Button>
          <Button size="sm" variant="ghost" onClick={onClose}>
            Close tab
          </Button>
        </div>
      </CenteredCard>
    );
  }
  const large = snap.phase === "too_large";
  return (
    <CenteredCard icon={<FileBinaryIcon className="size-5" />} title={name} testId="editor-binary">
      <p className="font-mono text-xs text-faint">
        {large ? "Large file" : "Binary file"}
        {snap.size !== null && ` · ${formatSize(snap.size)}`}
      </p>
      <p className="text-sm text-muted">
        {large
          ? "Files over 5 MB are not opened in the editor."
          : snap.binaryReason === "encoding"
            ? "This file is not UTF-8 text, so it is not opened in the editor (saving could damage it)."
            : "This file looks binary, so it is not opened in the editor."}
      </p>
      <DownloadButton projectId={projectId} snap={snap} />
    </CenteredCard>
  );
}

function DownloadButton({ projectId, snap }: { projectId: string; snap: DocSnapshot }) {
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  async function download() {
    setBusy(true);
    setError(null);
    try {
      const blob = await api.fileBlob(projectId, snap.ref);
      const url = URL.createObjectURL(blob);
      const a = document.createElement("a");
      a.href = url;
      a.download = baseName(snap.path);
      document.body.append(a);
      a.click();
      a.remove();
      setTimeout(() => URL.revokeObjectURL(url), 10_000);
    } catch (e) {
      setError(e instanceof ApiError ? e.message : "The download failed.");
    } finally {
      setBusy(false);
    }
  }
  return (
    <div className="flex flex-col items-center gap-2">
      <Button variant="secondary" icon={<DownloadIcon />} loading={busy} onClick={() => void download()} data-testid="editor-download">
        Download{snap.size !== null ? ` (${formatSize(snap.size)})` : ""}
      </Button>
      {error && <p className="text-xs text-danger">{error}</p>}
    </div>
  );
}

function CenteredCard({ icon, title, tone, children, testId }: { icon: ReactNode; title: string; tone?: "danger"; children: ReactNode; testId?: string }) {
  return (
    <div className="absolute inset-0 flex items-center justify-center p-6" data-testid={testId}>
      <div className="flex max-w-sm flex-col items-center gap-3 text-center">
        <span className={`flex size-11 items-center justify-center rounded-full bg-raised ${tone === "danger" ? "text-danger" : "text-muted"}`}>{icon}</span>
        <h2 className="max-w-full truncate text-base font-semibold">{title}</h2>
        {children}
      </div>
    </div>
  );
}

function NoFileOpen() {
  const keys: [string, string][] = [
    [`${MOD} S`, "Save"],
    [`${MOD} F`, "Find in file"],
    ["F2", "Rename in the tree"],
    ["Del", "Delete in the tree"],
  ];
  return (
    <div className="absolute inset-0 flex items-center justify-center p-6" data-testid="editor-empty">
      <div className="flex flex-col items-center gap-4 text-center">
        <span className="flex size-11 items-center justify-center rounded-full bg-raised text-muted">
          <FileCodeIcon className="size-5" />
        </span>
        <div className="flex flex-col gap-1">
          <h2 className="text-sm font-semibold">No file open</h2>
          <p className="text-sm text-muted">Pick a file in the tree, or create one there.</p>
        </div>
        <dl className="grid grid-cols-[auto_auto] gap-x-4 gap-y-1.5 text-xs">
          {keys.map(([k, what]) => (
            <div key={k} className="contents">
              <dt className="text-right">
                <kbd className="rounded border border-line bg-surface px-1.5 py-0.5 font-sans text-[11px] text-muted">{k}</kbd>
              </dt>
              <dd className="text-left text-faint">{what}</dd>
            </div>
          ))}
        </dl>
      </div>
    </div>
  );
}

function EditorSkeleton() {
  const widths = [38, 62, 55, 0, 72, 46, 58, 30];
  return (
    <div className="absolute inset-0 flex flex-col gap-[11px] px-4 py-3 opacity-0 [animation:fade-in_200ms_ease-out_150ms_forwards]" aria-label="Loading file">
      {widths.map((w, i) => (
        <div key={i} className="flex items-center gap-4">
          <span className="h-2 w-4 rounded-sm bg-raised/70" />
          {w > 0 && <span className="h-2 animate-pulse rounded-sm bg-raised" style={{ width: `${w}%` }} />}
        </div>
      ))}
    </div>
  );
}

/** The 412 dialog: the user decides what happens to their edits and to the file on disk. */
function ConflictDialog({ snap, files }: { snap: DocSnapshot; files: OpenFiles }) {
  const doc = files.document(snap.path);
  const [busy, setBusy] = useState<"overwrite" | "load" | null>(null);
  const [again, setAgain] = useState(false);
  const name = baseName(snap.path);
  const deleted = snap.conflict === "deleted";

  async function overwrite() {
    if (!doc) return;
    setBusy("overwrite");
    const outcome = await doc.overwrite();
    setBusy(null);
    setAgain(outcome === "conflict");
  }

  async function loadTheirs() {
    if (!doc) return;
    setBusy("load");
    await doc.loadTheirs();
    setBusy(null);
  }

  return (
    <Dialog
      open
      onClose={() => doc?.keepEditing()}
      title={deleted ? `“${name}” was deleted on disk` : `“${name}” changed on disk`}
      description={
        deleted
          ? "It was deleted after you opened it, and your edits are not saved yet."
          : "Someone or something (a terminal, an agent, another tab) changed it after you opened it. Your edits are not saved yet, and nothing was overwritten."
      }
      testId="conflict-dialog"
    >
      {again && <p className="rounded-md border border-warn/30 bg-warn/10 px-3 py-2 text-sm text-warn">It changed again while saving. Nothing was overwritten; choose again.</p>}
      {snap.error && <p className="text-sm text-danger">{snap.error}</p>}
      <div className="flex flex-col gap-2">
        <Choice
          title={deleted ? "Save mine" : "Overwrite theirs"}
          detail={deleted ? "Create the file again with your text." : "Replace the file on disk with your version."}
          tone="danger"
          busy={busy === "overwrite"}
          disabled={busy !== null}
          onClick={() => void overwrite()}
          testId="conflict-overwrite"
        />
        {deleted ? (
          <Choice title="Close the tab" detail="Discard your edits; the file stays deleted." disabled={busy !== null} onClick={() => files.close(snap.path)} testId="conflict-close" />
        ) : (
          <Choice
            title="Load theirs"
            detail="Discard your edits and show the file as it is on disk."
            busy={busy === "load"}
            disabled={busy !== null}
            onClick={() => void loadTheirs()}
            testId="conflict-load-theirs"
          />
        )}
        <Choice title="Keep editing" detail="Decide later; saving will ask again." disabled={busy !== null} onClick={() => doc?.keepEditing()} testId="conflict-keep" autoFocus />
      </div>
    </Dialog>
  );
}

function Choice({
  title,
  detail,
  tone,
  busy,
  disabled,
  onClick,
  testId,
  autoFocus,
}: {
  title: string;
  detail: string;
  tone?: "danger";
  busy?: boolean;
  disabled?: boolean;
  onClick: () => void;
  testId: string;
  autoFocus?: boolean;
}) {
  return (
    <button
      type="button"
      onClick={onClick}
      disabled={disabled}
      data-autofocus={autoFocus ? "" : undefined}
      className={`group flex items-center gap-3 rounded-lg border border-line bg-raised px-3.5 py-2.5 text-left transition-colors disabled:opacity-60 ${
        tone === "danger" ? "hover:border-danger/50 hover:bg-danger/10" : "hover:border-line-strong hover:bg-hover"
      }`}
      data-testid={testId}
    >
      <span className="flex min-w-0 flex-1 flex-col">
        <span className={`text-sm font-medium ${tone === "danger" ? "text-danger" : "text-fg"}`}>{title}</span>
        <span className="text-xs text-muted">{detail}</span>
      </span>
      {busy ? <Spinner className="size-4 text-muted" /> : <ChevronRightIcon className="size-4 text-faint transition-transform group-hover:translate-x-0.5" />}
    </button>
  );
}

function UnsavedDialog({ path, onCancel, onDiscard, onSave }: { path: string | null; onCancel: () => void; onDiscard: () => void; onSave: () => Promise<void> }) {
  const [busy, setBusy] = useState(false);
  return (
    <Dialog
      open={path !== null}
      onClose={onCancel}
      title={`Save changes to “${path ? baseName(path) : ""}”?`}
      description="Your edits are lost if you close it without saving."
      testId="unsaved-dialog"
    >
      <div className="flex justify-end gap-2">
        <Button variant="ghost" onClick={onCancel} disabled={busy}>
          Cancel
        </Button>
        <Button variant="secondary" onClick={onDiscard} disabled={busy}>
          Don’t save
        </Button>
        <Button
          variant="primary"
          loading={busy}
          data-autofocus=""
          onClick={async () => {
            setBusy(true);
            await onSave();
            setBusy(false);
          }}
        >
          Save
        </Button>
      </div>
    </Dialog>
  );
}
