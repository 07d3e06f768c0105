/**
 * The ports section under the file tree: what listens in the VM, a
 * public/private switch per port, and "Open preview". Private previews open
 * through a one-time link (`POST …/open`), public ones at their URL.
 */
import { useState, useSyncExternalStore } from "react";
import type { ForwardedPort } from "../api/types";
import { Button } from "../ui/Button";
import { LinkIcon } from "../ui/icons";
import { Spinner } from "../ui/Spinner";
import { openInNewTab, type PortsStore } from "./store";

export function PortsPanel({ store }: { store: PortsStore }) {
  const { ports, error, busy } = useSyncExternalStore(store.subscribe, () => store.snapshot);
  const [openError, setOpenError] = useState<string | null>(null);

  function open(port: number) {
    setOpenError(null);
    openInNewTab(() => store.previewUrl(port)).catch((e: unknown) => {
      setOpenError(e instanceof Error && e.message ? e.message : "Could not open the preview.");
    });
  }

  const shownError = openError ?? error;

  return (
    <section className="flex max-h-[40%] min-h-0 shrink-0 flex-col border-t border-line bg-surface/60" aria-label="Ports" data-testid="ports-panel">
      <div className="flex h-9 shrink-0 items-center gap-2 border-b border-line bg-surface pr-1.5 pl-3">
        <span className="text-[11px] font-semibold tracking-wider text-muted uppercase">Ports</span>
        {ports && ports.length > 0 && (
          <span className="rounded-full bg-raised px-1.5 text-[11px] text-muted tabular-nums" data-testid="ports-count">
            {ports.length}
          </span>
        )}
      </div>
      <div className="min-h-0 flex-1 overflow-auto py-1">
        {shownError && (
          <p role="alert" className="px-3 py-1.5 text-xs text-danger">
            {shownError}
          </p>
        )}
        {ports === null ? (
          !error && (
            <div className="flex items-center gap-2 px-3 py-2 text-xs text-faint">
              <Spinner className="size-3" /> Looking for ports…
            </div>
          )
        ) : ports.length === 0 ? (
          <p className="px-3 py-2 text-xs leading-relaxed text-faint" data-testid="ports-empty">
            No ports yet — start a server (e.g. <code className="font-mono text-muted">python3 -m http.server 8000</code>) and it appears here
          </p>
        ) : (
          <ul>
            {ports.map((p) => (
              <PortRow
                key={p.port}
                port={p}
                busy={busy.has(p.port)}
                onOpen={() => open(p.port)}
                onVisibility={(publicNow) => void store.setVisibility(p.port, publicNow ? "public" : "private")}
              />
            ))}
          </ul>
        )}
      </div>
    </section>
  );
}

function PortRow({ port, busy, onOpen, onVisibility }: { port: ForwardedPort; busy: boolean; onOpen: () => void; onVisibility: (publicNow: boolean) => void }) {
  const isPublic = port.visibility === "public";
  const label = isPublic ? "Public: anyone with the link can open it" : "Private: only you can open it";
  return (
    <li className="flex flex-col gap-0.5 px-3 py-1.5 text-[13px] hover:bg-hover/50" data-testid="port-row" data-port={port.port} data-visibility={port.visibility}>
      <div className="flex min-w-0 items-center gap-2">
        <span className="font-mono font-medium text-fg tabular-nums">{port.port}</span>
        <span className="min-w-0 flex-1 truncate text-xs text-muted" title={port.process ?? undefined}>
          {port.process}
        </span>
        <Button
          size="sm"
          variant="ghost"
          icon={<LinkIcon className="size-3.5" />}
          onClick={onOpen}
          disabled={busy}
          aria-label={`Open preview of port ${port.port}`}
          title={`Open preview of port ${port.port}`}
          className="-mr-1.5 h-6"
          data-testid="port-open"
        >
          Open preview
        </Button>
      </div>
      <div className="flex min-w-0 items-center gap-2">
        <span className="min-w-0 flex-1 truncate font-mono text-[11px] text-faint">{port.address}</span>
        <button
          type="button"
          role="switch"
          aria-checked={isPublic}
          aria-label={`Port ${port.port} public`}
          title={label}
          disabled={busy}
          onClick={() => onVisibility(!isPublic)}
          className="flex shrink-0 items-center gap-1.5 text-[11px] text-muted hover:text-fg disabled:opacity-60"
          data-testid="port-visibility"
        >
          <span>{isPublic ? "Public" : "Private"}</span>
          <span className={`relative h-4 w-7 rounded-full transition-colors ${isPublic ? "bg-accent" : "bg-line-strong"}`}>
            <span className={`absolute top-0.5 size-3 rounded-full bg-white transition-[left] ${isPublic ? "left-3.5" : "left-0.5"}`} />
          </span>
        </button>
      </div>
    </li>
  );
}
