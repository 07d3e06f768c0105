// Generates src/api/openapi.d.ts from src/api/openapi.json (the hub's
// OpenAPI document, kept current by hub/tests/openapi.rs).
// `--stdout` prints it instead of writing it (the web test compares).
import { register } from "node:module";
import { readFile, writeFile } from "node:fs/promises";

register("./typescript5.mjs", import.meta.url);
const { default: openapiTS, astToString } = await import("openapi-typescript");

const here = new URL("../src/api/", import.meta.url);
const doc = JSON.parse(await readFile(new URL("openapi.json", here), "utf8"));
const header = "// Generated from openapi.json by `npm run gen:api`; do not edit.\n\n";
const out = header + astToString(await openapiTS(doc));
if (process.argv.includes("--stdout")) {
  process.stdout.write(out);
} else {
  await writeFile(new URL("openapi.d.ts", here), out);
}
