import { SourceForbidden } from './errors';

/**
 * One entry of an allowed-hosts list: `data.example.org` (any port), `data.example.org:8443` (that port only) or
 * `*.example.org` (its subdomains, not example.org itself). IPv6 addresses go in brackets: `[::1]:9000`.
 */
interface HostPattern {
  hostname: string;
  port?: string;
  subdomains: boolean;
}

const HOST_ENTRY = /^(\*\.)?([a-z0-9_-]+(?:\.[a-z0-9_-]+)*|\[[0-9a-f:.]+\])(?::(\d{1,5}))?$/;

function parseHostPattern(entry: string): HostPattern | undefined {
  const match = HOST_ENTRY.exec(entry.trim().toLowerCase());
  if (match === null) return undefined;
  const [, star, host, port] = match;
  if ((star !== undefined && host.startsWith('[')) || (port !== undefined && Number(port) > 65535)) return undefined;
  let hostname: string;
  try {
    // The same normalization a URL's host gets (`127.1` is 127.0.0.1), so both sides compare alike.
    hostname = new URL(`http://${host}`).hostname;
  } catch {
    return undefined;
  }
  return { hostname, port: port === undefined ? undefined : String(Number(port)), subdomains: star !== undefined };
}

/** Whether `entry` is a valid allowed-hosts entry. */
export function isHostPattern(entry: string): boolean {
  return parseHostPattern(entry) !== undefined;
}

const DEFAULT_PORTS: Record<string, string> = { 'http:': '80', 'https:': '443' };

/** Whether `url` may be fetched under `allowedHosts`; any host when the list is left out. */
export function hostAllowed(url: URL, allowedHosts: string[] | undefined): boolean {
  if (allowedHosts === undefined) return true;
  const hostname = url.hostname.toLowerCase();
  const port = url.port || DEFAULT_PORTS[url.protocol];
  return allowedHosts.some((entry) => {
    const pattern = parseHostPattern(entry);
    if (pattern === undefined) return false;
    if (pattern.port !== undefined && pattern.port !== port) return false;
    return pattern.subdomains ? hostname.endsWith(`.${pattern.hostname}`) : hostname === pattern.hostname;
  });
}

/** Throws SourceForbidden unless `url` is on the allowed hosts; `location` is the source's own URL. */
export function checkHostAllowed(
  url: URL,
  allowedHosts: string[] | undefined,
  location: string,
  redirected = false,
): void {
  if (hostAllowed(url, allowedHosts)) return;
  const what = redirected ? `it redirects to ${url.href}, whose host` : 'its host';
  throw new SourceForbidden(location, `${what} ${url.host} is not among the allowed hosts ${allowedHosts!.join(', ')}`);
}

/** Throws SourceForbidden unless `bucket` is on the allowed buckets (any bucket when the list is left out). */
export function checkBucketAllowed(bucket: string, allowedBuckets: string[] | undefined, location: string): void {
  if (allowedBuckets === undefined || allowedBuckets.includes(bucket)) return;
  throw new SourceForbidden(location, `bucket ${bucket} is not among the allowed buckets ${allowedBuckets.join(', ')}`);
}
