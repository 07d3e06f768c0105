/** The projects page: the list, its empty/loading/error states, and the dialogs. */
import { useEffect, useState } from "react";
import { api, ApiError } from "../api/client";
import type { Project, Usage } from "../api/types";
import { TopBar } from "../app/TopBar";
import { BillingActions } from "../billing/BillingActions";
import { Link } from "../ui/Link";
import { Alert } from "../ui/Alert";
import { Button } from "../ui/Button";
import { FolderIcon, PlusIcon } from "../ui/icons";
import { CreateProjectDialog, DeleteProjectDialog, RenameProjectDialog } from "./ProjectDialogs";
import { ProjectRow, type RowAction } from "./ProjectRow";
import { useProjects } from "./useProjects";
import { computeUsedUp, usageSummary } from "./usage";

/** How often the usage is read again while a machine runs (its hours grow). */
const USAGE_REFRESH_MS = 60_000;

/**
 * The caller's usage, read again whenever `key` changes and every minute
 * while `running`; null until known, or when the last read failed.
 */
function useUsage(key: string, running: boolean): Usage | null {
  const [usage, setUsage] = useState<Usage | null>(null);
  useEffect(() => {
    const abort = new AbortController();
    const read = () => api.usage(abort.signal).then(setUsage, () => !abort.signal.aborted && setUsage(null));
    void read();
    const timer = running ? window.setInterval(() => void read(), USAGE_REFRESH_MS) : undefined;
    return () => {
      abort.abort();
      window.clearInterval(timer);
    };
  }, [key, running]);
  return usage;
}

export function ProjectsPage() {
  const state = useProjects();
  const { projects, error, refreshing, refresh, upsert, remove, follow } = state;
  const usageKey = projects?.map((p) => `${p.id}:${p.status}`).join() ?? "";
  const usage = useUsage(
    usageKey,
    projects?.some((p) => p.status === "running" || p.status === "starting") ?? false,
  );
  const [creating, setCreating] = useState(false);
  const [renaming, setRenaming] = useState<Project | null>(null);
  const [deleting, setDeleting] = useState<Project | null>(null);
  const [pending, setPending] = useState<Record<string, RowAction>>({});
  const [rowErrors, setRowErrors] = useState<Record<string, string>>({});

  async function act(project: Project, action: RowAction) {
    setPending((p) => ({ ...p, [project.id]: action }));
    setRowErrors(({ [project.id]: _, ...rest }) => rest);
    try {
      const updated = action === "start" ? await api.startProject(project.id) : await api.stopProject(project.id);
      if (updated) upsert(updated);
      follow(project.id);
    } catch (e) {
      const verb = action === "start" ? "start" : "stop";
      const text = e instanceof ApiError ? e.message : "Something went wrong.";
      setRowErrors((r) => ({ ...r, [project.id]: `Could not ${verb}: ${text}` }));
    } finally {
      setPending(({ [project.id]: _, ...rest }) => rest);
      void refresh();
    }
  }

  return (
    <div className="min-h-full">
      <TopBar />
      <main className="mx-auto flex max-w-5xl flex-col gap-6 px-6 py-8">
        <div className="flex items-end justify-between gap-4">
          <div>
            <h1 className="text-xl font-semibold tracking-tight">Projects</h1>
            <p className="mt-1 text-sm text-muted">Each project is a cloud machine with its own disk and terminals.</p>
            {usage && (
              <p className="mt-1 text-xs text-faint" data-testid="usage">
                {usageSummary(usage)} ·{" "}
                <Link to="/billing" className="text-accent hover:text-accent-hover" data-testid="billing-link">
                  Usage and billing
                </Link>
              </p>
            )}
            <BillingActions refreshKey={`${usageKey}|${usage?.plan ?? ""}`} />
          </div>
          <Button variant="primary" icon={<PlusIcon />} onClick={() => setCreating(true)} data-testid="new-project">
            New project
          </Button>
        </div>

        {usage && computeUsedUp(usage) && (
          <Alert tone="warn">
            This month's compute hours are used up, so machines won't start until{" "}
            {new Date(usage.period_end).toLocaleDateString(undefined, { month: "long", day: "numeric", timeZone: "UTC" })} (UTC)
            {usage.plan === "team" ? "." : " or a bigger plan."}
          </Alert>
        )}

        {error && projects && (
          <Alert action={<Button size="sm" variant="ghost" onClick={() => void refresh()}>Retry</Button>}>
            Could not refresh the list: {error.message}
          </Alert>
        )}

        {projects === null ? (
          error ? (
            <LoadError message={error.message} retrying={refreshing} onRetry={() => void refresh()} />
          ) : (
            <ListSkeleton />
          )
        ) : projects.length === 0 ? (
          <Empty onCreate={() => setCreating(true)} />
        ) : (
          <ul className="divide-y divide-line overflow-hidden rounded-xl border border-line bg-surface" data-testid="project-list">
            {projects.map((project) => (
              <ProjectRow
                key={project.id}
                project={project}
                pending={pending[project.id] ?? null}
                error={rowErrors[project.id] ?? null}
                onStart={() => void act(project, "start")}
                onStop={() => void act(project, "stop")}
                onRename={() => setRenaming(project)}
                onDelete={() => setDeleting(project)}
              />
            ))}
          </ul>
        )}
      </main>

      <CreateProjectDialog
        open={creating}
        onClose={() => setCreating(false)}
        onCreated={(project) => {
          setCreating(false);
          upsert(project);
          void refresh();
        }}
      />
      <RenameProjectDialog
        project={renaming}
        onClose={() => setRenaming(null)}
        onRenamed={(project) => {
          setRenaming(null);
          upsert(project);
          void refresh();
        }}
      />
      <DeleteProjectDialog
        project={deleting}
        onClose={() => setDeleting(null)}
        onDeleted={(project) => {
          setDeleting(null);
          remove(project.id);
          void refresh();
        }}
      />
    </div>
  );
}

