/** One line on what the caller has used of their plan this month. */
import type { Usage } from "../api/types";

/** Hours with one decimal below ten, whole above. */
function hours(seconds: number): string {
  const h = seconds / 3600;
  return h < 10 ? (Math.floor(h * 10) / 10).toString() : Math.floor(h).toString();
}

/** "Free plan · 3.2 of 50 compute hours this month · 2 of 5 projects". */
export function usageSummary(u: Usage): string {
  const plan = u.plan.charAt(0).toUpperCase() + u.plan.slice(1);
  const compute = `${hours(u.compute_seconds_used)} of ${hours(u.compute_seconds_limit)} compute hours this month`;
  return `${plan} plan · ${compute} · ${u.projects_used} of ${u.projects_limit} projects`;
}

/** The month's compute is used up: VMs don't start until the next month or a bigger plan. */
export function computeUsedUp(u: Usage): boolean {
  return u.compute_seconds_used >= u.compute_seconds_limit;
}
