/**
 * One terminal tab: an xterm.js instance wired to a `TerminalSession`. The
 * xterm instance lives as long as the tab, across reconnects, so a dropped
 * socket only costs a short "Reconnecting…" and never a cleared screen.
 * WebGL draws when it can; if it cannot start (or loses its context) xterm
 * falls back to its DOM renderer.
 */
import { FitAddon } from "@xterm/addon-fit";
import { WebLinksAddon } from "@xterm/addon-web-links";
import { WebglAddon } from "@xterm/addon-webgl";
import { Terminal, type ITheme } from "@xterm/xterm";
import "@xterm/xterm/css/xterm.css";
import { useEffect, useRef, useState } from "react";
import { api, ApiError } from "../api/client";
import { useLatest } from "../app/useLatest";
import { Button } from "../ui/Button";
import { Spinner } from "../ui/Spinner";
import { registerTerminal, type TerminalProbe } from "./registry";
import { browserSocketFactory, terminalUrl, TerminalSession, type ConnectionState } from "./session";

const FONT = 'ui-monospace, "SFMono-Regular", "JetBrains Mono", "Cascadia Mono", Menlo, Consolas, "DejaVu Sans Mono", "Liberation Mono", monospace';
const GAP_LINE = "\r\n\x1b[2m[… output lost while disconnected …]\x1b[0m\r\n";

const THEME: ITheme = {
  background: "#0b0d12",
  foreground: "#dfe3ea",
  cursor: "#c9c2ff",
  cursorAccent: "#0b0d12",
  selectionBackground: "#7c6cff55",
  black: "#1b1f29",
  red: "#f87171",
  green: "#4ade80",
  yellow: "#facc15",
  blue: "#60a5fa",
  magenta: "#c084fc",
  cyan: "#22d3ee",
  white: "#d4d8e0",
  brightBlack: "#5b6475",
  brightRed: "#fca5a5",
  brightGreen: "#86efac",
  brightYellow: "#fde047",
  brightBlue: "#93c5fd",
  brightMagenta: "#d8b4fe",
  brightCyan: "#67e8f9",
  brightWhite: "#f5f7fa",
};

interface Handle {
  term: Terminal;
  conn: TerminalSession;
  fit: () => void;
}

export interface TerminalViewProps {
  projectId: string;
  session: string;
  active: boolean;
  onState: (session: string, state: ConnectionState) => void;
  onClose: (session: string) => void;
  /** Open a link the user clicked (e.g. `localhost:PORT` → that port's preview); default: a new tab. */
  onLink?: (uri: string) => void;
  /** Watch only (an agent's session): no input, no resizing, no restart. */
  readonly?: boolean;
}

