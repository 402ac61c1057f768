import { readdirSync } from 'node:fs';

/**
 * The GPUs an external trainer is given: the processes its launcher starts per node (torchrun's --nproc-per-node,
 * deepspeed's --num_gpus), at most the GPUs visible to it (CUDA_VISIBLE_DEVICES in its environment, else the
 * machine's NVIDIA GPUs); a launcher that names no count is given every visible GPU. 0 on a machine without GPUs,
 * where torchrun's ranks are CPU processes.
 */
export function gpusGiven(command: readonly string[], env: NodeJS.ProcessEnv, machineGpus = nvidiaGpus()): number {
  const visible = visibleGpus(env.CUDA_VISIBLE_DEVICES, machineGpus);
  const asked = launcherGpus(command);
  return asked === undefined ? visible : Math.min(asked, visible);
}

function launcherGpus(command: readonly string[]): number | undefined {
  const flags = ['--nproc-per-node', '--nproc_per_node', '--num_gpus', '--num-gpus'];
  for (let i = 0; i < command.length; i++) {
    const arg = command[i];
    const flag = flags.find((f) => arg === f || arg.startsWith(`${f}=`));
    if (!flag) continue;
    const value = arg === flag ? command[i + 1] : arg.slice(flag.length + 1);
    const n = Number(value);
    // torchrun's `gpu`/`auto`: one process per visible GPU.
    return Number.isInteger(n) && n >= 0 ? n : undefined;
  }
  return undefined;
}

function visibleGpus(cudaVisible: string | undefined, machineGpus: number): number {
  if (cudaVisible === undefined) return machineGpus;
  const listed = cudaVisible
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '');
  // CUDA stops at the first invalid entry (`-1` hides every GPU).
  const valid = listed.findIndex((s) => s.startsWith('-'));
  return Math.min(valid === -1 ? listed.length : valid, machineGpus);
}

/** NVIDIA GPUs the driver reports on this machine (none without the driver). */
export function nvidiaGpus(): number {
  try {
    return readdirSync('/proc/driver/nvidia/gpus').length;
  } catch {
    return 0;
  }
}
