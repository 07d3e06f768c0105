/**
 * The workspace's frame while its chunk or its project loads: the same
 * header height and body as the real page, so nothing jumps when it arrives.
 */
import type { ReactNode } from "react";
import { ArrowLeftIcon } from "../ui/icons";
import { Link } from "../ui/Link";

export function WorkspaceFrame({ header, children }: { header: ReactNode; children: ReactNode }) {
  return (
    <div className="flex h-full flex-col bg-canvas">
      <header className="flex h-12 shrink-0 items-center gap-3 border-b border-line bg-surface px-3">
        <Link
          to="/"
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
    </div>
  );
}

export function WorkspaceSkeleton() {
  return (
    <WorkspaceFrame header={<div className="h-4 w-40 animate-pulse rounded bg-raised" aria-label="Loading project" />}>
      <div className="flex h-9 shrink-0 items-center gap-2 border-b border-line bg-surface px-2">
        <div className="h-5 w-20 animate-pulse rounded bg-raised/70" />
      </div>
      <div className="flex-1" />
    </WorkspaceFrame>
  );
}
