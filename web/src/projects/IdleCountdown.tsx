/**
 * A running VM's idle countdown in the project list (read from the activity
 * route every 15 s, ticking every second), or why the hub stopped it.
 */
import { useEffect, useState } from "react";
import { api } from "../api/client";
import type { Activity, Project } from "../api/types";
import { countdownText, stopReasonText } from "./idle";

const READ_MS = 15_000;

function useActivity(projectId: string, running: boolean, key: string): Activity | null {
  const [activity, setActivity] = useState<Activity | null>(null);
  useEffect(() => {
    if (!running) {
      setActivity(null);
      return;
    }
    const abort = new AbortController();
    const read = () => api.activity(projectId, abort.signal).then(setActivity, () => undefined);
    void read();
    const timer = setInterval(() => void read(), READ_MS);
    return () => {
      abort.abort();
      clearInterval(timer);
    };
  }, [projectId, running, key]);
  return activity;
}

function useNow(on: boolean): number {
  const [now, setNow] = useState(() => Date.now());
  useEffect(() => {
    if (!on) return;
    const timer = setInterval(() => setNow(Date.now()), 1000);
    return () => clearInterval(timer);
  }, [on]);
  return now;
}

export function IdleCountdown({ project }: { project: Project }) {
  const running = project.status === "running";
  const activity = useActivity(project.id, running, project.updated_at);
  const now = useNow(running && activity !== null);
  const text = running ? countdownText(activity, now) : project.status === "stopped" ? stopReasonText(project.stop_reason) : null;
  if (!text) return null;
  return (
    <p className="truncate text-xs text-faint" data-testid={running ? "idle-countdown" : "stop-reason"}>
      {text}
    </p>
  );
}
