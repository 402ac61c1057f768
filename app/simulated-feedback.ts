import { createHash } from 'node:crypto';
import { sampleCorpus } from '../lib/collect/sample-corpus';
import type { FeedbackEvent } from '../lib/contracts/feedback';

/**
 * A day of feedback as a deployed model would get it, for the main job: users ask about chapters the model has not
 * seen (the sample corpus past the chapters the base dataset took). The model's answer is its own generated text;
 * users correct some answers with the real passage, rate a few good answers well, and thumb down the rest. Events are
 * keyed by the day, so each day's feedback is new and a repeated run on the same day is dropped as duplicates.
 */
export function simulatedFeedbackDay(opts: {
  day: string;
  /** Chapters of the corpus the base dataset did not take. */
  fromChapter: number;
  modelVersion: string;
  answer: (prompt: string, i: number) => string;
  events?: number;
}): FeedbackEvent[] {
  const chapters = sampleCorpus('moby-dick').documents.slice(opts.fromChapter);
  const count = Math.min(opts.events ?? 120, chapters.length * 4);
  const out: FeedbackEvent[] = [];
  for (let i = 0; i < count; i++) {
    const chapter = chapters[i % chapters.length].text;
    // Four questions per chapter, from four places in it.
    const at = Math.floor(((Math.floor(i / chapters.length) % 4) * chapter.length) / 4);
    const start = chapter.indexOf(' ', at) + 1;
    const promptEnd = chapter.indexOf(' ', start + 160);
    if (start <= 0 || promptEnd < 0) continue;
    const prompt = chapter.slice(start, promptEnd).trim();
    const truth = chapter.slice(promptEnd, Math.min(chapter.length, promptEnd + 2400)).trim();
    const id = createHash('sha256').update(`${opts.day}:${i}`).digest('hex').slice(0, 24);
    const user = createHash('sha256')
      .update(`user-${i % 17}`)
      .digest('hex');
    const ts = `${opts.day}T${String(8 + (i % 14)).padStart(2, '0')}:${String(i % 60).padStart(2, '0')}:00Z`;
    const base = { id, ts, modelVersion: opts.modelVersion, prompt, user, tags: ['simulated'] };
    const kind = i % 5;
    if (kind <= 1)
      out.push({ ...base, response: opts.answer(prompt, i), rating: { thumbs: 'down' }, correction: truth });
    else if (kind === 2) out.push({ ...base, response: truth, rating: { score: 0.9 } });
    else out.push({ ...base, response: opts.answer(prompt, i), rating: { thumbs: 'down' } });
  }
  return out;
}
