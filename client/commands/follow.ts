import type { WorkflowHandle } from '@temporalio/client';

/**
 * Waits for a workflow's result, printing a line whenever its `progress` query, rendered by `describe`, says
 * something new (polled once a second). Shared by every command with `--wait`.
 */
export async function followWorkflow<Result, Progress>(
  handle: WorkflowHandle,
  describe: (progress: Progress) => string,
  print: (line: string) => void,
): Promise<Result> {
  let last = '';
  let finished = false;
  const result = (handle.result() as Promise<Result>).finally(() => (finished = true));
  while (!finished) {
    try {
      const line = describe((await handle.query('progress')) as Progress);
      if (line !== last) print(line);
      last = line;
    } catch {
      // The first workflow task may not have run yet: nothing to show.
    }
    await Promise.race([result.catch(() => undefined), new Promise((r) => setTimeout(r, 1000))]);
  }
  return result;
}
