import type { UsageMeter } from './usage';

/**
 * Apportions this process's CPU time over the activity attempts running in it. Activities run concurrently in one
 * process and their heavy work runs on worker-thread pools shared by all of them, so no thread's clock belongs to one
 * activity. Instead the process's CPU (process.cpuUsage(): every thread, user and system) is sampled whenever the
 * set of running attempts changes, and the CPU spent since the last sample is split evenly over the attempts that ran
 * through that interval (they ran for the same wall time in it). The sum over attempts is then exactly the process's
 * CPU while any attempt ran. Limits: within an interval a busy attempt and an idle one (waiting on S3, a timer)
 * get the same share; CPU spent while no attempt runs (workflow tasks, polling, start-up) is nobody's; child
 * processes (external trainers) are not this process's CPU and are counted as GPU time where they hold GPUs.
 */
export class CpuApportioner {
  private readonly running = new Set<UsageMeter>();
  private last = process.cpuUsage();

  /** An attempt starts: CPU spent until now belongs to those already running. */
  begin(meter: UsageMeter): void {
    this.sample();
    this.running.add(meter);
  }

  /** An attempt ends: its share of the CPU spent since the last change is added to it. */
  end(meter: UsageMeter): void {
    this.sample();
    this.running.delete(meter);
  }

  private sample(): void {
    const now = process.cpuUsage();
    const seconds = (now.user - this.last.user + now.system - this.last.system) / 1e6;
    this.last = now;
    if (this.running.size === 0 || seconds <= 0) return;
    const share = seconds / this.running.size;
    for (const meter of this.running) meter.cpuSeconds += share;
  }
}

/** One per process: every worker in it (io, cpu, train) shares the process's CPU and so this ledger. */
export const processCpu = new CpuApportioner();
