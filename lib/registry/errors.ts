import { FlywheelError } from '../common';

/**
 * Registry failures. Each names what was asked for and what exists, and says by `retryable` whether retrying the
 * same call can help: a missing model or a corrupt file stays so, a lost race does not.
 */
export abstract class RegistryError extends FlywheelError {}

const listed = (names: readonly string[], none: string) => (names.length ? names.join(', ') : none);

/** No such model, version or champion. Never retried: register or promote one first, or fix the name. */
export class ModelNotFound extends RegistryError {
  private constructor(
    readonly model: string,
    readonly version: string | undefined,
    /** The models (when the model is missing) or the model's versions (otherwise) that do exist. */
    readonly available: string[],
    message: string,
  ) {
    super('ModelNotFound', message, { retryable: false });
  }

  static model(model: string, root: string, models: readonly string[]): ModelNotFound {
    return new ModelNotFound(
      model,
      undefined,
      [...models],
      `no model '${model}' in the registry at ${root} (models: ${listed(models, 'none registered yet')}); ` +
        'check the name, or register a version first',
    );
  }

  static version(model: string, version: string, versions: readonly string[]): ModelNotFound {
    return new ModelNotFound(
      model,
      version,
      [...versions],
      `model '${model}' has no version '${version}' (versions: ${listed(versions, 'none')}); ` +
        "name one of those, 'latest' or 'champion'",
    );
  }

  static champion(model: string, versions: readonly string[]): ModelNotFound {
    return new ModelNotFound(
      model,
      'champion',
      [...versions],
      `model '${model}' has no champion yet (versions: ${listed(versions, 'none')}); promote a version first, ` +
        'or ask for one by name',
    );
  }
}

/** Rollback with no earlier champion to go back to. Never retried. */
export class NoPreviousChampion extends RegistryError {
  constructor(
    readonly model: string,
    readonly champion: string | undefined,
  ) {
    super(
      'NoPreviousChampion',
      champion === undefined
        ? `model '${model}' has no champion, so there is nothing to roll back`
        : `model '${model}' has had only one champion (${champion}) since its history began; there is no earlier ` +
            'one to roll back to. Promote another version instead',
      { retryable: false },
    );
  }
}

/** A registered file that is missing or differs from its manifest. Never retried: re-register the model. */
export class CorruptModelVersion extends RegistryError {
  constructor(
    readonly model: string,
    readonly version: string,
    readonly file: string,
    readonly uri: string,
    detail: string,
    options?: { cause?: unknown },
  ) {
    super(
      'CorruptModelVersion',
      `model ${model} ${version}: file '${file}' (${uri}) ${detail}. The registered copy was changed or lost after ` +
        'registration; register the model again from its checkpoint',
      { retryable: false, cause: options?.cause },
    );
  }
}

/** Writers racing on one model kept colliding, or a record changed under us. Retried: the next try re-reads. */
export class RegistryConflict extends RegistryError {
  constructor(
    readonly model: string,
    detail: string,
  ) {
    super(
      'RegistryConflict',
      `model '${model}': ${detail}; another writer changed the registry at the same time, try again`,
      { retryable: true },
    );
  }
}
