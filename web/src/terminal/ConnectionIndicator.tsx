/** A dot and a few words for a terminal's connection: connected, reconnecting, exited with its code. */
import type { ConnectionState } from "./session";

export function describeState(state: ConnectionState): { label: string; dot: string; tone: string } {
  switch (state.kind) {
    case "connected":
      return { label: "Connected", dot: "bg-ok", tone: "text-muted" };
    case "connecting":
      return { label: "Connecting…", dot: "bg-faint animate-pulse", tone: "text-muted" };
    case "starting":
      return { label: "Starting the machine…", dot: "bg-accent animate-pulse", tone: "text-muted" };
    case "reconnecting":
      return { label: state.attempt > 1 ? `Reconnecting… (attempt ${state.attempt})` : "Reconnecting…", dot: "bg-warn animate-pulse", tone: "text-warn" };
    case "exited":
      return { label: `Exited with code ${state.code}`, dot: state.code === 0 ? "bg-faint" : "bg-danger", tone: "text-muted" };
    case "failed":
      return { label: `Disconnected: ${state.message}`, dot: "bg-danger", tone: "text-danger" };
    case "closed":
      return { label: "Closed", dot: "bg-faint", tone: "text-faint" };
  }
}

export function StateDot({ state }: { state: ConnectionState }) {
  return <span className={`size-1.5 shrink-0 rounded-full ${describeState(state).dot}`} aria-hidden="true" />;
}

export function ConnectionIndicator({ state }: { state: ConnectionState }) {
  const { label, dot, tone } = describeState(state);
  return (
    <span
      className={`inline-flex min-w-0 items-center gap-2 text-xs ${tone}`}
      role="status"
      aria-live="polite"
      data-testid="terminal-connection"
      data-state={state.kind}
      title={state.kind === "reconnecting" ? state.reason : undefined}
    >
      <span className={`size-1.5 shrink-0 rounded-full ${dot}`} aria-hidden="true" />
      <span className="truncate">{label}</span>
    </span>
  );
}
