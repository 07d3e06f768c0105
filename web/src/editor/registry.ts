/**
 * `window.__aether.editors[path]`: a read-only probe per open text editor,
 * so browser tests can read what the editor holds (CodeMirror only renders
 * the lines in view).
 */
export interface EditorProbe {
  text(): string;
  dirty(): boolean;
}

declare global {
  interface AetherProbes {
    editors?: Record<string, EditorProbe>;
  }
}

export function registerEditor(path: string, probe: EditorProbe): () => void {
  window.__aether ??= { terminals: {} };
  const editors = (window.__aether.editors ??= {});
  editors[path] = probe;
  return () => {
    if (editors[path] === probe) delete editors[path];
  };
}
