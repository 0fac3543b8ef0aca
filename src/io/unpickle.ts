/**
 * A restricted Python unpickler that executes nothing: it reads the binary opcodes of pickle
 * protocols 2 to 5 that torch.save produces and builds plain JavaScript values. The only "code" a
 * pickle can reach is the table of globals its caller passes in (`UnpickleOptions.globals`), keyed
 * by `module.name`; each entry says what a GLOBAL of that name becomes and what REDUCE / NEWOBJ on
 * it build. Every other global is refused with its name, before anything is called.
 *
 * Python values become: None → null, bool → boolean, int → number (bigint beyond 2^53), float →
 * number, str → string, bytes → Uint8Array, list → array, tuple → PyTuple, dict → Map, set → Set;
 * values built by the globals table are whatever it returns (treated as opaque here).
 *
 * Refused with ClipkitError E_FORMAT naming the source, the problem and the byte offset: globals
 * not in the table (and names that are not dotted identifiers), unknown or unsupported opcodes
 * (text-protocol, extension-registry and out-of-band buffer opcodes), truncated arguments, stack
 * underflow and MARK misuse, memo lookups of unset slots, values of the wrong kind for an opcode
 * (APPEND to a dict, BUILD on anything but a dict), more than MAX_MARK_DEPTH open MARKs, integers
 * over MAX_LONG_BYTES bytes, and strings that are not UTF-8. The work is linear in the pickle's
 * length: no opcode loops, copies the stack or allocates more than its own argument's size.
 */
import { ClipkitError } from '../errors';

/** A Python tuple (kept apart from lists, which are arrays). */
export class PyTuple {
  constructor(readonly items: readonly PyValue[]) {
    Object.freeze(this);
  }
}

export type PyValue = null | boolean | number | bigint | string | Uint8Array | PyValue[] | PyTuple | Map<PyValue, PyValue> | Set<PyValue> | object;

/** What a permitted global is. */
export interface PickleGlobal {
  /** The value GLOBAL pushes when the global is a constant (a dtype, a storage type); otherwise a callable is pushed. */
  readonly value?: PyValue;
  /** REDUCE (`callable(*args)`); absent: REDUCE on this global is refused. */
  readonly call?: (args: readonly PyValue[]) => PyValue;
  /** NEWOBJ (`cls.__new__(cls, *args)`); absent: NEWOBJ on this global is refused. */
  readonly construct?: (args: readonly PyValue[]) => PyValue;
}

export interface UnpickleOptions {
  /** Names the pickle in error messages, e.g. `model.pt (data.pkl)`. */
  readonly source: string;
  /** Permitted globals by `module.name` (a map, or a lookup returning undefined for refused names). */
  readonly globals: ReadonlyMap<string, PickleGlobal> | ((qualifiedName: string) => PickleGlobal | undefined);
  /**
   * BUILD on an object the globals table made: applies `state` and returns true, or returns false
   * for objects it does not know (BUILD is then refused). Absent: BUILD is allowed on dicts only.
   */
  readonly build?: (obj: PyValue, state: PyValue) => boolean;
  /** Resolves a persistent id (BINPERSID); absent: persistent ids are refused. */
  readonly persistentLoad?: (pid: PyValue) => PyValue;
}

/** Deeper MARK nesting than this is refused (torch's pickles nest about 4 deep). */
export const MAX_MARK_DEPTH = 256;
/** LONG1 / LONG4 integers longer than this are refused. */
export const MAX_LONG_BYTES = 1024;

/** A permitted global on the stack, waiting for REDUCE or NEWOBJ. */
export class PyCallable {
  constructor(readonly qualifiedName: string, readonly spec: PickleGlobal) {}
}

