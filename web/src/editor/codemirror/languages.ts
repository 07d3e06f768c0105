/**
 * The CodeMirror language for a mode id, each package loaded on demand (a
 * chunk of its own), so opening a Python file never downloads HTML's parser.
 */
import { StreamLanguage } from "@codemirror/language";
import type { Extension } from "@codemirror/state";
import type { LanguageId } from "../languages";

const cache = new Map<LanguageId, Promise<Extension>>();

export function loadLanguage(id: LanguageId): Promise<Extension> {
  let loading = cache.get(id);
  if (!loading) {
    loading = load(id).catch((error: unknown) => {
      cache.delete(id); // a failed chunk load may work next time
      throw error;
    });
    cache.set(id, loading);
  }
  return loading;
}

async function load(id: LanguageId): Promise<Extension> {
  switch (id) {
    case "javascript":
      return (await import("@codemirror/lang-javascript")).javascript();
    case "jsx":
      return (await import("@codemirror/lang-javascript")).javascript({ jsx: true });
    case "typescript":
      return (await import("@codemirror/lang-javascript")).javascript({ typescript: true });
    case "tsx":
      return (await import("@codemirror/lang-javascript")).javascript({ typescript: true, jsx: true });
    case "json":
      return (await import("@codemirror/lang-json")).json();
    case "css":
      return (await import("@codemirror/lang-css")).css();
    case "html":
      return (await import("@codemirror/lang-html")).html();
    case "markdown":
      return (await import("@codemirror/lang-markdown")).markdown();
    case "python":
      return (await import("@codemirror/lang-python")).python();
    case "rust":
      return (await import("@codemirror/lang-rust")).rust();
    case "yaml":
      return (await import("@codemirror/lang-yaml")).yaml();
    case "toml":
      return StreamLanguage.define((await import("@codemirror/legacy-modes/mode/toml")).toml);
    case "shell":
      return StreamLanguage.define((await import("@codemirror/legacy-modes/mode/shell")).shell);
    case "dockerfile":
      return StreamLanguage.define((await import("@codemirror/legacy-modes/mode/dockerfile")).dockerFile);
    case "plain":
      return [];
  }
}
