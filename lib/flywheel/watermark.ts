import { EMPTY_FEEDBACK_WATERMARK, type FeedbackWatermark } from '../feedback';
import { ObjectNotFound, type TieredStore } from '../storage';

/** How far the flywheel of `model` has read feedback. */
const watermarkUri = (model: string) => `warm://flywheel/${model}/watermark.json`;

/** Where the flywheel of `model` reads feedback from: its saved watermark, or the start on the first night. */
export async function readFlywheelWatermark(store: TieredStore, model: string): Promise<FeedbackWatermark> {
  // No watermark yet is the first night; any other failure must not reset it (all feedback would be curated again).
  const saved = await store.getBytes(watermarkUri(model)).catch((err: unknown) => {
    if (err instanceof ObjectNotFound) return undefined;
    throw err;
  });
  return saved ? (JSON.parse(saved.toString('utf8')) as FeedbackWatermark) : EMPTY_FEEDBACK_WATERMARK;
}

/** Moves the flywheel of `model` past the feedback its champion now covers. */
export async function writeFlywheelWatermark(
  store: TieredStore,
  model: string,
  watermark: FeedbackWatermark,
): Promise<void> {
  await store.put(watermarkUri(model), Buffer.from(JSON.stringify(watermark)));
}
