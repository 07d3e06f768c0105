/**
 * The billing page (`/billing`): the plan and this month's use of it —
 * compute by day (a small bar chart) and by project, storage, projects —
 * warnings at 80 % and 100 % of a limit, what the plans above give, and the
 * upgrade and manage-billing buttons.
 */
import { useEffect, useState } from "react";
import { api, ApiError } from "../api/client";
import type { Usage } from "../api/types";
import { PROJECTS } from "../app/router";
import { TopBar } from "../app/TopBar";
import { Alert } from "../ui/Alert";
import { Link } from "../ui/Link";
import { BillingActions } from "./BillingActions";
import { dayBars, duration, higherPlans, hours, idleText, machineText, meters, projectUse, warnings, type DayBar } from "./usagePage";

/** Read again every 30 s: a running machine's hours grow. */
const REFRESH_MS = 30_000;

function useUsage(): { usage: Usage | null; error: string | null } {
  const [usage, setUsage] = useState<Usage | null>(null);
  const [error, setError] = useState<string | null>(null);
  useEffect(() => {
    const abort = new AbortController();
    const read = () =>
      api.usage(abort.signal).then(
        (u) => {
          setUsage(u);
          setError(null);
        },
        (e) => !abort.signal.aborted && setError(e instanceof ApiError ? e.message : "Could not read usage."),
      );
    void read();
    const timer = setInterval(() => void read(), REFRESH_MS);
    return () => {
      abort.abort();
      clearInterval(timer);
    };
  }, []);
  return { usage, error };
}

const BAR_COLORS = { ok: "bg-accent", warn: "bg-warn", full: "bg-danger" } as const;

function DayChart({ bars }: { bars: DayBar[] }) {
  const width = 620;
  const height = 120;
  const gap = 2;
  const slot = bars.length > 0 ? width / bars.length : width;
  return (
    <svg viewBox={`0 0 ${width} ${height + 16}`} className="w-full" role="img" aria-label="Compute hours by day" data-testid="usage-chart">
      {bars.map((b, i) => {
        const h = Math.max(b.seconds > 0 ? 2 : 0, b.height * height);
        return (
          <g key={b.date}>
            <rect x={i * slot + gap / 2} y={height - h} width={Math.max(1, slot - gap)} height={h} rx={1.5} className="fill-accent" data-testid="usage-bar" data-date={b.date} data-seconds={b.seconds}>
              <title>{`${b.date}: ${duration(b.seconds)}`}</title>
            </rect>
            {(i === 0 || (i + 1) % 7 === 0) && (
              <text x={i * slot + slot / 2} y={height + 12} textAnchor="middle" className="fill-current text-[9px] text-faint">
                {Number(b.date.slice(8, 10))}
              </text>
            )}
          </g>
        );
      })}
      <line x1={0} x2={width} y1={height} y2={height} className="stroke-current text-line" strokeWidth={1} />
    </svg>
  );
}

export function BillingPage() {
  const { usage, error } = useUsage();
  const plan = usage ? usage.plan.charAt(0).toUpperCase() + usage.plan.slice(1) : "";
  return (
    <div className="min-h-full">
      <TopBar />
      <main className="mx-auto flex max-w-5xl flex-col gap-6 px-6 py-8" data-testid="billing-page">
        <div>
          <Link to={PROJECTS} className="text-xs text-muted hover:text-fg">
            ← Projects
          </Link>
          <h1 className="mt-1 text-xl font-semibold tracking-tight">Usage and billing</h1>
          {usage && (
            <p className="mt-1 text-sm text-muted" data-testid="billing-plan">
              {plan} plan · this month since{" "}
              {new Date(usage.period_start).toLocaleDateString(undefined, { month: "long", day: "numeric", timeZone: "UTC" })} (UTC)
            </p>
          )}
          <BillingActions refreshKey={usage?.plan ?? ""} />
        </div>
        {error && <Alert>{error}</Alert>}
        {usage && (
          <>
            {warnings(usage).map((w) => (
              <Alert key={w.text} tone={w.level === "full" ? "error" : "warn"}>
                <span data-testid={`limit-${w.level}`}>{w.text}</span>
              </Alert>
            ))}
            <section className="grid gap-3 sm:grid-cols-3">
              {meters(usage).map((m) => (
                <div key={m.key} className="rounded-lg border border-line bg-raised/40 p-4" data-testid={`meter-${m.key}`} data-level={m.level}>
                  <div className="flex items-baseline justify-between text-sm">
                    <span className="font-medium">{m.label}</span>
                    <span className="text-muted">{m.text}</span>
                  </div>
                  <div className="mt-2 h-1.5 overflow-hidden rounded bg-line">
                    <div className={`h-full ${BAR_COLORS[m.level]}`} style={{ width: `${m.percent}%` }} />
                  </div>
                </div>
              ))}
            </section>
            <section className="rounded-lg border border-line p-4">
              <h2 className="text-sm font-medium">Compute by day</h2>
              <p className="mb-3 text-xs text-faint" data-testid="compute-used">
                {duration(usage.compute_seconds_used)} this month, running machines included up to now
              </p>
              <DayChart bars={dayBars(usage)} />
            </section>
            <section className="rounded-lg border border-line p-4">
              <h2 className="mb-2 text-sm font-medium">Compute by project</h2>
              {usage.by_project.length === 0 ? (
                <p className="text-sm text-faint">No machine has run this month.</p>
              ) : (
                <ul className="flex flex-col gap-2 text-sm">
                  {projectUse(usage).map((p) => (
                    <li key={p.id} className="flex items-center gap-3" data-testid="usage-project" data-project-id={p.id}>
                      <span className={`w-48 truncate ${p.deleted ? "text-faint" : ""}`}>{p.name}</span>
                      <span className="h-1.5 flex-1 overflow-hidden rounded bg-line">
                        <span className="block h-full bg-accent" style={{ width: `${p.share}%` }} />
                      </span>
                      <span className="w-20 text-right text-muted">{duration(p.seconds)}</span>
                    </li>
                  ))}
                </ul>
              )}
            </section>
            <section className="rounded-lg border border-line p-4 text-sm">
              <h2 className="mb-2 font-medium">Your plan's limits</h2>
              <ul className="grid gap-1 text-muted sm:grid-cols-2">
                <li>{hours(usage.compute_seconds_limit)} compute hours a month</li>
                <li>{usage.projects_limit} projects</li>
                <li>{usage.storage_gb_limit} GB of project disks</li>
                {usage.machine && <li>{machineText(usage.machine)} per machine</li>}
                {usage.idle_timeout_s !== undefined && (
                  <li data-testid="idle-timeout">Idle machines stop after {idleText(usage.idle_timeout_s)}</li>
                )}
              </ul>
            </section>
            {higherPlans(usage).length > 0 && (
              <section className="grid gap-3 sm:grid-cols-2" data-testid="higher-plans">
                {higherPlans(usage).map((p) => (
                  <div key={p.plan} className="rounded-lg border border-line p-4 text-sm">
                    <h3 className="font-medium capitalize">{p.plan}</h3>
                    <ul className="mt-1 text-muted">
                      <li>{hours(p.compute_seconds)} compute hours a month</li>
                      <li>{p.projects} projects · {p.storage_gb} GB of disks</li>
                      <li>{machineText(p)} per machine</li>
                      <li>Idle machines stop after {idleText(p.idle_timeout_s)}</li>
                    </ul>
                  </div>
                ))}
              </section>
            )}
          </>
        )}
      </main>
    </div>
  );
}


