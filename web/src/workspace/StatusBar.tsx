/** The strip under the workspace: the active file's save state on the left; cursor, line endings and language on the right. */
import { useSyncExternalStore } from "react";
import type { CursorStore } from "../editor/cursor";
import type { DocSnapshot } from "../editor/document";
import { LANGUAGE_LABELS, languageOf } from "../editor/languages";
import type { OpenFiles } from "../editor/openFiles";

export function StatusBar({ files, cursor }: { files: OpenFiles; cursor: CursorStore }) {
  const { docs, active } = useSyncExternalStore(files.subscribe, () => files.snapshot);
  const doc = docs.find((d) => d.path === active) ?? null;
  return (
    <footer className="flex h-6 shrink-0 items-center gap-4 border-t border-line bg-surface px-3 text-[11px] text-muted" data-testid="status-bar">
      {doc && <SaveState doc={doc} />}
      <div className="flex-1" />
      {doc?.phase === "text" && (
        <>
          <CursorPosition cursor={cursor} />
          <span>{doc.lineSeparator === "\r\n" ? "CRLF" : "LF"}</span>
          <span>UTF-8</span>
          <span>{LANGUAGE_LABELS[languageOf(doc.path)]}</span>
        </>
      )}
    </footer>
  );
}

function SaveState({ doc }: { doc: DocSnapshot }) {
  const [label, tone] = doc.saving
    ? ["Saving…", "text-muted"]
    : doc.conflict
      ? ["Conflict: not saved", "text-warn"]
      : doc.error
        ? ["Not saved", "text-danger"]
        : doc.dirty
          ? ["Unsaved changes", "text-muted"]
          : doc.phase === "text"
            ? ["Saved", "text-faint"]
            : ["", ""];
  return (
    <span className={tone} data-testid="save-state">
      {label}
    </span>
  );
}

function CursorPosition({ cursor }: { cursor: CursorStore }) {
  const at = useSyncExternalStore(cursor.subscribe, () => cursor.snapshot);
  if (!at) return null;
  return (
    <span>
      Ln {at.line}, Col {at.column}
      {at.selected > 0 && ` (${at.selected} selected)`}
    </span>
  );
}
