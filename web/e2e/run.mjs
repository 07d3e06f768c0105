// Browser test of the first slice, as a user would do it, against a running
// hub: sign up, create a project, open it, start its VM, type in the
// terminal, reload and find the output again, use a second tab, clean up.
//
//   AETHER_E2E_URL=http://127.0.0.1:8080 npm run e2e
//
// Uses Debian's Chromium through playwright-core (never `npx playwright
// install`); CHROMIUM overrides its path. No fixed sleeps: every wait polls
// with a deadline. Screenshots of each step land in e2e/screenshots/.
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

/**
 * What the app exposes on `window.__aether` (src/terminal/registry.ts).
 * @typedef {{ text(): string, state(): { kind: string }, offset(): number | null, readyAt: number | null }} Probe
 * @typedef {{ __aether?: { terminals: Record<string, Probe | undefined> } }} ProbeWindow
 */

const base = process.env.AETHER_E2E_URL?.replace(/\/+$/, "");
if (!base) {
  console.error("AETHER_E2E_URL is not set: point it at a running hub, e.g. AETHER_E2E_URL=http://127.0.0.1:8080 npm run e2e");
  process.exit(2);
}
const executablePath = process.env.CHROMIUM || "/usr/bin/chromium";
const VM_START_MS = 120_000;
const READY_MS = 30_000;
const OUTPUT_MS = 15_000;

const here = dirname(fileURLToPath(import.meta.url));
const shots = join(here, "screenshots");
rmSync(shots, { recursive: true, force: true });
mkdirSync(shots, { recursive: true });
const profile = mkdtempSync(join(tmpdir(), "aether-e2e-"));

const context = await chromium.launchPersistentContext(profile, {
  executablePath,
  viewport: { width: 1280, height: 800 },
  args: [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
  ],
});
const page = context.pages()[0] ?? (await context.newPage());
/** @type {string[]} */
const browserErrors = [];
page.on("pageerror", (error) => browserErrors.push(`pageerror: ${error.message}`));
page.on("console", (message) => {
  if (message.type() === "error") browserErrors.push(`console: ${message.text()}`);
});

const user = {
  email: `e2e-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 8)}@example.com`,
  password: `Pw-${Math.random().toString(36).slice(2)}-${Date.now().toString(36)}!`,
};
const projectName = `e2e-${Date.now().toString(36)}`;
/** @type {{ projectId: string, openedAt: number, startedVm: boolean }} */
const run = { projectId: "", openedAt: 0, startedVm: false };

let passed = 0;
let failed = 0;
let skipped = 0;
let stepNo = 0;

/**
 * Run one step; after a failure the rest are skipped (they build on it).
 * @param {string} name
 * @param {() => Promise<void>} body
 */
async function step(name, body) {
  stepNo++;
  const file = `${String(stepNo).padStart(2, "0")}-${name.toLowerCase().replace(/[^a-z0-9]+/g, "-").replace(/^-|-$/g, "")}.png`;
  if (failed > 0) {
    skipped++;
    console.log(`- ${name}: skipped`);
    return;
  }
  const started = Date.now();
  try {
    await body();
    passed++;
    console.log(`✓ ${name} (${Date.now() - started} ms)`);
  } catch (error) {
    failed++;
    console.log(`✗ ${name}: ${error instanceof Error ? error.message : String(error)}`);
    console.log(`  at ${page.url()}`);
  }
  await page.screenshot({ path: join(shots, file) }).catch(() => {});
}

/** @param {string} id */
const byTestId = (id) => page.getByTestId(id);

/**
 * Wait until the terminal `session` has had its first `ready`; answers Date.now() at that moment.
 * @param {string} session
 * @param {number} timeout
 */
async function terminalReady(session, timeout) {
  const handle = await page.waitForFunction(
    (name) => {
      const probe = /** @type {ProbeWindow} */ (/** @type {unknown} */ (window)).__aether?.terminals[name];
      return probe?.readyAt ?? false;
    },
    session,
    { timeout, polling: 50 },
  );
  return /** @type {number} */ (await handle.jsonValue());
}

/**
 * Wait until a line of terminal `session`'s buffer, trimmed, equals `line`.
 * @param {string} session
 * @param {string} line
 * @param {number} timeout
 */
async function terminalShowsLine(session, line, timeout) {
  try {
    await page.waitForFunction(
      ([name, wanted]) => {
        const probe = /** @type {ProbeWindow} */ (/** @type {unknown} */ (window)).__aether?.terminals[name];
        return probe ? probe.text().split("\n").some((l) => l.trim() === wanted) : false;
      },
      /** @type {[string, string]} */ ([session, line]),
      { timeout, polling: 100 },
    );
  } catch (error) {
    const text = await page
      .evaluate((name) => /** @type {ProbeWindow} */ (/** @type {unknown} */ (window)).__aether?.terminals[name]?.text() ?? "(no terminal)", session)
      .catch(() => "(unreadable)");
    throw new Error(`terminal "${session}" never showed a line "${line}"; it shows:\n${text.split("\n").slice(-15).join("\n")}`, { cause: error });
  }
}

