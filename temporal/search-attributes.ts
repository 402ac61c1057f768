import type { Client } from '@temporalio/client';
import { encodeSearchAttributeIndexedValueType } from '@temporalio/common/lib/search-attributes';
import { FLYWHEEL_SEARCH_ATTRIBUTES } from '../workflows/search-attributes';

/**
 * Registers Flywheel's search attributes on a namespace of a self-hosted cluster (the dev server gets them at start).
 * Attributes already there are left alone, so it can run at every deployment.
 */
export async function registerSearchAttributes(
  client: Client,
  namespace: string,
): Promise<{ added: string[]; present: string[] }> {
  const existing = await client.connection.operatorService.listSearchAttributes({ namespace });
  const present = new Set(Object.keys(existing.customAttributes ?? {}));
  const missing = FLYWHEEL_SEARCH_ATTRIBUTES.filter((k) => !present.has(k.name));
  if (missing.length > 0) {
    await client.connection.operatorService.addSearchAttributes({
      namespace,
      searchAttributes: Object.fromEntries(
        missing.map((k) => [k.name, encodeSearchAttributeIndexedValueType(k.type)!]),
      ),
    });
  }
  return {
    added: missing.map((k) => k.name),
    present: FLYWHEEL_SEARCH_ATTRIBUTES.filter((k) => present.has(k.name)).map((k) => k.name),
  };
}
