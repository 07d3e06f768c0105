import { describe, expect, it } from "vitest";
import { ApiError, type FileContent, type PathRef, type WriteResult } from "../api/client";
import type { FileStat } from "../api/types";
import { FileDocument, type FileIO } from "./document";
import { OpenFiles } from "./openFiles";

const flush = () => new Promise<void>((resolve) => setTimeout(resolve, 0));

/** A disk of text files with ETags that change on every write, like the hub's. */
class FakeDisk implements FileIO {
  files = new Map<string, { text: string; etag: string }>();
  writes: { path: string; text: string; ifMatch: string | null }[] = [];
  reads = 0;
  private n = 0;
  /** When set, the next call of that kind waits for this promise. */
  gate: { op: "read" | "write" | "stat"; wait: Promise<void> } | null = null;

  put(path: string, text: string): string {
    const etag = `e${++this.n}`;
    this.files.set(path, { text, etag });
    return etag;
  }

  private async pass(op: "read" | "write" | "stat"): Promise<void> {
    if (this.gate?.op === op) {
      const { wait } = this.gate;
      this.gate = null;
      await wait;
    }
  }

  async read(ref: PathRef): Promise<FileContent> {
    await this.pass("read");
    this.reads++;
    const f = this.files.get(String(ref));
    if (!f) throw new ApiError(404, "not_found", "not found");
    const bytes = new TextEncoder().encode(f.text);
    return { bytes, size: bytes.length, etag: f.etag, contentType: "text/plain" };
  }

  async stat(ref: PathRef): Promise<FileStat> {
    await this.pass("stat");
    const f = this.files.get(String(ref));
    if (!f) throw new ApiError(404, "not_found", "not found");
    return { path: String(ref), type: "file", size: f.text.length, mtime: null, mode: 0o644, etag: f.etag };
  }

  async write(ref: PathRef, bytes: Uint8Array<ArrayBuffer>, ifMatch: string | null): Promise<WriteResult> {
    await this.pass("write");
    const path = String(ref);
    const text = new TextDecoder().decode(bytes);
    this.writes.push({ path, text, ifMatch });
    const f = this.files.get(path);
    if (ifMatch !== null && (!f || f.etag !== ifMatch)) {
      throw new ApiError(412, "precondition_failed", f ? "the file changed since that version" : "the file no longer exists");
    }
    const etag = this.put(path, text);
    return { stat: { path, type: "file", size: bytes.length, mtime: null, mode: 0o644, etag }, created: !f };
  }
}

/** An editor whose text the test types into. */
function editor(doc: FileDocument) {
  const view = { text: "" };
  doc.attach({ getText: () => view.text });
  let revision = -1;
  const sync = () => {
    const s = doc.snapshot;
    if (s.revision !== revision) {
      revision = s.revision;
      view.text = s.baseline;
    }
  };
  doc.subscribe(sync);
  return {
    view,
    type(text: string) {
      view.text = text;
      doc.setDirty(view.text !== doc.snapshot.baseline);
    },
  };
}

async function opened(disk: FakeDisk, path = "a.txt", text = "one\n") {
  disk.put(path, text);
  const doc = new FileDocument(path, path, disk);
  const ed = editor(doc);
  await doc.load();
  return { doc, ed };
}

function deferred() {
  let resolve = () => {};
  const promise = new Promise<void>((r) => (resolve = r));
  return { promise, resolve };
}

describe("saving", () => {
  it("saves with If-Match on the loaded version and takes the new ETag", async () => {
    const disk = new FakeDisk();
    const { doc, ed } = await opened(disk);
    const loaded = doc.snapshot.etag;
    ed.type("two\n");
    expect(doc.snapshot.dirty).toBe(true);
    expect(await doc.save()).toBe("saved");
    expect(disk.writes[0]).toEqual({ path: "a.txt", text: "two\n", ifMatch: loaded });
    const saved = disk.files.get("a.txt")?.etag;
    expect(doc.snapshot).toMatchObject({ dirty: false, etag: saved, baseline: "two\n" });
    ed.type("three\n");
    await doc.save();
    expect(disk.writes[1]?.ifMatch).toBe(saved);
    expect(disk.files.get("a.txt")?.text).toBe("three\n");
  });

  it("stays dirty when the user typed on while the save was in flight", async () => {
    const disk = new FakeDisk();
    const { doc, ed } = await opened(disk);
    ed.type("two\n");
    const gate = deferred();
    disk.gate = { op: "write", wait: gate.promise };
    const saving = doc.save();
    ed.type("two and more\n");
    gate.resolve();
    await saving;
    expect(doc.snapshot).toMatchObject({ baseline: "two\n", dirty: true });
  });
});

