import { randomUUID } from 'node:crypto';
import { mkdir, readdir, readFile, rm, rmdir, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

/** The local folders one attempt's trainer works in, on the train worker's disk. */
export interface TrainerWorkDir {
  /** The run's folder on this machine; it records the running trainer. */
  root: string;
  /** This attempt's folder, inside `root`. */
  attempt: string;
  /** FLYWHEEL_CHECKPOINT_DIR: the trainer writes step-<N>/ folders here. */
  checkpoints: string;
  /** FLYWHEEL_RESUME_DIR: the restored checkpoint, when there is one. */
  resume: string;
  /** FLYWHEEL_INIT_DIR: a fine-tune's base model files, when the run starts from a registered model. */
  init: string;
  /** FLYWHEEL_PROGRESS_FILE, when the trainer reports to a file. */
  progressFile: string;
  /** FLYWHEEL_DATASET_FILE: the dataset with local shard paths. */
  datasetFile: string;
  /** Marks this attempt's trainer, so a later attempt on this machine can find it (FLYWHEEL_TRAINER_ID). */
  trainerId: string;
}

const PID_FILE = 'trainer.json';

/**
 * Local scratch of external trainers and evaluation commands on this worker (work folders, cached shards, model
 * files): set TMPDIR to a large local disk on train workers.
 */
export function externalScratchDir(): string {
  return join(tmpdir(), 'flywheel-external');
}

/**
 * Makes a fresh folder for a new attempt in the run's folder `root`. A trainer an earlier attempt left running on
 * this machine (its worker was killed) is killed first and its folders removed, so two trainers never write one
 * run's checkpoints.
 */
export async function prepareWorkDir(root: string): Promise<TrainerWorkDir> {
  await mkdir(root, { recursive: true });
  await killLeftoverTrainer(root);
  for (const entry of await readdir(root)) await rm(join(root, entry), { recursive: true, force: true });
  const trainerId = randomUUID();
  const attempt = join(root, trainerId);
  const dir: TrainerWorkDir = {
    root,
    attempt,
    checkpoints: join(attempt, 'checkpoints'),
    resume: join(attempt, 'resume'),
    init: join(attempt, 'init'),
    progressFile: join(attempt, 'progress.jsonl'),
    datasetFile: join(attempt, 'dataset.json'),
    trainerId,
  };
  await mkdir(dir.checkpoints, { recursive: true });
  return dir;
}

/** Records the trainer's process group, for a later attempt to kill if this one's worker dies. */
export async function recordTrainer(dir: TrainerWorkDir, pid: number): Promise<void> {
  await writeFile(join(dir.root, PID_FILE), JSON.stringify({ pid, trainerId: dir.trainerId }));
}

/** Frees the disk an attempt used once it is over (its checkpoints are in the tiers by now). */
export async function removeWorkDir(dir: TrainerWorkDir): Promise<void> {
  await rm(dir.attempt, { recursive: true, force: true });
  if ((await readRecorded(dir.root))?.trainerId === dir.trainerId) await rm(join(dir.root, PID_FILE), { force: true });
  await rmdir(dir.root).catch(() => undefined); // a newer attempt may be using it
}

async function readRecorded(root: string): Promise<{ pid: number; trainerId: string } | undefined> {
  try {
    return JSON.parse(await readFile(join(root, PID_FILE), 'utf8')) as { pid: number; trainerId: string };
  } catch {
    return undefined;
  }
}

async function killLeftoverTrainer(root: string): Promise<void> {
  const recorded = await readRecorded(root);
  if (recorded === undefined || !Number.isSafeInteger(recorded.pid) || recorded.pid <= 1) return;
  // The pid may have been reused since: only a process carrying the attempt's id is killed.
  const isOurs = async () => {
    try {
      const environ = await readFile(`/proc/${recorded.pid}/environ`, 'utf8');
      return environ.split('\0').includes(`FLYWHEEL_TRAINER_ID=${recorded.trainerId}`);
    } catch {
      return false;
    }
  };
  if (!(await isOurs())) return;
  try {
    process.kill(-recorded.pid, 'SIGKILL');
  } catch {
    return;
  }
  for (let i = 0; i < 50 && (await isOurs()); i++) await sleep(100);
}