export function TerminalView({ projectId, session, active, onState, onClose, onLink, readonly = false }: TerminalViewProps) {
  const host = useRef<HTMLDivElement>(null);
  const handle = useRef<Handle | null>(null);
  const [state, setState] = useState<ConnectionState>({ kind: "connecting" });
  const [restarting, setRestarting] = useState(false);
  const onStateRef = useLatest(onState);
  const onLinkRef = useLatest(onLink);

  useEffect(() => {
    const el = host.current;
    if (!el) return;
    let disposed = false;

    const term = new Terminal({
      fontFamily: FONT,
      fontSize: 13,
      lineHeight: 1.25,
      cursorBlink: !readonly,
      disableStdin: readonly,
      scrollback: 10_000,
      macOptionIsMeta: true,
      allowTransparency: false,
      theme: THEME,
    });
    const fitAddon = new FitAddon();
    term.loadAddon(fitAddon);
    // Links open through `onLink`, which sends `localhost:PORT` to that port's preview.
    term.loadAddon(
      new WebLinksAddon((_event, uri) => {
        if (onLinkRef.current) onLinkRef.current(uri);
        else window.open(uri, "_blank", "noopener,noreferrer");
      }),
    );
    term.open(el);
    try {
      const webgl = new WebglAddon();
      webgl.onContextLoss(() => webgl.dispose());
      term.loadAddon(webgl);
    } catch {
      // No WebGL here: xterm keeps its DOM renderer.
    }

    const fit = () => {
      if (disposed || el.clientWidth === 0 || el.clientHeight === 0) return;
      try {
        fitAddon.fit();
      } catch {
        // not laid out yet
      }
    };
    fit();

    const probe: TerminalProbe = {
      text: () => {
        const buffer = term.buffer.active;
        const lines: string[] = [];
        for (let i = 0; i < buffer.length; i++) lines.push(buffer.getLine(i)?.translateToString(true) ?? "");
        while (lines.length > 0 && lines.at(-1) === "") lines.pop();
        return lines.join("\n");
      },
      state: () => conn.connectionState,
      offset: () => conn.outputOffset,
      readyAt: null,
      startingAt: null,
    };

    const conn = new TerminalSession(
      session,
      { cols: term.cols, rows: term.rows },
      {
        getTicket: async () => (await api.createTicket(projectId, "terminal")).ticket,
        buildUrl: (params) => terminalUrl(window.location, projectId, params, { readonly }),
        createSocket: browserSocketFactory,
        isFatalTicketError: (error) => error instanceof ApiError && [401, 403, 404].includes(error.status),
      },
      {
        onOutput: (bytes) => term.write(bytes),
        onGap: () => term.write(GAP_LINE),
        onState: (next) => {
          if (next.kind === "starting") probe.startingAt ??= Date.now();
          if (disposed) return;
          setState(next);
          onStateRef.current(session, next);
        },
        onReady: () => {
          probe.readyAt ??= Date.now();
        },
      },
    );

    const subscriptions = readonly
      ? []
      : [
          term.onData((data) => conn.sendInput(data)),
          // Some mouse reports arrive as binary strings: one byte per char.
          term.onBinary((data) => conn.sendBytes(Uint8Array.from(data, (c) => c.charCodeAt(0) & 0xff))),
          term.onResize(({ cols, rows }) => conn.resize(cols, rows)),
        ];

    let frame = 0;
    const observer = new ResizeObserver(() => {
      cancelAnimationFrame(frame);
      frame = requestAnimationFrame(fit);
    });
    observer.observe(el);

    const unregister = registerTerminal(session, probe);
    handle.current = { term, conn, fit };
    conn.start();

    return () => {
      disposed = true;
      handle.current = null;
      cancelAnimationFrame(frame);
      observer.disconnect();
      unregister();
      conn.dispose();
      for (const s of subscriptions) s.dispose();
      term.dispose();
    };
  }, [projectId, session, onStateRef, readonly]);

  useEffect(() => {
    if (!active) return;
    const h = handle.current;
    if (!h) return;
    h.fit();
    h.term.focus();
  }, [active]);

  async function restart() {
    const h = handle.current;
    if (!h) return;
    if (state.kind === "exited") {
      // An exited session may linger for its replay; end it so the attach starts a new shell.
      setRestarting(true);
      try {
        await api.deleteTerminal(projectId, session);
      } catch {
        // already gone, or the next attach will say what is wrong
      }
      setRestarting(false);
    }
    if (handle.current !== h) return;
    h.term.reset();
    h.conn.restart();
    h.term.focus();
  }

  const ended = state.kind === "exited" || state.kind === "failed";

  return (
    <div
      className="absolute inset-0 flex flex-col"
      hidden={!active}
      role="tabpanel"
      aria-label={`Terminal ${session}`}
      data-testid={`terminal-${session}`}
      data-state={state.kind}
    >
      <div className="relative min-h-0 flex-1 py-2 pl-3">
        <div ref={host} className="h-full w-full" />
        {state.kind === "starting" && (
          <div className="pointer-events-none absolute inset-0 flex items-center justify-center" role="status" data-testid="terminal-starting">
            <span className="flex items-center gap-2 rounded-md border border-line bg-surface/90 px-3 py-2 text-sm text-muted">
              <Spinner className="size-4 text-accent" /> starting… your terminal attaches when the machine is up
            </span>
          </div>
        )}
      </div>
      {ended && (
        <div className="flex items-center gap-3 border-t border-line bg-surface px-4 py-2 text-sm" role="status" data-testid="terminal-ended">
          <span className={`min-w-0 flex-1 text-muted ${state.kind === "failed" ? "" : "truncate"}`}>
            {state.kind === "exited"
              ? `The process exited with code ${state.code}.`
              : state.code === "limit_reached"
                ? `The machine can't start: ${state.message}`
                : `Disconnected: ${state.message}`}
          </span>
          {!(readonly && state.kind === "exited") && (
            <Button size="sm" variant="secondary" loading={restarting} onClick={() => void restart()} data-testid="terminal-restart">
              {state.kind === "exited" ? "Restart" : "Reconnect"}
            </Button>
          )}
          <Button size="sm" variant="ghost" onClick={() => onClose(session)}>
            Close tab
          </Button>
        </div>
      )}
    </div>
  );
}
