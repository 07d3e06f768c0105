import { describe, expect, it } from "vitest";
import type { Activity } from "../api/types";
import { clock, countdownText, secondsLeft, stopReasonText } from "./idle";

const now = Date.parse("2026-12-07T12:00:00Z");

function activity(over: Partial<Activity> = {}): Activity {
  return {
    status: "running",
    idle_timeout_s: 1800,
    idle_stop_at: "2026-12-07T12:04:05Z",
    awake_because: [],
    ...over,
  };
}

describe("idle countdown", () => {
  it("counts down to the idle stop of a running VM only", () => {
    expect(secondsLeft(activity(), now)).toBe(245);
    expect(secondsLeft(activity({ status: "stopped", idle_stop_at: null }), now)).toBeNull();
    expect(secondsLeft(null, now)).toBeNull();
    expect(secondsLeft(activity({ idle_stop_at: "2026-12-07T11:00:00Z" }), now)).toBe(0);
  });

  it("says when and why", () => {
    expect(countdownText(activity(), now)).toBe("Stops in 4:05 if idle");
    expect(countdownText(activity({ awake_because: ["cpu", "ssh_session"] }), now)).toBe(
      "Stops in 4:05 if idle · awake: CPU work, an SSH session",
    );
    expect(countdownText(activity({ idle_stop_at: "2026-12-07T11:00:00Z" }), now)).toBe("Stopping: idle");
    expect(clock(3723)).toBe("1:02:03");
  });

  it("names the hub's own stops", () => {
    expect(stopReasonText("idle")).toBe("Stopped after being idle");
    expect(stopReasonText(null)).toBeNull();
    expect(stopReasonText("something_new")).toBe("Stopped by aether");
  });
});
