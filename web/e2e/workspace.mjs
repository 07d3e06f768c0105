// Browser steps for the workspace's gaps, run by run.mjs once the project's
// VM has been stopped: the environment-variable editor (a reserved name
// refused with the hub's message, a value masked until revealed), opening
// the stopped project and typing in its terminal without pressing Start
// (the terminal's attach starts the VM and reads the saved variable), a
// changed variable reaching a new terminal after the editor's restart, and
// a guide opened from the agents dialog. No fixed sleeps: every wait polls
// with a deadline.

import { join } from "node:path";

/**
 * @typedef {import("playwright-core").Page} Page
 * @typedef {import("playwright-core").BrowserContext} BrowserContext
 * @typedef {{
 *   step: (name: string, body: () => Promise<void>) => Promise<void>,
 *   page: Page,
 *   context: BrowserContext,
 *   base: string,
 *   run: { projectId: string },
 *   typeInto: (session: string, text: string) => Promise<void>,
 *   terminalReady: (session: string, timeout: number) => Promise<number>,
 *   terminalShowsLine: (session: string, line: string, timeout: number) => Promise<void>,
 *   shots: string,
 *   VM_START_MS: number,
 *   READY_MS: number,
 *   OUTPUT_MS: number,
 * }} Kit
 */

/** @param {Kit} kit */
export async function workspaceSteps(kit) {
  const { step, page, context, base, run, typeInto, terminalReady, terminalShowsLine, shots, VM_START_MS, READY_MS, OUTPUT_MS } = kit;
  const shot = (/** @type {string} */ name, target = page) => target.screenshot({ path: join(shots, `workspace-${name}.png`) });
  const byTestId = (/** @type {string} */ id) => page.getByTestId(id);
  const nameInput = (/** @type {number} */ i) => byTestId("env-name").nth(i);
  const valueInput = (/** @type {number} */ i) => byTestId("env-value").nth(i);
  const first = `first-${Math.random().toString(36).slice(2, 8)}`;
  const second = `second-${Math.random().toString(36).slice(2, 8)}`;

  await step("Env editor refuses a reserved name with the hub's message", async () => {
    await byTestId("open-env").click();
    await byTestId("env-dialog").waitFor();
    await nameInput(0).fill("AETHER_PROJECT_ID");
    await valueInput(0).fill("mine");
    await byTestId("env-save").click();
    const error = byTestId("env-error");
    await error.waitFor({ timeout: 10_000 });
    const text = (await error.textContent()) ?? "";
    if (!text.includes('env var name "AETHER_PROJECT_ID" is not allowed')) throw new Error(`the editor says: ${text}`);
  });

  await step("Set an environment variable, its value masked until revealed", async () => {
    await nameInput(0).fill("E2E_GREETING");
    await valueInput(0).fill(first);
    if ((await valueInput(0).getAttribute("type")) !== "password") throw new Error("the value is shown unmasked");
    await byTestId("env-reveal").nth(0).click();
    if ((await valueInput(0).getAttribute("type")) !== "text") throw new Error("reveal did not show the value");
    await shot("env-editor-revealed");
    await byTestId("env-reveal").nth(0).click();
    await byTestId("env-save").click();
    await byTestId("env-saved").getByText("The VM gets them when it starts.").waitFor({ timeout: 10_000 });
    await byTestId("env-close").click();
    await byTestId("env-dialog").waitFor({ state: "hidden" });
  });

  await step("Open the stopped project and type in its terminal without pressing Start", async () => {
    await page.goto(`${base}/projects`);
    const row = page.locator(`[data-testid="project-row"][data-project-id="${run.projectId}"]`);
    await row.getByTestId("open-project").click();
    await page.waitForURL(`**/p/${run.projectId}`);
    // The terminal is there at once; typed while the VM starts, the line
    // waits for the shell.
    await page.locator('[data-testid="terminal-main"]').waitFor({ timeout: READY_MS });
    await shot("terminal-opened-on-a-stopped-vm");
    await typeInto("main", "echo $E2E_GREETING");
    await page.keyboard.press("Enter");
    await terminalShowsLine("main", first, VM_START_MS);
    // It said "starting…" meanwhile (a local VM may be up in a quarter of a second, too fast to catch on screen).
    const probe = await page.evaluate(() => {
      const p = /** @type {{ __aether?: { terminals: Record<string, { startingAt: number | null, readyAt: number | null } | undefined> } }} */ (/** @type {unknown} */ (window)).__aether?.terminals.main;
      return p ? { startingAt: p.startingAt, readyAt: p.readyAt } : null;
    });
    if (!probe?.startingAt || !probe.readyAt || probe.startingAt > probe.readyAt) throw new Error(`the terminal never said it was starting: ${JSON.stringify(probe)}`);
    console.log(`  terminal said "starting…" for ${probe.readyAt - probe.startingAt} ms before it attached`);
    await page.locator('[data-testid="vm-status"][data-status="running"]').waitFor({ timeout: OUTPUT_MS });
  });

  await step("Change the variable, restart from the editor, read it in a new terminal", async () => {
    await byTestId("open-env").click();
    await byTestId("env-dialog").waitFor();
    await byTestId("env-row").first().waitFor();
    if ((await nameInput(0).inputValue()) !== "E2E_GREETING") throw new Error("the saved variable is not listed");
    await valueInput(0).fill(second);
    await byTestId("env-save").click();
    await byTestId("env-saved").getByText(/restart/).waitFor({ timeout: 10_000 });
    await byTestId("env-restart").click();
    await byTestId("env-dialog").waitFor({ state: "hidden", timeout: VM_START_MS });
    await page.locator('[data-testid="vm-status"][data-status="running"]').waitFor({ timeout: VM_START_MS });
    await terminalReady("main", READY_MS);
    await page.getByTestId("terminal-tab-new").click();
    await page.locator('[data-testid="terminal-tab"][data-session="2"][aria-selected="true"]').waitFor();
    await terminalReady("2", READY_MS);
    await typeInto("2", "echo $E2E_GREETING");
    await page.keyboard.press("Enter");
    await terminalShowsLine("2", second, OUTPUT_MS);
  });

  await step("Open the Claude Code guide from the agents dialog", async () => {
    await byTestId("open-agents").click();
    await byTestId("agents-dialog").waitFor();
    const popupAppears = context.waitForEvent("page", { timeout: 15_000 });
    await byTestId("agents-guide-claude-code").click();
    const guide = await popupAppears;
    try {
      await guide.getByRole("heading", { level: 1, name: "Connecting Claude Code" }).waitFor({ timeout: 15_000 });
      if (new URL(guide.url()).pathname !== "/docs/claude-code") throw new Error(`the guide opened at ${guide.url()}`);
      await shot("claude-code-guide", guide);
    } finally {
      await guide.close().catch(() => {});
    }
    await byTestId("agents-close").click();
    await byTestId("agents-dialog").waitFor({ state: "hidden" });
  });
}
