import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Client, Connection, WorkflowNotFoundError } from '@temporalio/client';
import type { Browser, Page } from 'playwright-core';
import { sampleCorpus } from '../lib/collect';
import type { DatasetSummary } from '../lib/contracts/pipeline-results';
import { FlywheelKind } from '../workflows/search-attributes';
import { findTemporalCli, freePort, startDevServer, type DevServer } from '../temporal/dev-server';
import { createWorkers, type FlywheelWorkers } from '../worker/workers';
import { launchChromium, screenshotInk, screenshotPath } from './support/browser';
import { testConfig } from './support/temporal';

/**
 * The Temporal Web UI as a user meets it: a dev server started the way `flywheel dev` starts it (Web UI on, Flywheel's
 * search attributes registered), a pipeline started from the UI's Start Workflow form with a JSON input, followed in
 * the UI to Completed, then found again by filtering on a Flywheel search attribute.
 */
describe('the Temporal Web UI', () => {
  let server: DevServer;
  let browser: Browser | undefined;
  let skip: string | undefined;
  let workers: FlywheelWorkers;
  let running: Promise<void>;
  let connection: Connection;
  let client: Client;
  let config: ReturnType<typeof testConfig>;
  const inputs = fs.mkdtempSync(path.join(os.tmpdir(), 'flywheel-ui-inputs-'));

  before(async () => {
    ({ browser, skip } = await launchChromium());
    if (!browser) return;
    server = await startDevServer({ cli: await findTemporalCli({ download: true }), uiPort: await freePort() });
    config = testConfig(server.address);
    workers = await createWorkers(config, { roles: ['io', 'cpu'] });
    running = workers.run();
    connection = await Connection.connect({ address: server.address });
    client = new Client({ connection });
    // A folder of a few notes, real prose that passes the quality filters.
    sampleCorpus('moby-dick')
      .documents.slice(70, 74)
      .forEach((d, i) => fs.writeFileSync(path.join(inputs, `note-${i}.txt`), d.text));
  });

  after(async () => {
    await browser?.close();
    if (workers) {
      await workers.shutdown();
      await running;
    }
    await connection?.close();
    await server?.stop();
    fs.rmSync(inputs, { recursive: true, force: true });
  });

  async function newPage(): Promise<Page> {
    const page = await browser!.newPage({ viewport: { width: 1100, height: 760 } });
    page.setDefaultTimeout(30_000);
    return page;
  }

  it('starts a pipeline from the Start Workflow form and shows it Completed', { timeout: 240_000 }, async (t) => {
    if (!browser) return t.skip(skip);
    const page = await newPage();
    const workflowId = 'pipeline-ui-notes-v1';
    const spec = {
      dataset: 'ui-notes',
      version: 'v1',
      sources: [{ type: 'path', path: inputs }],
      shards: { targetBytes: 1 << 20, validationFraction: 0.25 },
    };

    await page.goto(`${server.uiUrl}/namespaces/${server.namespace}/workflows`);
    // A link styled as a button on the workflows page.
    await page
      .getByRole('link', { name: 'Start Workflow' })
      .or(page.getByRole('button', { name: 'Start Workflow' }))
      .first()
      .click();
    await page.locator('#workflowId').fill(workflowId);
    await page.locator('#taskQueue').fill(`${config.worker.taskQueuePrefix}-io`);
    await page.locator('#workflowType').fill('dataPipeline');
    // The input is a code editor, not a text field: type into it as a user would.
    await page.locator('[aria-label="Data"]').click();
    await page.keyboard.insertText(JSON.stringify(spec, null, 2));
    const ink = await screenshotInk(page, await page.screenshot({ path: screenshotPath('ui-start-workflow.png') }));
    assert.ok(ink.colors > 10, 'the form is drawn');
    const submit = page.getByRole('button', { name: 'Start Workflow' }).last();
    assert.ok(await submit.isEnabled(), 'the form is complete');
    await submit.click();

    // The click returns before the UI's start request is answered: wait until the server knows the run.
    const handle = client.workflow.getHandle(workflowId);
    await waitUntilStarted(handle);
    // Its status reads Completed once the worker is done.
    const summary = (await handle.result()) as DatasetSummary;
    assert.equal(summary.dataset, 'ui-notes');
    assert.ok(summary.documents > 0, 'the notes became documents');
    await page.goto(`${server.uiUrl}/namespaces/${server.namespace}/workflows/${workflowId}`);
    await page.getByText('Completed', { exact: true }).first().waitFor();
    await page.screenshot({ path: screenshotPath('ui-completed.png') });

    // Started by the UI, it still set Flywheel's search attributes: a filter finds it.
    const described = await handle.describe();
    assert.equal(described.typedSearchAttributes.get(FlywheelKind), 'pipeline');
    const query = encodeURIComponent(`FlywheelKind="pipeline" AND FlywheelDataset="ui-notes/v1"`);
    await page.goto(`${server.uiUrl}/namespaces/${server.namespace}/workflows?query=${query}`);
    await page.getByRole('link', { name: workflowId }).first().waitFor();
    await page.close();
  });
});

/** Polls until the server knows the workflow: a start submitted from the browser may still be on its way. */
async function waitUntilStarted(handle: { describe(): Promise<unknown> }): Promise<void> {
  const deadline = Date.now() + 60_000;
  for (;;) {
    try {
      await handle.describe();
      return;
    } catch (err) {
      if (!(err instanceof WorkflowNotFoundError) || Date.now() > deadline) throw err;
      await new Promise((r) => setTimeout(r, 250));
    }
  }
}
