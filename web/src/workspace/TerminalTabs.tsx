/**
 * The terminal area: one tab per named session (`main`, then `2`, `3`…),
 * restored from `GET …/terminals` so a reload finds the same shells. Every
 * tab stays mounted while open, hidden when inactive, so switching tabs
 * never reconnects. Closing a tab ends its session on the VM.
 */
import { useCallback, useEffect, useRef, useState, type KeyboardEvent } from "react";
import { api, ApiError, isAbort } from "../api/client";
import { useLatest } from "../app/useLatest";
import { ConnectionIndicator, StateDot } from "../terminal/ConnectionIndicator";
import type { ConnectionState } from "../terminal/session";
import { TerminalView } from "../terminal/TerminalView";
import { Alert } from "../ui/Alert";
import { Button } from "../ui/Button";
import { CloseIcon, EyeIcon, PlusIcon, TerminalIcon } from "../ui/icons";
import { Spinner } from "../ui/Spinner";
import { nextSessionName, tabNames } from "./sessions";

/** A request to watch a session read-only (an agent's); `seq` makes a repeated request for the same session count. */
export interface WatchRequest {
  session: string;
  seq: number;
}

export interface TerminalTabsProps {
  projectId: string;
  /**
   * The VM is not up yet and the first terminal's attach starts it: there
   * are no sessions to list, so `main` opens at once.
   */
  waking?: boolean;
  /** A terminal's attach was refused for good (`limit_reached` when a wake is over the plan). */
  onRefused?: (session: string, code: string, message: string) => void;
  onLink?: (uri: string) => void;
  watch?: WatchRequest | null;
}

