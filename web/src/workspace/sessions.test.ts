import { describe, expect, it } from "vitest";
import type { TerminalInfo } from "../api/types";
import { nextSessionName, tabNames } from "./sessions";

const info = (session: string, exited = false): TerminalInfo => ({
  session,
  command: "bash",
  created_at: "2025-01-01T00:00:00Z",
  viewers: 0,
  exited,
});

describe("terminal tabs", () => {
  it("lists live, non-agent sessions with main first and numbers in order", () => {
    expect(tabNames([info("10"), info("agent-bot"), info("2"), info("main"), info("3", true), info("logs")])).toEqual([
      "main",
      "2",
      "10",
      "logs",
    ]);
  });

  it("names new tabs main, then 2, 3… filling holes", () => {
    expect(nextSessionName([])).toBe("main");
    expect(nextSessionName(["main"])).toBe("2");
    expect(nextSessionName(["main", "2", "4"])).toBe("3");
    expect(nextSessionName(["2"])).toBe("main");
  });
});
