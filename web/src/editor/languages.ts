/**
 * Which syntax mode a file gets, by its name. Only ids and labels here; the
 * CodeMirror language packages are loaded on demand by
 * `codemirror/languages.ts`, so a mode costs bytes only once a file needs it.
 */
import { baseName, extensionOf } from "../files/paths";

export type LanguageId =
  | "javascript"
  | "jsx"
  | "typescript"
  | "tsx"
  | "json"
  | "css"
  | "html"
  | "markdown"
  | "python"
  | "rust"
  | "yaml"
  | "toml"
  | "shell"
  | "dockerfile"
  | "plain";

export const LANGUAGE_LABELS: Record<LanguageId, string> = {
  javascript: "JavaScript",
  jsx: "JavaScript JSX",
  typescript: "TypeScript",
  tsx: "TypeScript JSX",
  json: "JSON",
  css: "CSS",
  html: "HTML",
  markdown: "Markdown",
  python: "Python",
  rust: "Rust",
  yaml: "YAML",
  toml: "TOML",
  shell: "Shell",
  dockerfile: "Dockerfile",
  plain: "Plain text",
};

const BY_EXTENSION: Record<string, LanguageId> = {
  js: "javascript",
  mjs: "javascript",
  cjs: "javascript",
  jsx: "jsx",
  ts: "typescript",
  mts: "typescript",
  cts: "typescript",
  tsx: "tsx",
  json: "json",
  jsonc: "json",
  webmanifest: "json",
  css: "css",
  html: "html",
  htm: "html",
  md: "markdown",
  markdown: "markdown",
  py: "python",
  pyi: "python",
  rs: "rust",
  yaml: "yaml",
  yml: "yaml",
  toml: "toml",
  sh: "shell",
  bash: "shell",
  zsh: "shell",
  bashrc: "shell",
  zshrc: "shell",
  profile: "shell",
  bash_profile: "shell",
  env: "shell",
  dockerfile: "dockerfile",
};

const BY_NAME: Record<string, LanguageId> = {
  dockerfile: "dockerfile",
  containerfile: "dockerfile",
  "cargo.lock": "toml",
  pipfile: "toml",
};

export function languageOf(path: string): LanguageId {
  const name = baseName(path).toLowerCase();
  return BY_NAME[name] ?? BY_EXTENSION[extensionOf(name)] ?? "plain";
}