function ListSkeleton() {
  return (
    <div className="overflow-hidden rounded-xl border border-line bg-surface" aria-busy="true" aria-label="Loading projects">
      {[0, 1, 2].map((i) => (
        <div key={i} className="flex h-[61px] items-center gap-4 border-b border-line px-4 last:border-b-0">
          <div className="flex flex-1 flex-col gap-2">
            <div className="h-3.5 w-40 animate-pulse rounded bg-raised" />
            <div className="h-3 w-64 animate-pulse rounded bg-raised/70" />
          </div>
          <div className="h-6 w-[5.75rem] animate-pulse rounded-full bg-raised" />
          <div className="h-7 w-40 animate-pulse rounded bg-raised/70" />
        </div>
      ))}
    </div>
  );
}

function Empty({ onCreate }: { onCreate: () => void }) {
  return (
    <div className="flex flex-col items-center gap-3 rounded-xl border border-dashed border-line-strong px-6 py-16 text-center" data-testid="projects-empty">
      <span className="flex size-10 items-center justify-center rounded-full bg-raised text-muted">
        <FolderIcon />
      </span>
      <div>
        <h2 className="font-medium">No projects yet</h2>
        <p className="mt-1 text-sm text-muted">Create one to get a machine and a terminal in your browser.</p>
      </div>
      <Button variant="primary" icon={<PlusIcon />} onClick={onCreate} className="mt-2">
        Create a project
      </Button>
    </div>
  );
}

function LoadError({ message, retrying, onRetry }: { message: string; retrying: boolean; onRetry: () => void }) {
  return (
    <div className="flex flex-col items-center gap-3 rounded-xl border border-line bg-surface px-6 py-16 text-center" role="alert">
      <h2 className="font-medium">Could not load your projects</h2>
      <p className="max-w-md text-sm text-muted">{message}</p>
      <Button onClick={onRetry} loading={retrying} className="mt-2">
        Try again
      </Button>
    </div>
  );
}
