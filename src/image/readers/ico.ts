import { ClipkitError } from '../../errors';
import type { ImageReader } from './types';

// Placeholder until the reader is written: sniffs nothing.
export const ICO: ImageReader = {
  format: 'ico',
  extensions: [],
  sniff: () => false,
  header: (_b, name) => { throw new ClipkitError('E_UNSUPPORTED', `${name}: not read yet`); },
  decode: (_b, name) => { throw new ClipkitError('E_UNSUPPORTED', `${name}: not read yet`); },
};
