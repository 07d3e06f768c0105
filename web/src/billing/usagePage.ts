/**
 * The billing page's data, shaped from `GET /api/billing/usage` without a
 * browser: limit warnings (80 % and 100 %), the month's compute by day (one
 * bar a day, empty days included) and by project, and what the plans above
 * the caller's give.
 */
import type { PlanLimits, Usage } from "../api/types";

export type Level = "ok" | "warn" | "full";

export interface Meter {
  key: "compute" | "storage" | "projects";
  label: string;
  used: number;
  limit: number;
  /** 0–100, capped. */
  percent: number;
  level: Level;
  /** "3.2 of 50 hours". */
  text: string;
}

/** Hours with one decimal below ten, whole above. */
export function hours(seconds: number): string {
  const h = seconds / 3600;
  return h < 10 ? (Math.floor(h * 10) / 10).toString() : Math.floor(h).toString();
}

/** "45 s", "12 min", "3.5 h". */
export function duration(seconds: number): string {
  if (seconds < 60) return `${Math.round(seconds)} s`;
  if (seconds < 3600) return `${Math.round(seconds / 60)} min`;
  return `${hours(seconds)} h`;
}

function level(used: number, limit: number): Level {
  if (limit <= 0) return "ok";
  if (used >= limit) return "full";
  return used >= limit * 0.8 ? "warn" : "ok";
}

function meter(key: Meter["key"], label: string, used: number, limit: number, text: string): Meter {
  const percent = limit > 0 ? Math.min(100, Math.round((used / limit) * 100)) : 0;
  return { key, label, used, limit, percent, level: level(used, limit), text };
}

/** Compute, storage and projects against the plan's limits. */
export function meters(u: Usage): Meter[] {
  return [
    meter(
      "compute",
      "Compute",
      u.compute_seconds_used,
      u.compute_seconds_limit,
      `${hours(u.compute_seconds_used)} of ${hours(u.compute_seconds_limit)} hours`,
    ),
    meter("storage", "Storage", u.storage_gb_used, u.storage_gb_limit, `${u.storage_gb_used} of ${u.storage_gb_limit} GB`),
    meter("projects", "Projects", u.projects_used, u.projects_limit, `${u.projects_used} of ${u.projects_limit}`),
  ];
}

/** A sentence for each limit at 80 % or more, worst first. */
export function warnings(u: Usage): { level: Exclude<Level, "ok">; text: string }[] {
  const out = meters(u)
    .filter((m) => m.level !== "ok")
    .map((m) => {
      const what = m.label.toLowerCase();
      const text =
        m.level === "full"
          ? m.key === "compute"
            ? "This month's compute hours are used up: machines don't start until next month or a bigger plan."
            : `You have reached your plan's ${what} limit (${m.text}).`
          : `You have used ${m.percent}% of your plan's ${what} (${m.text}).`;
      return { level: m.level as Exclude<Level, "ok">, text };
    });
  return out.sort((a, b) => (a.level === b.level ? 0 : a.level === "full" ? -1 : 1));
}

export interface DayBar {
  /** YYYY-MM-DD (UTC). */
  date: string;
  seconds: number;
  /** 0–1 of the busiest day. */
  height: number;
}

/** One bar for each day of the period up to `now` (UTC), empty days at zero. */
export function dayBars(u: Usage, now: Date = new Date()): DayBar[] {
  const by = new Map((u.by_day ?? []).map((d) => [d.date.slice(0, 10), d.compute_seconds]));
  const start = new Date(u.period_start);
  const end = new Date(Math.min(new Date(u.period_end).getTime() - 1, now.getTime()));
  const days: { date: string; seconds: number }[] = [];
  for (let d = Date.UTC(start.getUTCFullYear(), start.getUTCMonth(), start.getUTCDate()); d <= end.getTime(); d += 86_400_000) {
    const date = new Date(d).toISOString().slice(0, 10);
    days.push({ date, seconds: by.get(date) ?? 0 });
  }
  const max = Math.max(0, ...days.map((d) => d.seconds));
  return days.map((d) => ({ ...d, height: max > 0 ? d.seconds / max : 0 }));
}

export interface ProjectUse {
  id: string;
  name: string;
  seconds: number;
  /** Share of the month's total, 0–100. */
  share: number;
  deleted: boolean;
}

/** The month's compute by project, most first; deleted projects are named so. */
export function projectUse(u: Usage): ProjectUse[] {
  const total = u.by_project.reduce((s, p) => s + p.compute_seconds, 0);
  return [...u.by_project]
    .sort((a, b) => b.compute_seconds - a.compute_seconds)
    .map((p) => ({
      id: p.project_id,
      name: p.name ?? "Deleted project",
      seconds: p.compute_seconds,
      share: total > 0 ? Math.round((p.compute_seconds / total) * 100) : 0,
      deleted: p.name == null,
    }));
}

/** The plans above the caller's, lowest first. */
export function higherPlans(u: Usage): PlanLimits[] {
  const plans = u.plans ?? [];
  const mine = plans.find((p) => p.plan === u.plan);
  return plans.filter((p) => (mine ? p.rank > mine.rank : p.plan !== u.plan)).sort((a, b) => a.rank - b.rank);
}

/** "2 CPUs · 4 GB memory". */
export function machineText(m: { cpus: number; memory_mb: number }): string {
  const gb = m.memory_mb / 1024;
  return `${m.cpus} CPU${m.cpus === 1 ? "" : "s"} · ${Number.isInteger(gb) ? gb : gb.toFixed(1)} GB memory`;
}

/** "30 min", "2 h". */
export function idleText(seconds: number): string {
  if (seconds % 3600 === 0) return `${seconds / 3600} h`;
  if (seconds % 60 === 0) return `${seconds / 60} min`;
  return `${seconds} s`;
}
