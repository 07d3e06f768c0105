/** A file tree or tab icon: folders, links and files, tinted by the kind of file so a tree scans at a glance. */
import type { FileKind } from "../api/types";
import { FileBinaryIcon, FileCodeIcon, FileIcon as PlainFileIcon, FileTextIcon, FolderIcon, FolderOpenIcon, LinkIcon } from "../ui/icons";
import { extensionOf } from "./paths";

const CODE: Record<string, string> = {
  ts: "text-[#60a5fa]",
  tsx: "text-[#60a5fa]",
  mts: "text-[#60a5fa]",
  cts: "text-[#60a5fa]",
  js: "text-[#facc15]",
  jsx: "text-[#facc15]",
  mjs: "text-[#facc15]",
  cjs: "text-[#facc15]",
  json: "text-[#fbbf24]",
  css: "text-[#c084fc]",
  scss: "text-[#c084fc]",
  html: "text-[#fb923c]",
  htm: "text-[#fb923c]",
  py: "text-[#34d399]",
  rs: "text-[#fb923c]",
  go: "text-[#22d3ee]",
  sh: "text-[#4ade80]",
  bash: "text-[#4ade80]",
  zsh: "text-[#4ade80]",
  yaml: "text-[#f472b6]",
  yml: "text-[#f472b6]",
  toml: "text-[#f472b6]",
  c: "text-[#93c5fd]",
  h: "text-[#93c5fd]",
  cpp: "text-[#93c5fd]",
  java: "text-[#fb923c]",
  rb: "text-[#f87171]",
  php: "text-[#a5b4fc]",
  sql: "text-[#fde047]",
  vue: "text-[#4ade80]",
  svelte: "text-[#fb923c]",
};
const TEXT = new Set(["md", "markdown", "txt", "rst", "log", "csv", "license", "readme", "gitignore", "env", "lock"]);
const MEDIA = new Set(["png", "jpg", "jpeg", "gif", "webp", "ico", "svg", "bmp", "pdf", "zip", "gz", "tar", "wasm", "woff", "woff2", "ttf", "mp3", "mp4"]);

export function FileIcon({ name, type, open = false, className = "size-4" }: { name: string; type: FileKind; open?: boolean; className?: string }) {
  if (type === "dir") {
    const Folder = open ? FolderOpenIcon : FolderIcon;
    return <Folder className={`${className} shrink-0 text-[#a89dff]`} />;
  }
  if (type === "symlink") return <LinkIcon className={`${className} shrink-0 text-[#22d3ee]`} />;
  if (type === "other") return <FileBinaryIcon className={`${className} shrink-0 text-faint`} />;
  const ext = extensionOf(name);
  const tint = CODE[ext];
  if (tint) return <FileCodeIcon className={`${className} shrink-0 ${tint}`} />;
  if (MEDIA.has(ext)) return <FileBinaryIcon className={`${className} shrink-0 text-[#67e8f9]`} />;
  if (TEXT.has(ext)) return <FileTextIcon className={`${className} shrink-0 text-muted`} />;
  return <PlainFileIcon className={`${className} shrink-0 text-muted`} />;
}
