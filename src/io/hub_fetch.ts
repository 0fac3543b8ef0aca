/**
 * The fetch clipkit hands to @huggingface/hub for every request it makes to the hub. The library
 * builds the requests and reads the answers; this wrapper adds what the library leaves to its caller:
 *
 *  - the access token, as `Authorization: Bearer`, on requests to the endpoint's own origin only
 *    (not to the storage a download is redirected to). The library's own token option is not used:
 *    it refuses tokens without the `hf_` prefix, which older and organisation tokens lack.
 *  - the caller's AbortSignal.
 *  - one ClipkitError E_IO per failure that names the model and says what to do: the hub cannot be
 *    reached (HubUnreachableError: network failure or a 5xx; HF_ENDPOINT, offline use, a local
 *    folder), 401/403 (HF_TOKEN), 404 (model, revision or file not found).
 *
 * The library turns an error thrown inside a download stream into its message string, so the last
 * error is also kept (`lastError`) for the caller to rethrow as the object it was.
 */
import { ClipkitError } from '../errors';

export interface HubTarget {
  repoId: string;
  revision: string;
  /** Origin (and optional path prefix) of the hub, without a trailing slash. */
  endpoint: string;
  token?: string;
  /** Where the token came from, for messages ("HF_TOKEN", "the token option", a token file). */
  tokenFrom?: string;
  /** The model's folder in the cache, for messages. */
  cacheFolder: string;
  signal?: AbortSignal;
}

/** The hub could not be reached or failed on its side: a complete cached copy may still serve. */
export class HubUnreachableError extends ClipkitError {
  constructor(message: string) {
    super('E_IO', message);
  }
}

const LOCAL_FOLDER_HINT = "or load a local folder instead: loadModel('/path/to/folder') or --model ./folder";

/** The error for "cannot reach the hub and the model is not (completely) in the cache". */
export function unreachableError(t: HubTarget, detail: string): HubUnreachableError {
  return new HubUnreachableError(
    `Cannot reach the Hugging Face Hub at ${t.endpoint} to fetch ${t.repoId}@${t.revision} (${detail}), ` +
      `and it is not completely in the cache at ${t.cacheFolder}. Check the network connection and HF_ENDPOINT ` +
      `(a mirror's address). To work without a network, download the model once and then set HF_HUB_OFFLINE=1 ` +
      `(or pass offline: true), ${LOCAL_FOLDER_HINT}.`,
  );
}

/** The error for offline mode when the cache lacks the model (`missing`: what is absent). */
export function notCachedError(t: HubTarget, missing: string): ClipkitError {
  return new ClipkitError(
    'E_IO',
    `${t.repoId}@${t.revision} is not in the Hugging Face cache at ${t.cacheFolder} (${missing}), and offline mode is on ` +
      `(HF_HUB_OFFLINE=1 or offline: true). Download it once with network access (unset HF_HUB_OFFLINE), ${LOCAL_FOLDER_HINT}.`,
  );
}

/** Why a fetch failed below HTTP: the system error code when there is one (ECONNREFUSED, ENOTFOUND). */
function networkDetail(err: unknown): string {
  const cause = (err as { cause?: { code?: string; message?: string } })?.cause;
  return cause?.code ?? cause?.message ?? (err as Error)?.message ?? String(err);
}

/** The message the hub put in a JSON error body, if any (at most 200 characters). */
async function serverMessage(res: Response): Promise<string> {
  try {
    const text = await res.text();
    const json = JSON.parse(text) as { error?: unknown; message?: unknown };
    const msg = typeof json.error === 'string' ? json.error : typeof json.message === 'string' ? json.message : '';
    return msg ? `: ${msg.slice(0, 200)}` : '';
  } catch {
    return '';
  }
}

async function httpError(t: HubTarget, res: Response, url: URL): Promise<ClipkitError> {
  const code = res.headers.get('x-error-code') ?? '';
  const said = `HTTP ${res.status}${code ? ` ${code}` : ''}${await serverMessage(res)}`;
  const file = /\/resolve\/[^/]+\/(.+)$/.exec(url.pathname)?.[1];
  if (res.status === 401 || res.status === 403) {
    if (code === 'GatedRepo')
      return new ClipkitError('E_IO', `${t.repoId} is a gated model (${said}). Accept its terms on the model's page on the Hub, then set HF_TOKEN to an access token of that account (or pass token).`);
    if (t.token)
      return new ClipkitError('E_IO', `The Hugging Face Hub refused the access token from ${t.tokenFrom} for ${t.repoId} (${said}). Check that HF_TOKEN holds a valid token with read access to this model.`);
    return new ClipkitError('E_IO', `The Hugging Face Hub refused access to ${t.repoId} (${said}): it does not exist, or it is private or gated. For a private or gated model, set HF_TOKEN to an access token with read access (or pass token).`);
  }
  if (res.status === 404) {
    if (code === 'RevisionNotFound')
      return new ClipkitError('E_IO', `Revision ${t.revision} not found in ${t.repoId} on ${t.endpoint} (${said}). Give a branch, a tag or a full 40-character commit sha.`);
    if (code === 'EntryNotFound' && file)
      return new ClipkitError('E_IO', `File ${decodeURIComponent(file)} not found in ${t.repoId}@${t.revision} on ${t.endpoint} (${said}).`);
    return new ClipkitError('E_IO', `Model ${t.repoId} not found on ${t.endpoint} (${said}). Check the name (org/name), ${LOCAL_FOLDER_HINT}.`);
  }
  if (res.status >= 500) return unreachableError(t, said);
  return new ClipkitError('E_IO', `The Hugging Face Hub answered ${said} for ${url.href} while fetching ${t.repoId}@${t.revision}.`);
}

export interface HubFetch {
  fetch: typeof fetch;
  /** The last error this fetch threw (the library may have reduced it to its message). */
  lastError(): Error | null;
}

export function hubFetch(t: HubTarget): HubFetch {
  const origin = new URL(t.endpoint).origin;
  let last: Error | null = null;
  const fail = (err: Error) => {
    last = err;
    return err;
  };
  const wrapped = async (input: string | URL | Request, init?: RequestInit): Promise<Response> => {
    const url = new URL(input instanceof Request ? input.url : input.toString());
    const headers = new Headers(init?.headers);
    if (t.token && url.origin === origin) headers.set('Authorization', `Bearer ${t.token}`);
    let res: Response;
    try {
      res = await fetch(input, { ...init, headers, signal: t.signal });
    } catch (err) {
      if (t.signal?.aborted) throw fail(t.signal.reason);
      throw fail(unreachableError(t, networkDetail(err)));
    }
    if (res.ok) return res;
    throw fail(await httpError(t, res, url));
  };
  return { fetch: wrapped as typeof fetch, lastError: () => last };
}