describe("the 412 flow", () => {
  it("a stale save changes nothing on disk and raises a conflict", async () => {
    const disk = new FakeDisk();
    const { doc, ed } = await opened(disk);
    disk.put("a.txt", "theirs\n");
    ed.type("mine\n");
    expect(await doc.save()).toBe("conflict");
    expect(disk.files.get("a.txt")?.text).toBe("theirs\n");
    expect(doc.snapshot).toMatchObject({ conflict: "changed", dirty: true, saving: false });
  });

  it("“Overwrite theirs” saves over the current version, with its ETag", async () => {
    const disk = new FakeDisk();
    const { doc, ed } = await opened(disk);
    const theirs = disk.put("a.txt", "theirs\n");
    ed.type("mine\n");
    await doc.save();
    expect(await doc.overwrite()).toBe("saved");
    expect(disk.writes.at(-1)).toEqual({ path: "a.txt", text: "mine\n", ifMatch: theirs });
    expect(disk.files.get("a.txt")?.text).toBe("mine\n");
    expect(doc.snapshot).toMatchObject({ conflict: null, dirty: false, changedOnDisk: false });
  });

  it("“Overwrite theirs” keeps the conflict when the file changes yet again in between", async () => {
    const disk = new FakeDisk();
    const { doc, ed } = await opened(disk);
    disk.put("a.txt", "theirs\n");
    ed.type("mine\n");
    await doc.save();
    // Between the stat and the write, someone writes again.
    const gate = deferred();
    disk.gate = { op: "write", wait: gate.promise };
    const overwriting = doc.overwrite();
    await flush();
    disk.put("a.txt", "theirs again\n");
    gate.resolve();
    expect(await overwriting).toBe("conflict");
    expect(disk.files.get("a.txt")?.text).toBe("theirs again\n");
    expect(doc.snapshot.conflict).toBe("changed");
  });

  it("“Load theirs” drops the local edits for the disk's version", async () => {
    const disk = new FakeDisk();
    const { doc, ed } = await opened(disk);
    disk.put("a.txt", "theirs\n");
    ed.type("mine\n");
    await doc.save();
    await doc.loadTheirs();
    expect(ed.view.text).toBe("theirs\n");
    expect(doc.snapshot).toMatchObject({ conflict: null, dirty: false, etag: disk.files.get("a.txt")?.etag });
  });

  it("“Keep editing” closes the dialog, keeps the edits and the warning, and the next save asks again", async () => {
    const disk = new FakeDisk();
    const { doc, ed } = await opened(disk);
    disk.put("a.txt", "theirs\n");
    ed.type("mine\n");
    await doc.save();
    doc.keepEditing();
    expect(doc.snapshot).toMatchObject({ conflict: null, changedOnDisk: true, dirty: true });
    expect(ed.view.text).toBe("mine\n");
    expect(await doc.save()).toBe("conflict");
    expect(disk.files.get("a.txt")?.text).toBe("theirs\n");
  });

  it("a file deleted on disk is a “deleted” conflict; overwriting recreates it", async () => {
    const disk = new FakeDisk();
    const { doc, ed } = await opened(disk);
    disk.files.delete("a.txt");
    ed.type("mine\n");
    expect(await doc.save()).toBe("conflict");
    expect(doc.snapshot.conflict).toBe("deleted");
    expect(await doc.overwrite()).toBe("saved");
    expect(disk.writes.at(-1)).toEqual({ path: "a.txt", text: "mine\n", ifMatch: null });
  });

  it("other failures are errors, not conflicts", async () => {
    const disk = new FakeDisk();
    const { doc, ed } = await opened(disk);
    disk.write = async () => {
      throw new ApiError(503, "unavailable", "the VM is not running");
    };
    ed.type("x");
    expect(await doc.save()).toBe("error");
    expect(doc.snapshot).toMatchObject({ conflict: null, errorCode: "unavailable", dirty: true });
    expect(doc.snapshot.error).toMatch(/not running/);
  });
});

