/**
 * `window.__aether.terminals[session]`: a read-only probe per open terminal
 * so browser tests can read the screen through xterm's buffer (with WebGL
 * the text is drawn on a canvas, not in the DOM). Always present: it only
 * reads.
 */
import type { ConnectionState } from "./session";

export interface TerminalProbe {
  /** The whole buffer, scrollback included, one line per row, trailing blanks trimmed. */
  text(): string;
  state(): ConnectionState;
  /** One past the last output byte on screen; null before the first `ready`. */
  offset(): number | null;
  /** `Date.now()` when this page's first `ready` arrived, null before. */
  readyAt: number | null;
  /** `Date.now()` when the hub first said it was starting the VM for this terminal, null if it never did. */
  startingAt: number | null;
}

declare global {
  /** Everything the app exposes to browser tests; other features add their own fields. */
  interface AetherProbes {
    terminals: Record<string, TerminalProbe>;
  }
  interface Window {
    __aether?: AetherProbes;
  }
}

function probes(): AetherProbes {
  window.__aether ??= { terminals: {} };
  return window.__aether;
}

/** Publish a terminal's probe; the returned function withdraws it (if it is still this one). */
export function registerTerminal(session: string, probe: TerminalProbe): () => void {
  probes().terminals[session] = probe;
  return () => {
    const terminals = probes().terminals;
    if (terminals[session] === probe) delete terminals[session];
  };
}