export function TerminalTabs({ projectId, waking = false, onRefused, onLink, watch }: TerminalTabsProps) {
  const [tabs, setTabs] = useState<string[] | null>(null);
  const [watched, setWatched] = useState<ReadonlySet<string>>(() => new Set());
  const [active, setActive] = useState<string | null>(null);
  const [states, setStates] = useState<Record<string, ConnectionState>>({});
  const [loadError, setLoadError] = useState<ApiError | null>(null);
  const [closeError, setCloseError] = useState<string | null>(null);
  const storageKey = `aether.activeTab.${projectId}`;
  const tabRefs = useRef(new Map<string, HTMLButtonElement>());
  const watchedRef = useLatest(watched);

  const load = useCallback(
    async (signal?: AbortSignal) => {
      setLoadError(null);
      try {
        const names = tabNames(await api.listTerminals(projectId, signal));
        const open = names.length > 0 ? names : ["main"];
        const remembered = sessionStorage.getItem(storageKey);
        setTabs(open);
        setActive(remembered && open.includes(remembered) ? remembered : (open[0] ?? null));
      } catch (e) {
        if (isAbort(e)) return;
        setLoadError(e instanceof ApiError ? e : new ApiError(0, "internal", "Could not list terminals."));
      }
    },
    [projectId, storageKey],
  );

  // Read once, at mount: a VM that came up since has only the sessions opened here.
  const [wokeAtMount] = useState(waking);
  useEffect(() => {
    if (wokeAtMount) {
      setTabs(["main"]);
      setActive("main");
      return;
    }
    const controller = new AbortController();
    void load(controller.signal);
    return () => controller.abort();
  }, [load, wokeAtMount]);

  useEffect(() => {
    if (active) sessionStorage.setItem(storageKey, active);
  }, [active, storageKey]);

  // Watching opens (or shows) a read-only tab on the session.
  const loaded = tabs !== null;
  useEffect(() => {
    if (!watch || !loaded) return;
    setWatched((w) => (w.has(watch.session) ? w : new Set([...w, watch.session])));
    setTabs((t) => (t === null || t.includes(watch.session) ? t : [...t, watch.session]));
    setActive(watch.session);
  }, [watch, loaded]);

  const onRefusedRef = useLatest(onRefused);
  const onState = useCallback(
    (session: string, state: ConnectionState) => {
      setStates((s) => ({ ...s, [session]: state }));
      if (state.kind === "failed") onRefusedRef.current?.(session, state.code, state.message);
    },
    [onRefusedRef],
  );

  function open() {
    const name = nextSessionName(tabs ?? []);
    setTabs((t) => [...(t ?? []), name]);
    setActive(name);
  }

  const close = useCallback(
    (session: string) => {
      setTabs((t) => {
        const list = t ?? [];
        const i = list.indexOf(session);
        const next = list.filter((s) => s !== session);
        setActive((a) => (a === session ? (next[Math.min(i, next.length - 1)] ?? null) : a));
        return next;
      });
      setStates(({ [session]: _, ...rest }) => rest);
      setCloseError(null);
      // A watched session is an agent's: closing the tab only stops watching.
      if (watchedRef.current.has(session)) {
        setWatched((w) => new Set([...w].filter((s) => s !== session)));
        return;
      }
      api.deleteTerminal(projectId, session).catch((e: unknown) => {
        if (e instanceof ApiError && e.status === 404) return;
        setCloseError(`Could not end terminal “${session}”: ${e instanceof ApiError ? e.message : "unknown error"}`);
      });
    },
    [projectId],
  );

  function onTabKey(event: KeyboardEvent<HTMLDivElement>) {
    if (!tabs || !active || (event.key !== "ArrowLeft" && event.key !== "ArrowRight")) return;
    const i = tabs.indexOf(active);
    const next = tabs[(i + (event.key === "ArrowRight" ? 1 : tabs.length - 1)) % tabs.length];
    if (!next) return;
    event.preventDefault();
    setActive(next);
    tabRefs.current.get(next)?.focus();
  }

  if (loadError) {
    return (
      <div className="flex flex-1 items-center justify-center p-6">
        <div className="flex max-w-sm flex-col items-center gap-3 text-center" role="alert">
          <h2 className="text-base font-semibold">Could not list the terminals</h2>
          <p className="text-sm text-muted">{loadError.message}</p>
          <Button onClick={() => void load()}>Try again</Button>
        </div>
      </div>
    );
  }

  const activeState = active ? states[active] : undefined;

  return (
    <div className="flex min-h-0 flex-1 flex-col">
      <div className="flex h-9 shrink-0 items-stretch border-b border-line bg-surface">
        <div role="tablist" aria-label="Terminals" className="flex min-w-0 items-stretch overflow-x-auto" onKeyDown={onTabKey}>
          {tabs === null ? (
            <span className="flex items-center gap-2 px-3 text-xs text-muted">
              <Spinner className="size-3.5" /> Loading terminals…
            </span>
          ) : (
            tabs.map((name) => {
              const selected = name === active;
              const state = states[name];
              const readonly = watched.has(name);
              return (
                <div
                  key={name}
                  className={`group relative flex shrink-0 items-center border-r border-line ${selected ? "bg-canvas text-fg" : "text-muted hover:bg-hover hover:text-fg"}`}
                >
                  {selected && <span className="absolute inset-x-0 top-0 h-0.5 bg-accent" aria-hidden="true" />}
                  <button
                    ref={(el) => {
                      if (el) tabRefs.current.set(name, el);
                      else tabRefs.current.delete(name);
                    }}
                    role="tab"
                    aria-selected={selected}
                    tabIndex={selected ? 0 : -1}
                    onClick={() => setActive(name)}
                    className="flex h-full items-center gap-2 pr-1 pl-3 font-mono text-xs outline-offset-[-2px]"
                    data-testid="terminal-tab"
                    data-session={name}
                    data-readonly={readonly || undefined}
                    title={readonly ? `Watching ${name} (read-only)` : undefined}
                  >
                    {readonly ? <EyeIcon className="size-3.5 opacity-70" /> : <TerminalIcon className="size-3.5 opacity-70" />}
                    {name}
                    {state && <StateDot state={state} />}
                  </button>
                  <button
                    aria-label={readonly ? `Stop watching ${name}` : `Close terminal ${name}`}
                    title={readonly ? "Stop watching (the session goes on)" : "Close terminal (ends its processes)"}
                    onClick={() => close(name)}
                    className={`mr-1.5 flex size-5 items-center justify-center rounded text-faint outline-offset-[-2px] hover:bg-raised hover:text-fg ${selected ? "" : "opacity-0 group-hover:opacity-100 focus-visible:opacity-100"}`}
                    data-testid="terminal-tab-close"
                    data-session={name}
                  >
                    <CloseIcon className="size-3" />
                  </button>
                </div>
              );
            })
          )}
        </div>
        <button
          onClick={open}
          disabled={tabs === null}
          aria-label="New terminal"
          title="New terminal"
          className="flex w-9 shrink-0 items-center justify-center text-muted outline-offset-[-2px] hover:bg-hover hover:text-fg disabled:opacity-40"
          data-testid="terminal-tab-new"
        >
          <PlusIcon />
        </button>
        <div className="flex-1" />
        <div className="flex max-w-[40%] items-center px-3">{activeState && <ConnectionIndicator state={activeState} />}</div>
      </div>

      {closeError && (
        <div className="border-b border-line p-2">
          <Alert action={<Button size="sm" variant="ghost" onClick={() => setCloseError(null)}>Dismiss</Button>}>{closeError}</Alert>
        </div>
      )}

      <div className="relative min-h-0 flex-1 bg-canvas">
        {tabs?.map((name) => (
          <TerminalView key={name} projectId={projectId} session={name} active={name === active} onState={onState} onClose={close} onLink={onLink} readonly={watched.has(name)} />
        ))}
        {tabs?.length === 0 && (
          <div className="flex h-full flex-col items-center justify-center gap-3 text-center">
            <span className="flex size-10 items-center justify-center rounded-full bg-raised text-muted">
              <TerminalIcon />
            </span>
            <p className="text-sm text-muted">No terminals open.</p>
            <Button variant="primary" icon={<PlusIcon />} onClick={open}>
              New terminal
            </Button>
          </div>
        )}
      </div>
    </div>
  );
}