/**
 * @param {string} session
 * @param {string} text
 */
async function typeInto(session, text) {
  await page.locator(`[data-testid="terminal-${session}"] .xterm-helper-textarea`).focus();
  await page.keyboard.type(text);
}

try {
  await step("Sign up", async () => {
    await page.goto(`${base}/signup`);
    await byTestId("signup-email").fill(user.email);
    await byTestId("signup-password").fill(user.password);
    await byTestId("signup-password").press("Enter");
    await byTestId("new-project").waitFor({ timeout: 15_000 });
    if (new URL(page.url()).pathname !== "/") throw new Error(`expected the projects page, at ${page.url()}`);
  });

  await step("Create a project", async () => {
    await byTestId("new-project").click();
    await byTestId("project-name-input").fill(projectName);
    await byTestId("create-project-submit").click();
    const row = page.locator(`[data-testid="project-row"][data-project-name="${projectName}"]`);
    await row.waitFor({ timeout: 15_000 });
    run.projectId = (await row.getAttribute("data-project-id")) ?? "";
    if (!run.projectId) throw new Error("the new row has no project id");
    await byTestId("create-project-dialog").waitFor({ state: "hidden" });
  });

  await step("Open the project", async () => {
    run.openedAt = Date.now();
    await page.locator(`[data-testid="project-row"][data-project-id="${run.projectId}"]`).getByTestId("open-project").click();
    await page.waitForURL(`**/p/${run.projectId}`);
    await byTestId("vm-status").waitFor({ timeout: 15_000 });
    const title = await byTestId("project-title").textContent();
    if (title !== projectName) throw new Error(`header shows "${title}", expected "${projectName}"`);
  });

  await step("Start the VM if needed", async () => {
    const status = await byTestId("vm-status").getAttribute("data-status");
    if (status !== "running") {
      run.startedVm = true;
      if (status !== "starting") await byTestId("start-vm").click();
      await page.locator('[data-testid="vm-status"][data-status="running"]').waitFor({ timeout: VM_START_MS });
    }
  });

  await step("Terminal attaches", async () => {
    const readyAt = await terminalReady("main", READY_MS);
    const note = run.startedVm ? " (includes starting the VM)" : "";
    console.log(`  workspace navigation → terminal ready: ${readyAt - run.openedAt} ms${note}`);
    await page.locator('[data-testid="terminal-connection"][data-state="connected"]').waitFor({ timeout: 5_000 });
  });

  await step("Type echo hello", async () => {
    await typeInto("main", "echo hello");
    await page.keyboard.press("Enter");
    await terminalShowsLine("main", "hello", OUTPUT_MS);
  });

  await step("Reload shows the earlier output again", async () => {
    const navigatedAt = Date.now();
    await page.reload();
    const readyAt = await terminalReady("main", READY_MS);
    console.log(`  reload → terminal ready: ${readyAt - navigatedAt} ms`);
    await terminalShowsLine("main", "hello", OUTPUT_MS);
  });

  await step("A second terminal tab", async () => {
    await byTestId("terminal-tab-new").click();
    await page.locator('[data-testid="terminal-tab"][data-session="2"][aria-selected="true"]').waitFor();
    await terminalReady("2", READY_MS);
    await typeInto("2", "echo second");
    await page.keyboard.press("Enter");
    await terminalShowsLine("2", "second", OUTPUT_MS);
    await page.locator('[data-testid="terminal-tab-close"][data-session="2"]').click();
    await page.locator('[data-testid="terminal-tab"][data-session="2"]').waitFor({ state: "detached" });
    await page.locator('[data-testid="terminal-tab"][data-session="main"][aria-selected="true"]').waitFor();
  });

  await step("Stop the VM", async () => {
    await byTestId("stop-vm").click();
    await byTestId("vm-stopped").waitFor({ timeout: VM_START_MS });
  });

  await step("Delete the project", async () => {
    await byTestId("back-to-projects").click();
    const row = page.locator(`[data-testid="project-row"][data-project-id="${run.projectId}"]`);
    await row.getByTestId("project-delete").click();
    await byTestId("confirm-delete").click();
    await row.waitFor({ state: "detached", timeout: 30_000 });
  });

  await step("Sign out", async () => {
    await byTestId("sign-out").click();
    await byTestId("signin-email").waitFor();
  });
} finally {
  await context.close().catch(() => {});
  rmSync(profile, { recursive: true, force: true });
}

if (failed > 0 && browserErrors.length > 0) {
  console.log("browser errors:");
  for (const line of browserErrors.slice(-20)) console.log(`  ${line}`);
}
console.log(`screenshots in ${shots}`);
console.log(`${passed} passed, ${failed} failed${skipped ? `, ${skipped} skipped` : ""}`);
process.exit(failed > 0 ? 1 : 0);
