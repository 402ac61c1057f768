/** How big the load run is: FLYWHEEL_LOAD_* variables override the CI defaults, for quick local runs. */
export interface LoadSettings {
  /** Data pipelines started at once, each on its own dataset. */
  pipelines: number;
  /** How long feedback arrives, in seconds. */
  seconds: number;
  /** Feedback events offered per second, paced evenly. */
  rate: number;
}

export const LOAD_DEFAULTS: LoadSettings = { pipelines: 20, seconds: 60, rate: 1000 };

/** Largest values accepted: the run must stay a CI-sized check on one dev server. */
const LIMITS: Record<keyof LoadSettings, { variable: string; max: number; unit: string }> = {
  pipelines: { variable: 'FLYWHEEL_LOAD_PIPELINES', max: 200, unit: 'pipelines' },
  seconds: { variable: 'FLYWHEEL_LOAD_SECONDS', max: 3600, unit: 'seconds' },
  rate: { variable: 'FLYWHEEL_LOAD_RATE', max: 20_000, unit: 'events per second' },
};

/** A FLYWHEEL_LOAD_* variable that is not a whole number in range: names each one and what it expects. */
export class InvalidLoadSettings extends Error {
  constructor(readonly problems: { variable: string; got: string; expected: string }[]) {
    super(
      `The load run's settings are invalid:\n` +
        problems.map((p) => `  ${p.variable}=${JSON.stringify(p.got)}: expected ${p.expected}`).join('\n') +
        '\nFix or unset these variables (unset, the run uses ' +
        `${LOAD_DEFAULTS.pipelines} pipelines, ${LOAD_DEFAULTS.rate} events/s for ${LOAD_DEFAULTS.seconds} s).`,
    );
    this.name = 'InvalidLoadSettings';
  }
}

export function loadSettingsFromEnv(env: NodeJS.ProcessEnv = process.env): LoadSettings {
  const settings = { ...LOAD_DEFAULTS };
  const problems: InvalidLoadSettings['problems'] = [];
  for (const key of Object.keys(LIMITS) as (keyof LoadSettings)[]) {
    const { variable, max, unit } = LIMITS[key];
    const raw = env[variable]?.trim();
    if (raw === undefined || raw === '') continue;
    const value = Number(raw);
    if (/^\d+$/.test(raw) && value >= 1 && value <= max) settings[key] = value;
    else problems.push({ variable, got: raw, expected: `a whole number of ${unit} from 1 to ${max}` });
  }
  if (problems.length > 0) throw new InvalidLoadSettings(problems);
  return settings;
}
