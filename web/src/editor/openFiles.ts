/**
 * The editor's tabs, without React: which files are open, in what order,
 * which one is shown, and how changes reported by the file tree's watch
 * reach each open document. React reads it through `subscribe` and
 * `snapshot` (useSyncExternalStore).
 */
import type { PathRef } from "../api/client";
import { isWithin, movedPath } from "../files/paths";
import { FileDocument, type DocSnapshot, type FileIO } from "./document";

export interface OpenFilesSnapshot {
  docs: readonly DocSnapshot[];
  active: string | null;
  /** The last request to put the keyboard in an editor; `seq` grows with each. */
  focus: { path: string; seq: number } | null;
}

export class OpenFiles {
  private docs: FileDocument[] = [];
  private active: string | null = null;
  private focus: OpenFilesSnapshot["focus"] = null;
  private snap: OpenFilesSnapshot = { docs: [], active: null, focus: null };
  private readonly listeners = new Set<() => void>();
  private readonly unsubscribe = new Map<FileDocument, () => void>();

  constructor(private readonly io: FileIO) {}

  get snapshot(): OpenFilesSnapshot {
    return this.snap;
  }

  subscribe = (listener: () => void): (() => void) => {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  };

  document(path: string): FileDocument | undefined {
    return this.docs.find((d) => d.path === path);
  }

  /**
   * Show `path`, opening (and loading) it first if it is not open. With
   * `dropIfMissing` (tabs restored from an earlier visit) a file that no
   * longer exists closes again instead of showing an error.
   */
  open(path: string, ref: PathRef = path, options: { dropIfMissing?: boolean; focus?: boolean } = {}): FileDocument {
    let doc = this.document(path);
    if (!doc) {
      const created = new FileDocument(path, ref, this.io);
      doc = created;
      this.docs = [...this.docs, created];
      this.unsubscribe.set(created, created.subscribe(() => this.emit()));
      void created.load().then(() => {
        if (options.dropIfMissing && created.snapshot.errorCode === "not_found" && this.docs.includes(created)) this.close(created.path);
      });
    }
    this.active = path;
    if (options.focus) this.requestFocus(path);
    this.emit();
    return doc;
  }

  /** Show an open file; with `focus`, its editor takes the keyboard too. */
  activate(path: string, options: { focus?: boolean } = {}): void {
    if (!this.document(path)) return;
    if (this.active === path && !options.focus) return;
    this.active = path;
    if (options.focus) this.requestFocus(path);
    this.emit();
  }

  private requestFocus(path: string): void {
    this.focus = { path, seq: (this.focus?.seq ?? 0) + 1 };
  }

  /** Close a tab (unsaved edits are the caller's to confirm); the neighbour becomes active. */
  close(path: string): void {
    const i = this.docs.findIndex((d) => d.path === path);
    const doc = this.docs[i];
    if (!doc) return;
    this.drop(doc);
    this.docs = this.docs.filter((d) => d !== doc);
    if (this.active === path) this.active = (this.docs[Math.min(i, this.docs.length - 1)] ?? null)?.path ?? null;
    this.emit();
  }

  /** Close the clean tabs at or below `path` (after deleting it here); dirty ones stay, marked deleted. */
  closeCleanWithin(path: string): void {
    for (const doc of [...this.docs]) {
      if (!isWithin(doc.path, path)) continue;
      if (doc.snapshot.dirty) void doc.checkDisk();
      else this.close(doc.path);
    }
  }

  /** Files that (may) have changed on disk. */
  changed(paths: Iterable<string>): void {
    for (const path of paths) void this.document(path)?.checkDisk();
  }

  /** Paths removed on disk; a folder stands for everything below it. */
  removed(paths: Iterable<string>): void {
    const gone = [...paths];
    for (const doc of this.docs) if (gone.some((p) => isWithin(doc.path, p))) void doc.checkDisk();
  }

  /** `from` (a file or folder) is now `to`: open files below it follow. */
  renamed(from: string, to: string): void {
    let moved = false;
    for (const doc of this.docs) {
      const next = movedPath(doc.path, from, to);
      if (next === null) continue;
      // Another tab already shows the target: that one stays, this one is checked.
      if (this.document(next)) {
        void doc.checkDisk();
        continue;
      }
      if (this.active === doc.path) this.active = next;
      doc.moved(next, next);
      moved = true;
    }
    if (moved) this.emit();
  }

  /** Load again the files that could not be opened (e.g. while the VM was stopped). */
  retryFailed(): void {
    for (const doc of this.docs) if (doc.snapshot.phase === "error") void doc.load();
  }

  /** After lost events: check every open file. */
  checkAll(): void {
    for (const doc of this.docs) void doc.checkDisk();
  }

  get hasUnsaved(): boolean {
    return this.docs.some((d) => d.snapshot.dirty);
  }

  dispose(): void {
    for (const doc of this.docs) this.drop(doc);
    this.docs = [];
    this.active = null;
    this.listeners.clear();
  }

  private drop(doc: FileDocument): void {
    this.unsubscribe.get(doc)?.();
    this.unsubscribe.delete(doc);
    doc.dispose();
  }

  private emit(): void {
    this.snap = { docs: this.docs.map((d) => d.snapshot), active: this.active, focus: this.focus };
    for (const listener of [...this.listeners]) listener();
  }
}
