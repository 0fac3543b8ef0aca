/**
 * One writer per output. Two processes appending to one embed journal, or updating one image index,
 * would interleave their records and both report success; the second is refused instead.
 *
 * The lock is the kernel's (flock, through the addon): it goes with the descriptor, so a process
 * that dies in any way, SIGKILL included, releases it at once, and nothing stale is left to guess
 * about. Lock files are therefore never deleted: removing one while another process holds it would
 * let a third lock a new file of the same name.
 */
import * as fs from 'node:fs';
import { ClipkitError } from '../errors';
import { native } from '../native';

/** Takes the exclusive lock of an open file, or closes it and throws E_BUSY with `busy` as the message. */
export function lockOrRefuse(fd: number, busy: string): void {
  let taken: boolean;
  try {
    taken = native().lockFile({ fd });
  } catch (err) {
    fs.closeSync(fd);
    throw err;
  }
  if (!taken) {
    fs.closeSync(fd);
    throw new ClipkitError('E_BUSY', busy);
  }
}

/** An exclusive lock held on `file` (created if missing) until release() or the end of the process. */
export class FileLock {
  private constructor(private fd: number) {}

  static acquire(file: string, busy: string): FileLock {
    let fd: number;
    try {
      fd = fs.openSync(file, fs.constants.O_RDWR | fs.constants.O_CREAT, 0o644);
    } catch (err) {
      throw new ClipkitError('E_IO', `Cannot open the lock file ${file}: ${(err as Error).message}`);
    }
    lockOrRefuse(fd, busy);
    return new FileLock(fd);
  }

  release(): void {
    if (this.fd >= 0) fs.closeSync(this.fd);
    this.fd = -1;
  }
}
