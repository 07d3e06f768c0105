/**
 * The workspace at /p/:projectId: a header with the project's name, VM
 * status and start/stop; below it the file tree, the editor and the
 * terminals in resizable panels (the terminals and files only while the VM
 * runs, each panel saying so otherwise); a status bar at the bottom.
 * Opening the workspace of a stopped project starts it: the terminal opens
 * at once and its attach wakes the VM (the hub says "starting" meanwhile).
 * Only the first sight of the project does that: a VM stopped while the
 * page is open (by its user, or idle) stays stopped until Start.
 * Loaded as its own chunk; the editor's CodeMirror is a further chunk.
 */
import { useCallback, useEffect, useState, useSyncExternalStore, type ReactNode } from "react";
import { api, ApiError, isAbort } from "../api/client";
import { AgentsDialog } from "../agents/AgentsDialog";
import { EnvDialog } from "../env/EnvDialog";
import { PROJECTS } from "../app/router";
import type { Project } from "../api/types";
import { CursorStore } from "../editor/cursor";
import type { FileIO } from "../editor/document";
import { EditorArea } from "../editor/EditorArea";
import { OpenFiles } from "../editor/openFiles";
import { useRememberedTabs } from "../editor/useRememberedTabs";
import { FileTree } from "../files/FileTree";
import type { TreeNode } from "../files/tree";
import { useFileTree } from "../files/useFileTree";
import { portFromLink, linkPath } from "../ports/ports";
import { PortsPanel } from "../ports/PortsPanel";
import { openInNewTab, PortsStore } from "../ports/store";
import { isTransitional, StatusBadge } from "../projects/StatusBadge";
import { usePollWhile, useProjectEvents } from "../projects/watch";
import { Alert } from "../ui/Alert";
import { Button } from "../ui/Button";
import { KeyIcon, PanelBottomIcon, PanelRightIcon, PlayIcon, SidebarIcon, StopIcon, TerminalIcon } from "../ui/icons";
import { Link } from "../ui/Link";
import { Spinner } from "../ui/Spinner";
import { loadLayout, saveLayout, type Layout } from "./layout";
import { Panels } from "./Panels";
import { StatusBar } from "./StatusBar";
import { TerminalTabs, type WatchRequest } from "./TerminalTabs";
import { WorkspaceFrame, WorkspaceSkeleton } from "./WorkspaceSkeleton";

function fileIO(projectId: string): FileIO {
  return {
    read: (ref, maxBytes) => api.readFile(projectId, ref, { maxBytes }),
    stat: (ref) => api.statPath(projectId, ref),
    write: (ref, bytes, ifMatch) => api.writeFile(projectId, ref, bytes, { ifMatch }),
  };
}

