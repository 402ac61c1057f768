import { BlockList, isIP } from 'node:net';
import { SourceForbidden } from './errors';

/**
 * One entry of an allowed-hosts list: `data.example.org` (any port), `data.example.org:8443` (that port only),
 * `*.example.org` (its subdomains, not example.org itself) or `*` (any host). IPv6 addresses go in brackets:
 * `[::1]:9000`. Wildcards reach public addresses only; an internal one needs its host listed by name.
 */
interface HostPattern {
  hostname: string;
  port?: string;
  subdomains: boolean;
}

const HOST_ENTRY = /^(\*\.)?([a-z0-9_-]+(?:\.[a-z0-9_-]+)*|\[[0-9a-f:.]+\])(?::(\d{1,5}))?$/;

function parseHostPattern(entry: string): HostPattern | undefined {
  if (entry.trim() === '*') return { hostname: '', subdomains: true };
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

/** Whether `url` may be fetched under `allowedHosts`; any host when the list is left out, none when it is empty. */
export function hostAllowed(url: URL, allowedHosts: string[] | undefined): boolean {
  if (allowedHosts === undefined) return true;
  const hostname = url.hostname.toLowerCase();
  const port = url.port || DEFAULT_PORTS[url.protocol];
  return allowedHosts.some((entry) => {
    const pattern = parseHostPattern(entry);
    if (pattern === undefined) return false;
    if (pattern.port !== undefined && pattern.port !== port) return false;
    if (pattern.hostname === '') return true;
    return pattern.subdomains ? hostname.endsWith(`.${pattern.hostname}`) : hostname === pattern.hostname;
  });
}

/** Whether `url`'s host is on `allowedHosts` by its own name (or address), not through a `*.domain` wildcard. */
export function hostListedByName(url: URL, allowedHosts: string[] | undefined): boolean {
  if (allowedHosts === undefined) return false;
  const hostname = url.hostname.toLowerCase();
  const port = url.port || DEFAULT_PORTS[url.protocol];
  return allowedHosts.some((entry) => {
    const pattern = parseHostPattern(entry);
    return (
      pattern !== undefined &&
      !pattern.subdomains &&
      pattern.hostname === hostname &&
      (pattern.port === undefined || pattern.port === port)
    );
  });
}

/**
 * Throws SourceForbidden unless `url` is on the allowed hosts and, when its host is an IP address, that address is
 * public or the host is listed by name (see checkResolvedAddress); `location` is the source's own URL.
 */
export function checkHostAllowed(
  url: URL,
  allowedHosts: string[] | undefined,
  location: string,
  redirected = false,
): void {
  const what = redirected ? `it redirects to ${url.href}, whose host` : 'its host';
  if (!hostAllowed(url, allowedHosts)) {
    const listed = allowedHosts!.length === 0 ? 'url sources are off (FLYWHEEL_COLLECT_HOSTS=none)' : '';
    throw new SourceForbidden(
      location,
      listed
        ? `${what} ${url.host} is not allowed: ${listed}`
        : `${what} ${url.host} is not among the allowed hosts ${allowedHosts!.join(', ')} (FLYWHEEL_COLLECT_HOSTS)`,
    );
  }
  const literal = url.hostname.replace(/^\[|\]$/g, '');
  if (isIP(literal)) checkResolvedAddress(url, literal, allowedHosts, location, redirected);
}

/**
 * Ranges a `url` source reaches only when its host is listed by name in FLYWHEEL_COLLECT_HOSTS: the machine itself,
 * its link (cloud metadata at 169.254.169.254 included) and private networks (a cluster's services). IPv4-mapped IPv6
 * addresses (`::ffff:127.0.0.1`) match their IPv4 range.
 */
const INTERNAL_RANGES: [kind: string, network: string, prefix: number, family: 'ipv4' | 'ipv6'][] = [
  ['an unspecified (this host)', '0.0.0.0', 8, 'ipv4'],
  ['a loopback', '127.0.0.0', 8, 'ipv4'],
  ['a link-local', '169.254.0.0', 16, 'ipv4'],
  ['a private', '10.0.0.0', 8, 'ipv4'],
  ['a private', '172.16.0.0', 12, 'ipv4'],
  ['a private', '192.168.0.0', 16, 'ipv4'],
  ['a shared (carrier-grade NAT)', '100.64.0.0', 10, 'ipv4'],
  ['a reserved', '192.0.0.0', 24, 'ipv4'],
  ['a benchmarking', '198.18.0.0', 15, 'ipv4'],
  ['a multicast', '224.0.0.0', 4, 'ipv4'],
  ['a reserved', '240.0.0.0', 4, 'ipv4'],
  ['an unspecified (this host)', '::', 128, 'ipv6'],
  ['a loopback', '::1', 128, 'ipv6'],
  ['a link-local', 'fe80::', 10, 'ipv6'],
  ['a private (site-local)', 'fec0::', 10, 'ipv6'],
  ['a private (unique local)', 'fc00::', 7, 'ipv6'],
  ['a multicast', 'ff00::', 8, 'ipv6'],
];

const INTERNAL_LISTS = INTERNAL_RANGES.map(([kind, network, prefix, family]) => {
  const list = new BlockList();
  list.addSubnet(network, prefix, family);
  return { kind, list };
});

/** What kind of internal address `address` is (`a loopback`, `a link-local`, `a private`...); undefined if public. */
export function internalAddressKind(address: string): string | undefined {
  const family = isIP(address);
  if (family === 0) return undefined;
  const type = family === 4 ? 'ipv4' : 'ipv6';
  return INTERNAL_LISTS.find(({ list }) => list.check(address, type))?.kind;
}

/**
 * Throws SourceForbidden when `address`, what `url`'s host resolved to (checked as the connection is made, so a name
 * pointing at 127.0.0.1 is caught too), is internal and the host is not listed by name in `allowedHosts`.
 */
export function checkResolvedAddress(
  url: URL,
  address: string,
  allowedHosts: string[] | undefined,
  location: string,
  redirected = false,
): void {
  const kind = internalAddressKind(address);
  if (kind === undefined || hostListedByName(url, allowedHosts)) return;
  const what = redirected ? `it redirects to ${url.href}, whose host` : 'its host';
  const resolves = url.hostname.replace(/^\[|\]$/g, '') === address ? 'is' : `resolves to ${address},`;
  throw new SourceForbidden(
    location,
    `${what} ${url.hostname} ${resolves} ${kind} address; list the host by name in FLYWHEEL_COLLECT_HOSTS ` +
      `(e.g. ${url.host}) to collect from it`,
  );
}

/** Throws SourceForbidden unless `bucket` is on the allowed buckets (any when the list is left out, none if empty). */
export function checkBucketAllowed(bucket: string, allowedBuckets: string[] | undefined, location: string): void {
  if (allowedBuckets === undefined || allowedBuckets.includes(bucket)) return;
  throw new SourceForbidden(
    location,
    allowedBuckets.length === 0
      ? `bucket ${bucket} is not allowed: s3 sources are off (FLYWHEEL_COLLECT_BUCKETS=none)`
      : `bucket ${bucket} is not among the allowed buckets ${allowedBuckets.join(', ')} (FLYWHEEL_COLLECT_BUCKETS)`,
  );
}