describe("changes on disk", () => {
  it("a failed “Load theirs” keeps the text and says why", async () => {
    const disk = new FakeDisk();
    const { doc, ed } = await opened(disk);
    ed.type("mine\n");
    disk.read = async () => {
      throw new ApiError(503, "unavailable", "the VM is not running");
    };
    await doc.loadTheirs();
    expect(doc.snapshot).toMatchObject({ phase: "text", failed: "load", dirty: true });
    expect(ed.view.text).toBe("mine\n");
  });

  it("reloads a clean file silently", async () => {
    const disk = new FakeDisk();
    const { doc, ed } = await opened(disk);
    disk.put("a.txt", "changed\n");
    await doc.checkDisk();
    expect(ed.view.text).toBe("changed\n");
    expect(doc.snapshot).toMatchObject({ changedOnDisk: false, dirty: false });
  });

  it("raises a banner, and changes nothing, when there are unsaved edits", async () => {
    const disk = new FakeDisk();
    const { doc, ed } = await opened(disk);
    ed.type("mine\n");
    disk.put("a.txt", "changed\n");
    await doc.checkDisk();
    expect(ed.view.text).toBe("mine\n");
    expect(doc.snapshot.changedOnDisk).toBe(true);
  });

  it("ignores the event of its own save", async () => {
    const disk = new FakeDisk();
    const { doc, ed } = await opened(disk);
    ed.type("mine\n");
    await doc.save();
    const reads = disk.reads;
    await doc.checkDisk();
    expect(disk.reads).toBe(reads);
    expect(doc.snapshot.changedOnDisk).toBe(false);
  });

  it("waits for a save in flight before checking (no false banner)", async () => {
    const disk = new FakeDisk();
    const { doc, ed } = await opened(disk);
    ed.type("mine\n");
    const gate = deferred();
    disk.gate = { op: "write", wait: gate.promise };
    const saving = doc.save();
    await doc.checkDisk(); // the watch event arrives before the PUT answers
    ed.type("mine and more\n");
    gate.resolve();
    await saving;
    await flush();
    expect(doc.snapshot.changedOnDisk).toBe(false);
  });

  it("does not replace text typed while a silent reload was in flight", async () => {
    const disk = new FakeDisk();
    const { doc, ed } = await opened(disk);
    disk.put("a.txt", "changed\n");
    const gate = deferred();
    disk.gate = { op: "read", wait: gate.promise };
    const checking = doc.checkDisk();
    await flush();
    ed.type("typed meanwhile\n");
    gate.resolve();
    await checking;
    expect(ed.view.text).toBe("typed meanwhile\n");
    expect(doc.snapshot.changedOnDisk).toBe(true);
  });

  it("marks a removed file deleted and clears that when it comes back as it was", async () => {
    const disk = new FakeDisk();
    const { doc } = await opened(disk);
    const saved = disk.files.get("a.txt");
    disk.files.delete("a.txt");
    await doc.checkDisk();
    expect(doc.snapshot.deletedOnDisk).toBe(true);
    if (saved) disk.files.set("a.txt", saved);
    await doc.checkDisk();
    expect(doc.snapshot.deletedOnDisk).toBe(false);
  });
});

describe("open files", () => {
  it("opens once, follows renames of the file or its folder, and routes watch changes", async () => {
    const disk = new FakeDisk();
    disk.put("src/a.ts", "a");
    disk.put("src/b.ts", "b");
    const files = new OpenFiles(disk);
    files.open("src/a.ts");
    files.open("src/b.ts");
    files.open("src/a.ts");
    await flush();
    expect(files.snapshot.docs.map((d) => d.path)).toEqual(["src/a.ts", "src/b.ts"]);
    expect(files.snapshot.active).toBe("src/a.ts");

    disk.files.set("lib/a.ts", disk.files.get("src/a.ts") ?? { text: "", etag: "" });
    disk.files.delete("src/a.ts");
    files.renamed("src", "lib");
    await flush();
    expect(files.snapshot.docs.map((d) => d.path)).toEqual(["lib/a.ts", "lib/b.ts"]);
    expect(files.snapshot.active).toBe("lib/a.ts");

    disk.put("lib/a.ts", "changed");
    files.changed(["lib/a.ts", "not/open"]);
    await flush();
    expect(files.document("lib/a.ts")?.snapshot.baseline).toBe("changed");
  });

  it("closing the active tab shows its neighbour", async () => {
    const disk = new FakeDisk();
    for (const p of ["a", "b", "c"]) disk.put(p, p);
    const files = new OpenFiles(disk);
    for (const p of ["a", "b", "c"]) files.open(p);
    files.activate("b");
    files.close("b");
    expect(files.snapshot.active).toBe("c");
    files.close("c");
    expect(files.snapshot.active).toBe("a");
  });
});
