import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";

const web = fileURLToPath(new URL("../../", import.meta.url));

describe("the generated API types", () => {
  it("are what openapi.json generates today (run `npm run gen:api` after the hub's document changes)", () => {
    const fresh = execFileSync(process.execPath, ["scripts/gen-api.mjs", "--stdout"], { cwd: web, encoding: "utf8" });
    const committed = readFileSync(new URL("openapi.d.ts", import.meta.url), "utf8");
    expect(committed).toBe(fresh);
  });

  it("describe the routes and shapes the app uses", () => {
    const doc = JSON.parse(readFileSync(new URL("openapi.json", import.meta.url), "utf8"));
    expect(Object.keys(doc.paths)).toEqual(expect.arrayContaining(["/api/projects", "/api/projects/{id}/files"]));
    expect(doc.components.schemas.ProjectStatus.enum).toEqual(["stopped", "starting", "running", "stopping", "error"]);
  });
});
