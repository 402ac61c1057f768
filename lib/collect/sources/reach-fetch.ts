import { lookup as dnsLookup, type LookupAddress, type LookupAllOptions } from 'node:dns';
import * as http from 'node:http';
import * as https from 'node:https';
import type { LookupFunction } from 'node:net';
import { Readable } from 'node:stream';
import { SourceForbidden } from '../errors';
import { checkHostAllowed, checkResolvedAddress } from '../reach';

/** The part of `fetch` that url sources use: one request, redirects returned (never followed). */
export type ReachFetch = (
  url: string,
  init?: { method?: 'GET' | 'HEAD'; headers?: Record<string, string>; signal?: AbortSignal; redirect?: 'manual' },
) => Promise<Response>;

/** How a host name becomes addresses: `dns.lookup` with `all: true` unless a test supplies its own answers. */
export type ResolveAll = (
  hostname: string,
  options: LookupAllOptions,
  callback: (err: NodeJS.ErrnoException | null, addresses: LookupAddress[]) => void,
) => void;

const NULL_BODY_STATUSES = new Set([101, 204, 205, 304]);

/** One keep-alive agent pair per allow-list, so a pooled connection was always checked under the list it serves. */
const agents = new Map<string, { http: http.Agent; https: https.Agent }>();

function agentsFor(allowedHosts: string[] | undefined) {
  const key = JSON.stringify(allowedHosts ?? null);
  let pair = agents.get(key);
  if (!pair) {
    pair = { http: new http.Agent({ keepAlive: true }), https: new https.Agent({ keepAlive: true }) };
    agents.set(key, pair);
  }
  return pair;
}

/**
 * A fetch for `url` sources whose every connection checks the addresses DNS answered (all of them) as the socket is
 * opened: a host that resolves to a loopback, link-local or private address is refused with SourceForbidden unless
 * it is listed by name in `allowedHosts`, so neither a name like `localhost` nor a DNS answer that changes between
 * planning and download reaches internal services. `location` is the source's URL, which refusals name.
 */
export function fetchWithinReach(
  allowedHosts: string[] | undefined,
  location: string,
  resolveAll: ResolveAll = dnsLookup,
): ReachFetch {
  return (input, init = {}) =>
    new Promise<Response>((resolve, reject) => {
      const url = new URL(input);
      if (url.protocol !== 'http:' && url.protocol !== 'https:') {
        throw new SourceForbidden(location, `${url.protocol} URL ${url.href}; only http(s) is collected`);
      }
      const redirected = url.href !== new URL(location).href;
      checkHostAllowed(url, allowedHosts, location, redirected);
      const lookup: LookupFunction = (hostname, options, callback) => {
        resolveAll(hostname, { ...options, all: true }, (err, addresses) => {
          if (err) return callback(err, '');
          try {
            for (const { address } of addresses) checkResolvedAddress(url, address, allowedHosts, location, redirected);
          } catch (refusal) {
            return callback(refusal as NodeJS.ErrnoException, '');
          }
          if (options.all) return callback(null, addresses);
          callback(null, addresses[0].address, addresses[0].family);
        });
      };
      const secure = url.protocol === 'https:';
      const method = init.method ?? 'GET';
      const request = (secure ? https : http).request(
        url,
        {
          method,
          headers: { 'user-agent': 'flywheel', ...init.headers },
          signal: init.signal,
          lookup,
          agent: secure ? agentsFor(allowedHosts).https : agentsFor(allowedHosts).http,
        },
        (res) => {
          const status = res.statusCode ?? 0;
          if (status < 200 || status > 599) {
            res.destroy();
            reject(new Error(`the server answered with status ${status}, which is not a final answer`));
            return;
          }
          const headers = new Headers();
          for (let i = 0; i + 1 < res.rawHeaders.length; i += 2)
            headers.append(res.rawHeaders[i], res.rawHeaders[i + 1]);
          const empty = method === 'HEAD' || NULL_BODY_STATUSES.has(status);
          if (empty) res.resume();
          const body = empty ? null : (Readable.toWeb(res) as unknown as ReadableStream<Uint8Array>);
          resolve(new Response(body, { status, statusText: res.statusMessage, headers }));
        },
      );
      request.on('error', reject);
      request.end();
    });
}
