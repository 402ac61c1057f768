/**
 * Just enough PromQL to read what a dashboard query selects: its metric names, the label matchers on each, and the
 * labels it groups or matches by. Grafana's `$__rate_interval`-style variables may stand where durations do.
 */

export interface LabelMatcher {
  label: string;
  op: '=' | '!=' | '=~' | '!~';
  value: string;
}

export interface PromqlSelector {
  metric: string;
  matchers: LabelMatcher[];
}

export interface PromqlReading {
  selectors: PromqlSelector[];
  /** Labels named in `by (...)`, `without (...)`, `on (...)`, `ignoring (...)`, `group_left (...)`, `group_right (...)`. */
  groupingLabels: string[];
}

type Token =
  | { kind: 'ident'; text: string }
  | { kind: 'string'; text: string }
  | { kind: 'number'; text: string }
  | { kind: 'variable'; text: string }
  | { kind: 'punct'; text: string };

/** Keywords, and aggregations (which may stand before `by (...)` rather than `(`): identifiers that name no metric. */
const KEYWORDS = new Set([
  ...['by', 'without', 'on', 'ignoring', 'group_left', 'group_right', 'bool', 'and', 'or', 'unless', 'offset'],
  ...['sum', 'min', 'max', 'avg', 'group', 'stddev', 'stdvar', 'count', 'count_values', 'bottomk', 'topk'],
  ...['quantile', 'limitk', 'limit_ratio'],
]);
const GROUPING = new Set(['by', 'without', 'on', 'ignoring', 'group_left', 'group_right']);
const MODIFIERS = new Set(['offset']);

function tokenize(expr: string): Token[] {
  const tokens: Token[] = [];
  let i = 0;
  while (i < expr.length) {
    const c = expr[i];
    if (/\s/.test(c)) {
      i++;
    } else if (c === '#') {
      while (i < expr.length && expr[i] !== '\n') i++;
    } else if (c === '"' || c === "'" || c === '`') {
      let j = i + 1;
      let text = '';
      while (j < expr.length && expr[j] !== c) {
        if (expr[j] === '\\' && c !== '`') j++;
        text += expr[j++];
      }
      if (j >= expr.length) throw new Error(`unterminated string at ${i} in ${expr}`);
      tokens.push({ kind: 'string', text });
      i = j + 1;
    } else if (c === '$') {
      const m = /^\$\{?[A-Za-z_][A-Za-z0-9_]*\}?/.exec(expr.slice(i));
      if (!m) throw new Error(`a lone $ at ${i} in ${expr}`);
      tokens.push({ kind: 'variable', text: m[0] });
      i += m[0].length;
    } else if (/[0-9.]/.test(c)) {
      const m = /^[0-9.][0-9A-Za-z.+]*/.exec(expr.slice(i))!;
      tokens.push({ kind: 'number', text: m[0] });
      i += m[0].length;
    } else if (/[A-Za-z_:]/.test(c)) {
      const m = /^[A-Za-z_:][A-Za-z0-9_:]*/.exec(expr.slice(i))!;
      tokens.push({ kind: 'ident', text: m[0] });
      i += m[0].length;
    } else {
      const two = expr.slice(i, i + 2);
      const text = ['=~', '!~', '!=', '==', '>=', '<='].includes(two) ? two : c;
      tokens.push({ kind: 'punct', text });
      i += text.length;
    }
  }
  return tokens;
}

/** Reads every selector of a PromQL expression; throws on what it cannot read, so a typo is not taken for a name. */
export function readPromql(expr: string): PromqlReading {
  const tokens = tokenize(expr);
  const selectors: PromqlSelector[] = [];
  const groupingLabels: string[] = [];
  const at = (k: number) => tokens[k] as Token | undefined;
  const isPunct = (k: number, text: string) => at(k)?.kind === 'punct' && at(k)?.text === text;

  /** `{a="x", b=~"y"}` from the `{` at k: the matchers and the index after `}`. */
  function matchersFrom(k: number): [LabelMatcher[], number] {
    const matchers: LabelMatcher[] = [];
    k++;
    while (!isPunct(k, '}')) {
      const label = at(k);
      const op = at(k + 1);
      const value = at(k + 2);
      if (label?.kind !== 'ident' || op?.kind !== 'punct' || value?.kind !== 'string')
        throw new Error(`cannot read the label matchers in ${expr}`);
      if (!['=', '!=', '=~', '!~'].includes(op.text)) throw new Error(`unknown matcher ${op.text} in ${expr}`);
      matchers.push({ label: label.text, op: op.text as LabelMatcher['op'], value: value.text });
      k += 3;
      if (isPunct(k, ',')) k++;
    }
    return [matchers, k + 1];
  }

  for (let k = 0; k < tokens.length;) {
    const token = tokens[k];
    if (token.kind === 'punct' && token.text === '[') {
      // A range or subquery: durations and variables only.
      while (k < tokens.length && !isPunct(k, ']')) k++;
      k++;
    } else if (token.kind === 'punct' && token.text === '{') {
      const [matchers, next] = matchersFrom(k);
      const name = matchers.find((m) => m.label === '__name__' && m.op === '=');
      if (!name) throw new Error(`a selector without a metric name in ${expr}`);
      selectors.push({ metric: name.value, matchers: matchers.filter((m) => m !== name) });
      k = next;
    } else if (token.kind === 'ident' && GROUPING.has(token.text)) {
      k++;
      if (isPunct(k, '(')) {
        k++;
        while (!isPunct(k, ')')) {
          const label = at(k);
          if (label?.kind === 'ident') groupingLabels.push(label.text);
          else if (!isPunct(k, ',')) throw new Error(`cannot read the label list after ${token.text} in ${expr}`);
          k++;
        }
        k++;
      }
    } else if (token.kind === 'ident' && MODIFIERS.has(token.text)) {
      k += 2;
    } else if (token.kind === 'ident' && !KEYWORDS.has(token.text) && !isPunct(k + 1, '(')) {
      // A metric name: followed by `{`, `[`, or standing alone. (A name followed by `(` is a function.)
      let matchers: LabelMatcher[] = [];
      k++;
      if (isPunct(k, '{')) [matchers, k] = matchersFrom(k);
      selectors.push({ metric: token.text, matchers });
    } else {
      k++;
    }
  }
  return { selectors, groupingLabels };
}
