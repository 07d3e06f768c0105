/**
 * The workspace at /p/:projectId: a header with the project's name, VM
 * status and start/stop, and below it the terminals when the VM runs, or a
 * clear stopped/starting state when it does not. Loaded as its own chunk.
 */
import { useCallback, useEffect, useState, type ReactNode } from "react";
import { api, ApiError, isAbort } from "../api/client";
import type { Project } from "../api/types";
import { isTransitional, StatusBadge } from "../projects/StatusBadge";
import { usePollWhile, useProjectEvents } from "../projects/watch";
import { Alert } from "../ui/Alert";
import { Button } from "../ui/Button";
import { PlayIcon, StopIcon } from "../ui/icons";
import { Link } from "../ui/Link";
import { Spinner } from "../ui/Spinner";
import { TerminalTabs } from "./TerminalTabs";
import { WorkspaceFrame, WorkspaceSkeleton } from "./WorkspaceSkeleton";

export default function WorkspacePage({ projectId }: { projectId: string }) {
  const [project, setProject] = useState<Project | null>(null);
  const [loadError, setLoadError] = useState<ApiError | null>(null);
  const [starting, setStarting] = useState(false);
  const [stopping, setStopping] = useState(false);
  const [actionError, setActionError] = useState<string | null>(null);

  const load = useCallback(
    async (signal?: AbortSignal) => {
      try {
        setProject(await api.getProject(projectId, signal));
        setLoadError(null);
      } catch (e) {
        if (isAbort(e)) return;
        setLoadError(e instanceof ApiError ? e : new ApiError(0, "internal", "Could not load the project."));
      }
    },
    [projectId],
  );

  useEffect(() => {
    const controller = new AbortController();
    void load(controller.signal);
    return () => controller.abort();
  }, [load]);

  useEffect(() => {
    document.title = project ? `${project.name} · aether` : "aether";
    return () => {
      document.title = "aether";
    };
  }, [project]);

  useProjectEvents([projectId], setProject);
  usePollWhile(project !== null && isTransitional(project.status), () => void load(), 3000);

  async function start() {
    setStarting(true);
    setActionError(null);
    try {
      setProject(await api.startProject(projectId, { wait: true }));
    } catch (e) {
      if (e instanceof ApiError && e.status === 504) {
        setActionError("The machine did not come up within 60 seconds. It may still be starting; try again in a moment.");
      } else {
        setActionError(e instanceof ApiError ? e.message : "Could not start the machine.");
      }
      void load();
    } finally {
      setStarting(false);
    }
  }

  async function stop() {
    setStopping(true);
    setActionError(null);
    try {
      setProject(await api.stopProject(projectId));
    } catch (e) {
      setActionError(e instanceof ApiError ? e.message : "Could not stop the machine.");
      void load();
    } finally {
      setStopping(false);
    }
  }

  if (!project) {
    if (!loadError) return <WorkspaceSkeleton />;
    return (
      <WorkspaceFrame header={<span className="text-sm text-muted">Project</span>}>
        <CenterPanel title={loadError.status === 404 ? "Project not found" : "Could not load the project"}>
          <p className="text-sm text-muted">
            {loadError.status === 404 ? "It may have been deleted, or it belongs to another account." : loadError.message}
          </p>
          <div className="flex gap-2">
            {loadError.status !== 404 && <Button onClick={() => void load()}>Try again</Button>}
            <Link to="/" className="inline-flex h-9 items-center rounded-md px-3.5 text-sm font-medium text-accent hover:text-accent-hover">
              Back to projects
            </Link>
          </div>
        </CenterPanel>
      </WorkspaceFrame>
    );
  }

  const { status } = project;
  const running = status === "running";
  const canStart = (status === "stopped" || status === "error") && !starting;

  const header = (
    <>
      <h1 className="min-w-0 truncate text-sm font-semibold" data-testid="project-title" title={project.name}>
        {project.name}
      </h1>
      <StatusBadge status={starting && !running ? "starting" : status} title={project.error_message ?? undefined} testId="vm-status" />
      <div className="flex-1" />
      {running || status === "starting" || starting ? (
        <Button
          size="sm"
          variant="secondary"
          icon={<StopIcon className="size-3.5" />}
          loading={stopping}
          disabled={!running || stopping}
          onClick={() => void stop()}
          data-testid="stop-vm"
          className="w-20"
        >
          Stop
        </Button>
      ) : (
        <Button
          size="sm"
          variant="secondary"
          icon={<PlayIcon className="size-3.5" />}
          loading={starting}
          disabled={!canStart}
          onClick={() => void start()}
          data-testid="start-vm"
          className="w-20"
        >
          Start
        </Button>
      )}
    </>
  );

  let body;
  if (running) {
    body = <TerminalTabs projectId={projectId} />;
  } else if (starting || status === "starting") {
    body = (
      <CenterPanel title="Starting the machine…" icon={<Spinner className="size-5 text-accent" />}>
        <p className="text-sm text-muted">Your terminal will open here as soon as it is up.</p>
      </CenterPanel>
    );
  } else if (status === "stopping") {
    body = (
      <CenterPanel title="Stopping the machine…" icon={<Spinner className="size-5 text-muted" />}>
        <p className="text-sm text-muted">Files on its disk are kept.</p>
      </CenterPanel>
    );
  } else {
    body = (
      <CenterPanel title={status === "error" ? "The machine ran into a problem" : "VM stopped"} testId="vm-stopped">
        <p className="text-sm text-muted">
          {status === "error"
            ? project.error_message || "It stopped with an error. Starting it again usually helps."
            : "Start it to open a terminal. Your files are where you left them."}
        </p>
        <Button variant="primary" icon={<PlayIcon />} onClick={() => void start()} data-testid="start-vm-cta" autoFocus>
          Start
        </Button>
      </CenterPanel>
    );
  }

  return (
    <WorkspaceFrame header={header}>
      {actionError && (
        <div className="absolute inset-x-0 top-0 z-10 p-3">
          <Alert action={<Button size="sm" variant="ghost" onClick={() => setActionError(null)}>Dismiss</Button>}>{actionError}</Alert>
        </div>
      )}
      {body}
    </WorkspaceFrame>
  );
}

function CenterPanel({ title, icon, children, testId }: { title: string; icon?: ReactNode; children: ReactNode; testId?: string }) {
  return (
    <div className="flex flex-1 items-center justify-center p-6">
      <div className="flex max-w-sm flex-col items-center gap-3 text-center" data-testid={testId}>
        {icon}
        <h2 className="text-base font-semibold">{title}</h2>
        {children}
      </div>
    </div>
  );
}
