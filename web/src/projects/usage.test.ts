import { describe, expect, it } from "vitest";
import type { Usage } from "../api/types";
import { computeUsedUp, usageSummary } from "./usage";

const usage = (used: number, projects = 2): Usage => ({
  plan: "free",
  period_start: "2026-11-01T00:00:00Z",
  period_end: "2026-12-01T00:00:00Z",
  compute_seconds_used: used,
  compute_seconds_limit: 50 * 3600,
  storage_gb_used: 0,
  storage_gb_limit: 50,
  projects_used: projects,
  projects_limit: 5,
  by_project: [],
});

describe("usage", () => {
  it("says what the plan allows and how much is used", () => {
    expect(usageSummary(usage(11_700))).toBe("Free plan · 3.2 of 50 compute hours this month · 2 of 5 projects");
    expect(usageSummary(usage(0, 0))).toBe("Free plan · 0 of 50 compute hours this month · 0 of 5 projects");
    expect(usageSummary(usage(45.9 * 3600))).toBe("Free plan · 45 of 50 compute hours this month · 2 of 5 projects");
  });

  it("tells when the month's compute is used up", () => {
    expect(computeUsedUp(usage(50 * 3600 - 1))).toBe(false);
    expect(computeUsedUp(usage(50 * 3600))).toBe(true);
  });
});
