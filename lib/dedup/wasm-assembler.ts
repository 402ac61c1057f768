/**
 * A tiny WebAssembly binary writer: just enough of the format (one memory, exported functions, i32/i64/v128
 * locals, structured control flow, SIMD) to spell the MinHash kernel in readable TypeScript, so the project ships
 * neither a compiled binary nor a toolchain to build one. Opcodes follow the core spec and the SIMD proposal's
 * BinarySIMD.md; the kernel's tests check every result against a plain BigInt reference.
 */

export const i32 = 0x7f;
export const i64 = 0x7e;
export const v128 = 0x7b;
export type ValType = typeof i32 | typeof i64 | typeof v128;

function uleb(value: number): number[] {
  const out: number[] = [];
  let v = value >>> 0;
  do {
    let byte = v & 0x7f;
    v >>>= 7;
    if (v !== 0) byte |= 0x80;
    out.push(byte);
  } while (v !== 0);
  return out;
}

function sleb(value: bigint): number[] {
  const out: number[] = [];
  let v = BigInt.asIntN(64, value);
  for (;;) {
    const byte = Number(v & 0x7fn);
    v >>= 7n;
    const done = (v === 0n && (byte & 0x40) === 0) || (v === -1n && (byte & 0x40) !== 0);
    out.push(done ? byte : byte | 0x80);
    if (done) return out;
  }
}

/** The body of one function: each method appends one instruction (stack machine order). */
export class Body {
  readonly bytes: number[] = [];

  private op(...bytes: number[]): this {
    this.bytes.push(...bytes);
    return this;
  }
  private simd(code: number, ...immediates: number[]): this {
    return this.op(0xfd, ...uleb(code), ...immediates);
  }
  /** memarg: alignment exponent, then the constant offset. */
  private mem(code: number, align: number, offset: number): this {
    return this.op(code, align, ...uleb(offset));
  }

  // control
  block(): this {
    return this.op(0x02, 0x40);
  }
  loop(): this {
    return this.op(0x03, 0x40);
  }
  if(): this {
    return this.op(0x04, 0x40);
  }
  else(): this {
    return this.op(0x05);
  }
  end(): this {
    return this.op(0x0b);
  }
  br(depth: number): this {
    return this.op(0x0c, ...uleb(depth));
  }
  brIf(depth: number): this {
    return this.op(0x0d, ...uleb(depth));
  }
  return(): this {
    return this.op(0x0f);
  }
  select(): this {
    return this.op(0x1b);
  }

  // locals
  get(local: number): this {
    return this.op(0x20, ...uleb(local));
  }
  set(local: number): this {
    return this.op(0x21, ...uleb(local));
  }
  tee(local: number): this {
    return this.op(0x22, ...uleb(local));
  }

  // memory
  i32Load(offset = 0): this {
    return this.mem(0x28, 2, offset);
  }
  i64Load(offset = 0): this {
    return this.mem(0x29, 3, offset);
  }
  i32Load8U(offset = 0): this {
    return this.mem(0x2d, 0, offset);
  }
  i32Store(offset = 0): this {
    return this.mem(0x36, 2, offset);
  }
  i64Store(offset = 0): this {
    return this.mem(0x37, 3, offset);
  }

  // constants
  i32Const(value: number): this {
    return this.op(0x41, ...sleb(BigInt(value | 0)));
  }
  i64Const(value: bigint): this {
    return this.op(0x42, ...sleb(value));
  }

  // i32
  i32Eqz(): this {
    return this.op(0x45);
  }
  i32Eq(): this {
    return this.op(0x46);
  }
  i32LtU(): this {
    return this.op(0x49);
  }
  i32GeU(): this {
    return this.op(0x4f);
  }
  i32Add(): this {
    return this.op(0x6a);
  }
  i32Sub(): this {
    return this.op(0x6b);
  }
  i32Mul(): this {
    return this.op(0x6c);
  }
  i32Xor(): this {
    return this.op(0x73);
  }
  i32Shl(): this {
    return this.op(0x74);
  }
  i32ShrU(): this {
    return this.op(0x76);
  }

  // i64
  i64Mul(): this {
    return this.op(0x7e);
  }
  i64Xor(): this {
    return this.op(0x85);
  }
  i64ShrU(): this {
    return this.op(0x88);
  }
  i64Rotl(): this {
    return this.op(0x89);
  }
  i32WrapI64(): this {
    return this.op(0xa7);
  }
  i64ExtendI32U(): this {
    return this.op(0xad);
  }

  // SIMD
  v128Load(offset = 0): this {
    return this.simd(0x00, 4, ...uleb(offset));
  }
  v128Store(offset = 0): this {
    return this.simd(0x0b, 4, ...uleb(offset));
  }
  i32x4Splat(): this {
    return this.simd(0x11);
  }
  i32x4Add(): this {
    return this.simd(0xae);
  }
  i32x4Mul(): this {
    return this.simd(0xb5);
  }
  i32x4MinU(): this {
    return this.simd(0xb7);
  }
}

export interface FunctionDef {
  name: string;
  params: ValType[];
  results: ValType[];
  /** Extra locals after the parameters, numbered from params.length. */
  locals: ValType[];
  body: Body;
}

function section(id: number, content: number[]): number[] {
  return [id, ...uleb(content.length), ...content];
}

function vector(items: number[][]): number[] {
  return [...uleb(items.length), ...items.flat()];
}

function name(text: string): number[] {
  const bytes = [...Buffer.from(text, 'utf8')];
  return [...uleb(bytes.length), ...bytes];
}

/** A module with one exported memory (`memory`, growable) and the given exported functions. */
export function assembleModule(functions: FunctionDef[], memoryPages: number): Uint8Array {
  const types = vector(
    functions.map((f) => [0x60, ...vector(f.params.map((t) => [t])), ...vector(f.results.map((t) => [t]))]),
  );
  const funcs = vector(functions.map((_, i) => uleb(i)));
  const memory = vector([[0x00, ...uleb(memoryPages)]]);
  const exports = vector([
    [...name('memory'), 0x02, 0x00],
    ...functions.map((f, i) => [...name(f.name), 0x00, ...uleb(i)]),
  ]);
  const code = vector(
    functions.map((f) => {
      // Locals are declared as runs of one type.
      const runs: number[][] = [];
      for (const t of f.locals) {
        const last = runs[runs.length - 1];
        if (last && last[1] === t) last[0]++;
        else runs.push([1, t]);
      }
      const body = [...vector(runs.map(([count, t]) => [...uleb(count), t])), ...f.body.bytes, 0x0b];
      return [...uleb(body.length), ...body];
    }),
  );
  return Uint8Array.from([
    ...[0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00],
    ...section(1, types),
    ...section(3, funcs),
    ...section(5, memory),
    ...section(7, exports),
    ...section(10, code),
  ]);
}
