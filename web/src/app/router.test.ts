import { describe, expect, it } from "vitest";
import { isAppPath, PROJECTS, safeNext } from "./router";

describe("safeNext", () => {
  it("starts a signed-in user at the projects page, not the landing page", () => {
    expect(PROJECTS).toBe("/projects");
    expect(safeNext(null)).toBe("/projects");
    expect(safeNext("")).toBe("/projects");
  });

  it("keeps a same-origin path to come back to", () => {
    expect(safeNext("/p/123?x=1")).toBe("/p/123?x=1");
    expect(safeNext("/__aether/preview-auth?project=p&port=3000")).toBe("/__aether/preview-auth?project=p&port=3000");
  });

  it("refuses paths that leave the origin", () => {
    expect(safeNext("https://evil.example")).toBe("/projects");
    expect(safeNext("//evil.example")).toBe("/projects");
    expect(safeNext("/\\evil.example")).toBe("/projects");
  });
});

describe("isAppPath", () => {
  it("knows the app's own routes", () => {
    for (const path of ["/projects", "/signin?next=%2Fp%2F1", "/signup", "/p/123", "/p/123/"]) expect(isAppPath(path)).toBe(true);
    for (const path of ["/settings", "/forgot-password", "/reset-password?token=t", "/verify-email?token=t", "/account-deleted"]) expect(isAppPath(path)).toBe(true);
  });

  it("leaves the hub's pages to a page load", () => {
    for (const path of ["/", "/docs", "/docs/ssh", "/__aether/preview-auth?project=p", "/p/1/x"]) expect(isAppPath(path)).toBe(false);
  });
});
