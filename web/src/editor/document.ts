/**
 * One open file, without React or CodeMirror: loading it, saving it with
 * `If-Match` so a stale write is refused (412) rather than silently
 * overwriting someone's change, resolving that conflict as the user
 * chooses, and reacting to changes on disk (reload silently when there are
 * no unsaved edits, else raise "changed on disk"). The editor attaches an
 * `EditorLink` to give the current text; the file I/O is injected.
 *
 * Our own save also shows up as a watch event: a disk check compares the
 * file's ETag with the one we saved and does nothing when they match; a
 * check that arrives while a save is in flight waits for it.
 */
import { ApiError, type FileContent, type PathRef, type WriteResult } from "../api/client";
import type { FileStat } from "../api/types";
import { classifyContent, MAX_TEXT_BYTES, type LineSeparator } from "./content";

export interface FileIO {
  read(ref: PathRef, maxBytes: number): Promise<FileContent>;
  stat(ref: PathRef): Promise<FileStat>;
  write(ref: PathRef, bytes: Uint8Array<ArrayBuffer>, ifMatch: string | null): Promise<WriteResult>;
}

/** What the editor view gives the document. */
export interface EditorLink {
  getText(): string;
}

export type DocPhase = "loading" | "text" | "binary" | "too_large" | "error";

export type Conflict =
  /** Someone else changed the file since we loaded or saved it. */
  | "changed"
  /** The file is gone from the disk. */
  | "deleted";

export interface DocSnapshot {
  path: string;
  ref: PathRef;
  phase: DocPhase;
  /** Bytes on disk as last seen; null until known. */
  size: number | null;
  /** The text as last loaded or saved (what "not dirty" means). */
  baseline: string;
  lineSeparator: LineSeparator;
  /** Bumped each time `baseline` should replace the editor's content (a load). */
  revision: number;
  etag: string | null;
  dirty: boolean;
  saving: boolean;
  /** A save was refused; the dialog asks the user what to do. */
  conflict: Conflict | null;
  /** Changed on disk while there were unsaved edits (a banner says so). */
  changedOnDisk: boolean;
  deletedOnDisk: boolean;
  binaryReason: "nul" | "encoding" | null;
  /** Why loading failed (phase `error`), or why the last save or reload failed (a sentence). */
  error: string | null;
  errorCode: string | null;
  /** Which action `error` is about, so "Try again" repeats the right one. */
  failed: "load" | "save" | null;
}

export type SaveOutcome = "saved" | "conflict" | "error" | "busy" | "skipped";

const encoder = new TextEncoder();

export class FileDocument {
  private snap: DocSnapshot;
  private readonly listeners = new Set<() => void>();
  private link: EditorLink | null = null;
  private disposed = false;
  /** Bumped per load, so a slow old load cannot overwrite a newer one. */
  private loadSeq = 0;
  private checking: Promise<void> | null = null;
  private checkAgain = false;
  private checkAfterSave = false;

  constructor(
    path: string,
    ref: PathRef,
    private readonly io: FileIO,
  ) {
    this.snap = {
      path,
      ref,
      phase: "loading",
      size: null,
      baseline: "",
      lineSeparator: "\n",
      revision: 0,
      etag: null,
      dirty: false,
      saving: false,
      conflict: null,
      changedOnDisk: false,
      deletedOnDisk: false,
      binaryReason: null,
      error: null,
      errorCode: null,
      failed: null,
    };
  }

  get snapshot(): DocSnapshot {
    return this.snap;
  }

  get path(): string {
    return this.snap.path;
  }

