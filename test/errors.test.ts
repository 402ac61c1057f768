import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ApplicationFailure, CancelledFailure } from '@temporalio/common';
import { toActivityFailure } from '../activities/failures';
import { DecryptionFailed, UnknownEncryptionKey } from '../lib/codec/aes-gcm';
import { FlywheelError } from '../lib/common';
import { ConfigError } from '../lib/config/load';
import {
  CheckpointNotFound,
  CorruptCheckpoint,
  IncompatibleCheckpoint,
  InvalidRetentionPolicy,
} from '../lib/checkpoint/errors';
import {
  SourceFetchFailed,
  SourceForbidden,
  SourceMisconfigured,
  SourceNotFound,
  SourceTooLarge,
  SourceUnreadable,
} from '../lib/collect/errors';
import { InputDataError } from '../lib/collect/records';
import { DedupInputError, InvalidDedupOptions } from '../lib/dedup/errors';
import { CorruptDedupFile } from '../lib/dedup/formats';
import { ExternalTrainerError } from '../lib/external-trainer/errors';
import { FeedbackBatcherClosed } from '../lib/feedback/batcher';
import { CorruptFeedbackPartition } from '../lib/feedback/errors';
import { DatasetVersionExists } from '../lib/pipeline/commit-dataset';
import { CorruptModelVersion, ModelNotFound, NoPreviousChampion, RegistryConflict } from '../lib/registry/errors';
import { ModelNotExportable } from '../lib/registry/hf-export';
import { InvalidFeedback } from '../lib/contracts/feedback';
import { InvalidSpec } from '../lib/contracts/invalid-spec';
import {
  AccessDenied,
  ChecksumMismatch,
  CorruptManifest,
  InvalidObjectKey,
  InvalidTierUri,
  ObjectNotFound,
  PermanentStorageError,
  StorageError,
  StoreUnreachable,
  TransientStorageError,
} from '../lib/storage/errors';
import { HashThreadFailed } from '../lib/storage/hashing';
import {
  CheckpointMismatch,
  DatasetTooSmall,
  InvalidBatchSizes,
  MalformedShard,
  MalformedTrainerState,
} from '../lib/train/errors';
import { MalformedSafetensors } from '../lib/train/safetensors';

const uri = 'warm://runs/r/object.bin';
const problems = [{ field: 'trainBatchSize', message: 'must be a multiple of microBatchSize' }];

/** One of each error, with the failure type and retry decision an activity that throws it has always had. */
const FAILURES: [FlywheelError, string, boolean][] = [
  [new ObjectNotFound(uri), 'ObjectNotFound', false],
  [
    new ChecksumMismatch(uri, { expectedSha256: 'a', actualSha256: 'b', expectedBytes: 1, actualBytes: 2 }),
    'ChecksumMismatch',
    false,
  ],
  [new AccessDenied(uri), 'AccessDenied', false],
  [new StoreUnreachable(uri, 'http://127.0.0.1:9000', 'connection refused'), 'StoreUnreachable', true],
  [new TransientStorageError(uri, 'SlowDown'), 'TransientStorageError', true],
  [new InvalidObjectKey('/abs', 'absolute'), 'InvalidObjectKey', false],
  [new InvalidTierUri('tepid://x', 'no such tier'), 'InvalidTierUri', false],
  [new CorruptManifest(uri, 'not valid JSON'), 'CorruptManifest', false],
  [new PermanentStorageError(uri, 'a directory is in the way'), 'PermanentStorageError', false],
  [
    new StorageError('InvalidStoreLocation', 'ftp://x', 'Unsupported store location', false),
    'InvalidStoreLocation',
    false,
  ],
  [
    new CorruptCheckpoint(uri, { step: 3, file: 'model.bin', expectedSha256: 'a', expectedBytes: 1 }),
    'CorruptCheckpoint',
    false,
  ],
  [new CheckpointNotFound(uri, 3), 'CheckpointNotFound', false],
  [new IncompatibleCheckpoint(uri, 3, ['spec digest']), 'IncompatibleCheckpoint', false],
  [new InvalidRetentionPolicy('keepLastN(1)', 'keep at least 2'), 'InvalidRetentionPolicy', false],
  [new SourceNotFound('/data/x.jsonl'), 'SourceNotFound', false],
  [new SourceForbidden('/etc/passwd', 'outside the allowed roots'), 'SourceForbidden', false],
  [new SourceUnreadable('/data/x.jsonl', 'EIO', true), 'SourceUnreadable', true],
  [new SourceUnreadable('/data/x.jsonl', 'bad gzip', false), 'SourceUnreadable', false],
  [new SourceFetchFailed('https://h/x', 'HTTP 503', 3, true, 503), 'SourceFetchFailed', true],
  [new SourceFetchFailed('https://h/x', 'HTTP 400', 1, false, 400), 'SourceFetchFailed', false],
  [new SourceTooLarge('https://h/x', 10, '11 bytes'), 'SourceTooLarge', false],
  [new SourceMisconfigured('s3://b/x', 'no S3 client'), 'SourceMisconfigured', false],
  [new DatasetTooSmall(10, 64), 'DatasetTooSmall', false],
  [new CheckpointMismatch([{ field: 'vocab', checkpoint: '2', trainer: '3' }]), 'CheckpointMismatch', false],
  [new MalformedTrainerState('optimizer state is truncated'), 'MalformedTrainerState', false],
  [new MalformedShard('not a tar'), 'MalformedShard', false],
  [new InvalidSpec('pipeline', problems), 'InvalidSpec', false],
  [new InvalidBatchSizes(problems), 'InvalidSpec', false],
  [ModelNotFound.model('tiny', 'warm://models', []), 'ModelNotFound', false],
  [new NoPreviousChampion('tiny', 'v1'), 'NoPreviousChampion', false],
  [new CorruptModelVersion('tiny', 'v1', 'model.bin', uri, 'is missing'), 'CorruptModelVersion', false],
  [new RegistryConflict('tiny', 'lost the race'), 'RegistryConflict', true],
  [new ModelNotExportable('tiny', 'v1', 'not GPT-2 shaped'), 'ModelNotExportable', false],
  [new ExternalTrainerError('ExternalTrainerCrashed', 'exit 1'), 'ExternalTrainerCrashed', true],
  [new ExternalTrainerError('ExternalTrainerConfigError', 'exit 2'), 'ExternalTrainerConfigError', false],
  [new ExternalTrainerError('ExternalTrainerProtocolError', 'bad line'), 'ExternalTrainerProtocolError', false],
  [new ExternalTrainerError('ExternalTrainerStalled', 'silent'), 'ExternalTrainerStalled', true],
  [new ExternalTrainerError('ExternalTrainerTimedOut', 'over time'), 'ExternalTrainerTimedOut', true],
  [new CorruptFeedbackPartition(uri, new Error('bad zstd')), 'CorruptFeedbackPartition', false],
  // Retried as before, when they reached an activity as plain Errors.
  [new CorruptDedupFile('not a FWMHBND1 file'), 'CorruptDedupFile', true],
  [new InvalidDedupOptions(['threshold = 2: expected (0, 1)']), 'InvalidDedupOptions', true],
  [new DedupInputError('line 3: no text'), 'DedupInputError', true],
  [new InputDataError(Symbol('gzip'), 'corrupt_compression', 'bad gzip'), 'InputDataError', true],
  [new HashThreadFailed('the sha256 thread exited'), 'HashThreadFailed', true],
  // Raised in clients, workflows, the CLI and the payload codec, never in an activity: not retryable by meaning.
  [new MalformedSafetensors('too short'), 'MalformedSafetensors', false],
  [new InvalidFeedback([{ index: 0, field: 'rating', message: 'required' }]), 'InvalidFeedback', false],
  [new FeedbackBatcherClosed(), 'FeedbackBatcherClosed', false],
  [new ConfigError([{ variable: 'FLYWHEEL_HOT', expected: 'a folder' }]), 'ConfigError', false],
  [new UnknownEncryptionKey('k2', ['k1']), 'UnknownEncryptionKey', false],
  [new DecryptionFailed('k1', 'bad tag'), 'DecryptionFailed', false],
];