export default function WorkspacePage({ projectId }: { projectId: string }) {
  const [project, setProject] = useState<Project | null>(null);
  const [loadError, setLoadError] = useState<ApiError | null>(null);
  const [starting, setStarting] = useState(false);
  const [stopping, setStopping] = useState(false);
  const [actionError, setActionError] = useState<string | null>(null);
  const [files] = useState(() => new OpenFiles(fileIO(projectId)));
  const [cursor] = useState(() => new CursorStore());
  const [layout, setLayoutState] = useState<Layout>(loadLayout);
  const [agentsOpen, setAgentsOpen] = useState(false);
  const [watch, setWatch] = useState<WatchRequest | null>(null);
  const [envOpen, setEnvOpen] = useState(false);
  const [wakeOnOpen, setWakeOnOpen] = useState(true);
  /** The terminal's wake was refused (the plan's limit): its message is in the terminal. */
  const [wakeRefused, setWakeRefused] = useState(false);
  const running = project?.status === "running";
  const seenStatus = project?.status;
  useEffect(() => {
    if (seenStatus === "running" || seenStatus === "stopping") setWakeOnOpen(false);
  }, [seenStatus]);
  const tree = useFileTree(projectId, running, files);
  const [ports] = useState(
    () =>
      new PortsStore({
        list: (signal) => api.listPorts(projectId, signal),
        setVisibility: (port, visibility) => api.setPortVisibility(projectId, port, visibility),
        open: (port) => api.openPort(projectId, port),
      }),
  );
  useEffect(() => ports.setActive(running), [ports, running]);
  useEffect(() => () => ports.dispose(), [ports]);
  useRememberedTabs(projectId, files, running);
  useEffect(() => () => files.dispose(), [files]);
  const { active: activePath } = useSyncExternalStore(files.subscribe, () => files.snapshot);

  const setLayout = useCallback((next: Layout) => {
    setLayoutState(next);
    saveLayout(next);
  }, []);

  const openFile = useCallback(
    (node: TreeNode, options: { focus?: boolean } = {}) => void files.open(node.path, node.ref, options),
    [files],
  );

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

  useProjectEvents([projectId], setProject, (event) => ports.onEvent(event));

  // `localhost:PORT` links in a terminal open that port's preview.
  const openLink = useCallback(
    (uri: string) => {
      const port = portFromLink(uri);
      if (port === null) {
        window.open(uri, "_blank", "noopener,noreferrer");
        return;
      }
      openInNewTab(() => ports.previewUrl(port, linkPath(uri))).catch((e: unknown) => {
        setActionError(e instanceof ApiError ? e.message : `Could not open a preview of port ${port}.`);
      });
    },
    [ports],
  );
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

  /** Stop, then start: what makes changed environment variables reach the VM. */
  async function restart() {
    setWakeOnOpen(false);
    await api.stopProject(projectId, { wait: true });
    await start();
  }

  async function stop() {
    setWakeOnOpen(false);
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
            <Link to={PROJECTS} className="inline-flex h-9 items-center rounded-md px-3.5 text-sm font-medium text-accent hover:text-accent-hover">
              Back to projects
            </Link>
          </div>
        </CenterPanel>
      </WorkspaceFrame>
    );
  }

  const { status } = project;
  const wakes = wakeOnOpen && !starting && (status === "stopped" || status === "error" || status === "starting");
  // While the terminal wakes the VM the header says so, and offers no Start to race it.
  const booting = starting || (wakes && !wakeRefused);
  const canStart = (status === "stopped" || status === "error") && !booting;

  const header = (
    <>
      <h1 className="min-w-0 truncate text-sm font-semibold" data-testid="project-title" title={project.name}>
        {project.name}
      </h1>
      <StatusBadge status={booting && !running ? "starting" : status} title={project.error_message ?? undefined} testId="vm-status" />
      <div className="flex-1" />
      <div className="flex items-center gap-0.5">
        <HeaderToggle label="Agents: SSH keys and activity" onClick={() => setAgentsOpen(true)} testId="open-agents">
          <KeyIcon className="size-4" />
        </HeaderToggle>
        <HeaderToggle label="Environment variables" onClick={() => setEnvOpen(true)} testId="open-env">
          <span className="font-mono text-[11px] font-semibold">$_</span>
        </HeaderToggle>
        <HeaderToggle
          label={layout.treeOpen ? "Hide the file tree" : "Show the file tree"}
          pressed={layout.treeOpen}
          onClick={() => setLayout({ ...layout, treeOpen: !layout.treeOpen })}
          testId="toggle-tree"
        >
          <SidebarIcon className="size-4" />
        </HeaderToggle>
        <HeaderToggle
          label={layout.terminal === "bottom" ? "Put the terminal beside the editor" : "Put the terminal below the editor"}
          onClick={() => setLayout({ ...layout, terminal: layout.terminal === "bottom" ? "right" : "bottom" })}
          testId="toggle-terminal-placement"
        >
          {layout.terminal === "bottom" ? <PanelRightIcon className="size-4" /> : <PanelBottomIcon className="size-4" />}
        </HeaderToggle>
      </div>
      <span className="h-5 w-px bg-line" aria-hidden="true" />
      {running || status === "starting" || booting ? (
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

  let terminalBody: ReactNode;
  if (running || wakes) {
    terminalBody = (
      <TerminalTabs
        projectId={projectId}
        waking={!running}
        onRefused={(_session, code) => {
          if (code === "limit_reached") setWakeRefused(true);
        }}
        onLink={openLink}
        watch={watch}
      />
    );
  } else {
    let panel: ReactNode;
    if (starting || status === "starting") {
      panel = (
        <CenterPanel title="Starting the machine…" icon={<Spinner className="size-5 text-accent" />}>
          <p className="text-sm text-muted">Your terminal will open here as soon as it is up.</p>
        </CenterPanel>
      );
    } else if (status === "stopping") {
      panel = (
        <CenterPanel title="Stopping the machine…" icon={<Spinner className="size-5 text-muted" />}>
          <p className="text-sm text-muted">Files on its disk are kept.</p>
        </CenterPanel>
      );
    } else {
      panel = (
        <CenterPanel title={status === "error" ? "The machine ran into a problem" : "VM stopped"} testId="vm-stopped">
          <p className="text-sm text-muted">
            {status === "error"
              ? project.error_message || "It stopped with an error. Starting it again usually helps."
              : project.error_message || "Start it to open a terminal and browse files. Your files are where you left them."}
          </p>
          <Button variant="primary" icon={<PlayIcon />} onClick={() => void start()} data-testid="start-vm-cta" autoFocus>
            Start
          </Button>
        </CenterPanel>
      );
    }
    terminalBody = (
      <div className="flex min-h-0 flex-1 flex-col">
        <div className="flex h-9 shrink-0 items-center gap-2 border-b border-line bg-surface px-3 font-mono text-xs text-faint">
          <TerminalIcon className="size-3.5" /> Terminal
        </div>
        {panel}
      </div>
    );
  }

  return (
    <WorkspaceFrame header={header} footer={<StatusBar files={files} cursor={cursor} />}>
      {actionError && (
        <div className="absolute inset-x-0 top-0 z-20 p-3">
          <Alert action={<Button size="sm" variant="ghost" onClick={() => setActionError(null)}>Dismiss</Button>}>{actionError}</Alert>
        </div>
      )}
      <EnvDialog
        project={project}
        open={envOpen}
        onClose={() => setEnvOpen(false)}
        onSaved={setProject}
        onRestart={restart}
      />
      <AgentsDialog
        projectId={projectId}
        open={agentsOpen}
        onClose={() => setAgentsOpen(false)}
        onWatch={running ? (session) => setWatch((w) => ({ session, seq: (w?.seq ?? 0) + 1 })) : undefined}
      />
      <Panels
        layout={layout}
        onLayout={setLayout}
        tree={
          <div className="flex h-full min-h-0 flex-col">
            <div className="min-h-0 flex-1">
              <FileTree status={booting && !running ? "starting" : status} tree={tree} activePath={activePath} onOpenFile={openFile} />
            </div>
            {running && <PortsPanel store={ports} />}
          </div>
        }
        editor={<EditorArea projectId={projectId} files={files} cursor={cursor} />}
        terminal={terminalBody}
      />
    </WorkspaceFrame>
  );
}

function HeaderToggle({ label, pressed, onClick, children, testId }: { label: string; pressed?: boolean; onClick: () => void; children: ReactNode; testId?: string }) {
  return (
    <button
      type="button"
      aria-label={label}
      aria-pressed={pressed}
      title={label}
      onClick={onClick}
      className={`flex size-8 items-center justify-center rounded-md transition-colors hover:bg-hover hover:text-fg ${pressed ? "text-fg" : "text-muted"}`}
      data-testid={testId}
    >
      {children}
    </button>
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