const OPCODE_NAMES: Record<number, string> = {
  0x28: 'MARK', 0x2e: 'STOP', 0x30: 'POP', 0x31: 'POP_MARK', 0x32: 'DUP', 0x46: 'FLOAT', 0x49: 'INT', 0x4a: 'BININT',
  0x4b: 'BININT1', 0x4c: 'LONG', 0x4d: 'BININT2', 0x4e: 'NONE', 0x50: 'PERSID', 0x51: 'BINPERSID', 0x52: 'REDUCE',
  0x53: 'STRING', 0x54: 'BINSTRING', 0x55: 'SHORT_BINSTRING', 0x56: 'UNICODE', 0x58: 'BINUNICODE', 0x61: 'APPEND',
  0x62: 'BUILD', 0x63: 'GLOBAL', 0x64: 'DICT', 0x7d: 'EMPTY_DICT', 0x65: 'APPENDS', 0x67: 'GET', 0x68: 'BINGET',
  0x69: 'INST', 0x6a: 'LONG_BINGET', 0x6c: 'LIST', 0x5d: 'EMPTY_LIST', 0x6f: 'OBJ', 0x70: 'PUT', 0x71: 'BINPUT',
  0x72: 'LONG_BINPUT', 0x73: 'SETITEM', 0x74: 'TUPLE', 0x29: 'EMPTY_TUPLE', 0x75: 'SETITEMS', 0x47: 'BINFLOAT',
  0x80: 'PROTO', 0x81: 'NEWOBJ', 0x82: 'EXT1', 0x83: 'EXT2', 0x84: 'EXT4', 0x85: 'TUPLE1', 0x86: 'TUPLE2',
  0x87: 'TUPLE3', 0x88: 'NEWTRUE', 0x89: 'NEWFALSE', 0x8a: 'LONG1', 0x8b: 'LONG4', 0x42: 'BINBYTES',
  0x43: 'SHORT_BINBYTES', 0x8c: 'SHORT_BINUNICODE', 0x8d: 'BINUNICODE8', 0x8e: 'BINBYTES8', 0x8f: 'EMPTY_SET',
  0x90: 'ADDITEMS', 0x91: 'FROZENSET', 0x92: 'NEWOBJ_EX', 0x93: 'STACK_GLOBAL', 0x94: 'MEMOIZE', 0x95: 'FRAME',
  0x96: 'BYTEARRAY8', 0x97: 'NEXT_BUFFER', 0x98: 'READONLY_BUFFER',
};

const IDENTIFIER = /^[A-Za-z_][A-Za-z0-9_]*$/;
const DOTTED = /^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$/;

/** A readable name for a global: `module.name` when both are identifiers, else JSON-quoted parts. */
function globalName(module: string, name: string): string {
  return DOTTED.test(module) && IDENTIFIER.test(name) ? `${module}.${name}` : `${JSON.stringify(module)}.${JSON.stringify(name)}`;
}

export function kindOf(v: PyValue | undefined): string {
  if (v === null) return 'None';
  if (v === undefined) return 'nothing';
  if (typeof v === 'boolean') return 'a bool';
  if (typeof v === 'number' || typeof v === 'bigint') return 'a number';
  if (typeof v === 'string') return 'a str';
  if (v instanceof Uint8Array) return 'bytes';
  if (Array.isArray(v)) return 'a list';
  if (v instanceof PyTuple) return 'a tuple';
  if (v instanceof Map) return 'a dict';
  if (v instanceof Set) return 'a set';
  if (v instanceof PyCallable) return `the global ${v.qualifiedName}`;
  return `a ${(v as object).constructor?.name ?? 'object'}`;
}

/**
 * Unpickles one pickle starting at `start` (up to and including its STOP) and returns the value and
 * the offset just past STOP, so that files holding several pickles in a row can be read in turn.
 */
