/**
 * The projects list as the page sees it: loaded once, refreshed after every
 * action and on window focus, patched live from status events for the
 * projects that are changing (a few streams at most, to leave the browser
 * connections for everything else), and polled while any is changing in
 * case an event was missed.
 */
import { useCallback, useEffect, useRef, useState } from "react";
import { api, ApiError, isAbort } from "../api/client";
import type { Project } from "../api/types";
import { isTransitional } from "./StatusBadge";
import { usePollWhile, useProjectEvents } from "./watch";

/** At most this many event streams at once (HTTP/1.1 allows 6 connections per host). */
const MAX_STREAMS = 3;
const POLL_MS = 4000;

export interface ProjectsState {
  projects: Project[] | null;
  error: ApiError | null;
  refreshing: boolean;
  refresh: () => Promise<void>;
  upsert: (project: Project) => void;
  remove: (id: string) => void;
  /** Follow this project's events for a while, e.g. right after starting it. */
  follow: (id: string) => void;
}

export function useProjects(): ProjectsState {
  const [projects, setProjects] = useState<Project[] | null>(null);
  const [error, setError] = useState<ApiError | null>(null);
  const [refreshing, setRefreshing] = useState(false);
  const [followed, setFollowed] = useState<string[]>([]);
  const inflight = useRef<AbortController | null>(null);

  const refresh = useCallback(async () => {
    inflight.current?.abort();
    const controller = new AbortController();
    inflight.current = controller;
    setRefreshing(true);
    try {
      const list = await api.listProjects(controller.signal);
      setProjects(list);
      setError(null);
    } catch (e) {
      if (isAbort(e)) return;
      setError(e instanceof ApiError ? e : new ApiError(0, "internal", "Could not load projects."));
    } finally {
      if (inflight.current === controller) {
        inflight.current = null;
        setRefreshing(false);
      }
    }
  }, []);

  useEffect(() => {
    void refresh();
    const onFocus = () => void refresh();
    window.addEventListener("focus", onFocus);
    return () => {
      window.removeEventListener("focus", onFocus);
      inflight.current?.abort();
    };
  }, [refresh]);

  const upsert = useCallback((project: Project) => {
    setProjects((list) => {
      if (!list) return [project];
      const i = list.findIndex((p) => p.id === project.id);
      if (i === -1) return [project, ...list];
      const next = list.slice();
      next[i] = project;
      return next;
    });
  }, []);

  const remove = useCallback((id: string) => {
    setProjects((list) => list?.filter((p) => p.id !== id) ?? null);
  }, []);

  const follow = useCallback((id: string) => {
    setFollowed((ids) => (ids.includes(id) ? ids : [...ids, id]));
  }, []);

  const changing = (projects ?? []).filter((p) => isTransitional(p.status)).map((p) => p.id);
  const known = new Set((projects ?? []).map((p) => p.id));
  const streams = [...new Set([...followed.filter((id) => known.has(id)), ...changing])].slice(-MAX_STREAMS);

  // Stop following a project once it has settled.
  useEffect(() => {
    if (!projects) return;
    setFollowed((ids) => {
      const keep = ids.filter((id) => projects.some((p) => p.id === id && isTransitional(p.status)));
      return keep.length === ids.length ? ids : keep;
    });
  }, [projects]);

  useProjectEvents(streams, upsert);
  usePollWhile(changing.length > 0, () => void refresh(), POLL_MS);

  return { projects, error, refreshing, refresh, upsert, remove, follow };
}
