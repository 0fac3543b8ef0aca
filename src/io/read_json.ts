/**
 * readJson(file, what): a JSON side file (config.json, preprocessor_config.json,
 * tokenizer_config.json, a weight index) as an object. The file is read through read_file.ts, so
 * only a regular file under the side-file limit is read (E_IO, E_LIMIT). Text that does not parse,
 * or parses to anything but an object, is E_FORMAT naming the file: every caller reads fields off
 * the result, and an array or a number there would only fail later with a less useful message.
 */
import { ClipkitError } from '../errors';
import { readTextBounded } from './read_file';

/** The JSON object in `file`; `what` names it in errors ("config", "tokenizer config"). */
export function readJson(file: string, what: string): Record<string, unknown> {
  const text = readTextBounded(file, what);
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw new ClipkitError('E_FORMAT', `Invalid ${what} ${file}: not valid JSON (${(err as Error).message})`);
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value))
    throw new ClipkitError('E_FORMAT', `Invalid ${what} ${file}: expected a JSON object but found ${jsonKind(value)}`);
  return value as Record<string, unknown>;
}

function jsonKind(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  return `${typeof v} ${JSON.stringify(v).slice(0, 60)}`;
}
