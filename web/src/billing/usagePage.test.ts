import { describe, expect, it } from "vitest";
import type { Usage } from "../api/types";
import { dayBars, duration, higherPlans, machineText, meters, projectUse, warnings } from "./usagePage";

const plan = (name: string, rank: number, hours: number) => ({
  plan: name,
  rank,
  projects: 5 * (rank + 1),
  compute_seconds: hours * 3600,
  storage_gb: 50,
  idle_timeout_s: 1800,
  cpus: rank + 1,
  memory_mb: 2048 * (rank + 1),
  pids: 4096,
});

function usage(over: Partial<Usage> = {}): Usage {
  return {
    plan: "free",
    period_start: "2026-12-01T00:00:00Z",
    period_end: "2027-01-01T00:00:00Z",
    compute_seconds_used: 3600,
    compute_seconds_limit: 50 * 3600,
    storage_gb_used: 0,
    storage_gb_limit: 50,
    projects_used: 1,
    projects_limit: 5,
    by_project: [],
    by_day: [],
    plans: [plan("free", 0, 50), plan("pro", 1, 500), plan("team", 2, 2000)],
    ...over,
  };
}

describe("limits", () => {
  it("warns from 80% and says when a limit is reached, worst first", () => {
    expect(warnings(usage())).toEqual([]);
    const u = usage({ compute_seconds_used: 40 * 3600, projects_used: 5 });
    const w = warnings(u);
    expect(w.map((x) => x.level)).toEqual(["full", "warn"]);
    expect(w[0]?.text).toContain("projects limit");
    expect(w[1]?.text).toBe("You have used 80% of your plan's compute (40 of 50 hours).");
    const done = warnings(usage({ compute_seconds_used: 50 * 3600 }));
    expect(done[0]?.text).toContain("compute hours are used up");
  });

  it("caps each meter at 100%", () => {
    const [compute] = meters(usage({ compute_seconds_used: 60 * 3600 }));
    expect(compute).toMatchObject({ percent: 100, level: "full", text: "60 of 50 hours" });
  });
});

describe("compute by day", () => {
  it("has a bar for every day so far, empty ones at zero, scaled to the busiest", () => {
    const u = usage({
      by_day: [
        { date: "2026-12-02", compute_seconds: 7200 },
        { date: "2026-12-04", compute_seconds: 3600 },
      ],
    });
    const bars = dayBars(u, new Date("2026-12-04T12:00:00Z"));
    expect(bars.map((b) => [b.date, b.seconds, b.height])).toEqual([
      ["2026-12-01", 0, 0],
      ["2026-12-02", 7200, 1],
      ["2026-12-03", 0, 0],
      ["2026-12-04", 3600, 0.5],
    ]);
  });

  it("stops at the period's end", () => {
    expect(dayBars(usage(), new Date("2027-02-01T00:00:00Z"))).toHaveLength(31);
  });
});

describe("compute by project", () => {
  it("sorts by use, with shares, and names deleted projects", () => {
    const u = usage({
      by_project: [
        { project_id: "a", name: "api", compute_seconds: 1000 },
        { project_id: "b", name: null, compute_seconds: 3000 },
      ],
    });
    expect(projectUse(u)).toEqual([
      { id: "b", name: "Deleted project", seconds: 3000, share: 75, deleted: true },
      { id: "a", name: "api", seconds: 1000, share: 25, deleted: false },
    ]);
  });
});

describe("plans", () => {
  it("offers only the plans above the caller's", () => {
    expect(higherPlans(usage()).map((p) => p.plan)).toEqual(["pro", "team"]);
    expect(higherPlans(usage({ plan: "team" }))).toEqual([]);
  });

  it("describes machines and durations", () => {
    expect(machineText({ cpus: 1, memory_mb: 2048 })).toBe("1 CPU · 2 GB memory");
    expect(machineText({ cpus: 2, memory_mb: 3072 })).toBe("2 CPUs · 3 GB memory");
    expect([duration(42), duration(720), duration(12_600)]).toEqual(["42 s", "12 min", "3.5 h"]);
  });
});
