/**
 * The ports panel's state without React: the list (from `GET …/ports`, then
 * kept current by `ports` events), visibility changes, and opening a
 * preview. A `status` event (sent on every (re)connect of the event stream)
 * lists the ports again, so nothing is missed while disconnected.
 */
import type { ForwardedPort, PortVisibility, PreviewLink, ProjectEvent } from "../api/types";
import { parsePorts, parsePortsEvent, replacePort, withPath } from "./ports";

export interface PortsIO {
  list(signal?: AbortSignal): Promise<ForwardedPort[]>;
  setVisibility(port: number, visibility: PortVisibility): Promise<ForwardedPort>;
  open(port: number): Promise<PreviewLink>;
}

export interface PortsState {
  /** null until first listed. */
  ports: ForwardedPort[] | null;
  error: string | null;
  /** Ports with a visibility change or an open in flight. */
  busy: ReadonlySet<number>;
}

function message(error: unknown, fallback: string): string {
  return error instanceof Error && error.message ? error.message : fallback;
}

export class PortsStore {
  private state: PortsState = { ports: null, error: null, busy: new Set() };
  private readonly listeners = new Set<() => void>();
  private active = false;
  private listing: AbortController | null = null;
  /** Bumped by every event, so a slower listing cannot overwrite a newer event. */
  private version = 0;

  constructor(private readonly io: PortsIO) {}

  get snapshot(): PortsState {
    return this.state;
  }

  subscribe = (listener: () => void): (() => void) => {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  };

  /** Whether the VM runs: ports are listed while it does, and cleared when it stops. */
  setActive(active: boolean): void {
    if (active === this.active) return;
    this.active = active;
    if (active) void this.refresh();
    else {
      this.listing?.abort();
      this.listing = null;
      this.set({ ports: null, error: null, busy: new Set() });
    }
  }

  async refresh(): Promise<void> {
    if (!this.active) return;
    this.listing?.abort();
    const controller = new AbortController();
    this.listing = controller;
    const version = this.version;
    try {
      const ports = parsePorts(await this.io.list(controller.signal)) ?? [];
      if (controller.signal.aborted || version !== this.version) return;
      this.set({ ...this.state, ports, error: null });
    } catch (error) {
      if (controller.signal.aborted) return;
      this.set({ ...this.state, error: message(error, "Could not list the ports.") });
    } finally {
      if (this.listing === controller) this.listing = null;
    }
  }

  /** Feed one event from the project's stream. */
  onEvent(event: ProjectEvent): void {
    if (event.type === "status") {
      if (event.project.status === "running") void this.refresh();
      return;
    }
    if (event.event !== "ports" || !this.active) return;
    const ports = parsePortsEvent(event.data);
    if (!ports) return;
    this.version++;
    this.listing?.abort();
    this.set({ ...this.state, ports, error: null });
  }

  async setVisibility(port: number, visibility: PortVisibility): Promise<void> {
    this.mark(port, true);
    try {
      const updated = await this.io.setVisibility(port, visibility);
      this.version++;
      this.set({ ...this.state, ports: replacePort(this.state.ports ?? [], { ...updated, visibility: updated.visibility ?? visibility }), error: null });
    } catch (error) {
      this.set({ ...this.state, error: message(error, "Could not change the port's visibility.") });
    } finally {
      this.mark(port, false);
    }
  }

  /**
   * The URL that opens `port`'s preview at `path`: a public port's preview
   * URL as it is; for a private (or unlisted) one, a fresh one-time link,
   * which sets the preview cookie and lands on `/`.
   */
  async previewUrl(port: number, path = "/"): Promise<string> {
    const listed = this.state.ports?.find((p) => p.port === port);
    if (listed?.visibility === "public") return withPath(listed.preview_url, path);
    this.mark(port, true);
    try {
      return (await this.io.open(port)).url;
    } finally {
      this.mark(port, false);
    }
  }

  /** Stop listing; a later `setActive(true)` starts again. */
  dispose(): void {
    this.active = false;
    this.listing?.abort();
    this.listing = null;
  }

  private mark(port: number, on: boolean): void {
    const busy = new Set(this.state.busy);
    if (on) busy.add(port);
    else busy.delete(port);
    this.set({ ...this.state, busy });
  }

  private set(next: PortsState): void {
    this.state = next;
    for (const listener of this.listeners) listener();
  }
}

/**
 * Open a URL we only know after a request, in a new tab: the tab is opened
 * at once (inside the click, so no popup blocker minds) and sent on when
 * the URL arrives; closed again if it never does.
 */
export async function openInNewTab(url: () => Promise<string>, win: Pick<Window, "open"> = window): Promise<void> {
  const tab = win.open("about:blank", "_blank");
  try {
    const target = await url();
    if (tab) {
      tab.opener = null;
      tab.location.href = target;
    } else {
      win.open(target, "_blank", "noopener");
    }
  } catch (error) {
    tab?.close();
    throw error;
  }
}
