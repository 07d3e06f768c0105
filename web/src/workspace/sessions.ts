/** Which terminal sessions become tabs, in what order, and what a new tab is called. */
import type { TerminalInfo } from "../api/types";

/** Sessions this page shows as tabs: live ones, not agents' (the Agents dialog watches those, read-only). */
export function tabNames(list: readonly TerminalInfo[]): string[] {
  return list
    .filter((t) => !t.exited && !t.session.startsWith("agent-"))
    .map((t) => t.session)
    .sort(compareSessions);
}

/** `main` first, then numbers in numeric order, then any other name. */
export function compareSessions(a: string, b: string): number {
  const rank = (s: string) => (s === "main" ? 0 : /^\d+$/.test(s) ? 1 : 2);
  return rank(a) - rank(b) || (rank(a) === 1 ? Number(a) - Number(b) : a.localeCompare(b));
}

/** `main` when it is free, else the smallest free number from 2. */
export function nextSessionName(open: readonly string[]): string {
  if (!open.includes("main")) return "main";
  for (let n = 2; ; n++) if (!open.includes(String(n))) return String(n);
}
