/**
 * A running VM's idle countdown, from `GET /api/projects/{id}/activity`:
 * when it stops if nothing happens, and what keeps it awake.
 */
import type { Activity } from "../api/types";

const REASONS: Record<string, string> = {
  terminal_input: "terminal input",
  file_write: "file writes",
  ssh_session: "an SSH session",
  agent_run: "an agent's command",
  preview: "preview visits",
  cpu: "CPU work",
};

/** Seconds left before the idle stop (never negative), or null when not counting down. */
export function secondsLeft(a: Activity | null, now: number): number | null {
  if (!a || a.status !== "running" || !a.idle_stop_at) return null;
  return Math.max(0, Math.floor((new Date(a.idle_stop_at).getTime() - now) / 1000));
}

/** "4:05", "1:02:03". */
export function clock(seconds: number): string {
  const h = Math.floor(seconds / 3600);
  const m = Math.floor((seconds % 3600) / 60);
  const s = seconds % 60;
  const two = (n: number) => n.toString().padStart(2, "0");
  return h > 0 ? `${h}:${two(m)}:${two(s)}` : `${m}:${two(s)}`;
}

/** "Stops in 4:05 if idle · awake: CPU work, an SSH session", or null. */
export function countdownText(a: Activity | null, now: number): string | null {
  const left = secondsLeft(a, now);
  if (left === null || !a) return null;
  const why = a.awake_because.map((r) => REASONS[r] ?? r);
  const head = left === 0 ? "Stopping: idle" : `Stops in ${clock(left)} if idle`;
  return why.length > 0 ? `${head} · awake: ${why.join(", ")}` : head;
}

/** What the project list says about a VM the hub stopped by itself. */
export function stopReasonText(reason: string | null | undefined): string | null {
  switch (reason) {
    case "idle":
      return "Stopped after being idle";
    case "compute_limit":
      return "Stopped: compute hours used up";
    case "payment":
      return "Stopped: payment failed";
    case null:
    case undefined:
    case "":
      return null;
    default:
      return "Stopped by aether";
  }
}
