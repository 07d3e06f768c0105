/**
 * Live project status: follow `GET /api/projects/{id}/events` (read with
 * fetch, since EventSource cannot send the bearer token) and reconnect when
 * the stream ends, backing off from 1 s to 30 s.
 */
import { useEffect } from "react";
import { api, ApiError } from "../api/client";
import { useLatest } from "../app/useLatest";
import type { Project, ProjectEvent } from "../api/types";

const MIN_DELAY_MS = 1000;
const MAX_DELAY_MS = 30_000;

export async function watchProject(
  id: string,
  onProject: (project: Project) => void,
  signal: AbortSignal,
  onEvent?: (event: ProjectEvent) => void,
): Promise<void> {
  let delay = MIN_DELAY_MS;
  while (!signal.aborted) {
    let heard = false;
    try {
      await api.projectEvents(
        id,
        (event) => {
          heard = true;
          if (event.type === "status") onProject(event.project);
          onEvent?.(event);
        },
        signal,
      );
    } catch (error) {
      if (signal.aborted) return;
      // Gone, forbidden or signed out: reconnecting cannot help.
      if (error instanceof ApiError && [401, 403, 404].includes(error.status)) return;
    }
    if (heard) delay = MIN_DELAY_MS;
    await sleep(delay, signal);
    delay = Math.min(delay * 2, MAX_DELAY_MS);
  }
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    signal.addEventListener(
      "abort",
      () => {
        clearTimeout(timer);
        resolve();
      },
      { once: true },
    );
  });
}

/**
 * Follow the given projects' events while mounted; `onProject` and
 * `onEvent` (every event, e.g. `ports`) may change freely.
 */
export function useProjectEvents(
  ids: readonly string[],
  onProject: (project: Project) => void,
  onEvent?: (event: ProjectEvent) => void,
): void {
  const callback = useLatest(onProject);
  const eventCallback = useLatest(onEvent);
  const key = [...ids].sort().join(",");

  useEffect(() => {
    if (!key) return;
    const controller = new AbortController();
    for (const id of key.split(",")) {
      void watchProject(id, (project) => callback.current(project), controller.signal, (event) => eventCallback.current?.(event));
    }
    return () => controller.abort();
  }, [key, callback, eventCallback]);
}

/** Call `fn` every `ms` while `active`, as a fallback for a missed event. */
export function usePollWhile(active: boolean, fn: () => void, ms: number): void {
  const callback = useLatest(fn);
  useEffect(() => {
    if (!active) return;
    const timer = setInterval(() => callback.current(), ms);
    return () => clearInterval(timer);
  }, [active, ms, callback]);
}

