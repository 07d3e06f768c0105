/**
 * Paths as the file tree and the editor use them: relative to the project
 * home, `/`-separated, "" for the home itself, no leading or trailing slash
 * (the shape the hub answers with). Pure string work, shared by the tree,
 * the watch and the editor's tabs.
 */
import { encodePathRef, type PathRef } from "../api/client";
import type { DirEntry } from "../api/types";

/** The folder holding `path` ("" for a top-level name and for the home). */
export function parentPath(path: string): string {
  const i = path.lastIndexOf("/");
  return i < 0 ? "" : path.slice(0, i);
}

/** The last name of `path` ("" for the home). */
export function baseName(path: string): string {
  return path.slice(path.lastIndexOf("/") + 1);
}

export function joinPath(dir: string, name: string): string {
  return dir === "" ? name : `${dir}/${name}`;
}

/** True when `path` is `ancestor` or lies below it; everything lies within the home (""). */
export function isWithin(path: string, ancestor: string): boolean {
  return ancestor === "" || path === ancestor || path.startsWith(`${ancestor}/`);
}

/** `path` moved from below `from` to below `to`, or null when it is not within `from`. */
export function movedPath(path: string, from: string, to: string): string | null {
  if (path === from) return to;
  if (from !== "" && path.startsWith(`${from}/`)) return joinPath(to, path.slice(from.length + 1));
  return null;
}

/** The ref for an entry of the folder at `parent`: plain text, or encoded bytes once a name is not UTF-8. */
export function childRef(parent: PathRef, parentPath: string, entry: Pick<DirEntry, "name" | "raw_name">): PathRef {
  const text = joinPath(parentPath, entry.name);
  if (typeof parent === "string" && entry.raw_name === undefined) return text;
  const component = entry.raw_name ?? encodeURIComponent(entry.name);
  const base = encodePathRef(parent);
  return { encoded: base === "" ? component : `${base}/${component}`, text };
}

/**
 * What is wrong with a name typed for a new or renamed entry, or null when
 * it is fine. `/` is allowed when `nested` (a new file may name folders to
 * create on the way).
 */
export function invalidName(name: string, nested: boolean): string | null {
  if (name.trim() === "") return "Enter a name.";
  if (name.includes("\0")) return "A name cannot contain a NUL character.";
  const parts = nested ? name.split("/") : [name];
  if (!nested && name.includes("/")) return "A name cannot contain “/”.";
  if (parts.some((p) => p === "")) return "A path cannot have empty parts (“//”, or “/” at either end).";
  if (parts.some((p) => p === "." || p === "..")) return "“.” and “..” are not names.";
  if (parts.some((p) => new TextEncoder().encode(p).length > 255)) return "A name can be at most 255 bytes long.";
  return null;
}

/** `src/app.ts` → `ts`; `Makefile` → `makefile`; `.bashrc` → `bashrc`. Lower case. */
export function extensionOf(name: string): string {
  const base = baseName(name).toLowerCase();
  const dot = base.lastIndexOf(".");
  return dot < 0 ? base : base.slice(dot + 1);
}
