/**
 * The environment-variable editor's model, without React: rows as the user
 * edits them, turned into the `env_vars` object `PATCH /api/projects/{id}`
 * takes. Only what the form alone can tell is checked here (a value with no
 * name, a name twice); which names are allowed is the hub's rule, and its
 * message is what the editor shows.
 *
 * A VM gets its variables as its environment when it starts, so a change
 * reaches a running VM's shells only after a restart; `applyNote` says so.
 */
import type { ProjectStatus } from "../api/types";

export interface EnvRow {
  /** Stable across edits, for React's keys and the reveal toggles. */
  key: number;
  name: string;
  value: string;
}

export type EnvVars = Record<string, string>;

/** The saved variables as rows, by name. */
export function rowsFrom(vars: EnvVars | null | undefined): EnvRow[] {
  return Object.entries(vars ?? {})
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([name, value], key) => ({ key, name, value }));
}

function nextKey(rows: readonly EnvRow[]): number {
  return rows.reduce((max, r) => Math.max(max, r.key), -1) + 1;
}

/** Rows with an empty one added at the end. */
export function addRow(rows: readonly EnvRow[]): EnvRow[] {
  return [...rows, { key: nextKey(rows), name: "", value: "" }];
}

export function updateRow(rows: readonly EnvRow[], key: number, patch: Partial<Omit<EnvRow, "key">>): EnvRow[] {
  return rows.map((r) => (r.key === key ? { ...r, ...patch } : r));
}

export function removeRow(rows: readonly EnvRow[], key: number): EnvRow[] {
  return rows.filter((r) => r.key !== key);
}

export type Collected = { ok: true; vars: EnvVars } | { ok: false; key: number; message: string };

/**
 * The object to save. Names are trimmed; a row with neither name nor value
 * is left out (an "add" the user didn't fill in); values are kept as typed.
 */
export function collect(rows: readonly EnvRow[]): Collected {
  const vars: EnvVars = {};
  for (const row of rows) {
    const name = row.name.trim();
    if (name === "") {
      if (row.value === "") continue;
      return { ok: false, key: row.key, message: "A variable needs a name." };
    }
    if (Object.hasOwn(vars, name)) return { ok: false, key: row.key, message: `${name} is set twice.` };
    vars[name] = row.value;
  }
  return { ok: true, vars };
}

/** Whether the rows say something other than what is saved. */
export function isDirty(saved: EnvVars | null | undefined, rows: readonly EnvRow[]): boolean {
  const now = collect(rows);
  if (!now.ok) return true;
  const before = saved ?? {};
  const names = Object.keys(now.vars);
  return names.length !== Object.keys(before).length || names.some((n) => before[n] !== now.vars[n]);
}

/** What a saved change means for the VM in `status`. */
export function applyNote(status: ProjectStatus): string {
  switch (status) {
    case "running":
    case "starting":
      return "Saved. The VM has the old values until it restarts; restart it to use the new ones in new terminals.";
    case "stopping":
      return "Saved. The VM gets them when it next starts.";
    default:
      return "Saved. The VM gets them when it starts.";
  }
}

/** Whether the note should offer a restart. */
export function offersRestart(status: ProjectStatus): boolean {
  return status === "running";
}
