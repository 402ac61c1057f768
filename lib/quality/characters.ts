/** Characters as datatrove and Python count and class them; no tokenizer here (the tokenizer reads these). */

/** Python's len(): code points, not UTF-16 units. */
export function codePointLength(text: string): number {
  let length = text.length;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c >= 0xdc00 && c <= 0xdfff && i > 0) {
      const prev = text.charCodeAt(i - 1);
      if (prev >= 0xd800 && prev <= 0xdbff) length--;
    }
  }
  return length;
}

/**
 * datatrove's TERMINAL_PUNCTUATION (utils/text.py): 159 sentence terminals of many scripts. Listed, not
 * \\p{Sentence_Terminal}: that property grows with the Unicode version of the runtime, datatrove's list does not.
 */
const TERMINAL = [
  '\\u{21}\\u{2e}\\u{3f}\\u{589}\\u{61d}-\\u{61f}\\u{6d4}\\u{700}-\\u{702}\\u{7f9}\\u{837}\\u{839}\\u{83d}\\u{83e}',
  '\\u{964}\\u{965}\\u{104a}\\u{104b}\\u{1362}\\u{1367}\\u{1368}\\u{166e}\\u{1735}\\u{1736}\\u{17d4}-\\u{17d6}',
  '\\u{17d9}\\u{17da}\\u{1803}\\u{1809}\\u{1944}\\u{1945}\\u{1aa8}-\\u{1aab}\\u{1b5a}\\u{1b5b}\\u{1b5e}\\u{1b5f}',
  '\\u{1b7d}\\u{1b7e}\\u{1c3b}\\u{1c3c}\\u{1c7e}\\u{1c7f}\\u{203c}\\u{203d}\\u{2047}-\\u{2049}\\u{2e2e}\\u{2e3c}',
  '\\u{2e53}\\u{2e54}\\u{3002}\\u{a4ff}\\u{a60e}\\u{a60f}\\u{a6f3}\\u{a6f7}\\u{a876}\\u{a877}\\u{a8ce}\\u{a8cf}',
  '\\u{a92f}\\u{a9c8}\\u{a9c9}\\u{aa5d}-\\u{aa5f}\\u{aaf0}\\u{aaf1}\\u{abeb}\\u{fe52}\\u{fe56}\\u{fe57}\\u{ff01}',
  '\\u{ff0e}\\u{ff1f}\\u{ff61}\\u{10a56}\\u{10a57}\\u{10f55}-\\u{10f59}\\u{10f86}-\\u{10f89}\\u{11047}\\u{11048}',
  '\\u{110be}-\\u{110c1}\\u{11141}-\\u{11143}\\u{111c5}\\u{111c6}\\u{111cd}\\u{111de}\\u{111df}',
  '\\u{11238}\\u{11239}\\u{1123b}\\u{1123c}\\u{112a9}\\u{1144b}\\u{1144c}\\u{115c2}\\u{115c3}\\u{115c9}-\\u{115d7}',
  '\\u{11641}\\u{11642}\\u{1173c}-\\u{1173e}\\u{11944}\\u{11946}\\u{11a42}\\u{11a43}\\u{11a9b}\\u{11a9c}',
  '\\u{11c41}\\u{11c42}\\u{11ef7}\\u{11ef8}\\u{11f43}\\u{11f44}\\u{16a6e}\\u{16a6f}\\u{16af5}\\u{16b37}\\u{16b38}',
  '\\u{16b44}\\u{16e98}\\u{1bc9f}\\u{1da88}',
].join('');
/** The rest of datatrove's PUNCTUATION: ASCII and CJK punctuation and symbols, control characters, '１' (sic). */
const PUNCTUATION = [
  '\\u{0}-\\u{8}\\u{b}-\\u{1f}\\u{22}-\\u{2d}\\u{2f}\\u{3a}-\\u{3e}\\u{40}\\u{5b}-\\u{60}\\u{7b}-\\u{9f}\\u{ab}\\u{b4}\\u{bb}',
  '\\u{2013}\\u{2014}\\u{2019}\\u{201c}-\\u{201e}\\u{2026}\\u{2236}\\u{2501}\\u{25ba}\\u{3001}\\u{3008}-\\u{300d}\\u{3010}\\u{3011}',
  '\\u{ff05}\\u{ff08}\\u{ff09}\\u{ff0c}\\u{ff11}\\u{ff1a}\\u{ff1b}\\u{ff5e}',
].join('');

/** A line whose last character is one of datatrove's terminal punctuation marks. */
export const ENDS_IN_TERMINAL_PUNCTUATION = new RegExp(`[${TERMINAL}]$`, 'u');
const SYMBOL_ONLY = new RegExp(`^[${PUNCTUATION}${TERMINAL}]+$`, 'u');

/** A token made only of datatrove's punctuation characters (its "symbol word"). */
export function isSymbolToken(token: string): boolean {
  return SYMBOL_ONLY.test(token);
}

const HAS_LETTER = /\p{L}/u;

export function hasLetter(token: string): boolean {
  return HAS_LETTER.test(token);
}
