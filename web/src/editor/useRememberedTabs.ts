/**
 * Which files were open, remembered per project in localStorage, so a
 * reload (or a VM restart) opens the same tabs again. They are reopened the
 * first time the VM is running on this page.
 */
import { useEffect, useRef } from "react";
import type { OpenFiles } from "./openFiles";

interface Remembered {
  paths: string[];
  active: string | null;
}

function key(projectId: string): string {
  return `aether.tabs.${projectId}`;
}

export function readRemembered(raw: string | null): Remembered {
  try {
    const v: unknown = JSON.parse(raw ?? "null");
    if (typeof v !== "object" || v === null) return { paths: [], active: null };
    const r = v as Record<string, unknown>;
    const paths = Array.isArray(r.paths) ? r.paths.filter((p): p is string => typeof p === "string").slice(0, 30) : [];
    return { paths, active: typeof r.active === "string" && paths.includes(r.active) ? r.active : null };
  } catch {
    return { paths: [], active: null };
  }
}

export function useRememberedTabs(projectId: string, files: OpenFiles, running: boolean): void {
  const restored = useRef(false);

  useEffect(() => {
    if (!running || restored.current) return;
    restored.current = true;
    let remembered: Remembered = { paths: [], active: null };
    try {
      remembered = readRemembered(localStorage.getItem(key(projectId)));
    } catch {
      // no storage
    }
    for (const path of remembered.paths) files.open(path, path, { dropIfMissing: true });
    if (remembered.active) files.activate(remembered.active);
  }, [running, projectId, files]);

  useEffect(
    () =>
      files.subscribe(() => {
        if (!restored.current) return;
        const { docs, active } = files.snapshot;
        try {
          localStorage.setItem(key(projectId), JSON.stringify({ paths: docs.map((d) => d.path), active }));
        } catch {
          // not remembered
        }
      }),
    [files, projectId],
  );
}