describe('Flywheel errors', () => {
  for (const [err, type, retryable] of FAILURES) {
    it(`${err.constructor.name} is a ${retryable ? 'retryable' : 'non-retryable'} ${type}`, () => {
      assert.ok(err instanceof FlywheelError);
      assert.equal(err.type, type);
      assert.equal(err.retryable, retryable);
      if (!(err instanceof InvalidBatchSizes)) assert.equal(err.name, type);
      const failure = toActivityFailure(err);
      assert.ok(failure instanceof ApplicationFailure, String(failure));
      assert.equal(failure.type, type);
      assert.equal(failure.nonRetryable, !retryable);
      assert.equal(failure.message, err.message);
      assert.equal(failure.cause, err);
    });
  }

  it('carry what a handler needs as the failure details', () => {
    const details = (err: FlywheelError) => (toActivityFailure(err) as ApplicationFailure).details;
    assert.deepEqual(details(new ObjectNotFound(uri)), [{ uri }]);
    assert.deepEqual(details(new SourceNotFound('/data/x.jsonl')), [{ location: '/data/x.jsonl' }]);
    assert.deepEqual(
      details(new ExternalTrainerError('ExternalTrainerCrashed', 'exit 1', { exitCode: 1, stderrTail: ['boom'] })),
      [{ exitCode: 1, signal: undefined, stderrTail: ['boom'] }],
    );
    assert.deepEqual(details(new InvalidSpec('pipeline', problems)), [problems]);
    assert.deepEqual(details(new CorruptFeedbackPartition(uri, new Error('bad zstd'))), [uri]);
    assert.equal(details(new DatasetTooSmall(10, 64)), undefined);
  });

  it('keep the storage and collect `code` the same as the type', () => {
    assert.equal(new ObjectNotFound(uri).code, 'ObjectNotFound');
    assert.equal(new SourceTooLarge('https://h/x', 10, '11 bytes').code, 'SourceTooLarge');
  });
});

describe('toActivityFailure', () => {
  it('fails a dataset version built from another spec at once', () => {
    const failure = toActivityFailure(new DatasetVersionExists('warm://datasets/d/v1/manifest.json', 'a', 'b'));
    assert.ok(failure instanceof ApplicationFailure);
    assert.equal(failure.type, 'DatasetVersionExists');
    assert.equal(failure.nonRetryable, true);
  });

  it("passes Temporal's own failures and unexpected errors through unchanged", () => {
    for (const err of [
      ApplicationFailure.retryable('try again', 'Custom'),
      new CancelledFailure('cancelled'),
      new TypeError('x is undefined'),
      'a string',
    ])
      assert.equal(toActivityFailure(err), err);
  });
});
