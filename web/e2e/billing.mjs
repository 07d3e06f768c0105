// Browser steps for usage and idle stop, run by run.mjs while the
// project's VM runs: the project list shows the VM's idle countdown, and
// the billing page shows this month's compute (the running VM's included),
// the chart, the limits and the plans above. Ends back in the workspace.

/**
 * @param {{
 *   step: (name: string, body: () => Promise<void>) => Promise<void>,
 *   page: import("playwright-core").Page,
 *   base: string,
 *   run: { projectId: string },
 * }} t
 */
export async function billingSteps({ step, page, base, run }) {
  const byTestId = (/** @type {string} */ id) => page.getByTestId(id);

  await step("The project list shows the running VM's idle countdown", async () => {
    await page.goto(`${base}/projects`);
    const row = page.locator(`[data-testid="project-row"][data-project-id="${run.projectId}"]`);
    const countdown = row.getByTestId("idle-countdown");
    await countdown.waitFor({ timeout: 30_000 });
    const first = await countdown.textContent();
    if (!/^Stops in \d+:\d\d(:\d\d)? if idle/.test(first ?? "")) throw new Error(`countdown says ${JSON.stringify(first)}`);
    // It counts down by itself.
    await page.waitForFunction(
      ([id, before]) => {
        const el = document.querySelector(`[data-project-id="${id}"] [data-testid="idle-countdown"]`);
        return el !== null && el.textContent !== before;
      },
      [run.projectId, first],
      { timeout: 10_000 },
    );
  });

  await step("The billing page shows this month's compute and the plans above", async () => {
    await byTestId("billing-link").click();
    await byTestId("billing-page").waitFor();
    await byTestId("usage-chart").waitFor({ timeout: 15_000 });
    const used = await page.waitForFunction(
      () => {
        const bars = [...document.querySelectorAll('[data-testid="usage-bar"]')];
        const total = bars.reduce((s, b) => s + Number(b.getAttribute("data-seconds") ?? 0), 0);
        return total > 0 ? total : null;
      },
      undefined,
      { timeout: 30_000 },
    );
    if (Number(await used.jsonValue()) <= 0) throw new Error("no compute in the chart");
    const project = page.locator(`[data-testid="usage-project"][data-project-id="${run.projectId}"]`);
    await project.waitFor({ timeout: 10_000 });
    await byTestId("meter-compute").waitFor();
    const plans = await byTestId("higher-plans").textContent();
    if (!plans?.includes("pro") && !plans?.toLowerCase().includes("pro")) throw new Error(`higher plans: ${plans}`);
    const idle = await byTestId("idle-timeout").textContent();
    if (!idle?.includes("Idle machines stop after")) throw new Error(`idle timeout: ${idle}`);
  });

  await step("Back to the workspace", async () => {
    await page.goto(`${base}/p/${encodeURIComponent(run.projectId)}`);
    await byTestId("stop-vm").waitFor({ timeout: 30_000 });
  });
}
