import { z } from 'zod';

const price = (what: string) =>
  z
    .number({ message: `a price ≥ 0 per ${what}` })
    .finite(`a price ≥ 0 per ${what}`)
    .min(0, `a price ≥ 0 per ${what}`);

/** What a run's usage costs: FLYWHEEL_PRICES (JSON) or the file FLYWHEEL_PRICES_FILE; a key left out costs 0. */
export const PriceTableSchema = z
  .object({
    currency: z.string().trim().min(1).max(8).default('USD'),
    cpuHour: price('CPU hour').default(0),
    gpuHour: price('GPU hour').default(0),
    gbMonth: z
      .object({
        hot: price('GB-month of hot').default(0),
        warm: price('GB-month of warm').default(0),
        cold: price('GB-month of cold').default(0),
      })
      .strict()
      .prefault({}),
    per1000Requests: price('1,000 S3 requests').default(0),
  })
  .strict();

export type PriceTable = z.infer<typeof PriceTableSchema>;

/** Every problem of a price table's text, each naming the key (`gbMonth.warm: a price ≥ 0 ...`), or the table. */
export function parsePriceTable(text: string): { table?: PriceTable; problems: string[] } {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    return { problems: [`a JSON object of prices (${(err as Error).message})`] };
  }
  const parsed = PriceTableSchema.safeParse(raw);
  if (parsed.success) return { table: parsed.data, problems: [] };
  return {
    problems: parsed.error.issues.map((issue) => {
      const at = issue.path.join('.');
      if (issue.code === 'unrecognized_keys')
        return `no unknown key ${issue.keys.map((k) => JSON.stringify(at ? `${at}.${k}` : k)).join(', ')} (known: ${priceKeys()})`;
      return `${at || 'the table'}: ${issue.message}`;
    }),
  };
}

function priceKeys(): string {
  return 'currency, cpuHour, gpuHour, gbMonth.hot, gbMonth.warm, gbMonth.cold, per1000Requests';
}

/** No table configured: every figure is measured and shown, every amount is 0. */
export const NO_PRICES: PriceTable = PriceTableSchema.parse({});

/** An amount as the report and `flywheel cost` print it: cents, or six places for a fraction of a cent. */
export function formatMoney(amount: number, currency: string): string {
  return `${amount.toFixed(amount !== 0 && Math.abs(amount) < 0.01 ? 6 : 2)} ${currency}`;
}
