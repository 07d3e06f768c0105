/** A project's VM status as a coloured pill; transitional states pulse. */
import type { ProjectStatus } from "../api/types";

const STYLES: Record<ProjectStatus, { label: string; pill: string; dot: string }> = {
  running: { label: "Running", pill: "bg-ok/10 text-ok border-ok/25", dot: "bg-ok" },
  starting: { label: "Starting", pill: "bg-warn/10 text-warn border-warn/25", dot: "bg-warn animate-pulse" },
  stopping: { label: "Stopping", pill: "bg-warn/10 text-warn border-warn/25", dot: "bg-warn animate-pulse" },
  stopped: { label: "Stopped", pill: "bg-raised text-muted border-line", dot: "bg-faint" },
  error: { label: "Error", pill: "bg-danger/10 text-danger border-danger/25", dot: "bg-danger" },
};

export function isTransitional(status: ProjectStatus): boolean {
  return status === "starting" || status === "stopping";
}

export function StatusBadge({ status, title, testId }: { status: ProjectStatus; title?: string; testId?: string }) {
  const style = STYLES[status];
  return (
    <span
      className={`inline-flex h-6 w-[5.75rem] shrink-0 items-center justify-center gap-1.5 rounded-full border text-xs font-medium ${style.pill}`}
      title={title}
      data-testid={testId}
      data-status={status}
    >
      <span className={`size-1.5 rounded-full ${style.dot}`} aria-hidden="true" />
      {style.label}
    </span>
  );
}