  subscribe(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  attach(link: EditorLink | null): void {
    this.link = link;
  }

  dispose(): void {
    this.disposed = true;
    this.loadSeq++;
    this.listeners.clear();
    this.link = null;
  }

  /** The editor reports whether its text differs from `baseline`. */
  setDirty(dirty: boolean): void {
    if (dirty !== this.snap.dirty) this.update({ dirty });
  }

  /** Load (or reload) from disk, replacing the editor's content. */
  async load(): Promise<void> {
    const seq = ++this.loadSeq;
    if (this.snap.phase !== "text") this.update({ phase: "loading", error: null, errorCode: null, failed: null });
    let content: FileContent;
    try {
      content = await this.io.read(this.snap.ref, MAX_TEXT_BYTES);
    } catch (error) {
      if (seq !== this.loadSeq || this.disposed) return;
      if (this.snap.phase === "text") {
        // Never drop the editor's text because a reload failed.
        if (error instanceof ApiError && error.status === 404) this.update({ deletedOnDisk: true });
        else this.update({ error: `Could not load it from disk. ${describe(error, "open")}`, errorCode: codeOf(error), failed: "load" });
        return;
      }
      this.update({ phase: "error", error: describe(error, "open"), errorCode: codeOf(error), failed: "load" });
      return;
    }
    if (seq !== this.loadSeq || this.disposed) return;
    this.applyContent(content);
  }

  /**
   * Save `text` (default: the editor's) with `If-Match` on the version we
   * have. A 412 raises `conflict` and changes nothing on disk.
   */
  async save(text?: string): Promise<SaveOutcome> {
    if (this.snap.phase !== "text") return "skipped";
    if (this.snap.saving) return "busy";
    const body = text ?? this.link?.getText();
    if (body === undefined) return "skipped";
    return this.write(body, this.snap.etag);
  }

  /**
   * "Overwrite theirs": take the file's current version and save over it
   * (recreating it if it was deleted). If it changes yet again in between,
   * the conflict stays.
   */
  async overwrite(text?: string): Promise<SaveOutcome> {
    if (this.snap.phase !== "text" || this.snap.saving) return "busy";
    const body = text ?? this.link?.getText();
    if (body === undefined) return "skipped";
    this.update({ saving: true, error: null, errorCode: null, failed: null });
    let etag: string | null;
    try {
      const stat = await this.io.stat(this.snap.ref);
      etag = stat.etag;
    } catch (error) {
      if (!(error instanceof ApiError && error.status === 404)) {
        this.update({ saving: false, error: `Not saved. ${describe(error, "save")}`, errorCode: codeOf(error), failed: "save" });
        return "error";
      }
      etag = null;
    }
    this.update({ saving: false });
    return this.write(body, etag);
  }

  /** "Load theirs": drop the unsaved edits and take the file as it is on disk. */
  async loadTheirs(): Promise<void> {
    this.update({ conflict: null, changedOnDisk: false, error: null, errorCode: null, failed: null });
    await this.load();
  }

  /** "Keep editing": close the dialog; the banner keeps saying the disk differs. */
  keepEditing(): void {
    const conflict = this.snap.conflict;
    if (!conflict) return;
    this.update({ conflict: null, changedOnDisk: conflict === "changed", deletedOnDisk: conflict === "deleted" });
  }

  /** The user saw "changed on disk" and chose to keep their text for now. */
  dismissDiskChange(): void {
    if (this.snap.changedOnDisk || this.snap.deletedOnDisk) this.update({ changedOnDisk: false, deletedOnDisk: false });
  }

  dismissError(): void {
    this.update({ error: null, errorCode: null, failed: null });
  }

  /** The file moved (renamed here or elsewhere): follow it, and check what is there now. */
  moved(path: string, ref: PathRef): void {
    this.update({ path, ref });
    void this.checkDisk();
  }

  /**
   * The watch says the file (may have) changed, appeared or gone. Equal
   * ETag: nothing to do (our own save). Clean: reload silently. Dirty: raise
   * `changedOnDisk`. Gone: raise `deletedOnDisk`. Runs one at a time.
   */
  checkDisk(): Promise<void> {
    if (this.disposed) return Promise.resolve();
    if (this.snap.saving) {
      this.checkAfterSave = true;
      return Promise.resolve();
    }
    if (this.checking) {
      this.checkAgain = true;
      return this.checking;
    }
    this.checking = (async () => {
      do {
        this.checkAgain = false;
        await this.checkOnce();
      } while (this.checkAgain && !this.disposed);
      this.checking = null;
    })();
    return this.checking;
  }

  private async checkOnce(): Promise<void> {
    if (this.snap.phase !== "text") {
      await this.load();
      return;
    }
    let stat: FileStat;
    try {
      stat = await this.io.stat(this.snap.ref);
    } catch (error) {
      if (this.disposed) return;
      if (error instanceof ApiError && error.status === 404) this.update({ deletedOnDisk: true });
      return; // else: unreachable VM and the like; the next event or save will tell
    }
    if (this.disposed) return;
    if (stat.type !== "file") {
      this.update({ deletedOnDisk: true });
      return;
    }
    if (stat.etag === this.snap.etag) {
      if (this.snap.deletedOnDisk) this.update({ deletedOnDisk: false });
      return;
    }
    if (this.snap.dirty || this.snap.saving) {
      this.update({ changedOnDisk: true, deletedOnDisk: false });
      return;
    }
    // Clean: reload silently, unless the user starts typing meanwhile.
    const seq = ++this.loadSeq;
    let content: FileContent;
    try {
      content = await this.io.read(this.snap.ref, MAX_TEXT_BYTES);
    } catch (error) {
      if (error instanceof ApiError && error.status === 404 && seq === this.loadSeq) this.update({ deletedOnDisk: true });
      return;
    }
    if (seq !== this.loadSeq || this.disposed) return;
    if (this.snap.dirty || this.currentTextDiffers()) {
      this.update({ changedOnDisk: true, deletedOnDisk: false, dirty: true });
      return;
    }
    this.applyContent(content);
  }

  private currentTextDiffers(): boolean {
    const text = this.link?.getText();
    return text !== undefined && text !== this.snap.baseline;
  }

  private applyContent(content: FileContent): void {
    const classified = classifyContent(content.bytes, content.size);
    const common = {
      size: content.size,
      etag: content.etag,
      error: null,
      errorCode: null,
      failed: null,
      conflict: null,
      changedOnDisk: false,
      deletedOnDisk: false,
      dirty: false,
    };
    if (classified.kind === "text") {
      this.update({
        ...common,
        phase: "text",
        baseline: classified.text,
        lineSeparator: classified.lineSeparator,
        revision: this.snap.revision + 1,
        binaryReason: null,
      });
    } else {
      this.update({
        ...common,
        phase: classified.kind,
        baseline: "",
        binaryReason: classified.kind === "binary" ? classified.reason : null,
      });
    }
  }

  private async write(body: string, ifMatch: string | null): Promise<SaveOutcome> {
    this.update({ saving: true, error: null, errorCode: null, failed: null });
    let result: WriteResult;
    try {
      result = await this.io.write(this.snap.ref, encoder.encode(body), ifMatch);
    } catch (error) {
      if (this.disposed) return "error";
      if (error instanceof ApiError && error.status === 412) {
        const conflict = await this.whatChanged();
        this.update({ saving: false, conflict });
        this.afterSave();
        return "conflict";
      }
      this.update({ saving: false, error: `Not saved. ${describe(error, "save")}`, errorCode: codeOf(error), failed: "save" });
      this.afterSave();
      return "error";
    }
    if (this.disposed) return "saved";
    const dirty = this.link ? this.link.getText() !== body : false;
    this.update({
      saving: false,
      etag: result.stat.etag,
      size: result.stat.size,
      baseline: body,
      dirty,
      conflict: null,
      changedOnDisk: false,
      deletedOnDisk: false,
    });
    this.afterSave();
    return "saved";
  }

  /** After a 412: was the file changed, or deleted? */
  private async whatChanged(): Promise<Conflict> {
    try {
      const stat = await this.io.stat(this.snap.ref);
      return stat.type === "file" ? "changed" : "deleted";
    } catch (error) {
      return error instanceof ApiError && error.status === 404 ? "deleted" : "changed";
    }
  }

  private afterSave(): void {
    if (!this.checkAfterSave) return;
    this.checkAfterSave = false;
    void this.checkDisk();
  }

  private update(patch: Partial<DocSnapshot>): void {
    if (this.disposed) return;
    this.snap = { ...this.snap, ...patch };
    for (const listener of [...this.listeners]) listener();
  }
}

function codeOf(error: unknown): string {
  return error instanceof ApiError ? error.code : "internal";
}

/** A sentence for a failed open or save. */
export function describe(error: unknown, action: "open" | "save"): string {
  if (error instanceof ApiError) {
    if (error.status === 503) return action === "save" ? "The VM is not running. Start it, then save again." : "The VM is not running. Start it to open files.";
    if (error.status === 404) return action === "save" ? "The folder for this file no longer exists." : "The file no longer exists.";
    if (error.status === 413) return "The file is larger than the 100 MB limit.";
    if (error.status === 409) return error.message.charAt(0).toUpperCase() + error.message.slice(1) + ".";
    return error.message;
  }
  return action === "save" ? "Could not save the file." : "Could not open the file.";
}
