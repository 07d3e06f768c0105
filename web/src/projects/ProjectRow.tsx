/** One project in the list: name, status, last use, and its actions. */
import type { Project } from "../api/types";
import { navigate } from "../app/router";
import { Button } from "../ui/Button";
import { PencilIcon, PlayIcon, StopIcon, TrashIcon } from "../ui/icons";
import { Link } from "../ui/Link";
import { RelativeTime } from "../ui/RelativeTime";
import { IdleCountdown } from "./IdleCountdown";
import { StatusBadge } from "./StatusBadge";

export type RowAction = "start" | "stop";

export function ProjectRow({
  project,
  pending,
  error,
  onStart,
  onStop,
  onRename,
  onDelete,
}: {
  project: Project;
  pending: RowAction | null;
  error: string | null;
  onStart: () => void;
  onStop: () => void;
  onRename: () => void;
  onDelete: () => void;
}) {
  const { status } = project;
  const canStop = status === "running" || status === "starting";
  const used = project.last_accessed_at ?? project.updated_at;
  const href = `/p/${encodeURIComponent(project.id)}`;

  return (
    <li
      className="group flex flex-col gap-2 px-4 py-3 transition-colors hover:bg-raised/60"
      data-testid="project-row"
      data-project-id={project.id}
      data-project-name={project.name}
      data-status={status}
    >
      <div className="flex flex-wrap items-center gap-x-4 gap-y-2">
        <div className="min-w-0 flex-1 basis-56">
          <Link to={href} className="block truncate font-medium text-fg hover:text-accent-hover" data-testid="project-name">
            {project.name}
          </Link>
          <p className="truncate text-xs text-muted">{project.description || <span className="text-faint">No description</span>}</p>
          <IdleCountdown project={project} />
        </div>
        <StatusBadge status={status} title={project.error_message ?? undefined} testId="project-status" />
        <span className="hidden w-28 shrink-0 text-xs text-faint md:block">{used && <RelativeTime iso={used} />}</span>
        <div className="flex shrink-0 items-center gap-1">
          {canStop ? (
            <Button
              size="sm"
              variant="ghost"
              icon={<StopIcon className="size-3.5" />}
              loading={pending === "stop"}
              disabled={pending !== null || status === "starting"}
              onClick={onStop}
              data-testid="project-stop"
              className="w-[4.5rem]"
            >
              Stop
            </Button>
          ) : (
            <Button
              size="sm"
              variant="ghost"
              icon={<PlayIcon className="size-3.5" />}
              loading={pending === "start"}
              disabled={pending !== null || status === "stopping"}
              onClick={onStart}
              data-testid="project-start"
              className="w-[4.5rem]"
            >
              Start
            </Button>
          )}
          <Button size="sm" variant="ghost" aria-label={`Rename ${project.name}`} title="Rename" onClick={onRename} data-testid="project-rename">
            <PencilIcon className="size-3.5" />
          </Button>
          <Button
            size="sm"
            variant="ghost"
            aria-label={`Delete ${project.name}`}
            title="Delete"
            onClick={onDelete}
            data-testid="project-delete"
            className="hover:text-danger"
          >
            <TrashIcon className="size-3.5" />
          </Button>
          <Button size="sm" variant="secondary" onClick={() => navigate(href)} data-testid="open-project" className="ml-1">
            Open
          </Button>
        </div>
      </div>
      {(error || ((status === "error" || status === "stopped") && project.error_message)) && (
        <p className="text-xs text-danger" role={error ? "alert" : undefined} data-testid="project-message">
          {error ?? project.error_message}
        </p>
      )}
    </li>
  );
}
