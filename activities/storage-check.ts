import { Context } from '@temporalio/activity';
import type { TieredStore } from '../lib/storage';
import { commitManifest, findCommittedManifest, readManifest, verifyManifest, type ArtifactRef } from '../lib/storage';
import { sampleManifestKey, sampleObjectKey, sampleObjectStream } from '../lib/storage-check/sample-object';
import type { StorageCheckSpec } from '../lib/contracts/storage-check';
import { withFailureMapping } from './failures';

export interface StorageCheckDeps {
  store: TieredStore;
}

interface WriteCursor {
  written: number;
  objects: { uri: string; sha256: string; bytes: number }[];
}

/** A manifest already committed for this spec digest is reused: a rerun of the same spec does no work. */
async function committedManifest(store: TieredStore, uri: string, digest: string): Promise<ArtifactRef | undefined> {
  const found = await findCommittedManifest(store, uri);
  return found?.manifest.meta.digest === digest ? found.ref : undefined;
}

export function createStorageCheckActivities({ store }: StorageCheckDeps) {
  return {
    /** Writes the spec's objects (resuming after the last one a previous attempt reported), then the manifest. */
    async writeSampleObjects(input: StorageCheckSpec & { digest: string }): Promise<ArtifactRef> {
      return withFailureMapping(async () => {
        const ctx = Context.current();
        const manifestUri = `${input.tier}://${sampleManifestKey(input.name, input.digest)}`;
        const committed = await committedManifest(store, manifestUri, input.digest);
        if (committed) return committed;
        const resumed = ctx.info.heartbeatDetails as WriteCursor | undefined;
        const cursor: WriteCursor = resumed ?? { written: 0, objects: [] };
        for (let i = cursor.written; i < input.objects; i++) {
          const uri = `${input.tier}://${sampleObjectKey(input.name, input.digest, i)}`;
          const put = await store.put(uri, sampleObjectStream(input.seed, i, input.objectBytes));
          cursor.objects.push({ uri, sha256: put.sha256, bytes: put.bytes });
          cursor.written = i + 1;
          // Heartbeat details are the resume cursor; they stay small because the check caps its object count.
          ctx.heartbeat(cursor);
        }
        return commitManifest(store, manifestUri, {
          kind: 'storage-check',
          name: input.name,
          objects: cursor.objects,
          meta: { seed: input.seed, objectBytes: input.objectBytes, digest: input.digest },
        });
      });
    },

    /** Reads a committed artifact back and checks every object against the manifest's sha256 and size. */
    async verifyArtifact(input: { manifest: ArtifactRef }): Promise<{ objects: number; bytes: number }> {
      return withFailureMapping(async () => {
        const ctx = Context.current();
        ctx.heartbeat({ stage: 'read-manifest' });
        const manifest = await readManifest(store, input.manifest);
        const total = manifest.objects.length;
        return verifyManifest(store, manifest, {
          onVerified: (done) => ctx.heartbeat({ stage: 'verify', ...done, total }),
        });
      });
    },
  };
}
