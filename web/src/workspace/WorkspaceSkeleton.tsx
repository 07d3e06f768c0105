/**
 * The workspace's frame while its chunk or its project loads: the same
 * header, panels (at the remembered sizes) and status bar as the real page,
 * so nothing jumps when it arrives.
 */
import type { ReactNode } from "react";
import { ArrowLeftIcon } from "../ui/icons";
import { PROJECTS } from "../app/router";
import { Link } from "../ui/Link";
import { loadLayout } from "./layout";

export function WorkspaceFrame({ header, children, footer }: { header: ReactNode; children: ReactNode; footer?: ReactNode }) {
  return (
    <div className="flex h-full flex-col bg-canvas">
      <header className="flex h-12 shrink-0 items-center gap-3 border-b border-line bg-surface px-3">
        <Link
          to={PROJECTS}
          className="inline-flex h-8 items-center gap-1.5 rounded-md px-2 text-sm text-muted transition-colors hover:bg-hover hover:text-fg"
          data-testid="back-to-projects"
        >
          <ArrowLeftIcon />
          <span className="hidden sm:inline">Projects</span>
        </Link>
        <span className="h-5 w-px bg-line" aria-hidden="true" />
        {header}
      </header>
      <main className="relative flex min-h-0 flex-1 flex-col">{children}</main>
      {footer ?? <div className="h-6 shrink-0 border-t border-line bg-surface" />}
    </div>
  );
}

const bar = "flex h-9 shrink-0 items-center gap-2 border-b border-line bg-surface px-3";

export function WorkspaceSkeleton() {
  const layout = loadLayout();
  const bottom = layout.terminal === "bottom";
  return (
    <WorkspaceFrame header={<div className="h-4 w-40 animate-pulse rounded bg-raised" aria-label="Loading project" />}>
      <div className="flex min-h-0 flex-1">
        {layout.treeOpen && (
          <div className="flex shrink-0 flex-col border-r border-line bg-surface/60" style={{ width: layout.treeWidth + 1 }}>
            <div className={bar}>
              <div className="h-2.5 w-10 animate-pulse rounded bg-raised/70" />
            </div>
          </div>
        )}
        <div className={`flex min-h-0 min-w-0 flex-1 ${bottom ? "flex-col" : "flex-row"}`}>
          <div className="flex min-h-0 min-w-0 flex-1 basis-0 flex-col">
            <div className={bar} />
          </div>
          <div
            className={`flex min-h-0 min-w-0 shrink-0 grow-0 flex-col ${bottom ? "border-t" : "border-l"} border-line`}
            style={{ flexBasis: `${layout.terminalShare * 100}%` }}
          >
            <div className={`${bar} px-2`}>
              <div className="h-5 w-20 animate-pulse rounded bg-raised/70" />
            </div>
          </div>
        </div>
      </div>
    </WorkspaceFrame>
  );
}