export function unpickle(bytes: Uint8Array, start: number, options: UnpickleOptions): { value: PyValue; end: number } {
  const { source, globals, persistentLoad, build } = options;
  const lookup = typeof globals === 'function' ? globals : (q: string) => globals.get(q);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const utf8 = new TextDecoder('utf-8', { fatal: true });
  let pos = start;
  let opAt = start; // offset of the opcode being run, for messages
  let opName = '';
  const fail = (problem: string) => new ClipkitError('E_FORMAT', `Invalid pickle in ${source}: ${problem} (${opName ? `opcode ${opName} ` : ''}at byte ${opAt - start})`);

  // The stack of the current MARK level and the saved stacks below it, as CPython keeps them.
  let stack: PyValue[] = [];
  const metastack: PyValue[][] = [];
  const memo = new Map<number, PyValue>();

  const take = (n: number): number => {
    if (n > bytes.length - pos) throw fail(`needs ${n} bytes of argument but the pickle ends after ${bytes.length - pos}`);
    const at = pos;
    pos += n;
    return at;
  };
  const readU8 = () => bytes[take(1)];
  const readU16 = () => view.getUint16(take(2), true);
  const readU32 = () => view.getUint32(take(4), true);
  const readU64 = (): number => {
    const v = view.getBigUint64(take(8), true);
    if (v > BigInt(bytes.length)) throw fail(`length ${v} is longer than the pickle`);
    return Number(v);
  };
  const readSlice = (n: number) => bytes.subarray(take(n), pos);
  const readText = (n: number): string => {
    const at = pos;
    const slice = readSlice(n);
    try {
      return utf8.decode(slice);
    } catch {
      opAt = at;
      throw fail('string is not valid UTF-8');
    }
  };
  const readLine = (what: string): string => {
    const nl = bytes.indexOf(0x0a, pos);
    if (nl < 0 || nl - pos > 1024) throw fail(`${what} is not a line of at most 1024 bytes`);
    const s = readText(nl - pos);
    pos++;
    return s;
  };
  const readLong = (n: number): number | bigint => {
    if (n > MAX_LONG_BYTES) throw fail(`integer of ${n} bytes is longer than the ${MAX_LONG_BYTES} allowed`);
    const b = readSlice(n);
    if (n === 0) return 0;
    let hex = '';
    for (let i = n - 1; i >= 0; i--) hex += b[i].toString(16).padStart(2, '0');
    let v = BigInt('0x' + hex);
    if (b[n - 1] & 0x80) v -= 1n << BigInt(8 * n); // two's complement
    return v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v;
  };

  const push = (v: PyValue) => stack.push(v);
  const pop = (): PyValue => {
    if (stack.length === 0) throw fail(metastack.length ? 'needs a value above the last MARK but there is none' : 'stack underflow');
    return stack.pop() as PyValue;
  };
  const top = (): PyValue => {
    if (stack.length === 0) throw fail(metastack.length ? 'needs a value above the last MARK but there is none' : 'stack underflow');
    return stack[stack.length - 1];
  };
  const popMark = (): PyValue[] => {
    const items = stack;
    const below = metastack.pop();
    if (below === undefined) throw fail('no MARK to pop to');
    stack = below;
    return items;
  };
  const memoGet = (i: number): PyValue => {
    if (!memo.has(i)) throw fail(`memo slot ${i} was never set`);
    return memo.get(i) as PyValue;
  };
  const memoPut = (i: number) => {
    memo.set(i, top());
  };
  const asDict = (v: PyValue, op: string): Map<PyValue, PyValue> => {
    if (!(v instanceof Map)) throw fail(`${op} needs a dict but found ${kindOf(v)}`);
    return v;
  };
  const asList = (v: PyValue, op: string): PyValue[] => {
    if (!Array.isArray(v)) throw fail(`${op} needs a list but found ${kindOf(v)}`);
    return v;
  };
  const setItems = (dict: Map<PyValue, PyValue>, items: PyValue[]) => {
    if (items.length % 2) throw fail(`odd number of items (${items.length}) for key/value pairs`);
    for (let i = 0; i < items.length; i += 2) dict.set(hashable(items[i]), items[i + 1]);
  };
  const hashable = (key: PyValue): PyValue => {
    if (key === null || typeof key === 'string' || typeof key === 'number' || typeof key === 'bigint' || typeof key === 'boolean' || key instanceof PyTuple) return key;
    throw fail(`${kindOf(key)} cannot be a dict key or set member`);
  };
  const resolveGlobal = (module: string, name: string): PyValue => {
    const qualified = globalName(module, name);
    const spec = DOTTED.test(module) && IDENTIFIER.test(name) ? lookup(qualified) : undefined;
    if (!spec)
      throw new ClipkitError(
        'E_FORMAT',
        `Refusing to load global ${qualified} from ${source} (at byte ${opAt - start}): a checkpoint may name only tensors, storages, dtypes and ` +
          `containers, and nothing is imported or called. A file that pickles Python objects (for example a whole nn.Module) must be re-saved as a state dict.`,
      );
    return 'value' in spec ? (spec.value as PyValue) : new PyCallable(qualified, spec);
  };
  const callable = (v: PyValue, op: string): PyCallable => {
    if (!(v instanceof PyCallable)) throw fail(`${op} needs a callable global but found ${kindOf(v)}`);
    return v;
  };

  for (;;) {
    opAt = pos;
    opName = '';
    if (pos >= bytes.length) throw fail('the pickle ends without STOP');
    const op = bytes[pos++];
    opName = OPCODE_NAMES[op] ?? '';
    switch (op) {
      case 0x80: { // PROTO
        const v = readU8();
        if (v > 5) throw fail(`pickle protocol ${v} is newer than the 5 clipkit reads`);
        break;
      }
      case 0x95: // FRAME: a length prefix for the opcodes that follow; nothing to do
        readU64();
        break;
      case 0x2e: // STOP
        return { value: pop(), end: pos };
      case 0x28: // MARK
        if (metastack.length >= MAX_MARK_DEPTH) throw fail(`MARKs nested deeper than ${MAX_MARK_DEPTH}`);
        metastack.push(stack);
        stack = [];
        break;
      case 0x30: // POP
        pop();
        break;
      case 0x31: // POP_MARK
        popMark();
        break;
      case 0x32: // DUP
        push(top());
        break;

      case 0x4e: push(null); break; // NONE
      case 0x88: push(true); break; // NEWTRUE
      case 0x89: push(false); break; // NEWFALSE
      case 0x4a: push(view.getInt32(take(4), true)); break; // BININT
      case 0x4b: push(readU8()); break; // BININT1
      case 0x4d: push(readU16()); break; // BININT2
      case 0x8a: push(readLong(readU8())); break; // LONG1
      case 0x8b: push(readLong(readU32())); break; // LONG4
      case 0x47: push(view.getFloat64(take(8), false)); break; // BINFLOAT (big-endian)

      case 0x58: push(readText(readU32())); break; // BINUNICODE
      case 0x8c: push(readText(readU8())); break; // SHORT_BINUNICODE
      case 0x8d: push(readText(readU64())); break; // BINUNICODE8
      case 0x54: push(readText(readU32())); break; // BINSTRING (Python 2 str, decoded as UTF-8 like torch.load)
      case 0x55: push(readText(readU8())); break; // SHORT_BINSTRING
      case 0x42: push(readSlice(readU32()).slice()); break; // BINBYTES
      case 0x43: push(readSlice(readU8()).slice()); break; // SHORT_BINBYTES
      case 0x8e: push(readSlice(readU64()).slice()); break; // BINBYTES8
      case 0x96: push(readSlice(readU64()).slice()); break; // BYTEARRAY8

      case 0x7d: push(new Map()); break; // EMPTY_DICT
      case 0x5d: push([]); break; // EMPTY_LIST
      case 0x29: push(new PyTuple([])); break; // EMPTY_TUPLE
      case 0x8f: push(new Set()); break; // EMPTY_SET
      case 0x85: push(new PyTuple([pop()])); break; // TUPLE1
      case 0x86: { // TUPLE2
        const b = pop(), a = pop();
        push(new PyTuple([a, b]));
        break;
      }
      case 0x87: { // TUPLE3
        const c = pop(), b = pop(), a = pop();
        push(new PyTuple([a, b, c]));
        break;
      }
      case 0x74: push(new PyTuple(popMark())); break; // TUPLE
      case 0x6c: push(popMark()); break; // LIST
      case 0x64: { // DICT
        const items = popMark(), d = new Map<PyValue, PyValue>();
        setItems(d, items);
        push(d);
        break;
      }
      case 0x91: { // FROZENSET
        const items = popMark();
        push(new Set(items.map(hashable)));
        break;
      }
      case 0x61: { // APPEND
        const v = pop();
        asList(top(), 'APPEND').push(v);
        break;
      }
      case 0x65: { // APPENDS
        const items = popMark();
        const list = asList(top(), 'APPENDS');
        for (const v of items) list.push(v);
        break;
      }
      case 0x73: { // SETITEM
        const v = pop(), k = pop();
        asDict(top(), 'SETITEM').set(hashable(k), v);
        break;
      }
      case 0x75: { // SETITEMS
        const items = popMark();
        setItems(asDict(top(), 'SETITEMS'), items);
        break;
      }
      case 0x90: { // ADDITEMS
        const items = popMark();
        const set = top();
        if (!(set instanceof Set)) throw fail(`needs a set but found ${kindOf(set)}`);
        for (const v of items) set.add(hashable(v));
        break;
      }

      case 0x71: memoPut(readU8()); break; // BINPUT
      case 0x72: memoPut(readU32()); break; // LONG_BINPUT
      case 0x94: memoPut(memo.size); break; // MEMOIZE
      case 0x68: push(memoGet(readU8())); break; // BINGET
      case 0x6a: push(memoGet(readU32())); break; // LONG_BINGET

      case 0x63: { // GLOBAL "module\nname\n"
        const module = readLine('GLOBAL module'), name = readLine('GLOBAL name');
        push(resolveGlobal(module, name));
        break;
      }
      case 0x93: { // STACK_GLOBAL
        const name = pop(), module = pop();
        if (typeof module !== 'string' || typeof name !== 'string') throw fail(`needs two strs but found ${kindOf(module)} and ${kindOf(name)}`);
        push(resolveGlobal(module, name));
        break;
      }
      case 0x52: { // REDUCE
        const args = pop(), fn = callable(pop(), 'REDUCE');
        if (!(args instanceof PyTuple)) throw fail(`REDUCE needs a tuple of arguments but found ${kindOf(args)}`);
        if (!fn.spec.call) throw fail(`${fn.qualifiedName} cannot be called`);
        push(fn.spec.call(args.items));
        break;
      }
      case 0x81: { // NEWOBJ
        const args = pop(), cls = callable(pop(), 'NEWOBJ');
        if (!(args instanceof PyTuple)) throw fail(`NEWOBJ needs a tuple of arguments but found ${kindOf(args)}`);
        if (!cls.spec.construct) throw fail(`${cls.qualifiedName} cannot be constructed`);
        push(cls.spec.construct(args.items));
        break;
      }
      case 0x62: { // BUILD: objects of the globals table, or attribute state on a dict (an OrderedDict's _metadata), which is ignored
        const state = pop(), obj = top();
        if (build?.(obj, state)) break;
        if (!(obj instanceof Map)) throw fail(`BUILD on ${kindOf(obj)} is not supported`);
        const dictState = state instanceof PyTuple && state.items.length === 2 ? state.items[0] : state;
        const slotState = state instanceof PyTuple && state.items.length === 2 ? state.items[1] : null;
        for (const s of [dictState, slotState])
          if (s !== null && !(s instanceof Map)) throw fail(`BUILD needs a dict of attributes but found ${kindOf(s)}`);
        break;
      }
      case 0x51: { // BINPERSID
        const pid = pop();
        if (!persistentLoad) throw fail('persistent ids are not allowed here');
        push(persistentLoad(pid));
        break;
      }

      default: {
        const known = opName;
        opName = '';
        throw fail(known ? `opcode ${known} (0x${op.toString(16)}) is not supported in checkpoints` : `unknown opcode 0x${op.toString(16).padStart(2, '0')}`);
      }
    }
  }
}
